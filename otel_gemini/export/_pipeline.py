"""One process's side of an exporter: hand-off, spool, writer and sender threads.

A forked child gets a new, empty pipeline (its parent's threads do not exist in it and
its parent's spool is not its own); the child's starts on its first span, in a slot of
its own under the same spool root.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan

from otel_gemini import _background
from otel_gemini._background import RUNNING, LoopStatus
from otel_gemini.export._accounting import (
    DROP_SPOOL_ERROR,
    PAUSE_AUTH,
    Accounting,
    ExportStats,
)
from otel_gemini.export._handoff import SpanHandoff
from otel_gemini.export._sender import Sender
from otel_gemini.export._settings import ExporterSettings
from otel_gemini.export._slots import SlotLock, acquire_slot
from otel_gemini.export._spool import Spool
from otel_gemini.export._spool_writer import SpoolWriter
from otel_gemini.export._transport import LangfuseTransport

_logger = logging.getLogger(__name__)

_STATUS_FILE_INTERVAL = 1.0
"""At most one status.json write a second for counter changes (loop changes go at once)."""
_STATUS_FILE_REFRESH = 60.0
"""An owner rewrites its status.json at least this often, so an old one means stuck."""


@dataclass(frozen=True)
class HealthInputs:
    """What health needs from the pipeline beyond :class:`ExportStats`."""

    loops: tuple[LoopStatus, ...]
    request_timeout: float
    unanswered_since: float | None
    """When the oldest attempt Langfuse has not answered at all started (Unix s)."""


class Pipeline:
    def __init__(self, settings: ExporterSettings, slot: SlotLock | None) -> None:
        self._settings = settings
        self._slot = slot
        self.accounting = Accounting(settings.memory_max_bytes, settings.spool_max_bytes)
        self.handoff = SpanHandoff(self.accounting, settings.memory_max_bytes)
        self._lock = threading.Lock()
        self._started = False
        self._unavailable = False
        self._shut_down = False
        self._live_threads = 0
        self._closing = False
        self.spool: Spool | None = None
        self._writer: SpoolWriter | None = None
        self._sender: Sender | None = None
        self._transport: LangfuseTransport | None = None
        self._status_lock = threading.Lock()
        self._status_written = 0.0
        self._status_last: dict[str, object] | None = None
        self._status_closed = False
        self.status_extras: Callable[[], dict[str, object]] | None = None
        """Set by a health reporter: what it adds to status.json (probe, its other loops)."""

    @classmethod
    def start(cls, settings: ExporterSettings) -> Pipeline:
        """Takes a spool slot now (errors surface at construction) and starts the threads."""
        pipeline = cls(settings, acquire_slot(settings.spool_dir, settings.spool_slots))
        with pipeline._lock:
            pipeline._start_locked()
        return pipeline

    @classmethod
    def for_child(cls, settings: ExporterSettings) -> Pipeline:
        """An idle pipeline for a forked child: it starts on the first span."""
        return cls(settings, None)

    def _start_locked(self) -> None:
        settings = self._settings
        if self._slot is None:
            self._slot = acquire_slot(settings.spool_dir, settings.spool_slots)
        spool = Spool(
            self._slot.directory,
            self.accounting,
            max_bytes=settings.spool_max_bytes,
            segment_bytes=settings.segment_bytes,
            dead_letter_max_bytes=settings.dead_letter_max_bytes,
            fsync=settings.fsync,
            on_recreated=self._slot.relock,
        )
        transport = LangfuseTransport(
            settings.base_url,
            settings.public_key,
            settings.secret_key,
            timeout=settings.request_timeout,
            gzip_level=settings.gzip_level,
        )
        ready = threading.Event()
        sender = Sender(
            spool,
            transport,
            self.accounting,
            settings.retry,
            batch_max_spans=settings.batch_max_spans,
            batch_max_bytes=settings.batch_max_bytes,
            spool_ready=ready,
            on_exit=self._thread_exited,
            on_status=self._sender_status,
        )
        writer = SpoolWriter(
            self.handoff,
            spool,
            self.accounting,
            persist_interval=settings.persist_interval,
            ready=ready,
            on_persisted=sender.wake,
            on_exit=self._thread_exited,
        )
        self.spool, self._transport, self._sender, self._writer = spool, transport, sender, writer
        self._live_threads = 2
        self._started = True
        writer.start()
        sender.start()
        _background.on_tick(self._tick)

    def _start_in_child(self) -> bool:
        with self._lock:
            if self._started or self._unavailable or self._shut_down:
                return self._started
            try:
                self._start_locked()
            except Exception as error:
                self._unavailable = True
                _logger.error(
                    "otel-gemini: no spool for forked process %d under %s (%s); its spans "
                    "will be dropped",
                    os.getpid(),
                    self._settings.spool_dir,
                    error,
                )
                self.accounting.spool_state(str(self._settings.spool_dir), str(error))
            return self._started

    # --- the app thread ---

    def offer(self, span: ReadableSpan) -> bool:
        if not self._started and not self._start_in_child():
            with self.accounting.lock:
                self.accounting.reject_locked(DROP_SPOOL_ERROR)
            return False
        return self.handoff.offer(span)

    # --- lifecycle ---

    def force_flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        writer, sender, spool = self._writer, self._sender, self.spool
        if writer is None or sender is None or spool is None:
            return not self._unavailable
        target = self.handoff.offered
        self.handoff.hurry()
        if not writer.wait_persisted(target, max(0.0, deadline - time.monotonic())):
            return False
        if writer.open_error is not None:
            return False
        return sender.flush(spool.last_written_seq, deadline)

    def persist(self, timeout: float) -> bool:
        """Waits until every span handed off so far is on disk (or dropped and counted)."""
        writer = self._writer
        if writer is None:
            return False
        target = self.handoff.offered
        self.handoff.hurry()
        return writer.wait_persisted(target, timeout) and writer.open_error is None

    def shutdown(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        self.handoff.close()
        writer, sender = self._writer, self._sender
        if writer is not None and sender is not None:
            writer.stop()
            writer.loop.join(max(0.0, deadline - time.monotonic()))
            sender.stop(deadline)
            sender.loop.join(max(0.0, deadline - time.monotonic()))
        self.accounting.shut_down()
        with self._lock:
            self._closing = True
            if self._live_threads == 0:
                self._close_locked()
            else:
                _logger.info(
                    "otel-gemini: shutdown deadline reached with a request in flight; "
                    "unsent spans stay in the spool for the next start"
                )

    def _thread_exited(self) -> None:
        with self._lock:
            self._live_threads -= 1
            if self._live_threads == 0 and self._closing:
                self._close_locked()

    def _close_locked(self) -> None:
        with self._status_lock:
            self._status_closed = True  # the slot may soon be another process's
        if self.spool is not None:
            self.spool.close()
        if self._transport is not None:
            self._transport.close()
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    def forget_in_child(self) -> None:
        """In a forked child: let go of the parent's files without writing to them."""
        if self.spool is not None:
            self.spool.forget_in_child()
        if self._slot is not None:
            self._slot.forget_in_child()

    def threads_alive(self) -> bool:
        """Whether the spool writer and sender loops are both running on a live thread,
        neither stopped nor backing off after an error (for tests)."""
        loops = [part.loop for part in (self._writer, self._sender) if part is not None]
        return len(loops) == 2 and all(
            loop.status().state == RUNNING and loop.thread is not None and loop.thread.is_alive()
            for loop in loops
        )

    def stats(self) -> ExportStats:
        return self.accounting.snapshot()

    # --- health ---

    def loops(self) -> tuple[LoopStatus, ...]:
        writer, sender = self._writer, self._sender
        if writer is None or sender is None:
            return ()
        return (writer.loop.status(), sender.loop.status())

    def health_inputs(self) -> HealthInputs:
        sender = self._sender
        return HealthInputs(
            self.loops(),
            self._settings.request_timeout,
            sender.unanswered_since if sender is not None else None,
        )

    def credentials_confirmed(self) -> bool:
        """The health probe's authenticated check passed: a pause for 401/403 ends now."""
        sender = self._sender
        return sender is not None and sender.resume_paused(PAUSE_AUTH)

    def _sender_status(self, force: bool) -> None:
        self.write_status(force=force)

    def _tick(self) -> None:
        if self._started and not self._closing:
            self.write_status()

    def write_status(self, *, force: bool = False) -> None:
        """Rewrites status.json (for ``otel-gemini health --spool-dir``): at once when forced
        or when a loop changed state, else at most once a second when something changed,
        and at least once a minute."""
        spool = self.spool
        if spool is None:
            return
        inputs = self.health_inputs()
        document = self.stats().to_dict()
        document["request_timeout"] = inputs.request_timeout
        document["unanswered_since"] = inputs.unanswered_since
        document["loops"] = [loop.to_dict() for loop in inputs.loops]
        extras = self.status_extras
        if extras is not None:
            added = extras()
            more_loops = added.pop("loops", None)
            document.update(added)
            if isinstance(more_loops, list):
                document["loops"] = [*document["loops"], *more_loops]  # type: ignore[misc]
        with self._status_lock:
            if self._status_closed:
                return
            now = time.monotonic()
            last = self._status_last
            if not force and last is not None:
                age = now - self._status_written
                if document == last and age < _STATUS_FILE_REFRESH:
                    return
                if last.get("loops") == document["loops"] and age < _STATUS_FILE_INTERVAL:
                    return
            self._status_last = dict(document)
            self._status_written = now
            document["written_at"] = time.time()
            spool.write_status(document)
