"""Our direct OTLP wire encoder means exactly what the stock protobuf encoder means."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.span import TraceFlags, TraceState

from otel_gemini.export._otlp_wire import (
    SpanOrigin,
    encode_span,
    estimate_span_bytes,
    export_request,
    framed_span,
)

_INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_TEXT = st.text(max_size=40)
_SCALAR = st.one_of(_TEXT, st.booleans(), _INT64, st.floats(allow_nan=False))
_VALUE = st.one_of(
    _SCALAR,
    st.lists(_TEXT, max_size=4).map(tuple),
    st.lists(_INT64, max_size=4).map(tuple),
    st.lists(st.floats(allow_nan=False), max_size=3).map(tuple),
    st.lists(st.booleans(), max_size=3).map(tuple),
)
_ATTRIBUTES = st.dictionaries(st.text(min_size=1, max_size=20), _VALUE, max_size=12)


@pytest.fixture
def tracing() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "wire-test", "deployment.environment": "t"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _stock(span: ReadableSpan) -> PbSpan:
    request = encode_spans([span])
    return request.resource_spans[0].scope_spans[0].spans[0]


def _ours(span: ReadableSpan) -> PbSpan:
    decoded = PbSpan()
    decoded.ParseFromString(encode_span(span))
    return decoded


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    attributes=_ATTRIBUTES,
    name=st.text(max_size=30),
    kind=st.sampled_from(list(SpanKind)),
    status=st.sampled_from([StatusCode.UNSET, StatusCode.OK, StatusCode.ERROR]),
    description=st.text(max_size=20),
    event_attributes=_ATTRIBUTES,
)
def test_any_span_encodes_to_the_same_message_as_the_stock_encoder(
    tracing: tuple[TracerProvider, InMemorySpanExporter],
    attributes: dict[str, object],
    name: str,
    kind: SpanKind,
    status: StatusCode,
    description: str,
    event_attributes: dict[str, object],
) -> None:
    provider, exporter = tracing
    exporter.clear()
    tracer = provider.get_tracer("scope.name", "1.2.3")
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:  # type: ignore[arg-type]
        span.add_event("an event", event_attributes)  # type: ignore[arg-type]
        span.set_status(Status(status, description if status is StatusCode.ERROR else None))
    (finished,) = exporter.get_finished_spans()
    assert _ours(finished) == _stock(finished)


def test_links_remote_parents_trace_state_and_drop_counts_match(
    tracing: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = tracing
    tracer = provider.get_tracer("scope")
    remote = SpanContext(
        trace_id=0x0123456789ABCDEF0123456789ABCDEF,
        span_id=0x0123456789ABCDEF,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value"), ("other", "x")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    link = Link(remote, {"link.attribute": 3})
    with tracer.start_as_current_span("child", context=parent, links=[link]) as span:
        logging.disable(logging.WARNING)  # the SDK warns on every dropped attribute
        try:
            for index in range(200):  # beyond the SDK's limit of 128: a dropped count
                span.set_attribute(f"key{index}", index)
        finally:
            logging.disable(logging.NOTSET)
    (finished,) = exporter.get_finished_spans()
    assert finished.dropped_attributes == 200 - 128
    ours, stock = _ours(finished), _stock(finished)
    # The stock encoder leaves out a link's trace_state (OTLP Link field 3); we keep it.
    assert ours.links[0].trace_state == "vendor=value,other=x"
    assert stock.links[0].trace_state == ""
    ours.links[0].trace_state = ""
    assert ours == stock
    assert ours.flags == stock.flags == 0x300  # has-is-remote and is-remote


def test_origins_and_framed_spans_join_into_a_request_equal_to_the_stock_one(
    tracing: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = tracing
    for scope_name in ("first", "second"):
        tracer = provider.get_tracer(scope_name, "0.1", schema_url="https://schema/1")
        for index in range(3):
            with tracer.start_as_current_span(f"{scope_name}-{index}", attributes={"i": index}):
                pass
    spans = exporter.get_finished_spans()
    groups: dict[SpanOrigin, list[bytes]] = {}
    for span in spans:
        origin = SpanOrigin.of(span.resource, span.instrumentation_scope)
        assert SpanOrigin.from_bytes(origin.to_bytes()) == origin
        groups.setdefault(origin, []).append(framed_span(encode_span(span)))
    ours = ExportTraceServiceRequest()
    ours.ParseFromString(export_request(groups.items()))
    stock = encode_spans(spans)
    assert len(ours.resource_spans) == 2  # one per (resource, scope) origin
    assert [
        (rs.resource, ss.scope, ss.schema_url, list(ss.spans))
        for rs in ours.resource_spans
        for ss in rs.scope_spans
    ] == [
        (rs.resource, ss.scope, ss.schema_url, list(ss.spans))
        for rs in stock.resource_spans
        for ss in rs.scope_spans
    ]


def test_unencodable_attribute_values_are_skipped_like_the_stock_encoder(
    tracing: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = tracing
    with provider.get_tracer("scope").start_as_current_span("s") as span:
        span.set_attribute("ok", "yes")
        span._attributes["too.big"] = 2**70  # type: ignore[attr-defined,index]
    (finished,) = exporter.get_finished_spans()
    decoded = _ours(finished)
    assert [pair.key for pair in decoded.attributes] == ["ok"]


def test_size_estimate_grows_with_string_attributes(
    tracing: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = tracing
    tracer = provider.get_tracer("scope")
    with tracer.start_as_current_span("small", attributes={"k": "v"}):
        pass
    with tracer.start_as_current_span("large", attributes={"k": "v" * 100_000}):
        pass
    small, large = exporter.get_finished_spans()
    assert estimate_span_bytes(large) - estimate_span_bytes(small) == 100_000 - 1
    assert estimate_span_bytes(large) >= len(encode_span(large))
