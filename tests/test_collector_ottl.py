"""The OTTL cost statements (`otel-gemini collector-config ottl`) in a real Collector price
spans exactly as CostSpanProcessor does, and direct.yaml's persistent queue survives a
Collector crash.

A table of spans goes through the Collector built from collector-config/builder-config.yaml
(direct.yaml + gemini-cost.yaml) to the fake Langfuse; the same spans go through
CostSpanProcessor in memory; the cost attributes must be identical.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from collector_harness import CONFIG_DIR, Collector
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id

from otel_gemini import _attributes as attrs
from otel_gemini.collector import cost_statements
from otel_gemini.pricing import PriceTable
from otel_gemini.processing import CostSpanProcessor
from otel_gemini.testing import FakeLangfuse

pytestmark = [pytest.mark.collector, pytest.mark.timeout(180)]

COST_KEYS = (
    attrs.COST_STATUS,
    attrs.PRICES_VERSION,
    attrs.PRICES_MODEL,
    attrs.GEN_AI_USAGE_COST,
    attrs.LANGFUSE_COST_DETAILS,
    attrs.LANGFUSE_USAGE_DETAILS,
)


def _ns(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, 12, tzinfo=timezone.utc).timestamp()) * 10**9


FLASH = {"gen_ai.request.model": "gemini-2.5-flash"}
# (case id, attributes, start time in ns or None for now, expected gen_ai.usage.cost or None)
Case = tuple[str, dict[str, Any], int | None, float | None]
CASES: list[Case] = [
    (
        "text",
        {**FLASH, "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 200},
        None,
        0.0008,
    ),
    (
        "resource name and version suffix",
        {
            "gen_ai.request.model": "models/gemini-2.0-flash-001",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 1000,
        },
        None,
        0.0005,
    ),
    (
        "vertex name, upper case, @version",
        {
            "gen_ai.response.model": "publishers/google/models/Gemini-2.5-Flash@001",
            "gen_ai.usage.input_tokens": 10,
            "gen_ai.usage.output_tokens": 10,
        },
        None,
        None,
    ),
    (
        "long prompt tier",
        {
            "gen_ai.request.model": "gemini-2.5-pro",
            "gen_ai.usage.input_tokens": 250_000,
            "gen_ai.usage.output_tokens": 1000,
        },
        None,
        0.64,
    ),
    (
        "more than a dollar",
        {
            "gen_ai.request.model": "gemini-2.5-pro",
            "gen_ai.usage.input_tokens": 500_000,
            "gen_ai.usage.output_tokens": 100_000,
        },
        None,
        2.75,
    ),
    (
        "cache and thinking",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 10_000,
            "gen_ai.usage.cache_read.input_tokens": 4000,
            "gen_ai.usage.output_tokens": 3000,
            "gen_ai.usage.reasoning.output_tokens": 1000,
        },
        None,
        None,
    ),
    (
        "audio input, cached audio",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 5000,
            "gen_ai.usage.audio.input_tokens": 3000,
            "gen_ai.usage.text.input_tokens": 2000,
            "gen_ai.usage.cache_read.input_tokens": 1500,
            "otel_gemini.usage.cache_read.audio.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 100,
        },
        None,
        None,
    ),
    (
        "image and video input",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 4000,
            "gen_ai.usage.image.input_tokens": 1000,
            "gen_ai.usage.video.input_tokens": 2000,
            "gen_ai.usage.output_tokens": 50,
        },
        None,
        None,
    ),
    (
        "tool-use prompt tokens",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 3000,
            "otel_gemini.usage.tool_use_prompt.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 10,
        },
        None,
        None,
    ),
    (
        "batch tier",
        {
            **FLASH,
            "otel_gemini.request.service_tier": "batch",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
        },
        None,
        0.0004,
    ),
    (
        "priority tier, odd spelling",
        {
            **FLASH,
            "otel_gemini.request.service_tier": " Priority ",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
        },
        None,
        None,
    ),
    (
        "the official instrumentation's interactions span: thoughts outside output_tokens",
        {
            **FLASH,
            "gen_ai.operation.name": "interactions.create",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
            "gen_ai.usage.reasoning.output_tokens": 100,
        },
        None,
        0.00105,
    ),
    (
        "google-genai's unspecified tier is standard",
        {
            **FLASH,
            "otel_gemini.request.service_tier": "UNSPECIFIED",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
        },
        None,
        0.0008,
    ),
    (
        "a tier without prices is unknown, not standard",
        {
            **FLASH,
            "otel_gemini.request.service_tier": "deferred",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
        },
        None,
        None,
    ),
    (
        "OpenInference",
        {
            "llm.model_name": "gemini-2.0-flash",
            "llm.token_count.prompt": 2000,
            "llm.token_count.completion": 500,
        },
        None,
        0.0004,
    ),
    (
        "old semconv names",
        {**FLASH, "gen_ai.usage.prompt_tokens": 1000, "gen_ai.usage.completion_tokens": 200},
        None,
        0.0008,
    ),
    (
        "preferred name wins",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.prompt_tokens": 99,
            "gen_ai.usage.output_tokens": 200,
        },
        None,
        0.0008,
    ),
    (
        "float counts",
        {**FLASH, "gen_ai.usage.input_tokens": 1000.0, "gen_ai.usage.output_tokens": 200.0},
        None,
        0.0008,
    ),
    # Counts no request can bill (issue 22): implausible_usage, no cost, empty usage details.
    (
        "fractional counts",
        {**FLASH, "gen_ai.usage.input_tokens": 1000.9, "gen_ai.usage.output_tokens": 200},
        None,
        None,
    ),
    ("10^15 tokens", {**FLASH, "gen_ai.usage.input_tokens": 10**15}, None, None),
    ("2^63 - 1 tokens", {**FLASH, "gen_ai.usage.output_tokens": 2**63 - 1}, None, None),
    ("1e308 tokens", {**FLASH, "gen_ai.usage.input_tokens": 1e308}, None, None),
    ("negative tokens", {**FLASH, "gen_ai.usage.input_tokens": -1}, None, None),
    (
        "a negative part",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.reasoning.output_tokens": -5,
        },
        None,
        None,
    ),
    ("too many images", {**FLASH, "otel_gemini.usage.output_images": 10**9}, None, None),
    (
        "unknown model, 10^15 tokens",
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10**15},
        None,
        None,
    ),
    (
        "unknown model",
        {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 10},
        None,
        None,
    ),
    (
        # An unpriced span gets its usage buckets too (not Langfuse's own parse of
        # gen_ai.usage.*, which counts per-modality counts again), units included.
        "unknown model with per-modality counts, images and video",
        {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 20,
            "gen_ai.usage.output_tokens": 60,
            "gen_ai.usage.reasoning.output_tokens": 10,
            "gen_ai.usage.text.input_tokens": 100,
            "gen_ai.usage.text.output_tokens": 50,
            "otel_gemini.usage.image.output_count": 2,
            "otel_gemini.usage.video.output_seconds": 7.6,
        },
        None,
        None,
    ),
    (
        "unknown response model, known request model",
        {
            "gen_ai.response.model": "gemini-9-ultra",
            **FLASH,
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 200,
        },
        None,
        0.0008,
    ),
    (
        "no usage",
        {**FLASH, "gen_ai.usage.input_tokens": 0, "gen_ai.usage.output_tokens": 0},
        None,
        None,
    ),
    ("usage not a number", {**FLASH, "gen_ai.usage.input_tokens": "100"}, None, None),
    ("usage without model", {"gen_ai.usage.input_tokens": 100}, None, None),
    (
        "price before a dated change",
        {
            "gen_ai.request.model": "gemini-2.5-pro",
            "gen_ai.usage.input_tokens": 100_000,
            "gen_ai.usage.cache_read.input_tokens": 80_000,
            "gen_ai.usage.output_tokens": 0,
        },
        _ns(2025, 6, 1),
        None,
    ),
    (
        "price after a dated change",
        {
            "gen_ai.request.model": "gemini-2.5-pro",
            "gen_ai.usage.input_tokens": 100_000,
            "gen_ai.usage.cache_read.input_tokens": 80_000,
            "gen_ai.usage.output_tokens": 0,
        },
        _ns(2025, 12, 1),
        None,
    ),
    (
        "inconsistent usage is clamped",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 500,
            "gen_ai.usage.output_tokens": 10,
            "gen_ai.usage.reasoning.output_tokens": 50,
        },
        None,
        None,
    ),
    (
        "negative count",
        {**FLASH, "gen_ai.usage.input_tokens": -5, "gen_ai.usage.output_tokens": 20},
        None,
        None,
    ),
    (
        "totals missing",
        {
            **FLASH,
            "gen_ai.usage.text.input_tokens": 700,
            "gen_ai.usage.audio.input_tokens": 300,
            "gen_ai.usage.text.output_tokens": 40,
        },
        None,
        None,
    ),
    (
        "Live model, audio both ways",
        {
            "gen_ai.request.model": "gemini-live-2.5-flash-preview",
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.audio.input_tokens": 1500,
            "gen_ai.usage.output_tokens": 900,
            "gen_ai.usage.audio.output_tokens": 800,
        },
        None,
        None,
    ),
    (
        "Imagen images",
        {
            "gen_ai.request.model": "imagen-4.0-generate-001",
            "otel_gemini.usage.image.output_count": 3,
        },
        None,
        0.12,
    ),
    (
        "Veo seconds",
        {
            "gen_ai.request.model": "veo-3.0-generate-001",
            "otel_gemini.usage.video.output_seconds": 8.0,
        },
        None,
        None,
    ),
    (
        "grouping span is not priced",
        {**FLASH, "langfuse.observation.type": "agent", "gen_ai.usage.input_tokens": 1000},
        None,
        None,
    ),
    ("no usage attributes at all", {**FLASH}, None, None),
]


# Contract prices by the minute of audio (an override file; the shipped table has none).
PER_MINUTE_PRICES = """
version = "minutes"
[[models]]
id = "gemini-2.5-flash-native-audio"
[[models.prices]]
source = "test contract"
input_audio_per_minute = 0.40
output_audio_per_minute = 1.20

