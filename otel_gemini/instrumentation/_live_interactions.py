"""Live interactions (``client.aio.interactions.connect``, experimental in google-genai 3.x).

A Live interaction is created (``interactions.create``, answered ``idle``: nothing run, no
usage) and then run over a WebSocket; its usage arrives once, on the terminal
``interaction.completed`` event. We watch the connection's ``receive`` for that event and
record the generation of an interaction this process created, as a fetch that returns it
finished would (``_pending_interactions``): once, as a child of its create span. The session
itself (turns, audio timing) gets no spans yet.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.util.types import AttributeValue
from wrapt import wrap_function_wrapper

from otel_gemini import _attributes as attrs
from otel_gemini.instrumentation._fields import field
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._internal_errors import report_internal_error
from otel_gemini.instrumentation._pending_interactions import (
    PendingInteractions,
    record_generation,
)
from otel_gemini.instrumentation._usage import interaction_usage_attributes

_MODULE = "google.genai._interactions_websocket"
_CONNECTION = "InteractionWebSocketConnection"
_COMPLETED = "interaction.completed"


class _ReceiveWrapper:
    """Wraps ``receive`` so that its events pass through :meth:`_observe` on their way."""

    def __init__(self, instruments: Instruments, pending: PendingInteractions) -> None:
        self._instruments = instruments
        self._pending = pending

    def __call__(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        events = wrapped(*args, **kwargs)
        if not is_instrumentation_enabled() or not hasattr(events, "aclose"):
            return events
        return self._observed(events, instance)

    async def _observed(self, events: Any, connection: Any) -> AsyncIterator[Any]:
        # Closing ours closes the SDK's: its cleanup runs when the caller's would.
        async with aclosing(events):
            async for event in events:
                if field(event, "event_type") == _COMPLETED:
                    self._completed(connection, event)
                yield event

    def _completed(self, connection: Any, event: Any) -> None:
        try:
            interaction_id = getattr(connection, "id", None)
            if not isinstance(interaction_id, str):
                return
            pending = self._pending.take(interaction_id)
            if pending is None:
                return
            generation: dict[str, AttributeValue] = {
                attrs.GEN_AI_RESPONSE_ID: interaction_id,
                attrs.INTERACTION_STATUS: "completed",
                attrs.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
            }
            usage = field(event, "usage")
            if usage is not None:
                generation.update(interaction_usage_attributes(usage))
            current = trace.get_current_span().get_span_context()
            record_generation(self._instruments, pending, generation, None, current)
        except Exception as error:
            report_internal_error("record live interaction", error)


def instrument_live_interactions(
    instruments: Instruments, pending: PendingInteractions
) -> list[tuple[Any, str]]:
    """Wraps the Live interaction connection's ``receive`` if this google-genai has one;
    returns what it patched, for ``unwrap``."""
    try:
        cls = getattr(importlib.import_module(_MODULE), _CONNECTION)
    except (ImportError, AttributeError):
        return []
    if "receive" not in cls.__dict__:
        return []
    wrap_function_wrapper(_MODULE, f"{_CONNECTION}.receive", _ReceiveWrapper(instruments, pending))
    return [(cls, "receive")]
