"""Calls whose span was not recorded (sampled out): still priced and counted locally.

A sampler such as ``TraceIdRatioBased(0.1)`` keeps one trace in ten: the SDK hands our
instrumentation a non-recording span for the others, no span processor ever sees them, and
a cost tool fed by span processors would count a tenth of the spend without saying so.

So when the span of one of our calls is not recorded, the instrumentation describes the
finished call as an :class:`UnrecordedGeneration` (on its metrics worker, never on the
caller's thread) and hands it to the :class:`UnrecordedSink` registered for the call's
tracer provider. ``configure()`` registers one per provider: it prices the call through the
cost processor (the same pricer, once) and writes it to the cost store (and so budgets) and
the cost metric, never to Langfuse, which received the sampled share by design. Without a
registered sink (the user wired their own processors) nothing happens.

This module is the small interface between the two sides: the instrumentation imports only
it, and the processing side only implements :class:`UnrecordedSink`.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from opentelemetry.trace import SpanContext, SpanKind, TracerProvider
from opentelemetry.util.types import AttributeValue


class UnrecordedGeneration(NamedTuple):
    """One finished call of ours whose span was not recorded: what its span would have held."""

    name: str
    """The span name it would have had (``generate_content gemini-2.5-flash``)."""
    kind: SpanKind
    context: SpanContext
    """The non-recording span's context: its trace and span id (unique per call)."""
    attributes: Mapping[str, AttributeValue]
    """The request's attributes (with ``trace_attributes()``'s user, session and tags), the
    response's (model, usage) and, when known, ``error.type`` and the time to first chunk."""
    start_ns: int
    end_ns: int
    failed: bool
    """Whether the call raised, or its response reported a failure."""


class UnrecordedSink(Protocol):
    """Takes the calls whose span was not recorded (on a background thread; never raises)."""

    def on_unrecorded(self, generation: UnrecordedGeneration) -> None: ...


_lock = threading.Lock()
_sinks: weakref.WeakKeyDictionary[TracerProvider, UnrecordedSink] = weakref.WeakKeyDictionary()


def register_sink(provider: TracerProvider, sink: UnrecordedSink) -> None:
    """Sends the unrecorded calls of spans from ``provider`` to ``sink`` (one per provider:
    a later registration replaces an earlier one)."""
    with _lock:
        _sinks[provider] = sink


def unregister_sink(provider: TracerProvider, sink: UnrecordedSink) -> None:
    """Stops sending to ``sink`` (if it is still the one registered for ``provider``)."""
    with _lock:
        if _sinks.get(provider) is sink:
            del _sinks[provider]


def sink_for(provider: TracerProvider) -> UnrecordedSink | None:
    """The sink registered for ``provider``, if any."""
    return _sinks.get(provider)