[[models]]
id = "gemini-2.5-flash"
[[models.prices]]
source = "test contract"
input_audio_per_minute = 0.30
"""
LIVE_MODEL = {"gen_ai.request.model": "gemini-live-2.5-flash-preview"}
PER_MINUTE_CASES: list[Case] = [
    (
        "live turn, seconds only",
        {
            **LIVE_MODEL,
            "otel_gemini.usage.audio.input_seconds": 30.0,
            "otel_gemini.usage.audio.output_seconds": 15.0,
        },
        None,
        0.5,  # 0.5 min x $0.40 + 0.25 min x $1.20
    ),
    (
        "measured seconds win over tokens",
        {
            **LIVE_MODEL,
            "gen_ai.usage.input_tokens": 800,
            "gen_ai.usage.audio.input_tokens": 750,
            "gen_ai.usage.output_tokens": 20,
            "otel_gemini.usage.audio.input_seconds": 12.345,
        },
        None,
        0.082365,  # 12.345 s x $0.40/min + text
    ),
    (
        "live model, tokens at 25 per second",
        {
            **LIVE_MODEL,
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.audio.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 500,
            "gen_ai.usage.audio.output_tokens": 500,
        },
        None,
        0.666666666666667,  # 40 s x $0.40/min + 20 s x $1.20/min
    ),
    (
        "other model, tokens at 32 per second",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.audio.input_tokens": 960,
            "gen_ai.usage.output_tokens": 10,
        },
        None,
        0.150037,  # 30 s x $0.30/min + text
    ),
    (
        "other model in a Live session, tokens at 25 per second",
        {
            **FLASH,
            "otel_gemini.sdk.method": "live.connect",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.audio.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 10,
        },
        None,
        0.200025,  # 40 s x $0.30/min + text
    ),
    (
        "a Live turn's marker, tokens at 25 per second",
        {
            **FLASH,
            "otel_gemini.live.interrupted": True,
            "gen_ai.usage.input_tokens": 500,
            "gen_ai.usage.audio.input_tokens": 500,
        },
        None,
        0.1,  # 20 s x $0.30/min
    ),
    (
        "text tokens and input seconds",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 10,
            "otel_gemini.usage.audio.input_seconds": 7.5,
        },
        None,
        0.037555,  # 7.5 s x $0.30/min + text
    ),
    (
        "negative seconds, tokens count",
        {
            **FLASH,
            "gen_ai.usage.input_tokens": 640,
            "gen_ai.usage.audio.input_tokens": 640,
            "otel_gemini.usage.audio.input_seconds": -1.0,
        },
        None,
        0.1,  # 20 s x $0.30/min
    ),
    (
        "seconds only, no per-minute price for them",
        {**FLASH, "otel_gemini.usage.audio.output_seconds": 9.0},
        None,
        None,
    ),
    (
        "seconds only, unknown model",
        {"gen_ai.request.model": "gpt-4o-audio", "otel_gemini.usage.audio.input_seconds": 9.0},
        None,
        None,
    ),
    (
        "output tokens without a per-minute price",
        {**FLASH, "gen_ai.usage.output_tokens": 10},
        None,
        None,
    ),
]


def _make_spans(provider: TracerProvider, cases: list[Case] = CASES) -> list[str]:
    """Starts one span per case; returns the span ids (hex) in case order."""
    tracer = provider.get_tracer("ottl-cases")
    ids = []
    for name, attributes, start, _ in cases:
        span = tracer.start_span(f"case {name}", attributes=attributes, start_time=start)
        span.end(end_time=None if start is None else start + 1_000_000)
        ids.append(format_span_id(span.get_span_context().span_id))
    return ids


def _expected(
    cases: list[Case] = CASES, table: PriceTable | None = None
) -> dict[str, dict[str, Any]]:
    """What CostSpanProcessor gives the same spans, by case name."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(SimpleSpanProcessor(memory), table))
    _make_spans(provider, cases)
    spans: list[ReadableSpan] = list(memory.get_finished_spans())
    return {
        (span.name or "")[len("case ") :]: {
            key: (span.attributes or {}).get(key) for key in COST_KEYS
        }
        for span in spans
    }


