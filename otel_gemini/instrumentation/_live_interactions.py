"""Live interactions (``client.aio.interactions.connect``, experimental in google-genai 3.x).

A Live interaction is created (``interactions.create``, answered ``idle``: nothing run, no
usage) and then run over a WebSocket connection, maybe several in turn (a detached one can
be resumed). Each connection gets a ``live_session`` span, from its opening to its socket's
closing, with the model, the output steps received, the time to the first output and why it
ended. The interaction's usage arrives once, on the terminal ``interaction.completed`` event:
then the generation of an interaction this process created is recorded as a fetch that
returns it finished would (``_pending_generations``): once, as a child of its create span.

We wrap the connection class's ``__init__`` (the socket is open and about to send
``interaction.connect``), ``receive`` (the events, passed on unchanged) and
``_close_socket_only``, which every way a connection ends goes through (a terminal event,
``cancel``, ``detach``, a transport error).
"""

from __future__ import annotations

import importlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue
from wrapt import wrap_function_wrapper

from otel_gemini import _attributes as attrs
from otel_gemini._model_names import bare_model_name
from otel_gemini._trace_attributes import current_trace_attributes
from otel_gemini.instrumentation._fields import field
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._internal_errors import report_internal_error
from otel_gemini.instrumentation._pending_generations import (
    PendingGenerations,
    record_generation,
)
from otel_gemini.instrumentation._usage import interaction_usage_attributes

_MODULE = "google.genai._interactions_websocket"
_CONNECTION = "InteractionWebSocketConnection"
_COMPLETED = "interaction.completed"
# Terminal events → the session's end reason.
_END_REASONS = {
    _COMPLETED: "completed",
    "interaction.canceled": "cancelled",
    "interaction.cancelled": "cancelled",
    "reconnection_required": "reconnection_required",
}


class _Session:
    """One connection's span and what its events told."""

    __slots__ = (
        "_first_output_at",
        "_started_at",
        "_steps",
        "closed",
        "end_reason",
        "receiving",
        "span",
    )

    def __init__(self, span: Span) -> None:
        self.span = span
        self._started_at = time.perf_counter()
        self._first_output_at: float | None = None
        self._steps = 0
        self.end_reason: str | None = None
        # The SDK closes the socket on a terminal event before it yields the event: a close
        # while ``receive`` reads waits for that event (``closed``: the reason without one,
        # and when).
        self.receiving = False
        self.closed: tuple[str, int] | None = None

    def observe(self, event_type: Any, event: Any) -> None:
        if event_type == "step.delta":
            if self._first_output_at is None:
                self._first_output_at = time.perf_counter()
        elif event_type == "step.stop":
            self._steps += 1
        elif event_type == "interaction.connected":
            model = field(field(event, "interaction"), "model")
            if isinstance(model, str) and model:
                name = bare_model_name(model)
                self.span.set_attribute(attrs.GEN_AI_RESPONSE_MODEL, name)
                self.span.update_name(f"{attrs.OP_LIVE_SESSION} {name}")
        elif event_type in _END_REASONS:
            self.end_reason = _END_REASONS[event_type]

    def finish(self, reason: str, end_time: int | None = None) -> None:
        """Ends the span (idempotent: the SDK may close a socket twice); ``reason``: why, unless
        a terminal event said."""
        if not self.span.is_recording():
            return
        result: dict[str, AttributeValue] = {
            attrs.LIVE_INTERACTION_STEPS: self._steps,
            attrs.LIVE_END_REASON: self.end_reason or reason,
        }
        if self._first_output_at is not None:
            result[attrs.LIVE_INTERACTION_TIME_TO_FIRST_OUTPUT] = (
                self._first_output_at - self._started_at
            )
        self.span.set_attributes(result)
        self.span.end(end_time=end_time)

    def finish_if_closed(self) -> None:
        if self.closed is not None:
            self.finish(*self.closed)


