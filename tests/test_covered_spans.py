"""One billed request, one price: when several spans describe the same request, only the one
closest to the wire is priced; the others are ``covered`` (usage kept, counted nowhere)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google import genai
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from otel_gemini import CostSpanProcessor, GeminiInstrumentor, PriceTable, configure
from otel_gemini import _attributes as attrs
from otel_gemini.aggregate._rows import generation_row
from otel_gemini.processing._coverage import Coverage
from otel_gemini.testing import FakeGemini, ScriptedUsage

OURS = "otel_gemini.instrumentation"
OFFICIAL = "opentelemetry.instrumentation.google_genai"
FRAMEWORK = "gcp.vertex.agent"
FLASH = "gemini-2.5-flash"
USAGE: dict[str, Any] = {
    attrs.GEN_AI_OPERATION_NAME: "generate_content",
    attrs.GEN_AI_REQUEST_MODEL: FLASH,
    attrs.GEN_AI_USAGE_INPUT_TOKENS: 1_000,
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
}
# gemini-2.5-flash: 1000 * $0.30 / 1M + 200 * $2.50 / 1M
COST = Decimal("0.0008")


@dataclass
class Pipeline:
    provider: TracerProvider
    processor: CostSpanProcessor
    exported: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def start(self, scope: str, name: str, parent: Any = None, **attributes: Any) -> Any:
        tracer = self.provider.get_tracer(scope)
        context = set_span_in_context(parent) if parent is not None else None
        return tracer.start_span(name, context=context, attributes=attributes or None)

    def spans(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.exported.get_finished_spans()}

    def cost_total(self) -> float:
        data = self.metrics.get_metrics_data()
        return sum(
            point.value
            for resource_metrics in (data.resource_metrics if data else ())
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            if metric.name == "otel_gemini.client.cost"
            for point in metric.data.data_points
        )


def _pipeline(coverage: Coverage | None = None) -> Pipeline:
    exported = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    processor = CostSpanProcessor(
        SimpleSpanProcessor(exported),
        PriceTable.default(),
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    if coverage is not None:
        processor._coverage = coverage
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return Pipeline(provider, processor, exported, reader)


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    pipe = _pipeline()
    yield pipe
    pipe.provider.shutdown()


def _status(span: ReadableSpan) -> object:
    return (span.attributes or {}).get(attrs.COST_STATUS)


def assert_covered(span: ReadableSpan) -> None:
    attributes = dict(span.attributes or {})
    assert attributes[attrs.COST_STATUS] == attrs.COST_STATUS_COVERED
    # Its usage stays; no cost of ours, and a zero provided cost stops Langfuse's own.
    assert attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] == 1_000
    assert attrs.GEN_AI_USAGE_COST not in attributes
    assert attributes[attrs.LANGFUSE_OBSERVATION_TYPE] == "span"
    assert json.loads(attributes[attrs.LANGFUSE_COST_DETAILS]) == {"total": 0}
    assert generation_row(span) is None  # no cost-store row


def assert_priced(span: ReadableSpan) -> None:
    attributes = dict(span.attributes or {})
    assert attributes[attrs.COST_STATUS] == attrs.COST_STATUS_PRICED
    assert Decimal(str(attributes[attrs.GEN_AI_USAGE_COST])) == COST
    row = generation_row(span)
    assert row is not None and row.cost_femto == int(COST * 10**15)


def test_the_official_span_over_ours_is_covered_and_named_once(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="otel_gemini.processing"):
        for _ in range(2):
            official = pipeline.start(OFFICIAL, "official", **USAGE)
            ours = pipeline.start(OURS, "ours", official, **USAGE)
            ours.end()
            official.end()
    spans = pipeline.exported.get_finished_spans()
    assert [s.name for s in spans] == ["ours", "official"] * 2
    for span in spans:
        (assert_priced if span.name == "ours" else assert_covered)(span)
    assert pipeline.cost_total() == pytest.approx(2 * float(COST))
    counts = pipeline.processor.stats()["spans"]
    assert counts == {"priced": 2, "covered": 2}
    [warning] = [r.getMessage() for r in caplog.records]
    assert "opentelemetry-instrumentation-google-genai" in warning
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=google-genai" in warning


def test_every_framework_ancestor_with_usage_is_covered_and_no_warning(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    # ADK: call_llm (usage) > generate_content (usage) > a span without usage > ours.
    with caplog.at_level(logging.WARNING, logger="otel_gemini.processing"):
        call_llm = pipeline.start(FRAMEWORK, "call_llm", **USAGE)
        model_call = pipeline.start(FRAMEWORK, "generate_content", call_llm, **USAGE)
        middle = pipeline.start("app", "middle", model_call)
        ours = pipeline.start(OURS, "ours", middle, **USAGE)
        for span in (ours, middle, model_call, call_llm):
            span.end()
    spans = pipeline.spans()
    assert_priced(spans["ours"])
    assert_covered(spans["generate_content"])
    assert_covered(spans["call_llm"])
    assert _status(spans["middle"]) is None
    assert caplog.records == []


def test_a_parent_ending_before_its_stream_is_held_until_the_stream_ends(
    pipeline: Pipeline,
) -> None:
    framework = pipeline.start(FRAMEWORK, "framework", **USAGE)
    ours = pipeline.start(OURS, "ours", framework)  # the stream: usage comes at its end
    framework.end()
    assert pipeline.spans() == {}  # held back: its descendant may still cover it
    assert pipeline.processor.stats()["coverage"] == {"held": 1, "holding": 1}
    for key, value in USAGE.items():
        ours.set_attribute(key, value)
    ours.end()
    spans = pipeline.spans()
    assert_priced(spans["ours"])
    assert_covered(spans["framework"])
    assert pipeline.processor.stats()["coverage"] == {"held": 1, "covered": 1}
    assert pipeline.processor._coverage.tracked() == 0


def test_a_held_parent_whose_descendants_report_no_usage_is_priced(pipeline: Pipeline) -> None:
    framework = pipeline.start(FRAMEWORK, "framework", **USAGE)
    child = pipeline.start("httpx", "POST")
    grandchild = pipeline.start("httpx", "inner", child)
    child_of_framework = pipeline.start("app", "work", framework)
    inner = pipeline.start("app", "inner work", child_of_framework)
    child_of_framework.end()  # ended, but its own child is still open
    framework.end()
    assert "framework" not in pipeline.spans()
    inner.end()  # the last open descendant: the framework span is decided
    assert_priced(pipeline.spans()["framework"])
    grandchild.end()
    child.end()
    assert pipeline.processor._coverage.tracked() == 0


def test_our_span_is_never_held_for_an_http_span_that_outlives_it(pipeline: Pipeline) -> None:
    from otel_gemini.instrumentation._instruments import SCOPE
    from otel_gemini.processing._coverage import OUR_SCOPE

    assert OUR_SCOPE == SCOPE
    ours = pipeline.start(OURS, "ours", **USAGE)
    response = pipeline.start("opentelemetry.instrumentation.httpx", "POST", ours)
    ours.end()  # an abandoned stream: the HTTP response is closed later
    assert_priced(pipeline.spans()["ours"])
    response.end()
    assert pipeline.processor._coverage.tracked() == 0


def test_held_spans_are_bounded_in_number_and_in_time() -> None:
    pipe = _pipeline(Coverage(max_held=1, hold_seconds=0.2))
    try:
        first = pipe.start(FRAMEWORK, "first", **USAGE)
        first_child = pipe.start(OURS, "first child", first)
        second = pipe.start(FRAMEWORK, "second", **USAGE)
        second_child = pipe.start(OURS, "second child", second)
        first.end()  # held
        second.end()  # no room: priced at once, as before
        assert list(pipe.spans()) == ["second"]
        assert_priced(pipe.spans()["second"])
        time.sleep(0.3)
        pipe.start("app", "any span").end()  # time is up for the first: priced, as before
        assert_priced(pipe.spans()["first"])
        stats = pipe.processor.stats()["coverage"]
        assert stats == {"held": 1, "hold_full": 1, "held_expired": 1}
        first_child.end()
        second_child.end()
    finally:
        pipe.provider.shutdown()


def test_shutdown_hands_on_the_spans_still_held(pipeline: Pipeline) -> None:
    framework = pipeline.start(FRAMEWORK, "framework", **USAGE)
    pipeline.start(OURS, "ours", framework)  # never ends
    framework.end()
    pipeline.processor.shutdown()
    assert_priced(pipeline.spans()["framework"])


def test_the_same_response_id_links_spans_in_different_traces(pipeline: Pipeline) -> None:
    usage = {**USAGE, attrs.GEN_AI_RESPONSE_ID: "resp-1"}
    pipeline.start(OURS, "ours", **usage).end()
    pipeline.start("langsmith", "elsewhere", **usage).end()  # another trace, same request
    pipeline.start(OURS, "ours again", **usage).end()  # the same scope: another request
    spans = pipeline.spans()
    assert_priced(spans["ours"])
    assert_covered(spans["elsewhere"])
    assert_priced(spans["ours again"])


def test_spans_handed_over_finished_are_priced_as_before(pipeline: Pipeline) -> None:
    """The gateway hands the processor spans that started in another process."""
    parent = SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=TraceFlags(1))
    for name, span_id, parent_context in (("child", 3, parent), ("parent", 2, None)):
        context = SpanContext(1, span_id, is_remote=False, trace_flags=TraceFlags(1))
        span = ReadableSpan(
            name=name,
            context=context,
            parent=parent_context,
            attributes=USAGE,
            start_time=1,
            end_time=2,
        )
        pipeline.processor.on_end(span)
    spans = pipeline.spans()
    assert _status(spans["child"]) == _status(spans["parent"]) == attrs.COST_STATUS_PRICED


def test_tracking_forgets_the_oldest_spans_past_its_bound() -> None:
    pipe = _pipeline(Coverage(max_spans=10))
    try:
        leaked = [pipe.start("app", f"never ends {n}") for n in range(25)]
        assert pipe.processor._coverage.tracked() == 10
        assert pipe.processor.stats()["coverage"] == {"forgotten": 15}
        del leaked
    finally:
        pipe.provider.shutdown()


# --- the real google-genai client with the official instrumentation beside ours ---------------


@pytest.mark.genai
@pytest.mark.parametrize("stream", [False, True], ids=["call", "stream"])
def test_the_official_instrumentation_beside_ours_bills_each_request_once(
    pipeline: Pipeline, fake_gemini: FakeGemini, gemini_client: genai.Client, stream: bool
) -> None:
    from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor

    ours, official = GeminiInstrumentor(), GoogleGenAiSdkInstrumentor()
    # The official instrumentation declares google-genai<3 and would otherwise do nothing.
    official.instrument(tracer_provider=pipeline.provider, skip_dep_check=True)
    ours.instrument(tracer_provider=pipeline.provider)
    try:
        for _ in range(3):
            fake_gemini.add_text("Hi", usage=ScriptedUsage(prompt=1_000, candidates=200))
            if stream:
                for _chunk in gemini_client.models.generate_content_stream(
                    model=FLASH, contents="Hi"
                ):
                    pass
            else:
                gemini_client.models.generate_content(model=FLASH, contents="Hi")
    finally:
        ours.uninstrument()
        official.uninstrument()

    spans = pipeline.exported.get_finished_spans()
    by_scope: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
        by_scope.setdefault(scope, []).append(span)
    assert len(by_scope[OURS]) == len(by_scope[OFFICIAL]) == 3
    for span in by_scope[OURS]:
        assert_priced(span)
    for span in by_scope[OFFICIAL]:
        assert_covered(span)
    assert sum(generation_row(span) is not None for span in spans) == 3
    assert pipeline.cost_total() == pytest.approx(3 * float(COST))


def test_telemetry_shutdown_stores_the_spans_still_held(tmp_path: Path) -> None:
    provider = TracerProvider()
    telemetry = configure(
        tracer_provider=provider,
        cost_store=tmp_path / "costs.sqlite3",
        langfuse=False,
        instrument=False,
        health_probe=False,
        environ={},
    )
    try:
        tracer = provider.get_tracer(FRAMEWORK)
        framework = tracer.start_span("framework", attributes=USAGE)
        provider.get_tracer(OURS).start_span("ours", set_span_in_context(framework))  # open
        framework.end()
    finally:
        telemetry.shutdown()
        provider.shutdown()
    with sqlite3.connect(tmp_path / "costs.sqlite3") as db:
        assert db.execute("SELECT count(*), sum(cost_femto) FROM generations").fetchone() == (
            1,
            int(COST * 10**15),
        )


# --- frameworks (issue 26): agent spans, LangSmith's own traces, user and session ------------

LANGSMITH = "langsmith"


@pytest.mark.parametrize("operation", ["invoke_agent", "invoke_workflow", "execute_tool"])
def test_an_agent_span_with_usage_and_no_model_is_a_grouping_span(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture, operation: str
) -> None:
    """pydantic-ai's invoke_agent with use_aggregated_usage_attribute_names=False: the run's
    usage, no model. Alone (its model calls priced elsewhere, or not yet): no price, no
    unknown_model, no warning, no row."""
    usage = {**USAGE, attrs.GEN_AI_OPERATION_NAME: operation}
    del usage[attrs.GEN_AI_REQUEST_MODEL]
    with caplog.at_level(logging.WARNING, logger="otel_gemini.processing"):
        pipeline.start("pydantic-ai", "agent run", **usage).end()
    span = pipeline.spans()["agent run"]
    assert _status(span) is None and attrs.GEN_AI_USAGE_COST not in (span.attributes or {})
    assert generation_row(span) is None
    assert pipeline.processor.stats()["spans"] == {}
    assert caplog.records == []


def test_an_agent_span_typed_generation_by_the_app_is_priced(pipeline: Pipeline) -> None:
    usage = {**USAGE, attrs.GEN_AI_OPERATION_NAME: "invoke_agent"}
    pipeline.start("app", "agent", **usage, **{attrs.LANGFUSE_OBSERVATION_TYPE: "generation"}).end()
    assert_priced(pipeline.spans()["agent"])


def test_langsmith_spans_in_their_own_traces_are_covered_while_ours_is_active(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    langsmith_usage = {**USAGE, attrs.GEN_AI_OPERATION_NAME: "chat", attrs.GEN_AI_SYSTEM: "gemini"}
    # Before any span of ours in this process: nothing says ours prices it.
    pipeline.start(LANGSMITH, "before").end()  # no usage: passes
    pipeline.start(LANGSMITH, "alone", **langsmith_usage).end()
    with caplog.at_level(logging.WARNING, logger="otel_gemini.processing"):
        for index in range(2):
            pipeline.start(OURS, f"ours {index}", **USAGE).end()  # its own trace
            pipeline.start(LANGSMITH, f"langsmith {index}", **langsmith_usage).end()
        other = {
            **langsmith_usage,
            attrs.GEN_AI_SYSTEM: "openai",
            attrs.GEN_AI_REQUEST_MODEL: "gpt",
        }
        pipeline.start(LANGSMITH, "another provider", **other).end()
    spans = pipeline.spans()
    assert_priced(spans["alone"])
    for index in range(2):
        assert_priced(spans[f"ours {index}"])
        assert_covered(spans[f"langsmith {index}"])
    assert _status(spans["another provider"]) == attrs.COST_STATUS_UNKNOWN_MODEL
    [warning] = [r.getMessage() for r in caplog.records if "LangSmith" in r.getMessage()]
    assert "'langsmith'" in warning and "LANGSMITH_TRACING_MODE" in warning


def test_a_span_takes_its_parents_user_and_conversation_as_session() -> None:
    from otel_gemini import trace_attributes
    from otel_gemini._trace_attributes import TraceAttributesSpanProcessor

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(TraceAttributesSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = provider.get_tracer(FRAMEWORK)
    framework = tracer.start_span(
        "generate_content", attributes={attrs.GEN_AI_CONVERSATION_ID: "conv", attrs.USER_ID: "u"}
    )
    child = tracer.start_span("ours", set_span_in_context(framework))
    grandchild = tracer.start_span("below", set_span_in_context(child))
    with trace_attributes(session_id="app-session"):  # the app's own value wins
        overridden = tracer.start_span("overridden", set_span_in_context(framework))
    remote = SpanContext(trace_id=1, span_id=2, is_remote=True, trace_flags=TraceFlags(1))
    orphan = tracer.start_span("remote parent", set_span_in_context(NonRecordingSpan(remote)))
    for span in (orphan, overridden, grandchild, child, framework):
        span.end()
    spans = {span.name: dict(span.attributes or {}) for span in exported.get_finished_spans()}
    for name in ("ours", "below"):
        assert (spans[name][attrs.USER_ID], spans[name][attrs.SESSION_ID]) == ("u", "conv")
    assert spans["overridden"][attrs.SESSION_ID] == "app-session"
    assert spans["overridden"][attrs.USER_ID] == "u"
    assert attrs.SESSION_ID not in spans["remote parent"]
    provider.shutdown()


@pytest.mark.genai
def test_a_stream_read_after_the_framework_span_ended_is_billed_once(
    fake_gemini: FakeGemini, gemini_client: genai.Client, tmp_path: Path
) -> None:
    """The framework's model-call span (usage) ends before the caller reads the stream
    below it: it is held, then covered when our span ends with the usage."""
    provider = TracerProvider()
    telemetry = configure(
        tracer_provider=provider,
        cost_store=tmp_path / "costs.sqlite3",
        langfuse=False,
        health_probe=False,
        environ={},
    )
    try:
        tracer = provider.get_tracer(FRAMEWORK)
        streams: list[Iterator[Any]] = []
        for _ in range(2):
            fake_gemini.add_text("Hi", usage=ScriptedUsage(prompt=1_000, candidates=200))
            framework = tracer.start_span(
                "generate_content", attributes={**USAGE, attrs.GEN_AI_CONVERSATION_ID: "conv"}
            )
            with trace.use_span(framework, end_on_exit=True):
                stream = iter(
                    gemini_client.models.generate_content_stream(model=FLASH, contents="Hi")
                )
                # The framework reads the first chunk (the request goes out under its span:
                # google-genai's stream sends nothing until read), then returns the stream.
                next(stream)
                streams.append(stream)
        for stream in streams:  # the rest read after the framework's span ended
            for _chunk in stream:
                pass
        assert telemetry.force_flush(timeout=10)
        coverage = telemetry.health().extra["pricing"]["coverage"]  # type: ignore[index]
        assert coverage == {"held": 2, "covered": 2}
    finally:
        telemetry.shutdown()
        provider.shutdown()
    with sqlite3.connect(tmp_path / "costs.sqlite3") as db:
        rows = db.execute("SELECT cost_femto, session_id FROM generations").fetchall()
    assert rows == [(int(COST * 10**15), "conv")] * 2


def test_a_forked_child_never_releases_its_parents_held_spans(pipeline: Pipeline) -> None:
    framework = pipeline.start(FRAMEWORK, "framework", **USAGE)
    ours = pipeline.start(OURS, "ours", framework)  # the stream: never ends before the fork
    framework.end()  # held
    live = pipeline.processor._live_sessions
    session = SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=TraceFlags(1))
    live.add_turn(session, USAGE)
    assert len(live) == 1
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if it holds nothing of its parent's
        code = 1
        try:
            coverage = pipeline.processor._coverage
            clean = coverage.stats() == {} and coverage.tracked() == 0 and len(live) == 0
            pipeline.processor.release_held()  # what the child's exit does
            code = 0 if clean and pipeline.spans() == {} else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pipeline.processor.stats()["coverage"] == {"held": 1, "holding": 1}  # the parent's
    assert len(live) == 1
    ours.end()
    assert set(pipeline.spans()) == {"framework", "ours"}
