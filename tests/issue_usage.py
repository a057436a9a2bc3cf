"""The issue's request, as the fake Gemini bills it: input 80 + 20 cached, output 50 + 10
reasoning; 160 tokens in all."""

from __future__ import annotations

from otel_gemini.testing import ScriptedUsage

ISSUE_USAGE = ScriptedUsage(
    prompt=100,
    cached=20,
    candidates=50,
    thoughts=10,
    prompt_by_modality={"TEXT": 100},
    candidates_by_modality={"TEXT": 50},
    cache_by_modality={"TEXT": 20},
)
