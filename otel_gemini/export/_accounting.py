"""Where every span handed to the exporter is, at every moment, under one lock.

Invariant (checked by tests, exposed in :class:`ExportStats`)::

    accepted == sent + dropped (all reasons) + dead_lettered + queued (memory + disk)

Each move between those buckets happens in one method here, so a snapshot taken at any
time balances exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

# Why a span was dropped (the ``reason`` attribute of otelcol_exporter_enqueue_failed_spans).
DROP_QUEUE_FULL: Final = "queue_full"
"""The in-memory hand-off was full (the spool writer could not keep up)."""
DROP_SPOOL_FULL: Final = "spool_full"
"""The spool reached ``OTEL_GEMINI_SPOOL_MAX_BYTES``: the oldest spans made room."""
DROP_CORRUPT: Final = "corrupt"
"""A spool record was damaged or missing on disk (torn write, flipped bytes, truncation)."""
DROP_ENCODE_ERROR: Final = "encode_error"
"""The span could not be encoded as OTLP."""
DROP_SPOOL_ERROR: Final = "spool_error"
"""Writing to the spool failed (I/O error, permission denied, out of file descriptors) for
longer than memory could hold the spans, or no spool could be opened."""
DROP_DISK_FULL: Final = "disk_full"
"""The spool's file system was full (no space, quota or inodes) for longer than memory could
hold the spans: the newest were dropped."""
DROP_MISSING_SEGMENT: Final = "missing_segment"
"""A segment file (or the whole slot directory) disappeared before its spans were sent."""
DROP_SHUTDOWN: Final = "shutdown"
"""Handed to the exporter after ``shutdown()``."""
DROP_REASONS: Final = (
    DROP_QUEUE_FULL,
    DROP_SPOOL_FULL,
    DROP_CORRUPT,
    DROP_ENCODE_ERROR,
    DROP_SPOOL_ERROR,
    DROP_DISK_FULL,
    DROP_MISSING_SEGMENT,
    DROP_SHUTDOWN,
)

# Drops that mean spans are being lost now (health turns unhealthy); damage found in an
# earlier run's spool and spans offered after shutdown are reported but are not "now".
LIVE_LOSS_REASONS: Final = (
    DROP_QUEUE_FULL,
    DROP_SPOOL_FULL,
    DROP_ENCODE_ERROR,
    DROP_SPOOL_ERROR,
    DROP_DISK_FULL,
    DROP_MISSING_SEGMENT,
)

# Why sending is paused (waiting for an operator rather than for Langfuse to recover).
PAUSE_AUTH: Final = "auth"
PAUSE_REJECTED: Final = "rejected"


@dataclass(frozen=True)
class ExportStats:
    """A consistent snapshot of the exporter's counters and sender state.

    Counts are spans since the exporter started; ``recovered`` spans were found in the
    spool at start (left by an earlier process) and are included in ``accepted``.
    Times are Unix seconds.
    """

    accepted: int = 0
    recovered: int = 0
    sent: int = 0
    dead_lettered: int = 0
    dropped: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    queued_memory_spans: int = 0
    queued_memory_bytes: int = 0
    queued_disk_spans: int = 0
    queued_disk_bytes: int = 0
    memory_capacity_bytes: int = 0
    spool_capacity_bytes: int = 0
    send_failed: int = 0
    """Spans in failed send attempts (one span retried three times counts three)."""
    attempts: int = 0
    consecutive_failures: int = 0
    failing_since: float | None = None
    last_success_at: float | None = None
    last_error_at: float | None = None
    last_error: str | None = None
    last_dead_letter_at: float | None = None
    last_drop_at: float | None = None
    """When a span was last lost to a full queue or spool or a write error."""
    last_corrupt_at: float | None = None
    """When damage in the spool was last found (spans lost to it count as ``corrupt``)."""
    paused: str | None = None
    """``"auth"`` (401/403) or ``"rejected"`` (404/405...): sending waits for the operator."""
    in_flight_since: float | None = None
    spool_dir: str | None = None
    spool_error: str | None = None
    shut_down: bool = False

    @property
    def queued(self) -> int:
        """Spans not yet resolved: in memory plus on disk."""
        return self.queued_memory_spans + self.queued_disk_spans

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    @property
    def balanced(self) -> bool:
        """Whether the accounting invariant holds (it always should)."""
        return self.accepted == (self.sent + self.dropped_total + self.dead_lettered + self.queued)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExportStats:
        """Inverse of :meth:`to_dict` (reads a status file; unknown keys ignored)."""
        queue = data.get("queue") or {}
        simple = {
            name: data[name]
            for name in cls.__dataclass_fields__
            if name in data and name not in ("dropped",)
        }
        return cls(
            **simple,
            dropped=MappingProxyType(dict(data.get("dropped") or {})),
            queued_memory_spans=queue.get("memory_spans", 0),
            queued_memory_bytes=queue.get("memory_bytes", 0),
            memory_capacity_bytes=queue.get("memory_capacity_bytes", 0),
            queued_disk_spans=queue.get("disk_spans", 0),
            queued_disk_bytes=queue.get("disk_bytes", 0),
            spool_capacity_bytes=queue.get("disk_capacity_bytes", 0),
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (health endpoint, status file)."""
        return {
            "accepted": self.accepted,
            "recovered": self.recovered,
            "sent": self.sent,
            "dead_lettered": self.dead_lettered,
            "dropped": dict(self.dropped),
            "queue": {
                "memory_spans": self.queued_memory_spans,
                "memory_bytes": self.queued_memory_bytes,
                "memory_capacity_bytes": self.memory_capacity_bytes,
                "disk_spans": self.queued_disk_spans,
                "disk_bytes": self.queued_disk_bytes,
                "disk_capacity_bytes": self.spool_capacity_bytes,
            },
            "send_failed": self.send_failed,
            "attempts": self.attempts,
            "consecutive_failures": self.consecutive_failures,
            "failing_since": self.failing_since,
            "last_success_at": self.last_success_at,
            "last_error_at": self.last_error_at,
            "last_error": self.last_error,
            "last_dead_letter_at": self.last_dead_letter_at,
            "last_drop_at": self.last_drop_at,
            "last_corrupt_at": self.last_corrupt_at,
            "paused": self.paused,
            "in_flight_since": self.in_flight_since,
            "spool_dir": self.spool_dir,
            "spool_error": self.spool_error,
            "shut_down": self.shut_down,
        }


