"""The app thread's only job: put a finished span in memory, bounded by bytes, and go.

No I/O, no encoding, one uncontended lock. The spool writer thread drains the list every
``persist_interval`` (or at once when a lot has piled up, or on flush).
"""

from __future__ import annotations

import threading

from opentelemetry.sdk.trace import ReadableSpan

from otel_gemini.export._accounting import DROP_QUEUE_FULL, DROP_SHUTDOWN, Accounting
from otel_gemini.export._otlp_wire import estimate_span_bytes

# Wake the writer before the interval is up once this much is waiting.
_URGENT_BYTES = 1024 * 1024
_URGENT_SPANS = 2048


class SpanHandoff:
    """Finished spans waiting for the spool writer, with their estimated sizes."""

    def __init__(self, accounting: Accounting, capacity_bytes: int) -> None:
        self._accounting = accounting
        self._lock = accounting.lock  # counters and list move together
        self._capacity = capacity_bytes
        self._spans: list[ReadableSpan] = []
        self._bytes = 0
        self._offered = 0
        self._closed = False
        self.overflow_reason: str = DROP_QUEUE_FULL
        """Why a span that does not fit is dropped: ``queue_full``, or while the spool holds
        spans in memory because it cannot write, that failure's reason (set by the writer)."""
        self.has_data = threading.Event()
        """Set when the list goes from empty to non-empty."""
        self.urgent = threading.Event()
        """Set when the writer should not wait for its interval (a lot waiting, a flush)."""

    def offer(self, span: ReadableSpan) -> bool:
        """Takes ``span`` unless shut down or full (then counts it dropped). Never blocks on I/O."""
        size = estimate_span_bytes(span)
        accounting = self._accounting
        with self._lock:
            if self._closed:
                accounting.reject_locked(DROP_SHUTDOWN)
                return False
            if accounting.memory_bytes + size > self._capacity:
                accounting.reject_locked(self.overflow_reason)
                return False
            accounting.accept_locked(size)
            spans = self._spans
            spans.append(span)
            self._bytes += size
            self._offered += 1
            first = len(spans) == 1
            urgent = self._bytes >= _URGENT_BYTES or len(spans) >= _URGENT_SPANS
        if first:
            self.has_data.set()
        if urgent and not self.urgent.is_set():
            self.urgent.set()
        return True

    def drain(self) -> tuple[list[ReadableSpan], int, int]:
        """Everything waiting: (spans, their estimated bytes, offers so far)."""
        with self._lock:
            spans, self._spans = self._spans, []
            size, self._bytes = self._bytes, 0
            self.has_data.clear()
            self.urgent.clear()
            return spans, size, self._offered

    @property
    def offered(self) -> int:
        with self._lock:
            return self._offered

    def hurry(self) -> None:
        """Makes the writer drain now (flush, shutdown)."""
        self.urgent.set()
        self.has_data.set()

    def close(self) -> None:
        """Refuses further spans (counted as dropped, reason ``shutdown``)."""
        with self._lock:
            self._closed = True
        self.hurry()