@pytest.fixture
def langfuse() -> Iterator[FakeLangfuse]:
    with FakeLangfuse() as fake:
        yield fake


def _direct_env(langfuse: FakeLangfuse, storage: Path) -> dict[str, str]:
    token = base64.b64encode(f"{langfuse.public_key}:{langfuse.secret_key}".encode()).decode()
    return {
        "LANGFUSE_BASE_URL": langfuse.base_url,
        "LANGFUSE_BASIC_AUTH": token,
        "OTELCOL_STORAGE_DIR": str(storage),
    }


def test_committed_gemini_cost_yaml_is_up_to_date() -> None:
    committed = (CONFIG_DIR / "gemini-cost.yaml").read_text(encoding="utf-8")
    assert committed == cost_statements().to_yaml(), (
        "collector-config/gemini-cost.yaml is stale: run "
        "`otel-gemini collector-config ottl -o collector-config/gemini-cost.yaml`"
    )


def _priced_by_collector(
    collector_binary: Path,
    langfuse: FakeLangfuse,
    tmp_path: Path,
    cost_config: str | Path,
    cases: list[Case],
) -> dict[str, dict[str, Any]]:
    """The cost attributes of ``cases`` sent through a Collector running ``cost_config``, by
    case name."""
    collector = Collector(
        collector_binary, ["direct.yaml", str(cost_config)], _direct_env(langfuse, tmp_path)
    )
    try:
        provider = TracerProvider()
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.otlp_http_traces))
        )
        ids = _make_spans(provider, cases)
        received = {span.span_id: span for span in langfuse.wait_for_spans(len(cases), 30)}
    finally:
        collector.stop()
    assert len(received) == len(cases)
    return {
        name: {key: received[span_id].attributes.get(key) for key in COST_KEYS}
        for (name, *_), span_id in zip(cases, ids, strict=True)
    }


