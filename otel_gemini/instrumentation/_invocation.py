"""One instrumented request: a span that is started once and finalised exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from datetime import datetime, timezone
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs
from otel_gemini._trace_attributes import current_trace_attributes
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._internal_errors import report_internal_error
from otel_gemini.instrumentation._metric_points import MetricPoints
from otel_gemini.instrumentation._metric_queue import QUEUE, FinalAttributes, MetricRecord
from otel_gemini.instrumentation._unrecorded_calls import UnrecordedCall


class ResponseRecorder(Protocol):
    """Turns what a request returned (one response, or each chunk of a stream) into attributes.

    A recorder whose class sets ``final_once_finished = True`` reads only state that no longer
    changes once its invocation finished: for a span that is not recorded, its
    ``attributes()`` are then read on the metrics worker instead of the caller's thread.
    """

    def add(self, response: Any) -> None: ...

    def attributes(self) -> Mapping[str, AttributeValue]: ...


class NoResponse:
    """Recorder for spans whose response carries nothing to record (e.g. the AFC parent)."""

    def add(self, response: Any) -> None:
        return None

    def attributes(self) -> Mapping[str, AttributeValue]:
        return {}


def error_type(error: BaseException) -> str:
    """HTTP status code for API errors, else the exception's qualified class name."""
    # websockets' ConnectionClosed (Live API) warns on .code, a close code, not an HTTP status.
    code = None if hasattr(error, "rcvd") else getattr(error, "code", None)
    if code is None:  # the Interactions API's errors
        code = getattr(error, "status_code", None)
    if isinstance(code, int) and 100 <= code <= 599:
        return str(code)
    cls = type(error)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


