"""The spool writer thread: encodes what the app handed off and appends it to the spool."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_gemini._background import BatchWorker
from otel_gemini.export._accounting import (
    DROP_ENCODE_ERROR,
    DROP_QUEUE_FULL,
    DROP_SPOOL_ERROR,
    Accounting,
)
from otel_gemini.export._handoff import SpanHandoff
from otel_gemini.export._otlp_wire import SpanOrigin, encode_span, framed_span
from otel_gemini.export._spool import Spool, describe_error, drop_reason

_logger = logging.getLogger(__name__)


class _OriginCache:
    """Encoded resource + scope by object identity (a process has a handful of each).

    Entries hold the objects, so an id cannot be reused by another object while cached.
    """

    _MAX = 256

    def __init__(self) -> None:
        self._entries: dict[
            tuple[int, int], tuple[Resource, InstrumentationScope | None, SpanOrigin]
        ] = {}

    def get(self, resource: Resource, scope: InstrumentationScope | None) -> SpanOrigin:
        entry = self._entries.get((id(resource), id(scope)))
        if entry is not None and entry[0] is resource and entry[1] is scope:
            return entry[2]
        origin = SpanOrigin.of(resource, scope)
        if len(self._entries) >= self._MAX:
            self._entries.clear()
        self._entries[(id(resource), id(scope))] = (resource, scope, origin)
        return origin


class SpoolWriter:
    """Owns the spool's opening (recovery can take a moment) and every write to it."""

    def __init__(
        self,
        handoff: SpanHandoff,
        spool: Spool,
        accounting: Accounting,
        *,
        persist_interval: float,
        ready: threading.Event,
        on_persisted: Callable[[], None],
        on_exit: Callable[[], None],
    ) -> None:
        """``on_exit`` runs once the writer has finished after :meth:`stop`."""
        self._handoff = handoff
        self._spool = spool
        self._accounting = accounting
        self._on_persisted = on_persisted
        self._origins = _OriginCache()
        self._encode_error_logged = False
        self._write_failing = False
        self._failing_errno: int | None = None
        self._persisted = threading.Condition()
        self._persisted_through = 0
        self.ready = ready
        """Set once the spool was first tried (if it failed to open, writes try again)."""
        self.open_error: OSError | None = None
        self._appended: object | None = None  # the batch the spool has accounted for
        # Supervised: an error restarts it with the batch it had in hand, so no span is
        # lost from the accounting by a bug.
        self._worker = BatchWorker(
            "spool-writer",
            has_data=handoff.has_data,
            urgent=handoff.urgent,
            delay=persist_interval,
            drain=handoff.drain,
            process=self._write,
            pending=handoff.has_data.is_set,
            on_exit=on_exit,
            prepare=self._open,
            discard=self._discard,
        )
        self.loop = self._worker.loop

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        """Asks the thread to write what is left and exit."""
        self._worker.stop()

    def wait_persisted(self, offered: int, timeout: float) -> bool:
        """Waits until the first ``offered`` hand-offs are resolved (on disk or dropped).

        False at the deadline, or at once when a failed write left spans held in memory.
        """
        with self._persisted:
            if not self._persisted.wait_for(lambda: self._persisted_through >= offered, timeout):
                return False
        return self._spool.held_spans == 0

    @property
    def _stopping(self) -> bool:
        return self._worker.stopping

    def _write(self, batch: tuple[list[ReadableSpan], int, int]) -> None:
        spans, size, offered = batch
        if self._appended is not batch and (spans or self._retry_pending()):
            self._persist(spans, size, batch)
        with self._persisted:
            self._persisted_through = offered
            self._persisted.notify_all()
        if spans:
            self._on_persisted()
        self._appended = None

    def _discard(self, batch: tuple[list[ReadableSpan], int, int], error: BaseException) -> None:
        """The worker gave this batch up (it failed again and again): its spans leave
        memory as dropped (``spool_error``), unless the spool already accounted for them,
        so ``accepted == sent + dropped + dead_lettered + queued`` still holds."""
        spans, size, offered = batch
        if self._appended is not batch and spans:
            self._accounting.left_memory(
                len(spans), size, persisted=0, dropped={DROP_SPOOL_ERROR: len(spans)}
            )
        with self._persisted:
            self._persisted_through = max(self._persisted_through, offered)
            self._persisted.notify_all()

    def _open(self) -> None:
        try:
            self._spool.open()
            self._accounting.spool_state(str(self._spool.directory), None)
        except OSError as error:
            self.open_error = error
            message = f"cannot open spool {self._spool.directory}: {describe_error(error)}"
            self._accounting.spool_state(str(self._spool.directory), message)
            _logger.error(
                "otel-gemini: %s; spans are held in memory and opening is retried", message
            )
            self._write_failing = True  # the first write that works clears it
            self._failing_errno = error.errno
            self._handoff.has_data.set()  # try again soon, spans or not
        finally:
            self.ready.set()

    def _retry_pending(self) -> bool:
        """Whether the spool must be tried again with no new spans (held, or not open)."""
        return self.open_error is not None or self._spool.held_spans > 0

    def _persist(self, spans: list[ReadableSpan], size: int, batch: object) -> None:
        encoded: list[tuple[SpanOrigin, bytes]] = []
        failed = 0
        for span in spans:
            try:
                origin = self._origins.get(span.resource, span.instrumentation_scope)
                encoded.append((origin, framed_span(encode_span(span))))
            except Exception as error:
                failed += 1
                if not self._encode_error_logged:
                    self._encode_error_logged = True
                    _logger.error("otel-gemini could not encode a span (%r); dropping it", error)
        failure = self._spool.append(
            encoded,
            memory_spans=len(spans),
            memory_bytes=size,
            dropped={DROP_ENCODE_ERROR: failed} if failed else {},
            retry_now=self._stopping,  # the last chance: no backoff
        )
        self._appended = batch  # accounted for: a failure from here on writes it not again
        if self.open_error is not None and self._spool.is_open:
            self.open_error = None
        self._note_write_outcome(failure)

    def _note_write_outcome(self, failure: OSError | None) -> None:
        """Health, logs (once per episode and cause) and the retry wake-up after a write."""
        directory = self._spool.directory
        if failure is not None:
            held = self._spool.held_spans
            cause = describe_error(failure)
            self._handoff.overflow_reason = drop_reason(failure)
            self._accounting.spool_state(
                str(directory),
                f"writing spool {directory} failed: {cause}; {held} span(s) held in memory, "
                "retrying",
            )
            if self._failing_errno != failure.errno:
                _logger.error(
                    "otel-gemini: writing spool %s failed: %s; spans are held in memory (up "
                    "to memory_max_bytes, then dropped as %s) and the write is retried",
                    directory,
                    cause,
                    drop_reason(failure),
                )
            self._write_failing = True
            self._failing_errno = failure.errno
            if self._retry_pending() and not self._stopping:
                self._handoff.has_data.set()  # wake up again to retry, new spans or not
        elif self._write_failing:
            self._write_failing = False
            self._failing_errno = None
            self._handoff.overflow_reason = DROP_QUEUE_FULL
            self._accounting.spool_state(str(directory), None)
            _logger.warning("otel-gemini: writing spool %s works again", directory)
            self._on_persisted()  # what was held is on disk now, new spans or not