# Override names with a path (a tuned model, a Vertex endpoint) match as written, and win over
# the base model a response names.
PATH_PRICES = """
version = "paths"
[[models]]
id = "acme-tuned-flash"
names = ["projects/acme/locations/us-central1/endpoints/123", "tunedmodels/support-bot-7"]
[[models.prices]]
source = "test contract"
input = 0.50
output = 1.00
"""
ENDPOINT = "projects/acme/locations/us-central1/endpoints/123"
PATH_USAGE = {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 1000}
PATH_CASES: list[Case] = [
    ("endpoint", {"gen_ai.request.model": ENDPOINT, **PATH_USAGE}, None, 0.0015),
    (
        "endpoint over its base model",
        {
            "gen_ai.request.model": ENDPOINT,
            "gen_ai.response.model": "gemini-2.5-flash-001",
            **PATH_USAGE,
        },
        None,
        0.0015,
    ),
    (
        "endpoint in upper case with a version",
        {"gen_ai.request.model": f" {ENDPOINT.upper()}@2 ", **PATH_USAGE},
        None,
        0.0015,
    ),
    (
        "tuned model",
        {"gen_ai.request.model": "tunedModels/support-bot-7", **PATH_USAGE},
        None,
        0.0015,
    ),
    ("last segment alone", {"gen_ai.request.model": "123", **PATH_USAGE}, None, None),
    (
        "another path to a shipped model",
        {"gen_ai.request.model": "publishers/google/models/gemini-2.5-flash@001", **PATH_USAGE},
        None,
        0.0028,
    ),
]


