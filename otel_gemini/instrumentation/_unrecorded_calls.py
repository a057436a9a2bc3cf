"""Our calls whose span is not recorded, handed to the pipeline's sink (see ``_unrecorded``).

The caller's thread keeps only what it already has (the span name and kind, the request's
attribute dict, the perf-counter readings); the metrics worker, which gets every finished
call anyway, builds the :class:`~otel_gemini._unrecorded.UnrecordedGeneration` and hands it
to the sink ``configure()`` registered for the call's tracer provider.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import NamedTuple

from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs
from otel_gemini._unrecorded import UnrecordedGeneration, sink_for

HAND_OVER_FAILED = "hand over unrecorded call"


class UnrecordedCall(NamedTuple):
    """What the caller's thread keeps of a call whose span is not recorded."""

    name: str
    kind: SpanKind
    request_attributes: Mapping[str, AttributeValue]
    """The dict the span was started with (never changed after)."""


def hand_over(
    call: UnrecordedCall,
    tracer_provider: trace.TracerProvider | None,
    span: trace.Span | None,
    result: Mapping[str, AttributeValue],
    error: str | None,
    started_at: float,
    duration: float,
    time_to_first_chunk: float | None,
) -> None:
    """Hands the finished call to its provider's sink, if one is registered (on the worker).

    ``started_at`` is a ``time.perf_counter()`` reading, ``duration`` and
    ``time_to_first_chunk`` seconds; ``error`` the failure's error type."""
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    sink = sink_for(provider)
    if sink is None or span is None or not span.get_span_context().is_valid:
        return  # no sink; or no ids (OTEL_SDK_DISABLED: a no-op tracer), which would merge rows
    attributes = {**call.request_attributes, **result}
    if error is not None:
        attributes[attrs.ERROR_TYPE] = error
    if time_to_first_chunk is not None:
        attributes.setdefault(attrs.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, time_to_first_chunk)
    # The perf counter's reading as wall-clock time: the same conversion a recorded span's
    # end time gets (Invocation._end_time_ns), done here rather than on the caller's thread.
    start_ns = time.time_ns() - int((time.perf_counter() - started_at) * 1e9)
    context: SpanContext = span.get_span_context()
    sink.on_unrecorded(
        UnrecordedGeneration(
            call.name,
            call.kind,
            context,
            attributes,
            start_ns,
            start_ns + int(duration * 1e9),
            error is not None,
        )
    )
