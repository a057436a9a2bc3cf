"""CostSpanProcessor and Live sessions: the session span gets the sum of its turns' costs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_gemini import CostSpanProcessor, PriceTable
from otel_gemini import _attributes as attrs
from otel_gemini.processing._live_session_cost import LiveSessionCosts

LIVE_MODEL = "gemini-live-2.5-flash-preview"
SESSION = {
    attrs.GEN_AI_OPERATION_NAME: attrs.OP_LIVE_SESSION,
    attrs.LANGFUSE_OBSERVATION_TYPE: "span",
    attrs.GEN_AI_REQUEST_MODEL: LIVE_MODEL,
}


def turn(index: int, model: str = LIVE_MODEL, **usage: int | float) -> dict[str, Any]:
    return {
        attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
        attrs.LANGFUSE_OBSERVATION_TYPE: "generation",
        attrs.GEN_AI_REQUEST_MODEL: model,
        attrs.LIVE_TURN_INDEX: index,
        attrs.LIVE_INTERRUPTED: False,
        attrs.USAGE_AUDIO_INPUT_SECONDS: 0.0,
        attrs.USAGE_AUDIO_OUTPUT_SECONDS: 0.0,
        **usage,
    }


class Pipeline:
    def __init__(self, batch: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        downstream = (
            BatchSpanProcessor(self.exporter) if batch else SimpleSpanProcessor(self.exporter)
        )
        self.provider = TracerProvider()
        self.provider.add_span_processor(CostSpanProcessor(downstream, PriceTable.default()))
        self.tracer = self.provider.get_tracer("test")

    def session(self, *turns: dict[str, Any]) -> ReadableSpan:
        with self.tracer.start_as_current_span("live_session m", attributes=SESSION) as session:
            for attributes in turns:
                with self.tracer.start_as_current_span("generate_content m", attributes=attributes):
                    pass
            session.set_attribute(attrs.LIVE_TURN_COUNT, len(turns))
        self.provider.force_flush()
        return [s for s in self.exporter.get_finished_spans() if s.name == "live_session m"][-1]


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    made = Pipeline()
    yield made
    made.provider.shutdown()


def session_cost(span: ReadableSpan) -> tuple[Any, Any, Any]:
    assert span.attributes is not None
    details = span.attributes.get(attrs.LIVE_SESSION_COST_DETAILS)
    return (
        span.attributes.get(attrs.LIVE_SESSION_COST_STATUS),
        span.attributes.get(attrs.LIVE_SESSION_COST),
        json.loads(str(details), parse_float=Decimal) if details else None,
    )


def test_the_session_cost_is_the_exact_sum_of_its_turns(pipeline: Pipeline) -> None:
    session = pipeline.session(
        turn(1, **{attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000, attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 100}),
        turn(2, **{attrs.GEN_AI_USAGE_INPUT_TOKENS: 3, attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 1}),
    )
    # 1000 x 0.50 + 100 x 2.00 per 1M; then 3 x 0.50 + 1 x 2.00 per 1M.
    assert session_cost(session) == (
        "priced",
        pytest.approx(0.0007035, abs=1e-15),
        {
            "input": Decimal("0.0005015"),
            "output": Decimal("0.000202"),
            "total": Decimal("0.0007035"),
        },
    )


def test_a_turn_of_unknown_price_makes_the_session_cost_unknown_not_partial(
    pipeline: Pipeline,
) -> None:
    session = pipeline.session(
        turn(1, **{attrs.GEN_AI_USAGE_INPUT_TOKENS: 10}),
        turn(2, model="acme-voice-1", **{attrs.GEN_AI_USAGE_INPUT_TOKENS: 10}),
    )
    assert session_cost(session) == ("unknown_model", None, None)


def test_a_session_without_billed_usage_has_no_cost(pipeline: Pipeline) -> None:
    assert session_cost(pipeline.session(turn(1))) == ("no_usage", None, None)
    assert session_cost(pipeline.session()) == ("no_usage", None, None)


def test_behind_a_batch_processor_the_sum_is_made_on_the_export_thread() -> None:
    batched = Pipeline(batch=True)
    try:
        session = batched.session(
            turn(1, **{attrs.GEN_AI_USAGE_INPUT_TOKENS: 2000}),
            turn(2, **{attrs.GEN_AI_USAGE_INPUT_TOKENS: 2000}),
        )
        assert session_cost(session)[2] == {"input": Decimal("0.002"), "total": Decimal("0.002")}
    finally:
        batched.provider.shutdown()


def test_turns_of_sessions_that_never_end_are_forgotten_beyond_a_bound() -> None:
    costs = LiveSessionCosts(lambda where, error: None, max_sessions=2)
    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    for _ in range(3):
        with tracer.start_as_current_span("session") as session:
            costs.add_turn(session.get_span_context(), {attrs.COST_STATUS: "priced"})
    assert len(costs) == 2