class _ConnectionWrappers:
    """The wrappers of one instrumentation: sessions by connection, and billing."""

    def __init__(self, instruments: Instruments, pending: PendingGenerations) -> None:
        self._instruments = instruments
        self._pending = pending
        self._sessions: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()

    def init(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> None:
        wrapped(*args, **kwargs)
        if not is_instrumentation_enabled():
            return
        try:
            weakref.ref(instance)  # sessions are kept by weak reference: fail before starting
            interaction_id = getattr(instance, "id", None)
            attributes: dict[str, AttributeValue] = {
                attrs.GEN_AI_OPERATION_NAME: attrs.OP_LIVE_SESSION,
                # Live interactions are Gemini API only (the SDK refuses Vertex AI).
                attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
                attrs.SDK_METHOD: attrs.SDK_METHOD_INTERACTIONS_CONNECT,
                attrs.LANGFUSE_OBSERVATION_TYPE: "span",
                **current_trace_attributes(),
            }
            if isinstance(interaction_id, str):
                attributes[attrs.GEN_AI_RESPONSE_ID] = interaction_id
            span = self._instruments.tracer.start_span(
                attrs.OP_LIVE_SESSION, kind=SpanKind.CLIENT, attributes=attributes
            )
            session = _Session(span)
            self._sessions[instance] = session
            # A connection dropped unclosed still ends its span.
            weakref.finalize(instance, session.finish, "closed")
        except Exception as error:
            report_internal_error("start live interaction", error)

    def receive(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        events = wrapped(*args, **kwargs)
        if not is_instrumentation_enabled() or not hasattr(events, "aclose"):
            return events
        return self._observed(events, instance)

    async def close_socket(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
    ) -> Any:
        try:
            return await wrapped(*args, **kwargs)
        finally:
            session = self._sessions.get(instance)
            if session is not None:
                try:
                    reason = _close_reason(instance)
                    if session.receiving:  # maybe a terminal event, yielded next
                        session.closed = (reason, time.time_ns())
                    else:
                        session.finish(reason)
                except Exception as error:
                    report_internal_error("end live interaction", error)

    async def _observed(self, events: Any, connection: Any) -> AsyncIterator[Any]:
        session = self._sessions.get(connection)
        # Closing ours closes the SDK's: its cleanup runs when the caller's would.
        async with aclosing(events):
            while True:
                received = False
                if session is not None:
                    session.receiving = True
                try:
                    event = await anext(events)
                    received = True
                except StopAsyncIteration:
                    return
                finally:
                    if session is not None:
                        session.receiving = False
                        if not received:  # ended, or failed: no terminal event to wait for
                            session.finish_if_closed()
                self._observe(connection, event, session)
                yield event

    def _observe(self, connection: Any, event: Any, session: _Session | None) -> None:
        try:
            event_type = field(event, "event_type")
            if session is not None:
                session.observe(event_type, event)
            if event_type == _COMPLETED:
                self._completed(connection, event, session)
            if session is not None:
                session.finish_if_closed()
        except Exception as error:
            report_internal_error("record live interaction", error)

    def _completed(self, connection: Any, event: Any, session: _Session | None) -> None:
        interaction_id = getattr(connection, "id", None)
        pending = self._pending.take(interaction_id) if isinstance(interaction_id, str) else None
        if pending is None:
            return
        generation: dict[str, AttributeValue] = {
            attrs.GEN_AI_RESPONSE_ID: str(interaction_id),
            attrs.INTERACTION_STATUS: "completed",
            attrs.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        }
        usage = field(event, "usage")
        if usage is not None:
            generation.update(interaction_usage_attributes(usage))
        returned_by = session.span.get_span_context() if session is not None else None
        record_generation(self._instruments, pending, generation, None, returned_by)


def _close_reason(connection: Any) -> str:
    """Why a connection closes when no terminal event says: ``detach()`` (or a transport
    failure) marks it detached, ``cancel()`` terminal."""
    if getattr(connection, "_detached", False):
        return "detached"
    return "cancelled" if getattr(connection, "_terminal", False) else "closed"


def instrument_live_interactions(
    instruments: Instruments, pending: PendingGenerations
) -> list[tuple[Any, str]]:
    """Wraps the Live interaction connection if this google-genai has one; returns what it
    patched, for ``unwrap``."""
    try:
        cls = getattr(importlib.import_module(_MODULE), _CONNECTION)
    except (ImportError, AttributeError):
        return []
    wrappers = _ConnectionWrappers(instruments, pending)
    methods = {
        "__init__": wrappers.init,
        "receive": wrappers.receive,
        "_close_socket_only": wrappers.close_socket,
    }
    if not all(name in cls.__dict__ for name in methods):
        return []  # another shape than the one we know: leave it alone
    for name, wrapper in methods.items():
        wrap_function_wrapper(_MODULE, f"{_CONNECTION}.{name}", wrapper)
    return [(cls, name) for name in methods]