def _assert_same_costs(
    got: dict[str, dict[str, Any]],
    expected: dict[str, dict[str, Any]],
    cases: list[Case],
    outcomes: set[str | None],
) -> None:
    for name, _, _, cost in cases:
        assert got[name] == expected[name], name
        if cost is not None:
            assert got[name][attrs.GEN_AI_USAGE_COST] == cost, name
    assert {expected[name][attrs.COST_STATUS] for name, *_ in cases} == outcomes


def test_ottl_costs_equal_price_table(
    collector_binary: Path, langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    expected = _expected()
    got = _priced_by_collector(collector_binary, langfuse, tmp_path, "gemini-cost.yaml", CASES)
    _assert_same_costs(
        got, expected, CASES, {"priced", "unknown_model", "no_usage", "implausible_usage", None}
    )


def test_ottl_bills_audio_by_the_minute_like_the_price_table(
    collector_binary: Path, langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PER_MINUTE_PRICES, encoding="utf-8")
    table = PriceTable.load(prices)
    config = tmp_path / "gemini-cost-minutes.yaml"
    config.write_text(cost_statements(table).to_yaml(), encoding="utf-8")
    expected = _expected(PER_MINUTE_CASES, table)
    got = _priced_by_collector(collector_binary, langfuse, tmp_path, config, PER_MINUTE_CASES)
    _assert_same_costs(got, expected, PER_MINUTE_CASES, {"priced", "no_usage"})


def test_direct_collector_restart_with_persistent_queue_loses_nothing(
    collector_binary: Path, langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    """Langfuse is down; the Collector accepts spans into its file_storage queue and is
    killed (SIGKILL) mid-stream; a new Collector on the same storage sends all of them."""
    env = _direct_env(langfuse, tmp_path / "queue")
    langfuse.refuse_connections()
    first = Collector(collector_binary, ["direct.yaml", "gemini-cost.yaml"], env)
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=first.otlp_http_traces))
    )
    tracer = provider.get_tracer("restart")
    sent = set()
    for index in range(40):
        span = tracer.start_span(
            f"generation {index}",
            attributes={
                **FLASH,
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 200,
            },
        )
        span.end()
        sent.add(format_span_id(span.get_span_context().span_id))
    # SimpleSpanProcessor exported each span synchronously: the Collector acknowledged all 40.
    first.kill()

    second = Collector(collector_binary, ["direct.yaml", "gemini-cost.yaml"], env)
    try:
        langfuse.up()
        langfuse.wait_for_spans(40, timeout=60)
        received = {span.span_id for span in langfuse.spans}
        assert received == sent
        assert {span.attributes.get(attrs.GEN_AI_USAGE_COST) for span in langfuse.spans} == {0.0008}
    finally:
        second.stop()


