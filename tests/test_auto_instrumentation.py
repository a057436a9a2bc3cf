"""``opentelemetry-instrument python app.py`` picks up GeminiInstrumentor with no code change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otel_gemini.testing import FakeGemini, ScriptedUsage

pytestmark = pytest.mark.genai

APP = textwrap.dedent(
    """
    import os
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key="fake", http_options=types.HttpOptions(base_url=os.environ["FAKE_GEMINI_URL"])
    )
    print("TEXT:", client.models.generate_content(model="gemini-2.5-flash", contents="Hi").text)
    """
)


def console_spans(stdout: str) -> list[dict[str, object]]:
    """The JSON span objects the console exporter printed (one pretty-printed object each)."""
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while (start := stdout.find("{", index)) != -1:
        try:
            value, index = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(value, dict) and "context" in value:
            spans.append(value)
    return spans


def test_opentelemetry_instrument_produces_our_spans(
    fake_gemini: FakeGemini, tmp_path: Path
) -> None:
    fake_gemini.add_text("Hello from the fake", usage=ScriptedUsage(prompt=7, candidates=5))
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {
        **os.environ,
        "FAKE_GEMINI_URL": fake_gemini.base_url,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "auto-instrumented-app",
        # The official instrumentation would also activate on google-genai < 3.
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "google-genai",
    }
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    result = subprocess.run(
        [str(instrument), sys.executable, str(app)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "TEXT: Hello from the fake" in result.stdout
    [span] = [
        s for s in console_spans(result.stdout) if str(s["name"]).startswith("generate_content")
    ]
    assert span["name"] == "generate_content gemini-2.5-flash"
    attributes = span["attributes"]
    assert isinstance(attributes, dict)
    assert attributes["gen_ai.usage.input_tokens"] == 7
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"
