"""``CostStore``: a span processor keeping one SQLite row per GenAI generation."""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_gemini import _attributes as attrs
from otel_gemini import _background
from otel_gemini._background import BatchWorker, LoopStatus
from otel_gemini._incidents import IncidentLog
from otel_gemini._suppress import untraced
from otel_gemini.aggregate._rollups import CHUNK_ROWS, Rollups, fold_pending
from otel_gemini.aggregate._rows import GenerationRow, SpanRecord, record_row, span_record
from otel_gemini.aggregate._schema import (
    ADD_DROPS,
    HOUR_NS,
    ROWS_PER_STATEMENT,
    open_for_writing,
    upsert_many,
)
from otel_gemini.aggregate._settings import (
    DEFAULT_BATCH_DELAY,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_QUEUE_BYTES,
    CostStoreError,
    CostStoreSettings,
)
from otel_gemini.processing import raw_attributes

_logger = logging.getLogger("otel_gemini.aggregate")

DROP_QUEUE_FULL: Final = "queue_full"
"""The in-memory queue was full: the writer could not keep up."""
DROP_SHUTDOWN: Final = "shutdown"
"""Handed to the store after ``shutdown()``."""
DROP_WRITE_ERROR: Final = "write_error"
"""SQLite refused the write (disk full, file locked for too long, I/O error)."""
DROP_READ_ERROR: Final = "read_error"
"""The span's attributes could not be turned into a row (a bug: logged with the error)."""
DROP_SHUTDOWN_TIMEOUT: Final = "shutdown_timeout"
"""Accepted, but still unwritten when ``shutdown()`` gave up: its timeout passed first (the
database locked by another process, a slow disk, a long queue), or the writer stopped on
errors while shutting down."""
DROP_REASONS: Final = (
    DROP_QUEUE_FULL,
    DROP_SHUTDOWN,
    DROP_WRITE_ERROR,
    DROP_READ_ERROR,
    DROP_SHUTDOWN_TIMEOUT,
)

RECENT_DROP_SECONDS: Final = 600.0
"""How long a drop (``queue_full``, ``read_error``) keeps health degraded."""

RECORD_BYTES: Final = 2048
"""What one queued span holds besides captured content: its attribute mapping (about 25
attributes, their keys shared) and the record's tuple, measured with tracemalloc (see
tests/test_cost_store_scale.py)."""
_CONTENT_KEYS: Final = (
    attrs.GEN_AI_INPUT_MESSAGES,
    attrs.GEN_AI_OUTPUT_MESSAGES,
    attrs.GEN_AI_SYSTEM_INSTRUCTIONS,
    attrs.GEN_AI_TOOL_DEFINITIONS,
)
_CONTENT_KEY_SET: Final = frozenset(_CONTENT_KEYS)
_DROP_LOG_INTERVAL: Final = 60.0
_RETENTION_INTERVAL: Final = 3600.0
FOLD_INTERVAL_SECONDS: Final = 1.0
"""The writer folds its rows into the rollups at most this often (and when a flush waits for
them): a fold has a fixed cost of several statements, so one per second of many rows costs
far less than one per batch, and answers fold or count the rows not folded yet themselves,
exactly."""
_URGENT_SPANS: Final = 1024
_NS_PER_DAY: Final = 86_400 * 10**9
SHUTDOWN_SETTLE_SECONDS: Final = 1.0
"""When ``shutdown()``'s timeout passes with generations unwritten, how much longer it
spends, at most, to stop the writer, count them (``shutdown_timeout``) and record that count
in the file's ``dropped_generations``."""
BUSY_RETRY_SECONDS: Final = 30.0
"""How long a write is retried while other processes hold the database; then its rows are
dropped and counted."""
_BUSY_FIRST_BACKOFF: Final = 0.01
_BUSY_MAX_BACKOFF: Final = 1.0
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_T = TypeVar("_T")

_ROW_ERRORS: Final = (sqlite3.Error, ValueError, OverflowError)
"""What one row SQLite cannot take raises (``UnicodeEncodeError`` is a ``ValueError``)."""

_INHERITED_CONNECTIONS: list[sqlite3.Connection] = []
"""Connections a forked child inherited: never used, never closed (see _after_fork_in_child)."""


_WRITE_BUSY_TIMEOUT_MS: Final = 100
"""How long one write attempt waits for another process's lock inside SQLite, holding our
connection lock: short, so that a fork (which waits for that lock) never waits long; the
retries in ``_transaction`` wait the rest, outside it."""


@untraced
def _open_writer(path: Path) -> sqlite3.Connection:
    connection = open_for_writing(path)
    connection.execute(f"PRAGMA busy_timeout={_WRITE_BUSY_TIMEOUT_MS}")
    return connection