def test_ottl_prices_path_names_like_the_price_table(
    collector_binary: Path, langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PATH_PRICES, encoding="utf-8")
    table = PriceTable.load(prices)
    config = tmp_path / "gemini-cost-paths.yaml"
    config.write_text(cost_statements(table).to_yaml(), encoding="utf-8")
    expected = _expected(PATH_CASES, table)
    got = _priced_by_collector(collector_binary, langfuse, tmp_path, config, PATH_CASES)
    _assert_same_costs(got, expected, PATH_CASES, {"priced", "unknown_model"})


@pytest.mark.parametrize(
    ("unset", "empty", "named"),
    [
        (("LANGFUSE_BASE_URL", "LANGFUSE_BASIC_AUTH"), (), "LANGFUSE_BASE_URL"),
        (("LANGFUSE_BASE_URL",), (), "LANGFUSE_BASE_URL"),
        ((), ("LANGFUSE_BASE_URL",), "LANGFUSE_BASE_URL"),
        (("LANGFUSE_BASIC_AUTH",), (), "LANGFUSE_BASIC_AUTH"),
        ((), ("LANGFUSE_BASIC_AUTH",), "LANGFUSE_BASIC_AUTH"),
    ],
)
def test_direct_collector_refuses_to_start_without_langfuse_settings(
    collector_binary: Path,
    tmp_path: Path,
    unset: tuple[str, ...],
    empty: tuple[str, ...],
    named: str,
) -> None:
    """Without somewhere to send them, direct.yaml would queue spans on disk forever: the
    real Collector must exit at startup naming the variable, and never print the other one
    (the credentials) in its error."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LANGFUSE_")}
    env.update(
        {
            "LANGFUSE_BASE_URL": "http://127.0.0.1:9",
            "LANGFUSE_BASIC_AUTH": "c2VjcmV0LXZhbHVl",
            "OTELCOL_STORAGE_DIR": str(tmp_path),
            # Free of the defaults: a test that fails to fail must not hold shared ports.
            "OTELCOL_OTLP_GRPC_ENDPOINT": "127.0.0.1:0",
            "OTELCOL_OTLP_HTTP_ENDPOINT": "127.0.0.1:0",
            "OTELCOL_HEALTH_ENDPOINT": "127.0.0.1:0",
            "OTELCOL_METRICS_PORT": "0",
        }
    )
    for name in unset:
        env.pop(name)
    for name in empty:
        env[name] = ""
    done = subprocess.run(
        [
            str(collector_binary),
            "--config",
            str(CONFIG_DIR / "direct.yaml"),
            "--config",
            str(CONFIG_DIR / "gemini-cost.yaml"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0, done.stderr
    assert f"{named} must be set" in done.stderr
    assert "c2VjcmV0LXZhbHVl" not in done.stderr + done.stdout


def test_ottl_split_is_generated_from_the_pricing_packages_steps() -> None:
    """The generator restates no part of the token split: every count the split reads or
    derives reaches the OTTL only through pricing's SPLIT_STEPS / BUCKET_SOURCES, so
    changing a step there changes both pricers."""
    from otel_gemini.pricing import BUCKET_SOURCES

    generator = (Path(__file__).parents[1] / "otel_gemini/collector/_ottl.py").read_text()
    split_only = {"fresh_audio", "fresh_video", "fresh_image", "audio_cache_read_input_tokens"}
    assert [name for name in sorted(split_only) if name in generator] == []
    statements = "\n".join(cost_statements().statements)
    for bucket, base, _ in BUCKET_SOURCES:
        assert f'set(cache["n.{bucket}"], ' in statements
        assert f'"s.{base}"' in statements or f'"u.{base}"' in statements
