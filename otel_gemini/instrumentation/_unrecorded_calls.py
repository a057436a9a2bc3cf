"""Our calls whose span is not recorded, handed to the pipeline's sink (see ``_unrecorded``).

The caller's thread keeps only what it already has (the span name and kind, the request's
attribute dict, the perf-counter readings) and its start time; the metrics worker, which gets
every finished call anyway, builds the :class:`~otel_gemini._unrecorded.UnrecordedGeneration`
and hands it to the sink ``configure()`` registered for the call's tracer provider.

A generation recorded after the request that made it (a background interaction's, a batch
job's requests: ``_pending_generations``) is handed over the same way when its span is not
recorded (its creating span was sampled out), with the wall-clock times it would have had.
"""

from __future__ import annotations

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
    start_ns: int
    """When it started (ns since the epoch), read as a recorded span's start is."""
    end_ns: int | None = None
    """When it ended, if known at hand-off (a generation recorded when its result arrived);
    None: its start plus the call's duration."""


def hand_over(
    call: UnrecordedCall,
    tracer_provider: trace.TracerProvider | None,
    span: trace.Span | None,
    result: Mapping[str, AttributeValue],
    error: str | None,
    duration: float | None,
    time_to_first_chunk: float | None,
) -> None:
    """Hands the finished call to its provider's sink, if one is registered (on the worker).

    ``duration`` and ``time_to_first_chunk`` are seconds; ``error`` the failure's error
    type."""
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    sink = sink_for(provider)
    if sink is None or span is None or not span.get_span_context().is_valid:
        return  # no sink; or no ids (OTEL_SDK_DISABLED: a no-op tracer), which would merge rows
    attributes = {**call.request_attributes, **result}
    if error is not None:
        attributes[attrs.ERROR_TYPE] = error
    if time_to_first_chunk is not None:
        attributes.setdefault(attrs.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, time_to_first_chunk)
    end_ns = call.end_ns
    if end_ns is None:
        if duration is None:
            return  # no end: nothing hands such a call over
        end_ns = call.start_ns + int(duration * 1e9)
    context: SpanContext = span.get_span_context()
    sink.on_unrecorded(
        UnrecordedGeneration(
            call.name,
            call.kind,
            context,
            attributes,
            call.start_ns,
            end_ns,
            error is not None,
        )
    )
