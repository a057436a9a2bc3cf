"""Shared by the instrumentation, Interactions and batch tests: a rich scripted usage and the
attributes it must become, and the helpers reading spans and writing API times."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from otel_gemini.testing import ScriptedUsage


def attributes_of(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def rich_usage() -> ScriptedUsage:
    return ScriptedUsage(
        prompt=1200,
        cached=1000,
        candidates=300,
        thoughts=150,
        tool_use_prompt=40,
        prompt_by_modality={"TEXT": 1000, "AUDIO": 200},
        candidates_by_modality={"TEXT": 300},
        cache_by_modality={"TEXT": 900, "AUDIO": 100},
        tool_use_prompt_by_modality={"TEXT": 40},
    )


RICH_USAGE_ATTRIBUTES = {
    "gen_ai.usage.input_tokens": 1240,
    "gen_ai.usage.output_tokens": 450,
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.reasoning.output_tokens": 150,
    "otel_gemini.usage.tool_use_prompt.input_tokens": 40,
    "gen_ai.usage.text.input_tokens": 1040,
    "gen_ai.usage.audio.input_tokens": 200,
    "gen_ai.usage.text.output_tokens": 450,
    "otel_gemini.usage.cache_read.audio.input_tokens": 100,
}


def iso_z(nanoseconds: int) -> str:
    """The API's way of writing a time: UTC, nine fraction digits, "Z"."""
    moment = datetime.fromtimestamp(nanoseconds // 10**9, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanoseconds % 10**9:09d}Z"