class CommittedRows(NamedTuple):
    """One committed write, as commit listeners get it."""

    rows: Sequence[GenerationRow]
    last_rowid: int
    """The highest ``rowid`` in ``generations`` after the commit: a reader whose snapshot's
    ``max(rowid)`` is at least this has these rows (writes are serialised, and each row
    written, replaced or not, gets a rowid above every earlier one)."""
    replaced: bool = False
    """Whether a row replaced one already stored (a span written again: a sender's retry, a
    replay): a listener keeping running totals must read them again, not add."""


class _WriterAbandoned(sqlite3.OperationalError):
    """``shutdown()`` gave up on the writer: no more transactions (an ``OperationalError``,
    so every path that survives a failed write survives this one)."""


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    text = str(error).lower()
    return "locked" in text or "busy" in text


class CostStore(SpanProcessor):
    """Keeps one row per GenAI generation in an embedded SQLite database.

    Register it downstream of :class:`~otel_gemini.CostSpanProcessor` (``configure()`` does)
    so that rows carry the cost::

        store = CostStore("costs.sqlite3")
        provider.add_span_processor(CostSpanProcessor(store))

    A row holds the trace and span ids, start time, user, session, model, provider,
    tokens (input, output, total and by bucket), the cost (total, input, output and by
    bucket, exact), the pricing status, latency, time to first token and the error type.
    Spans that are not generations (agent, tool, HTTP spans…) are skipped. Writing the
    same span twice keeps one row (the key is the trace and span id).

    ``on_end`` only appends a small record of the span (ids, times, its attribute mapping,
    its resource; not the span) to a queue bounded in bytes (``max_queue_bytes``:
    :data:`RECORD_BYTES` a span plus its captured content) and in spans (``max_queue``):
    the background writer thread builds the rows (so a deferred price is worked out there,
    not on the application thread; the cost processor's figures are taken as computed) and
    writes batches in one transaction. The database is in WAL mode, so queries from other
    threads and processes never block the writer. A full queue drops the span, counts it by
    reason (:meth:`stats`), records it in the file by hour and reason (every local answer
    over that hour says ``dropped``) and logs (at most once a minute), saying whether
    ``exported_to`` (``"Langfuse"``: ``configure()`` sets it when export is on) still has
    it or it is lost. Rows older than ``retention_days`` are deleted hourly (``0``: keep
    everything).

    Many processes on one host may share one file (prefork servers, pools): each write is
    one ``BEGIN IMMEDIATE`` transaction, retried with backoff for up to
    :data:`BUSY_RETRY_SECONDS` while another process holds the database; a write that still
    fails is dropped, counted (``write_error``), logged and reported by :meth:`problems`. In
    a forked child the store starts afresh on the child's first span (its own queue, counters,
    writer thread and SQLite connection; the parent's queue stays the parent's to write), and
    whatever is queued when a process ends normally is written, or, if its time runs out,
    counted as dropped (``shutdown_timeout``, see :meth:`shutdown`; docs/deployment.md).

    Like the SDK's exporting processors, it keeps only sampled spans; ``unsampled=True``
    (``configure()`` sets it) keeps a span a sampler recorded without sampling it
    (``RECORD_ONLY``) too: exported nowhere, still a billed call to count.

    ``path`` defaults to ``OTEL_GEMINI_COST_DB`` or
    ``~/.local/state/otel-gemini/costs.sqlite3``; ``retention_days`` (``None``) to
    ``OTEL_GEMINI_COST_RETENTION_DAYS`` or 90. A path that cannot be opened raises
    :class:`CostStoreError` here, naming it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        retention_days: float | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        batch_delay: float = DEFAULT_BATCH_DELAY,
        clock: Callable[[], float] = time.time,
        exported_to: str | None = None,
        unsampled: bool = False,
    ) -> None:
        settings = CostStoreSettings.resolve(
            path,
            retention_days=retention_days,
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            batch_delay=batch_delay,
        )
        self.path: Path = settings.path
        self._max_queue_bytes = settings.max_queue_bytes
        self.exported_to: str | None = exported_to
        self._unsampled = unsampled
        """Where these spans also go (``"Langfuse"``), said when the store drops some;
        ``None``: the store is their only record, a dropped span is lost."""
        self.retention_days: float | None = settings.retention_days
        self._max_queue = settings.max_queue
        self._clock = clock
        self._batch_delay = settings.batch_delay
        self._connection: sqlite3.Connection | None = _open_writer(self.path)
        self.rollups: Rollups = Rollups(self.path)
        """The answers' rollups of this file as this process sees them: their errors (the
        writer's folds, a server's build) are in :meth:`problems`; an answering app in
        this process shares it (``Telemetry.asgi_app()``)."""
        self._init_process_state(closed=False)
        self._worker.start()
        self._started = True
        # A forked child gets its own queue, locks, counters, writer and connection (SQLite
        # forbids using a connection across fork()); the fork waits for a write in progress
        # so the inherited connection holds no lock the child would wait on forever.
        _background.fork_hooks(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._after_fork_in_child,
        )
        # Rows still queued when the process ends normally are written (also in
        # multiprocessing workers, which skip atexit).
        _background.at_exit(self._at_exit)

    def _init_process_state(self, *, closed: bool) -> None:
        """This process's queue, locks, counters and writer (not started)."""
        self._lock = threading.Lock()  # the queue and counters; never held during I/O
        self._db_lock = threading.Lock()  # the connection (writer thread, apply_retention)
        self._queue: list[SpanRecord] = []
        self._queue_bytes = 0
        # Drops not yet in the file's dropped_generations: (hour_ns, reason) -> count.
        self._unsaved_drops: dict[tuple[int, str], int] = {}
        self._offered = 0  # spans queued since start (the flush sequence)
        self._processed = 0  # spans the writer has finished with (written or not)
        # The batch the writer has taken and not yet counted: whoever sets it back to None
        # (the writer, or a shutdown that gave up on it) counts it, so it is counted once.
        self._in_hand: list[SpanRecord] | None = None
        self._abandoned = False  # shutdown gave up: the writer starts no more transactions
        self._abandon = threading.Event()  # wakes the writer's backoff when it does
        self._writer_closed = False  # the writer has finished (its last act)
        self._closed = closed
        self._started = False
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._last_drop_at: dict[str, float] = {}  # by reason: the clock at the last drop
        self._written = 0
        self._skipped = 0
        self._deleted = 0
        self._busy_retries = 0
        self._has_data = threading.Event()
        self._urgent = threading.Event()
        self._progress = threading.Condition(self._lock)
        self._logged_drops = 0
        self._last_drop_log = 0.0
        self._incidents = IncidentLog(_logger)
        self._next_retention = 0.0
        self._next_fold = 0.0  # time.monotonic() after which the writer folds again
        self._fold_through = 0  # a flush wants the spans up to this one folded
        self._folded_through = 0  # the spans processed at the last fold
        self._commit_listeners: list[Callable[[CommittedRows], None]] = getattr(
            self, "_commit_listeners", []
        )  # kept across fork: the child's listeners are the parent's
        # Supervised: an error restarts it with the batch it had in hand (written again: an
        # upsert keeps one row per span).
        self._worker: BatchWorker[list[SpanRecord]] = BatchWorker(
            "cost-store",
            has_data=self._has_data,
            urgent=self._urgent,
            delay=self._batch_delay,
            drain=self._take_batch,
            process=self._process,
            pending=self._queued,
            on_exit=self._close_db,
            prepare=self._connect,
            idle=self._maybe_apply_retention,
            idle_interval=_RETENTION_INTERVAL,
            discard=self._discard,
        )
        self._writer = self._worker.loop

    # --- fork -------------------------------------------------------------------------------

    def _before_fork(self) -> None:
        self._db_lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._db_lock.release()

    def _after_fork_in_child(self) -> None:
        # No thread and no file here (the child may be about to exec): the writer starts,
        # and opens its own connection, on the child's first span.
        if self._connection is not None:
            # Never closed: closing would run SQLite's unlock and WAL cleanup on the
            # parent's behalf. Kept referenced so garbage collection does not close it.
            _INHERITED_CONNECTIONS.append(self._connection)
        self._connection = None
        self._init_process_state(closed=self._closed)

    def _start_in_child_locked(self) -> None:
        self._started = True
        self._worker.start()

    def _connect(self) -> None:
        with self._db_lock:
            if self._connection is None:
                self._connection = _open_writer(self.path)

    def _at_exit(self, timeout: float) -> None:
        self.shutdown(timeout * 1000)

    # --- SpanProcessor (application thread) ------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not (context.trace_flags.sampled or self._unsampled):
            return
        self.add(span)

    def add(self, span: ReadableSpan) -> None:
        """Queues a finished span for its row whatever its sampling decision: ``configure()``
        hands here the priced calls whose span was not recorded (a sampler kept it from
        Langfuse, not from the local answers)."""
        # What is kept is a small record (ids, times, the attribute mapping, the shared
        # resource), not the span: events, links, status and the span objects go now.
        record = span_record(span)
        if record is None:
            return
        record_bytes = RECORD_BYTES
        attributes = raw_attributes(span)  # never prices here
        if not _CONTENT_KEY_SET.isdisjoint(attributes):  # captured content: counted too
            for key in _CONTENT_KEYS:
                content = attributes.get(key)
                if type(content) is str:
                    record_bytes += len(content)
        with self._lock:
            if self._closed:
                self._drop_locked(DROP_SHUTDOWN, 1, record[2])
                return
            queue = self._queue
            if (
                len(queue) >= self._max_queue
                or self._queue_bytes + record_bytes > self._max_queue_bytes
            ):
                self._drop_locked(DROP_QUEUE_FULL, 1, record[2])
                return
            queue.append(record)
            self._queue_bytes += record_bytes
            self._offered += 1
            size = len(queue)
            if not self._started:  # a forked child's first span
                self._start_in_child_locked()
        if size == 1:
            self._has_data.set()
        elif size == _URGENT_SPANS:
            self._urgent.set()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Writes every span handed over so far; False if ``timeout_millis`` passed first."""
        with self._lock:
            target = self._offered
            self._fold_through = max(self._fold_through, target)
        return self._worker.flush(
            self._progress, lambda: self._processed >= target, timeout_millis / 1000
        )

    def shutdown(self, timeout_millis: float = 30000) -> None:
        """Stops taking spans, writes those queued (within ``timeout_millis``) and closes
        the database. Idempotent.

        Generations still unwritten when the timeout passes (or when the writer stopped on
        errors) are given up: counted as dropped (``shutdown_timeout``) in :meth:`stats`,
        recorded in the file's ``dropped_generations`` if it can still be written, and
        logged in one line; that takes at most :data:`SHUTDOWN_SETTLE_SECONDS` more."""
        with self._lock:
            if self._closed:
                already = True
            else:
                already = False
                self._closed = True
        if already:
            self._writer.join(max(0.0, timeout_millis / 1000))
            return
        timeout = max(0.0, timeout_millis / 1000)
        deadline = time.monotonic() + timeout
        self.force_flush(int(max(0.0, deadline - time.monotonic()) * 1000))
        self._worker.stop()
        self._writer.join(max(0.0, deadline - time.monotonic()))
        self._give_up_unwritten(timeout)

    def _give_up_unwritten(self, timeout: float) -> None:
        """What ``shutdown()`` does once its time is up: every span accepted and not yet
        written is counted once, as written (by the writer) or as dropped (here)."""
        settle_by = time.monotonic() + SHUTDOWN_SETTLE_SECONDS
        with self._lock:
            unwritten = self._processed < self._offered
            if unwritten:
                self._abandoned = True  # checked by the writer before each transaction
                queued, self._queue = self._queue, []
                self._queue_bytes = 0
        if not unwritten:
            if self._writer.finished:  # drops counted after the last write (rare)
                self._record_drops(settle_by)
            return
        self._abandon.set()
        before = self._dropped_count(DROP_SHUTDOWN_TIMEOUT)
        self._drop_unwritten(queued)
        # The writer's batch in hand: its transaction in progress ends (committed: written;
        # or not) and it starts no other, so it counts that batch itself, at once. A writer
        # stuck in one SQLite call for longer, or gone, leaves it to be counted here.
        with self._progress:
            while self._in_hand is not None and not self._writer_closed:
                remaining = settle_by - time.monotonic()
                if remaining <= 0:
                    break
                self._progress.wait(remaining)
            in_hand, self._in_hand = self._in_hand, None
        if in_hand:
            self._drop_unwritten(in_hand)
        # Then it finishes at once (nothing is queued), putting back any drops it had taken
        # to record: all of them are recorded below.
        self._writer.join(max(0.0, settle_by - time.monotonic()))
        given_up = self._dropped_count(DROP_SHUTDOWN_TIMEOUT) - before
        if not given_up:
            return
        not_recorded = self._record_drops(settle_by)
        recorded = (
            "recorded in its file, so local answers over their hours say so ('dropped')"
            if not_recorded is None
            else f"NOT recorded in its file ({not_recorded}), so local answers over their "
            "hours do not say so"
        )
        _logger.warning(
            "otel-gemini cost store %s: shutdown gave up on %d generation(s) still unwritten "
            "after %.1f s (the database locked or slow, or a long queue); counted as dropped "
            "(%s), %s; %s",
            self.path,
            given_up,
            timeout,
            DROP_SHUTDOWN_TIMEOUT,
            recorded,
            self._where_they_are(),
        )

    def _drop_unwritten(self, records: list[SpanRecord]) -> None:
        """Counts ``records`` (taken from the writer) as done: the generations among them
        as dropped (``shutdown_timeout``), the other spans as skipped, as the writer would."""
        generations: list[int] = []
        for record in records:
            try:
                row = record_row(record)  # prices it if nobody has: which spans are rows
            except Exception:  # unreadable: the writer would have counted it, so count it
                generations.append(record[2])
                continue
            if row is not None:
                generations.append(row.start_ns)
        with self._progress:
            for start_ns in generations:
                self._drop_locked(DROP_SHUTDOWN_TIMEOUT, 1, start_ns)
            self._skipped += len(records) - len(generations)
            self._processed += len(records)
            self._progress.notify_all()

    def _dropped_count(self, reason: str) -> int:
        with self._lock:
            return self._dropped[reason]

    @untraced
    def _record_drops(self, give_up_at: float) -> str | None:
        """Adds the drops counted and not yet in the file to its ``dropped_generations``, on
        a connection of its own (the writer's is closed, or busy), retrying a locked
        database until ``give_up_at``; returns why it could not (``None``: recorded)."""
        drops = self._take_unsaved_drops()
        if not drops:
            return None
        values = [(hour_ns, reason, count) for (hour_ns, reason), count in drops.items()]
        try:
            connection = _open_writer(self.path)
        except (sqlite3.Error, CostStoreError) as error:
            self._put_back_drops(drops)
            return _describe(error)

        def add() -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(ADD_DROPS, values)
                connection.commit()
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    connection.rollback()
                raise

        try:
            _retry_while_busy(add, give_up_at, time.sleep)
            return None
        except sqlite3.Error as error:
            self._put_back_drops(drops)
            return _describe(error)
        finally:
            connection.close()

    def add_commit_listener(self, callback: Callable[[CommittedRows], None]) -> None:
        """Calls ``callback(committed)`` on the writer thread after each committed
        transaction, with the rows it wrote and the highest rowid it left (budgets evaluate
        there). The callback must be quick and must not touch the store; an exception it
        raises is logged once and ignored."""
        self._commit_listeners.append(callback)

    def _notify_committed(self, committed: CommittedRows) -> None:
        for callback in self._commit_listeners:
            try:
                callback(committed)
            except Exception as error:
                self._log_once("listener", "a cost store commit listener failed", error)

    # --- state --------------------------------------------------------------------------------

    def loop_status(self) -> LoopStatus:
        """The writer loop's state, for health."""
        return self._writer.status()

    def stats(self) -> dict[str, Any]:
        """This process's counters: ``written`` rows, ``skipped`` spans (not generations),
        ``queued``, ``dropped`` by reason, rows ``deleted`` by retention, ``busy_retries``
        (waits for another process's lock), and the ``path`` and ``pid``."""
        with self._lock:
            return {
                "path": str(self.path),
                "pid": os.getpid(),
                "written": self._written,
                "busy_retries": self._busy_retries,
                "skipped": self._skipped,
                "queued": len(self._queue),
                "queue_capacity": self._max_queue,
                "queue_bytes": self._queue_bytes,
                "queue_capacity_bytes": self._max_queue_bytes,
                "dropped": dict(self._dropped),
                "deleted_by_retention": self._deleted,
                "retention_days": self.retention_days,
            }

    @untraced  # the app may call it too: our DELETE is no span of the app's
    def apply_retention(self, now: float | None = None) -> int:
        """Deletes rows that started more than ``retention_days`` before ``now`` (Unix
        seconds; default: the clock) and returns how many; the drops recorded for hours
        that ended before then go too. The writer does this hourly."""
        if self.retention_days is None:
            return 0
        moment = self._clock() if now is None else now
        cutoff_ns = int(moment * 1e9) - int(self.retention_days * _NS_PER_DAY)

        def delete(connection: sqlite3.Connection) -> int:
            connection.execute(
                "DELETE FROM dropped_generations WHERE hour_ns < ?", (cutoff_ns - HOUR_NS,)
            )
            rows: int = connection.execute(
                "DELETE FROM generations WHERE start_ns < ?", (cutoff_ns,)
            ).rowcount
            return rows

        deleted = self._transaction(delete)
        with self._lock:
            self._deleted += deleted
        return deleted

    # --- writer thread ------------------------------------------------------------------------

    def _take_batch(self) -> list[SpanRecord]:
        with self._lock:
            batch, self._queue = self._queue, []
            self._queue_bytes = 0
            self._in_hand = batch or None
            self._has_data.clear()
            self._urgent.clear()
        return batch

    def _queued(self) -> bool:
        with self._lock:
            return bool(self._queue)

    def _process(self, batch: list[SpanRecord]) -> None:
        # Before writing: a flush waiting on this batch then also sees the log.
        self._log_drops()
        if batch:
            self._write(batch)
        else:
            self._save_drops_alone()

    def _close_db(self) -> None:
        with self._db_lock, contextlib.suppress(sqlite3.Error):
            if self._connection is not None:
                self._connection.close()
        with self._progress:
            self._writer_closed = True
            self._progress.notify_all()

    @untraced  # our INSERTs are no spans of the app's
    def _write(self, batch: list[SpanRecord]) -> None:
        rows: list[GenerationRow] = []
        skipped = 0
        read_errors: list[int] = []
        for record in batch:
            try:
                row = record_row(record)
            except Exception as error:
                read_errors.append(record[2])
                self._log_once("read", "cannot read a span for the cost store", error)
                continue
            if row is None:
                skipped += 1
            else:
                rows.append(row)
        committed: list[CommittedRows] = []
        failed = self._write_rows(rows, committed) if rows else []
        if not rows:
            self._save_drops_alone()
        # Counted as soon as the transactions are over: a shutdown giving up while the
        # listeners or the fold below run must not count committed rows as dropped.
        with self._progress:
            if self._in_hand is not batch:
                return  # a shutdown that gave up on this batch counted it
            self._in_hand = None
            for start_ns in read_errors:
                self._drop_locked(DROP_READ_ERROR, 1, start_ns)
            self._written += len(rows) - len(failed)
            self._skipped += skipped
            # Not written because shutdown gave up on the writer, or SQLite refused them.
            reason = DROP_SHUTDOWN_TIMEOUT if self._abandoned else DROP_WRITE_ERROR
            for row in failed:
                self._drop_locked(reason, 1, row.start_ns)
            processed = self._processed + len(batch)
            self._progress.notify_all()
        for rows_committed in committed:
            self._notify_committed(rows_committed)
        if len(failed) < len(rows):
            self._maybe_fold_rollups(processed)
        # Done with the batch (a flush waits for this): its listeners ran, and its rows are
        # folded when a flush asked for them.
        with self._progress:
            self._processed += len(batch)
            self._progress.notify_all()

    def _take_unsaved_drops(self) -> dict[tuple[int, str], int]:
        with self._lock:
            drops, self._unsaved_drops = self._unsaved_drops, {}
        return drops

    def _put_back_drops(self, drops: dict[tuple[int, str], int]) -> None:
        with self._lock:
            for key, count in drops.items():
                self._unsaved_drops[key] = self._unsaved_drops.get(key, 0) + count

    def _save_drops_alone(self) -> None:
        """Writes the drops counted since the last write (none with rows to go with them)."""
        drops = self._take_unsaved_drops()
        if not drops:
            return
        try:
            self._transaction(lambda connection: _insert(connection, [], drops))
        except _WriterAbandoned:
            self._put_back_drops(drops)  # shutdown records them
        except sqlite3.Error as error:
            self._put_back_drops(drops)
            self._log_once("drops", f"cannot record drops in the cost store {self.path}", error)

    def _write_rows(
        self, rows: list[GenerationRow], committed: list[CommittedRows]
    ) -> list[GenerationRow]:
        """Writes ``rows`` (and the drops counted so far) in one transaction; if a row is
        refused (a value SQLite cannot bind: a lone surrogate in a user id, an integer out
        of range), row by row, so only the bad rows are lost. Returns the rows not written
        (the caller counts them as dropped) and appends each committed write to
        ``committed`` (its listeners are told once the batch is counted)."""
        drops = self._take_unsaved_drops()
        try:
            listened = bool(self._commit_listeners)
            last_rowid, replaced = self._transaction(
                lambda connection: _insert(connection, rows, drops, listened)
            )
            committed.append(CommittedRows(rows, last_rowid, replaced))
            return []
        except _WriterAbandoned:
            self._put_back_drops(drops)
            return rows
        except sqlite3.OperationalError as error:  # the database (locked, full): not a row
            self._put_back_drops(drops)
            self._log_once("write", f"cannot write to the cost store {self.path}", error)
            return rows
        except _ROW_ERRORS as error:
            self._put_back_drops(drops)
            if len(rows) == 1:
                self._log_once("row", f"cannot write a row to the cost store {self.path}", error)
                return rows
        except BaseException:
            self._put_back_drops(drops)
            raise
        failed: list[GenerationRow] = []
        for index, row in enumerate(rows):

            def one(connection: sqlite3.Connection, row: GenerationRow = row) -> tuple[int, bool]:
                return _insert(connection, [row], {}, bool(self._commit_listeners))

            try:
                last_rowid, replaced = self._transaction(one)
                committed.append(CommittedRows([row], last_rowid, replaced))
            except _WriterAbandoned:
                failed.extend(rows[index:])
                break
            except sqlite3.OperationalError as error:
                self._log_once("write", f"cannot write to the cost store {self.path}", error)
                failed.extend(rows[index:])
                break  # the database itself: the rest would fail the same way
            except _ROW_ERRORS as error:
                self._log_once("row", f"cannot write a row to the cost store {self.path}", error)
                failed.append(row)
        return failed

    def _maybe_fold_rollups(self, processed: int) -> None:
        """Folds the rows written so far every :data:`FOLD_INTERVAL_SECONDS`, and once the
        spans a flush waits for (``processed``: the spans done with this batch) are in."""
        with self._lock:
            flush_waits = self._folded_through < self._fold_through <= processed
        if not flush_waits and time.monotonic() < self._next_fold:
            return
        self._fold_rollups()
        self._next_fold = time.monotonic() + FOLD_INTERVAL_SECONDS
        self._folded_through = processed

    def _fold_rollups(self) -> None:
        """Brings the answers' rollups (``_rollups``) up to date with the rows written, so
        that answers rarely have rows to fold; a chunk of rows per transaction, so another
        process's writer never waits long. A failure costs no row: answers fold or read
        those rows themselves."""
        try:
            while self._transaction(fold_pending) >= CHUNK_ROWS:
                pass
        except _WriterAbandoned:
            pass  # answers fold those rows themselves
        except sqlite3.Error as error:
            self.rollups.fold_failed(error)

    def _discard(self, batch: list[SpanRecord], error: BaseException) -> None:
        """The writer gave this batch up (it failed again and again): counted as dropped."""
        self._log_once("batch", f"gave up a batch for the cost store {self.path}", error)
        with self._progress:
            if self._in_hand is not batch:
                return  # a shutdown that gave up on this batch counted it
            self._in_hand = None
            for record in batch:
                self._drop_locked(DROP_WRITE_ERROR, 1, record[2])
            self._processed += len(batch)
            self._progress.notify_all()

    def _transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Runs ``work`` in one write transaction, retrying (with backoff, for up to
        :data:`BUSY_RETRY_SECONDS`) while other processes hold the database: many workers
        on one host share one store. Other errors, and a lock held for longer, raise; so
        does every attempt once ``shutdown()`` gave up on the writer (``_WriterAbandoned``).
        Between attempts our connection lock is free (a fork waits for it)."""

        def attempt() -> _T:
            with self._db_lock:
                if self._abandoned:
                    raise _WriterAbandoned("the cost store's shutdown gave up on its writer")
                connection = self._connection
                if connection is None:  # a forked child's store before its writer ran
                    connection = self._connection = _open_writer(self.path)
                # IMMEDIATE: the write lock is taken (or waited for, busy_timeout) up
                # front, never upgraded mid-transaction, where SQLite gives up at once.
                connection.execute("BEGIN IMMEDIATE")
                try:
                    result = work(connection)
                    connection.commit()
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        connection.rollback()
                    raise
            return result

        def back_off(delay: float) -> None:
            with self._lock:
                self._busy_retries += 1
            self._abandon.wait(delay)  # outside our connection lock; shutdown cuts it short

        return _retry_while_busy(attempt, time.monotonic() + BUSY_RETRY_SECONDS, back_off)

    def _drop_locked(self, reason: str, count: int, start_ns: int) -> None:
        """Counts ``count`` generations dropped for ``reason``, and keeps them for the file's
        ``dropped_generations`` under the hour of ``start_ns`` (saved with the next write)."""
        if count:
            self._dropped[reason] += count
            self._last_drop_at[reason] = self._clock()
            key = (start_ns - start_ns % HOUR_NS, reason)
            self._unsaved_drops[key] = self._unsaved_drops.get(key, 0) + count

    def problems(self) -> list[str]:
        """Health reasons: generations the store could not write (counted, never silent) or
        still had unwritten when its shutdown gave up, spans dropped for another reason (but
        ``shutdown``) in the last :data:`RECENT_DROP_SECONDS`, and rollups that could not be
        updated."""
        now = self._clock()
        with self._lock:
            dropped = dict(self._dropped)
            last_drop_at = dict(self._last_drop_at)
        reasons = []
        failed = dropped[DROP_WRITE_ERROR]
        if failed:
            reasons.append(
                f"cost store {self.path}: {failed} generation(s) could not be written (see "
                f"the log); local cost answers miss them; {self._where_they_are()}"
            )
        given_up = dropped[DROP_SHUTDOWN_TIMEOUT]
        if given_up:
            reasons.append(
                f"cost store {self.path}: {given_up} generation(s) were still unwritten when "
                f"its shutdown gave up ({DROP_SHUTDOWN_TIMEOUT}, see the log); local cost "
                f"answers miss them; {self._where_they_are()}"
            )
        for reason in (DROP_QUEUE_FULL, DROP_READ_ERROR):
            at = last_drop_at.get(reason)
            if at is not None and now - at < RECENT_DROP_SECONDS:
                reasons.append(
                    f"cost store {self.path}: {dropped[reason]} span(s) dropped ({reason}), "
                    f"the last {max(0.0, now - at):.0f} s ago; local cost answers miss them "
                    f"(and say so: 'dropped'); {self._where_they_are()}"
                )
        return reasons + self.rollups.problems()

    def _where_they_are(self) -> str:
        if self.exported_to:
            return f"{self.exported_to} still has them"
        return "they are lost (no export: the cost store was their only record)"

    def _maybe_apply_retention(self) -> None:
        now = time.monotonic()
        if self.retention_days is None or now < self._next_retention:
            return
        self._next_retention = now + _RETENTION_INTERVAL
        try:
            self.apply_retention()
        except _WriterAbandoned:
            pass
        except sqlite3.Error as error:
            self._log_once("retention", "cannot apply the cost store's retention", error)

    def _log_once(self, where: str, message: str, error: BaseException) -> None:
        if not self._incidents.first_time(where):
            return
        _logger.warning("otel-gemini: %s (logged once): %r", message, error, exc_info=error)

    def _log_drops(self) -> None:
        with self._lock:
            if self._abandoned:
                return  # shutdown logs its own line
            dropped = dict(self._dropped)
        total = sum(dropped.values())
        now = time.monotonic()
        if total == self._logged_drops or (
            self._logged_drops and now - self._last_drop_log < _DROP_LOG_INTERVAL
        ):
            return
        self._logged_drops = total
        self._last_drop_log = now
        _logger.warning(
            "otel-gemini cost store %s dropped %d generation(s) so far (by reason: %s); "
            "their costs are missing from local answers, which say so ('dropped'); %s",
            self.path,
            total,
            ", ".join(f"{reason}={count}" for reason, count in dropped.items() if count),
            self._where_they_are(),
        )


def _retry_while_busy(
    attempt: Callable[[], _T], give_up_at: float, back_off: Callable[[float], object]
) -> _T:
    """``attempt()``, again after ``back_off(delay)`` (delays doubling from 10 ms to 1 s)
    while it raises SQLite's "busy"/"locked" and ``give_up_at`` (monotonic) is not reached."""
    delay = _BUSY_FIRST_BACKOFF
    while True:
        try:
            return attempt()
        except _WriterAbandoned:
            raise
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() + delay > give_up_at:
                raise
        back_off(delay)  # another process holds the database: not synchronisation
        delay = min(_BUSY_MAX_BACKOFF, delay * 2)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _insert(
    connection: sqlite3.Connection,
    rows: list[GenerationRow],
    drops: dict[tuple[int, str], int],
    check_replaced: bool = False,
) -> tuple[int, bool]:
    """Inserts ``rows`` with as few statements as it takes (:data:`ROWS_PER_STATEMENT` rows
    each, then powers of two: a handful of prepared statements cached by the connection),
    adds ``drops`` to ``dropped_generations`` and returns the highest rowid (commit
    listeners are told it: :class:`CommittedRows`), and, if ``check_replaced``, whether a
    row replaced a stored one."""
    replaced = check_replaced and _replaces(connection, rows)
    start = 0
    remaining = len(rows)
    chunk = ROWS_PER_STATEMENT
    while remaining:
        while chunk > remaining:
            chunk //= 2
        connection.execute(
            _statement(chunk), list(itertools.chain.from_iterable(rows[start : start + chunk]))
        )
        start += chunk
        remaining -= chunk
    if drops:
        connection.executemany(
            ADD_DROPS, [(hour_ns, reason, count) for (hour_ns, reason), count in drops.items()]
        )
    last = connection.execute("SELECT max(rowid) FROM generations").fetchone()[0]
    return int(last or 0), replaced


def _replaces(connection: sqlite3.Connection, rows: list[GenerationRow]) -> bool:
    """Whether writing ``rows`` replaces a stored row (or one of them: a span twice in a
    batch). By span id alone (its index's first column): a rare false "yes" costs a re-read."""
    if len({(row.span_id, row.trace_id) for row in rows}) < len(rows):
        return True
    for start in range(0, len(rows), 500):
        span_ids = [row.span_id for row in rows[start : start + 500]]
        marks = ",".join("?" * len(span_ids))
        found = connection.execute(
            f"SELECT 1 FROM generations WHERE span_id IN ({marks}) LIMIT 1", span_ids
        ).fetchone()
        if found is not None:
            return True
    return False


@functools.cache
def _statement(rows: int) -> str:
    return upsert_many(rows)