class Accounting:
    """The mutable counters behind :class:`ExportStats` (all methods thread-safe)."""

    def __init__(self, memory_capacity_bytes: int, spool_capacity_bytes: int) -> None:
        self.lock = threading.Lock()
        self._accepted = 0
        self._recovered = 0
        self._sent = 0
        self._dead_lettered = 0
        self._dropped: dict[str, int] = {}
        self.memory_spans = 0
        self.memory_bytes = 0
        self._disk_spans = 0
        self._disk_bytes = 0
        self._memory_capacity = memory_capacity_bytes
        self._spool_capacity = spool_capacity_bytes
        self._send_failed = 0
        self._attempts = 0
        self._consecutive_failures = 0
        self._failing_since: float | None = None
        self._last_success_at: float | None = None
        self._last_error_at: float | None = None
        self._last_error: str | None = None
        self._last_dead_letter_at: float | None = None
        self._last_drop_at: float | None = None
        self._last_corrupt_at: float | None = None
        self._paused: str | None = None
        self._in_flight_since: float | None = None
        self._spool_dir: str | None = None
        self._spool_error: str | None = None
        self._shut_down = False

    # --- hand-off (called with ``lock`` held by the hand-off queue) ---

    def accept_locked(self, size: int) -> None:
        self._accepted += 1
        self.memory_spans += 1
        self.memory_bytes += size

    def reject_locked(self, reason: str, count: int = 1) -> None:
        self._accepted += count
        self._drop_locked(reason, count)

    def _drop_locked(self, reason: str, count: int) -> None:
        if count:
            self._dropped[reason] = self._dropped.get(reason, 0) + count
            if reason in LIVE_LOSS_REASONS:
                self._last_drop_at = time.time()
            elif reason == DROP_CORRUPT:
                self._last_corrupt_at = time.time()

    # --- spool writer ---

    def left_memory(
        self,
        spans: int,
        size: int,
        *,
        persisted: int,
        dropped: dict[str, int],
        kept_spans: int = 0,
        kept_bytes: int = 0,
    ) -> None:
        """``spans`` (``size`` bytes) were taken from memory: ``persisted`` reached disk,
        ``dropped`` were lost, and ``kept_spans`` (``kept_bytes``) stay in memory, held by
        the spool for another write attempt."""
        with self.lock:
            self.memory_spans -= spans - kept_spans
            self.memory_bytes -= size - kept_bytes
            self._disk_spans += persisted
            for reason, count in dropped.items():
                self._drop_locked(reason, count)

    def recovered(self, intact: int, lost: int) -> None:
        """A spool left by an earlier process: ``intact`` spans to send, ``lost`` damaged."""
        with self.lock:
            self._accepted += intact + lost
            self._recovered += intact + lost
            self._disk_spans += intact
            self._drop_locked(DROP_CORRUPT, lost)

    def dropped_from_disk(self, reason: str, count: int) -> None:
        with self.lock:
            self._disk_spans -= count
            self._drop_locked(reason, count)

    def damage_found(self) -> None:
        """Damaged or foreign bytes were found in the spool (even if no span was lost)."""
        with self.lock:
            self._last_corrupt_at = time.time()

    def disk_bytes(self, size: int) -> None:
        with self.lock:
            self._disk_bytes = size

    def spool_state(self, directory: str | None, error: str | None) -> None:
        with self.lock:
            self._spool_dir = directory
            self._spool_error = error

    # --- sender ---

    def resolved_from_disk(self, *, sent: int, dead_lettered: int, corrupt: int) -> None:
        with self.lock:
            self._disk_spans -= sent + dead_lettered + corrupt
            self._sent += sent
            self._dead_lettered += dead_lettered
            if dead_lettered:
                self._last_dead_letter_at = time.time()
            self._drop_locked(DROP_CORRUPT, corrupt)

    def attempt_started(self) -> None:
        with self.lock:
            self._in_flight_since = time.time()

    def attempt_succeeded(self) -> None:
        with self.lock:
            self._attempts += 1
            self._in_flight_since = None
            self._consecutive_failures = 0
            self._failing_since = None
            self._last_success_at = time.time()
            self._paused = None

    def attempt_failed(self, spans: int, message: str, *, paused: str | None = None) -> None:
        with self.lock:
            now = time.time()
            self._attempts += 1
            self._in_flight_since = None
            self._send_failed += spans
            self._consecutive_failures += 1
            if self._failing_since is None:
                self._failing_since = now
            self._last_error_at = now
            self._last_error = message
            self._paused = paused

    def attempt_rejected(self, spans: int, message: str) -> None:
        """A 400: these spans are refused, but Langfuse is up (not a delivery failure)."""
        with self.lock:
            self._attempts += 1
            self._in_flight_since = None
            self._send_failed += spans
            self._last_error_at = time.time()
            self._last_error = message

    def shut_down(self) -> None:
        with self.lock:
            self._shut_down = True

    # --- reading ---

    def snapshot(self) -> ExportStats:
        with self.lock:
            return ExportStats(
                accepted=self._accepted,
                recovered=self._recovered,
                sent=self._sent,
                dead_lettered=self._dead_lettered,
                dropped=MappingProxyType(dict(self._dropped)),
                queued_memory_spans=self.memory_spans,
                queued_memory_bytes=self.memory_bytes,
                queued_disk_spans=self._disk_spans,
                queued_disk_bytes=self._disk_bytes,
                memory_capacity_bytes=self._memory_capacity,
                spool_capacity_bytes=self._spool_capacity,
                send_failed=self._send_failed,
                attempts=self._attempts,
                consecutive_failures=self._consecutive_failures,
                failing_since=self._failing_since,
                last_success_at=self._last_success_at,
                last_error_at=self._last_error_at,
                last_error=self._last_error,
                last_dead_letter_at=self._last_dead_letter_at,
                last_drop_at=self._last_drop_at,
                last_corrupt_at=self._last_corrupt_at,
                paused=self._paused,
                in_flight_since=self._in_flight_since,
                spool_dir=self._spool_dir,
                spool_error=self._spool_error,
                shut_down=self._shut_down,
            )
