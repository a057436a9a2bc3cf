"""The automatic-function-calling exchange several test modules script on the fake Gemini:
a call of ``get_weather`` for Paris (1000 prompt / 50 candidate tokens), then the answer
"It is sunny in Paris." (1100 / 5)."""

from __future__ import annotations

from otel_gemini.testing import FakeGemini, ScriptedUsage


def queue_afc(fake: FakeGemini) -> None:
    fake.add_afc_exchange(
        "get_weather",
        {"city": "Paris"},
        call_usage=ScriptedUsage(prompt=1000, candidates=50),
        final_text="It is sunny in Paris.",
        final_usage=ScriptedUsage(prompt=1100, candidates=5),
    )
