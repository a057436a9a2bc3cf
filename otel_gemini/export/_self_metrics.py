"""The exporter's own metrics, named after the OpenTelemetry Collector's exporter metrics.

Collector dashboards and alerts built on ``otelcol_exporter_*`` work unchanged; the queue
size and capacity are in bytes (the spool is bounded by bytes, as with the Collector's
bytes sizer). All carry ``exporter="langfuse"``; drops carry ``reason``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter_provider

from otel_gemini._version import __version__
from otel_gemini.export._accounting import DROP_REASONS, ExportStats

SENT_SPANS = "otelcol_exporter_sent_spans"
SEND_FAILED_SPANS = "otelcol_exporter_send_failed_spans"
ENQUEUE_FAILED_SPANS = "otelcol_exporter_enqueue_failed_spans"
QUEUE_SIZE = "otelcol_exporter_queue_size"
QUEUE_CAPACITY = "otelcol_exporter_queue_capacity"
DEAD_LETTERED_SPANS = "otel_gemini_exporter_dead_lettered_spans"
QUEUED_SPANS = "otel_gemini_exporter_queued_spans"

_ATTRIBUTES = {"exporter": "langfuse"}


class _HasStats(Protocol):
    def stats(self) -> ExportStats: ...


def register_self_metrics(owner: _HasStats, meter_provider: MeterProvider | None) -> None:
    """Creates observable instruments reading ``owner.stats()`` (held weakly)."""
    meter = (meter_provider or get_meter_provider()).get_meter("otel_gemini.export", __version__)
    reference = weakref.ref(owner)

    def observe(
        read: Callable[[ExportStats], Iterable[tuple[int, dict[str, str]]]],
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            target = reference()
            if target is None:
                return []
            stats = target.stats()
            return [Observation(value, {**_ATTRIBUTES, **extra}) for value, extra in read(stats)]

        return callback

    meter.create_observable_counter(
        SENT_SPANS,
        [observe(lambda s: [(s.sent, {})])],
        unit="{span}",
        description="Spans successfully sent to Langfuse.",
    )
    meter.create_observable_counter(
        SEND_FAILED_SPANS,
        [observe(lambda s: [(s.send_failed, {})])],
        unit="{span}",
        description="Spans in failed attempts to send to Langfuse (retried spans count again).",
    )
    meter.create_observable_counter(
        ENQUEUE_FAILED_SPANS,
        [
            observe(
                lambda s: [
                    (s.dropped.get(reason, 0), {"reason": reason}) for reason in DROP_REASONS
                ]
            )
        ],
        unit="{span}",
        description="Spans dropped before delivery, by reason.",
    )
    meter.create_observable_counter(
        DEAD_LETTERED_SPANS,
        [observe(lambda s: [(s.dead_lettered, {})])],
        unit="{span}",
        description="Spans Langfuse rejected (HTTP 400), kept in the dead-letter directory.",
    )
    meter.create_observable_gauge(
        QUEUE_SIZE,
        [observe(lambda s: [(s.queued_memory_bytes + s.queued_disk_bytes, {})])],
        unit="By",
        description="Bytes waiting to be sent (memory estimate plus spool).",
    )
    meter.create_observable_gauge(
        QUEUE_CAPACITY,
        [observe(lambda s: [(s.spool_capacity_bytes, {})])],
        unit="By",
        description="The spool's byte cap (OTEL_GEMINI_SPOOL_MAX_BYTES).",
    )
    meter.create_observable_gauge(
        QUEUED_SPANS,
        [observe(lambda s: [(s.queued, {})])],
        unit="{span}",
        description="Spans waiting to be sent (memory plus spool).",
    )
