"""CostSpanProcessor in a real TracerProvider, in front of the SDK's own processors."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from google import genai
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_gemini import CostSpanProcessor, GeminiInstrumentor, PriceTable
from otel_gemini import _attributes as attrs
from otel_gemini.testing import FakeGemini, ScriptedUsage

COST_KEYS = (
    attrs.GEN_AI_USAGE_COST,
    attrs.LANGFUSE_COST_DETAILS,
    attrs.LANGFUSE_USAGE_DETAILS,
)
# 1,000 prompt tokens (600 text, 400 audio) of which 300 cached (200 text, 100 audio);
# 300 candidate tokens and 200 thinking tokens.
VOICE_USAGE = {
    "prompt": 1_000,
    "cached": 300,
    "candidates": 300,
    "thoughts": 200,
    "prompt_by_modality": {"TEXT": 600, "AUDIO": 400},
    "cache_by_modality": {"TEXT": 200, "AUDIO": 100},
    "candidates_by_modality": {"TEXT": 300},
}
# gemini-2.5-flash: text 0.30, audio 1.00, cache 0.03 / audio 0.10, output 2.50 per 1M.
VOICE_COST = {
    "input": 0.00012,  # 400 fresh text
    "input_audio": 0.0003,  # 300 fresh audio
    "input_cached": 0.000006,  # 200 cached text
    "input_cached_audio": 0.00001,  # 100 cached audio
    "output": 0.00075,  # 300 candidates
    "output_reasoning": 0.0005,  # 200 thinking
    "total": 0.001686,
}
VOICE_UNITS = {
    "input": 400,
    "input_audio": 300,
    "input_cached": 200,
    "input_cached_audio": 100,
    "output": 300,
    "output_reasoning": 200,
    "total": 1_500,
}


@dataclass
class Pipeline:
    """A TracerProvider: cost processor → batch processor → memory, plus the raw spans."""

    provider: TracerProvider
    priced: InMemorySpanExporter
    raw: InMemorySpanExporter
    processor: CostSpanProcessor
    metrics: InMemoryMetricReader

    def flush(self) -> None:
        assert self.provider.force_flush(timeout_millis=10_000)

    def priced_spans(self) -> list[ReadableSpan]:
        self.flush()
        return list(self.priced.get_finished_spans())

    def metric_points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        return [
            point
            for resource_metrics in (data.resource_metrics if data else ())
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


def _pipeline(
    prices: PriceTable | None = None, *, batch: bool = True, metric_user_id: bool = False
) -> Pipeline:
    priced, raw = InMemorySpanExporter(), InMemorySpanExporter()
    reader = InMemoryMetricReader()
    provider = TracerProvider(resource=Resource.create({"service.name": "cost-test"}))
    downstream = BatchSpanProcessor(priced) if batch else SimpleSpanProcessor(priced)
    processor = CostSpanProcessor(
        downstream,
        prices or PriceTable.default(),
        meter_provider=MeterProvider(metric_readers=[reader]),
        metric_user_id=metric_user_id,
    )
    provider.add_span_processor(SimpleSpanProcessor(raw))
    provider.add_span_processor(processor)
    return Pipeline(provider, priced, raw, processor, reader)


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipe = _pipeline()
    yield pipe
    pipe.provider.shutdown()


def _span(pipe: Pipeline, attributes: dict[str, Any], **kwargs: Any) -> None:
    tracer = pipe.provider.get_tracer("test")
    span = tracer.start_span("generate_content gemini-2.5-flash", attributes=attributes, **kwargs)
    span.end(end_time=kwargs.get("start_time"))


OUR_VOICE_SPAN: dict[str, Any] = {
    attrs.GEN_AI_OPERATION_NAME: "generate_content",
    attrs.GEN_AI_PROVIDER_NAME: "gcp.gemini",
    attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
    attrs.GEN_AI_USAGE_INPUT_TOKENS: 1_000,
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
    attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 300,
    attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 200,
    "gen_ai.usage.text.input_tokens": 600,
    "gen_ai.usage.audio.input_tokens": 400,
    "gen_ai.usage.text.output_tokens": 500,
    attrs.USAGE_CACHE_READ_AUDIO_TOKENS: 100,
    attrs.USER_ID: "user-42",
}


def _cost_attributes(span: ReadableSpan) -> dict[str, Any]:
    attributes = dict(span.attributes or {})
    return {
        "cost": attributes.get(attrs.GEN_AI_USAGE_COST),
        "cost_details": json.loads(attributes.get(attrs.LANGFUSE_COST_DETAILS, "null")),
        "usage_details": json.loads(attributes.get(attrs.LANGFUSE_USAGE_DETAILS, "null")),
        "status": attributes.get(attrs.COST_STATUS),
        "version": attributes.get(attrs.PRICES_VERSION),
        "model": attributes.get(attrs.PRICES_MODEL),
    }


# --- real instrumentation, real SDK ------------------------------------------------------------


@pytest.mark.genai
def test_our_instrumentation_through_a_batch_span_processor(
    pipeline: Pipeline, fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    fake_gemini.add_text(
        "Hello",
        usage=ScriptedUsage(
            **VOICE_USAGE, tool_use_prompt=50, tool_use_prompt_by_modality={"TEXT": 50}
        ),
    )
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(tracer_provider=pipeline.provider)
    try:
        gemini_client.models.generate_content(model="models/gemini-2.5-flash", contents="Hi")
    finally:
        instrumentor.uninstrument()

    (span,) = pipeline.priced_spans()
    priced = _cost_attributes(span)
    assert priced["status"] == "priced"
    assert priced["version"] == "2026-11-24"
    assert priced["model"] == "gemini-2.5-flash"
    assert priced["cost_details"] == {
        **VOICE_COST,
        "input_tool_use": 0.000015,  # 50 tool-use prompt tokens at the text input price
        "total": 0.001701,
    }
    assert priced["usage_details"] == {**VOICE_UNITS, "input_tool_use": 50, "total": 1_550}
    assert priced["cost"] == 0.001701


@pytest.mark.genai
def test_official_instrumentation_and_ours_price_the_same_usage_identically(
    pipeline: Pipeline, fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor

    ours = GeminiInstrumentor()
    ours.instrument(tracer_provider=pipeline.provider)
    try:
        fake_gemini.add_text("Hello", usage=ScriptedUsage(**VOICE_USAGE))
        gemini_client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    finally:
        ours.uninstrument()
    official = GoogleGenAiSdkInstrumentor()
    # The official instrumentation declares google-genai<3 and would otherwise do nothing.
    official.instrument(tracer_provider=pipeline.provider, skip_dep_check=True)
    try:
        fake_gemini.add_text("Hello", usage=ScriptedUsage(**VOICE_USAGE))
        gemini_client.models.generate_content(model="gemini-2.5-flash", contents="Hi")
    finally:
        official.uninstrument()

    ours_span, official_span = pipeline.priced_spans()
    # They describe the usage with different attributes...
    assert official_span.attributes[attrs.GEN_AI_PROVIDER_NAME] == "gemini"
    assert "gen_ai.usage.audio.cache_read.input_tokens" in official_span.attributes
    assert attrs.USAGE_CACHE_READ_AUDIO_TOKENS in ours_span.attributes
    # ...and are priced the same.
    for span in (ours_span, official_span):
        priced = _cost_attributes(span)
        assert priced["cost_details"] == VOICE_COST
        assert priced["usage_details"] == VOICE_UNITS
        assert priced["status"] == "priced"


def test_openinference_spans_are_priced(pipeline: Pipeline) -> None:
    _span(
        pipeline,
        {
            attrs.LLM_MODEL_NAME: "gemini-2.5-flash",
            attrs.LLM_PROVIDER: "google",
            attrs.LLM_TOKEN_COUNT_PROMPT: 1_000,
            attrs.LLM_TOKEN_COUNT_PROMPT_AUDIO: 400,
            attrs.LLM_TOKEN_COUNT_PROMPT_CACHE_READ: 200,
            attrs.LLM_TOKEN_COUNT_COMPLETION: 500,
            attrs.LLM_TOKEN_COUNT_COMPLETION_REASONING: 200,
        },
    )

    (span,) = pipeline.priced_spans()
    priced = _cost_attributes(span)
    # Without cache modalities the 200 cached tokens come off the text: 400 text, 400 audio.
    assert priced["usage_details"] == {
        "input": 400,
        "input_audio": 400,
        "input_cached": 200,
        "output": 300,
        "output_reasoning": 200,
        "total": 1_500,
    }
    assert priced["cost_details"]["total"] == 0.001776  # 0.00012+0.0004+0.000006+0.00075+0.0005


def test_older_semconv_token_names_are_read(pipeline: Pipeline) -> None:
    _span(
        pipeline,
        {
            attrs.GEN_AI_SYSTEM: "vertex_ai",
            attrs.GEN_AI_REQUEST_MODEL: "gemini-2.0-flash-001",
            attrs.GEN_AI_USAGE_PROMPT_TOKENS: 1_000,
            attrs.GEN_AI_USAGE_COMPLETION_TOKENS: 100,
        },
        start_time=int(datetime(2025, 5, 1, tzinfo=timezone.utc).timestamp() * 1e9),
    )

    (span,) = pipeline.priced_spans()
    assert _cost_attributes(span)["cost_details"] == {
        "input": 0.0001,
        "output": 0.00004,
        "total": 0.00014,
    }


# --- the enriched copy -------------------------------------------------------------------------


def test_the_copy_keeps_everything_but_gains_cost_attributes(pipeline: Pipeline) -> None:
    tracer = pipeline.provider.get_tracer("test", "1.2.3")
    with tracer.start_as_current_span("parent") as parent:
        link = Link(parent.get_span_context(), {"why": "test"})
        span = tracer.start_span(
            "generate_content gemini-2.5-flash",
            kind=SpanKind.CLIENT,
            attributes=OUR_VOICE_SPAN,
            links=[link],
        )
        span.add_event("first chunk", {"n": 1})
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end()

    priced = next(s for s in pipeline.priced_spans() if s.name != "parent")
    raw = next(s for s in pipeline.raw.get_finished_spans() if s.name != "parent")
    assert priced is not raw
    for field in (
        "name",
        "context",
        "parent",
        "kind",
        "start_time",
        "end_time",
        "resource",
        "instrumentation_scope",
        "events",
        "links",
    ):
        assert getattr(priced, field) == getattr(raw, field), field
    assert priced.status.status_code is StatusCode.ERROR
    assert priced.status.description == "boom"
    assert priced.dropped_attributes == raw.dropped_attributes == 0
    added = {key: value for key, value in priced.attributes.items() if key not in raw.attributes}
    assert set(added) == {*COST_KEYS, attrs.COST_STATUS, attrs.PRICES_VERSION, attrs.PRICES_MODEL}
    assert {key: priced.attributes[key] for key in raw.attributes} == dict(raw.attributes)
    assert json.loads(priced.to_json())["attributes"][attrs.COST_STATUS] == "priced"


def test_dropped_attribute_counts_are_kept() -> None:
    priced = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=11))
    provider.add_span_processor(CostSpanProcessor(SimpleSpanProcessor(priced)))
    span = provider.get_tracer("test").start_span("x", attributes=OUR_VOICE_SPAN)  # 12 keys
    span.end()

    (exported,) = priced.get_finished_spans()
    assert exported.dropped_attributes == 1
    assert exported.attributes[attrs.COST_STATUS] == "priced"


def test_priced_spans_encode_to_otlp_pickle_and_copy(pipeline: Pipeline) -> None:
    _span(pipeline, OUR_VOICE_SPAN)
    (span,) = pipeline.priced_spans()

    encoded = encode_spans([span])
    keys = {kv.key for kv in encoded.resource_spans[0].scope_spans[0].spans[0].attributes}
    assert {*COST_KEYS, attrs.COST_STATUS} <= keys
    assert pickle.loads(pickle.dumps(span.attributes.copy())) == dict(span.attributes)
    assert copy.deepcopy(span._attributes) == dict(span.attributes)
    assert pickle.loads(pickle.dumps(span._attributes)) == dict(span.attributes)


def test_spans_without_usage_pass_through_untouched() -> None:
    seen: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            seen.append(span)

    raw = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(raw))
    provider.add_span_processor(CostSpanProcessor(Keep()))
    tracer = provider.get_tracer("test")
    tracer.start_span("GET /health", attributes={"http.route": "/health"}).end()
    tracer.start_span("plain").end()
    grouping = {**OUR_VOICE_SPAN, attrs.LANGFUSE_OBSERVATION_TYPE: "agent"}
    tracer.start_span("invoke_agent gemini-2.5-flash", attributes=grouping).end()

    # The very objects the SDK handed over (to every processor): no copy, nothing added.
    assert len(seen) == 3
    for forwarded, original in zip(seen, raw.get_finished_spans(), strict=True):
        assert forwarded is original
        assert attrs.COST_STATUS not in forwarded.attributes


def test_zero_usage_gets_status_no_usage_and_no_cost(pipeline: Pipeline) -> None:
    _span(
        pipeline,
        {
            attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 0,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 0,
        },
    )

    (span,) = pipeline.priced_spans()
    assert span.attributes[attrs.COST_STATUS] == "no_usage"
    assert not set(COST_KEYS) & set(span.attributes)
    assert pipeline.processor.stats()["spans"] == {"no_usage": 1}


def test_unknown_model_gets_no_cost_is_counted_and_logged_once(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_gemini.processing")
    usage = {attrs.GEN_AI_USAGE_INPUT_TOKENS: 10, attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 5}
    for _ in range(3):
        _span(pipeline, {attrs.GEN_AI_REQUEST_MODEL: "gemini-9-ultra", **usage})
    _span(pipeline, {attrs.GEN_AI_REQUEST_MODEL: "models/other-model", **usage})

    spans = pipeline.priced_spans()
    assert len(spans) == 4
    for span in spans:
        assert span.attributes[attrs.COST_STATUS] == "unknown_model"
        assert span.attributes[attrs.PRICES_VERSION] == "2026-11-24"
        # No cost (never a false 0), but the usage buckets: without them Langfuse would
        # make its own from gen_ai.usage.* (see test_langfuse_mapping.py).
        assert not {attrs.GEN_AI_USAGE_COST, attrs.LANGFUSE_COST_DETAILS} & set(span.attributes)
        assert json.loads(span.attributes[attrs.LANGFUSE_USAGE_DETAILS]) == {
            "input": 10,
            "output": 5,
            "total": 15,
        }
    warnings = [r for r in caplog.records if "cannot price model" in r.getMessage()]
    assert [r.args[0] for r in warnings] == ["gemini-9-ultra", "models/other-model"]  # type: ignore[index]
    stats = pipeline.processor.stats()
    assert stats["spans"] == {"unknown_model": 4}
    assert stats["unknown_models"] == ["gemini-9-ultra", "models/other-model"]
    points = pipeline.metric_points("otel_gemini.cost.spans")
    assert [(p.attributes, p.value) for p in points] == [({attrs.COST_STATUS: "unknown_model"}, 4)]


def test_the_response_model_is_priced_first_then_the_request_model(pipeline: Pipeline) -> None:
    usage = {attrs.GEN_AI_USAGE_INPUT_TOKENS: 1_000_000}
    _span(
        pipeline,
        {
            attrs.GEN_AI_REQUEST_MODEL: "gemini-flash-latest-alias",  # unknown
            attrs.GEN_AI_RESPONSE_MODEL: "gemini-2.5-flash-lite",
            **usage,
        },
    )
    _span(
        pipeline,
        {
            attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-pro",
            attrs.GEN_AI_RESPONSE_MODEL: "gemini-2.5-pro-exp-1234",  # unknown version
            **usage,
        },
    )

    first, second = pipeline.priced_spans()
    assert first.attributes[attrs.PRICES_MODEL] == "gemini-2.5-flash-lite"
    assert first.attributes[attrs.GEN_AI_USAGE_COST] == 0.1
    assert second.attributes[attrs.PRICES_MODEL] == "gemini-2.5-pro"
    assert second.attributes[attrs.GEN_AI_USAGE_COST] == 2.5  # over 200k: $2.50 per 1M


def test_service_tier_and_span_time_pick_the_price(pipeline: Pipeline) -> None:
    usage = {
        attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-pro",
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 10_000,
        attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 8_000,
    }
    june_2025 = int(datetime(2025, 6, 30, 12, tzinfo=timezone.utc).timestamp() * 1e9)
    _span(pipeline, usage, start_time=june_2025)
    _span(pipeline, {**usage, attrs.REQUEST_SERVICE_TIER: "batch"})

    old, batch = pipeline.priced_spans()
    assert old.attributes[attrs.GEN_AI_USAGE_COST] == 0.00498  # 2,000 x 1.25 + 8,000 x 0.31
    assert batch.attributes[attrs.GEN_AI_USAGE_COST] == 0.00225  # 2,000 x 0.625 + 8,000 x 0.125


def test_live_turns_use_the_live_audio_rate_for_per_minute_prices(tmp_path: Path) -> None:
    override = tmp_path / "contract.toml"
    override.write_text(
        '[[models]]\nid = "gemini-2.5-flash"\n[[models.prices]]\ninput_audio_per_minute = 0.40\n'
    )
    pipe = _pipeline(PriceTable.load(override), batch=False)
    audio = {
        attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 3_000,
        "gen_ai.usage.audio.input_tokens": 3_000,
    }
    _span(pipe, audio)  # generateContent: 3,000 / 32 = 93.75 s
    _span(pipe, {**audio, attrs.LIVE_TURN_COUNT: 1})  # Live: 3,000 / 25 = 120 s
    _span(pipe, {**audio, attrs.USAGE_AUDIO_INPUT_SECONDS: 30.0})  # measured: 30 s

    costs = [span.attributes[attrs.GEN_AI_USAGE_COST] for span in pipe.priced_spans()]
    assert costs == [0.625, 0.8, 0.2]
    pipe.provider.shutdown()


# --- never hurting the application -------------------------------------------------------------


class _BrokenTable(PriceTable):
    """A price table whose pricing fails (stands in for a bug in ours)."""

    def cost_at_ns(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("pricing bug")


def test_a_pricing_error_never_raises_and_the_span_goes_on_unpriced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_gemini.processing")
    pipe = _pipeline(_BrokenTable(PriceTable.default()._spec))
    _span(pipe, OUR_VOICE_SPAN)
    _span(pipe, OUR_VOICE_SPAN)

    spans = pipe.priced_spans()
    assert len(spans) == 2
    for span in spans:
        assert span.attributes[attrs.GEN_AI_REQUEST_MODEL] == "gemini-2.5-flash"
        assert attrs.COST_STATUS not in span.attributes
    stats = pipe.processor.stats()
    assert stats["errors"] == {"pricing": 2}
    assert stats["spans"] == {"error": 2}
    assert len([r for r in caplog.records if "pricing bug" in repr(r.args)]) == 1
    pipe.provider.shutdown()


def test_a_failing_downstream_never_raises_into_the_application(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            raise ValueError("start failed")

        def on_end(self, span: ReadableSpan) -> None:
            raise ValueError("end failed")

    processor = CostSpanProcessor(Failing())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    for _ in range(2):
        tracer.start_span("x", attributes=OUR_VOICE_SPAN).end()

    assert processor.stats()["errors"] == {"downstream on_start": 2, "downstream on_end": 2}


def test_concurrent_readers_price_a_span_once(pipeline: Pipeline) -> None:
    seen: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            seen.append(span)

    processor = CostSpanProcessor(Keep(), meter_provider=MeterProvider())
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("test").start_span("x", attributes=OUR_VOICE_SPAN).end()
    (span,) = seen
    start = threading.Barrier(8)
    results: list[dict[str, Any]] = []

    def read() -> None:
        start.wait()
        results.append(dict(span.attributes))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(results) == 8
    assert all(result == results[0] for result in results)
    assert processor.stats()["spans"] == {"priced": 1}


# --- the cost metric ---------------------------------------------------------------------------


def test_cost_metric_by_model_and_provider(pipeline: Pipeline) -> None:
    _span(pipeline, OUR_VOICE_SPAN)
    _span(pipeline, {**OUR_VOICE_SPAN, attrs.USER_ID: "user-7"})
    _span(
        pipeline,
        {
            attrs.GEN_AI_PROVIDER_NAME: "gcp.vertex_ai",
            attrs.GEN_AI_REQUEST_MODEL: "publishers/google/models/gemini-2.5-pro",
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 1_000,
        },
    )
    # Spans are priced (and counted) when their attributes are first read, as an exporter does.
    for span in pipeline.priced_spans():
        assert span.attributes[attrs.COST_STATUS] == "priced"

    points = pipeline.metric_points("otel_gemini.client.cost")
    by_model = sorted(points, key=lambda point: str(point.attributes[attrs.GEN_AI_REQUEST_MODEL]))
    assert [(dict(p.attributes), round(p.value, 12)) for p in by_model] == [
        (
            {
                attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
                attrs.GEN_AI_PROVIDER_NAME: "gcp.gemini",
            },
            0.003372,
        ),
        (
            {
                attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-pro",
                attrs.GEN_AI_PROVIDER_NAME: "gcp.vertex_ai",
            },
            0.00125,
        ),
    ]
    spans = pipeline.metric_points("otel_gemini.cost.spans")
    assert [(p.attributes, p.value) for p in spans] == [({attrs.COST_STATUS: "priced"}, 3)]


def test_cost_metric_by_user_only_when_opted_in() -> None:
    pipe = _pipeline(metric_user_id=True)
    _span(pipe, OUR_VOICE_SPAN)
    _span(pipe, {**OUR_VOICE_SPAN, attrs.USER_ID: "user-7"})
    # A span naming both: langfuse.user.id wins, as in Langfuse (and in the cost store).
    _span(pipe, {**OUR_VOICE_SPAN, attrs.LANGFUSE_USER_ID: "user-9"})
    assert [dict(span.attributes)[attrs.COST_STATUS] for span in pipe.priced_spans()] == [
        "priced",
        "priced",
        "priced",
    ]

    points = pipe.metric_points("otel_gemini.client.cost")
    assert sorted(p.attributes[attrs.USER_ID] for p in points) == ["user-42", "user-7", "user-9"]
    assert {round(p.value, 12) for p in points} == {0.001686}
    pipe.provider.shutdown()