class Invocation:
    """A started span plus the bookkeeping to end it once, with metrics.

    Not made current on creation: callers run the SDK's code inside :meth:`activate`
    so that nested spans (HTTP client, tools) become children, while code the caller
    runs between stream chunks keeps its own context.
    """

    __slots__ = (
        "_context_key",
        "_ended",
        "_first_chunk_at",
        "_instruments",
        "_metric_points",
        "_on_finish",
        "_parent_context",
        "_recorder",
        "_started_at",
        "_unrecorded",
        "span",
    )

    def __init__(
        self,
        instruments: Instruments,
        name: str,
        attributes: dict[str, AttributeValue],
        recorder: ResponseRecorder,
        kind: SpanKind = SpanKind.CLIENT,
        context_key: str | None = None,
        links: Sequence[Link] | None = None,
        metric_points: MetricPoints | None = None,
        on_finish: Callable[[Invocation, Mapping[str, AttributeValue]], None] | None = None,
    ) -> None:
        """``metric_points``: shared by requests with the same request attributes (else made
        from ``attributes``); ``on_finish``: called with the final attributes once the span has
        ended successfully (not after :meth:`fail`)."""
        self._metric_points = metric_points or MetricPoints(attributes)
        extra = current_trace_attributes()
        if extra:
            attributes.update(extra)
        self._instruments = instruments
        self._recorder = recorder
        self._ended = False
        self._first_chunk_at: float | None = None
        self._started_at = time.perf_counter()
        self._context_key = context_key
        self._on_finish = on_finish
        # Read once and handed to the SDK, which would otherwise look it up several times.
        self._parent_context = otel_context.get_current()
        self.span = span = instruments.tracer.start_span(
            name, self._parent_context, kind=kind, attributes=attributes, links=links
        )
        # Sampled out: the span keeps nothing, so what the pipeline needs to price and count
        # the call anyway is kept here (references only; the metrics worker builds the rest).
        self._unrecorded = (
            None if span.is_recording() else UnrecordedCall(name, kind, attributes, time.time_ns())
        )

    def start_time_ns(self) -> int:
        """When the request started (ns since the epoch), recorded or not."""
        started = getattr(self.span, "start_time", None)  # the SDK's recording spans have it
        if isinstance(started, int):
            return started
        if self._unrecorded is not None:
            return self._unrecorded.start_ns
        return time.time_ns()  # a no-op tracer's span

    def activate(self) -> _Activation:
        """Make the span current for the duration of a ``with`` block (the SDK's work)."""
        return _Activation(self)

    def attach(self) -> Token[otel_context.Context]:
        """Make the span current in the context it was started in, for a wrapped call's SDK
        work; returns the token for ``opentelemetry.context.detach``."""
        return otel_context.attach(self.context(self._parent_context))

    def context(self, parent: otel_context.Context | None = None) -> otel_context.Context:
        """``parent`` (default: the current context) with the span current and the context
        key set."""
        ctx = trace.set_span_in_context(self.span, parent)
        if self._context_key is not None:
            ctx = otel_context.set_value(self._context_key, True, ctx)
        return ctx

    def observe(self, response: Any) -> None:
        """Record one response, or one chunk of a streamed response."""
        if self._first_chunk_at is None:
            self._first_chunk_at = time.perf_counter()
        try:
            self._recorder.add(response)
        except Exception as error:  # never let a malformed response reach the caller
            report_internal_error("record response", error)

    def complete(self, response: Any) -> None:
        """Record a whole (not streamed) response and end the span successfully."""
        try:
            self._recorder.add(response)
        except Exception as error:  # never let a malformed response reach the caller
            report_internal_error("record response", error)
        self.finish()

    def finish(
        self, stream_completed: bool | None = None, *, ended_at: float | None = None
    ) -> None:
        """End the span successfully (idempotent).

        ``ended_at`` (a ``time.perf_counter()`` reading) ends it at that earlier moment: a Live
        turn is over at ``turn_complete`` but is finalised once its late usage can no longer
        arrive."""
        if self._ended:
            return
        self._ended = True
        ended = time.perf_counter() if ended_at is None else ended_at
        span = self.span
        result: Mapping[str, AttributeValue] = {}
        try:
            if (
                self._unrecorded is not None
                and self._on_finish is None
                and getattr(self._recorder, "final_once_finished", False)
            ):
                # Sampled out: no attributes to set; the metrics worker works out the
                # tokens from the recorder (whose state no longer changes), off the
                # caller's thread.
                self._record_metrics(self._recorder.attributes, None, ended, stream_completed)
            else:
                result = self._recorder.attributes()
                if stream_completed is not None:
                    result = {**result, **self._stream_attributes(stream_completed)}
                span.set_attributes(result)
                # A response can report a failure in-band (an Interactions stream's error
                # event).
                error = result.get(attrs.ERROR_TYPE)
                if isinstance(error, str):
                    span.set_status(Status(StatusCode.ERROR, f"error reported: {error}"))
                self._record_metrics(result, None, ended, stream_completed)
        except Exception as error:
            report_internal_error("finish span", error)
        span.end(end_time=_end_time_ns(ended_at))
        if self._on_finish is not None:
            try:
                self._on_finish(self, result)
            except Exception as error:
                report_internal_error("after span end", error)

    def _stream_attributes(self, completed: bool) -> dict[str, AttributeValue]:
        result: dict[str, AttributeValue] = {attrs.STREAM_COMPLETED: completed}
        if self._first_chunk_at is not None:
            ttfc = self._first_chunk_at - self._started_at
            result[attrs.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc
            first_chunk_wall = time.time() - (time.perf_counter() - self._first_chunk_at)
            result[attrs.LANGFUSE_COMPLETION_START_TIME] = datetime.fromtimestamp(
                first_chunk_wall, tz=timezone.utc
            ).isoformat()
        return result

    def fail(self, error: BaseException, *, ended_at: float | None = None) -> None:
        """End the span as failed with ``error`` (idempotent). The caller re-raises it."""
        if self._ended:
            return
        self._ended = True
        try:
            kind = error_type(error)
            result = {**self._recorder.attributes(), attrs.ERROR_TYPE: kind}
            self.span.set_attributes(result)
            self.span.record_exception(error)
            self.span.set_status(
                Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:1024])
            )
            self._record_metrics(
                result, kind, time.perf_counter() if ended_at is None else ended_at, None
            )
        except Exception as internal:
            report_internal_error("fail span", internal)
        self.span.end(end_time=_end_time_ns(ended_at))

    def _record_metrics(
        self,
        result: FinalAttributes,
        error: str | None,
        ended: float,
        stream_completed: bool | None,
    ) -> None:
        first_chunk = None
        if self._first_chunk_at is not None and stream_completed is not None:
            first_chunk = self._first_chunk_at - self._started_at
        QUEUE.submit(
            MetricRecord(
                self._instruments,
                self._metric_points,
                result,
                ended - self._started_at,
                first_chunk,
                error,
                self.span,
                self._unrecorded,
            )
        )


def record_metrics(
    instruments: Instruments,
    metric_points: MetricPoints,
    result: Mapping[str, AttributeValue],
    duration: float | None,
    error: str | None,
    time_to_first_chunk: float | None = None,
    span: trace.Span | None = None,
    unrecorded: UnrecordedCall | None = None,
) -> None:
    """Hands a request's metric points to the metrics worker: its duration (``None``:
    recorded already) and time to first chunk in seconds, and unless it failed (``error``, or
    an error type in ``result``), the input and output tokens of its final attributes
    ``result``; ``span`` (the request's) links the points' exemplars to its trace;
    ``unrecorded``: the span is not recorded, so the worker hands the call to the pipeline."""
    QUEUE.submit(
        MetricRecord(
            instruments,
            metric_points,
            result,
            duration,
            time_to_first_chunk,
            error,
            span,
            unrecorded,
        )
    )


def _end_time_ns(ended_at: float | None) -> int | None:
    """The wall-clock time (ns) of a ``perf_counter()`` reading; None: now (the SDK's default)."""
    if ended_at is None:
        return None
    return time.time_ns() - int((time.perf_counter() - ended_at) * 1e9)


class _Activation:
    """``with invocation.activate():`` — a class, not a generator, as it runs on every call."""

    __slots__ = ("_invocation", "_token")

    def __init__(self, invocation: Invocation) -> None:
        self._invocation = invocation

    def __enter__(self) -> None:
        self._token = otel_context.attach(self._invocation.context())

    def __exit__(self, *exc_info: object) -> None:
        otel_context.detach(self._token)
