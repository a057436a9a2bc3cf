"""A Live turn that reports seconds of audio and no token counts."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_gemini import CostSpanProcessor
from otel_gemini import _attributes as attrs
from otel_gemini.pricing import PriceTable, Usage

LIVE = "gemini-2.5-flash-native-audio-preview-09-2025"
NOW = datetime(2026, 11, 24, tzinfo=timezone.utc)
CONTRACT = """
[[models]]
id = "gemini-2.5-flash-native-audio"
[[models.prices]]
source = "contract #42"
input_audio_per_minute = 0.40
output_audio_per_minute = 1.20
"""
SECONDS_ONLY = Usage(audio_input_seconds=30.0, audio_output_seconds=15.0)


def test_a_per_minute_price_bills_measured_seconds_without_tokens(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(CONTRACT, encoding="utf-8")
    cost = PriceTable.load(path).cost(LIVE, SECONDS_ONLY, NOW)

    assert cost.status == "priced"
    assert dict(cost.breakdown) == {
        "input_audio": D("0.2"),  # 0.5 min x $0.40
        "output_audio": D("0.3"),  # 0.25 min x $1.20
    }
    assert cost.total == D("0.5")


def test_token_prices_cannot_price_seconds_alone_so_there_is_no_usage() -> None:
    cost = PriceTable.default().cost(LIVE, SECONDS_ONLY, NOW)

    assert cost.status == "no_usage"  # never a false $0 "priced"
    assert (cost.total, cost.price_model) == (D(0), "gemini-2.5-flash-native-audio")
    assert PriceTable.default().cost(LIVE, Usage(), NOW).status == "no_usage"


def test_a_live_turn_span_with_seconds_only_is_priced_by_the_minute(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(CONTRACT, encoding="utf-8")
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        CostSpanProcessor(SimpleSpanProcessor(exported), PriceTable.load(path))
    )
    with provider.get_tracer("test").start_as_current_span(
        f"generate_content {LIVE}",
        attributes={
            attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
            attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
            attrs.GEN_AI_REQUEST_MODEL: LIVE,
            attrs.USAGE_AUDIO_INPUT_SECONDS: 30.0,
        },
    ):
        pass
    (span,) = exported.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes[attrs.COST_STATUS] == attrs.COST_STATUS_PRICED
    assert D(str(span.attributes[attrs.GEN_AI_USAGE_COST])) == D("0.2")
