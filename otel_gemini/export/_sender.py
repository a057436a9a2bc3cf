"""The sender thread: reads batches from the spool, posts them, acknowledges on 2xx.

Rules (see docs/export.md):
- 2xx: the batch is resolved, the cursor moves, the next batch goes at once.
- 429 / 5xx / 408 / timeout / connection error: wait (``Retry-After`` if given, else
  backoff with full jitter) and try the same batch again; never give up.
- 400 / 413: split the batch in halves and send each, down to single spans; a single
  span still refused is dead-lettered (kept on disk, counted). Spans delivered on the way
  are remembered, so a retry after an interruption does not send them twice.
- 401 / 403 (and 404 / 405 / other 4xx): pause, keep everything, try one request every
  ``pause_interval``.

A flush asks "is everything written so far resolved?": the sender answers as soon as it
knows, and answers no at once while a server-imposed wait or a pause is in force.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from otel_gemini._background import BackgroundLoop
from otel_gemini.export._accounting import PAUSE_AUTH, PAUSE_REJECTED, Accounting
from otel_gemini.export._otlp_wire import SpanOrigin, export_request
from otel_gemini.export._retry import RetryPolicy
from otel_gemini.export._spool import Batch, Spool, SpoolSpan, describe_error
from otel_gemini.export._transport import LangfuseTransport, Outcome, Response

_logger = logging.getLogger(__name__)

# Why the sender is waiting before its next attempt.
_BACKOFF = "backoff"  # our own backoff: a flush or shutdown may try at once
_SERVER_WAIT = "server_wait"  # Retry-After: the server asked, so flushes do not override
_PAUSED = "paused"  # 401/403/404...: needs an operator


@dataclass
class _FlushRequest:
    target_seq: int
    done: threading.Event = field(default_factory=threading.Event)
    result: bool = False

    def resolve(self, result: bool) -> None:
        if not self.done.is_set():
            self.result = result
            self.done.set()


@dataclass
class _Progress:
    """Spans of one batch already delivered or dead-lettered (across interrupted tries)."""

    segment: int
    start: int
    sent: set[int] = field(default_factory=set)
    dead: set[int] = field(default_factory=set)


def _request_body(spans: list[SpoolSpan]) -> bytes:
    groups: dict[SpanOrigin, list[bytes]] = {}
    for span in spans:
        groups.setdefault(span.origin, []).append(span.framed)
    return export_request(groups.items())


class Sender:
    """Moves spans from the spool to Langfuse on its own thread."""

    def __init__(
        self,
        spool: Spool,
        transport: LangfuseTransport,
        accounting: Accounting,
        policy: RetryPolicy,
        *,
        batch_max_spans: int,
        batch_max_bytes: int,
        spool_ready: threading.Event,
        on_exit: Callable[[], None],
        on_status: Callable[[bool], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_exit`` runs once the sender has finished after :meth:`stop`;
        ``on_status(force)`` refreshes the status file (throttled unless forced)."""
        self._spool = spool
        self._transport = transport
        self._accounting = accounting
        self._policy = policy
        self._batch_max_spans = batch_max_spans
        self._batch_max_bytes = batch_max_bytes
        self._spool_ready = spool_ready
        self._on_exit = on_exit
        self._clock = clock
        self._rng = random.Random()
        self._condition = threading.Condition()
        self._has_data = True  # whatever an earlier process left
        self._flushes: list[_FlushRequest] = []
        self._stop_deadline: float | None = None
        self._wait_kind: str | None = None
        self._next_attempt = 0.0
        self._failures = 0
        self._progress: _Progress | None = None
        self._on_status = on_status
        self._failing_logged = False
        self._paused_for: str | None = None
        self._read_failing = False
        self._read_failures = 0
        self.unanswered_since: float | None = None
        """When (Unix s) the oldest attempt Langfuse has not answered at all started."""
        self.loop = BackgroundLoop(
            "sender", self._run, on_error=self._after_error, on_exit=self._finished
        )

    # --- called from other threads ---

    def start(self) -> None:
        self.loop.start()

    def resume_paused(self, reason: str) -> bool:
        """Ends a pause for ``reason`` now (the health probe found the keys accepted again):
        the next attempt goes at once instead of after ``pause_interval``."""
        with self._condition:
            if self._wait_kind != _PAUSED or self._paused_for != reason:
                return False
            self._wait_kind = _BACKOFF
            self._next_attempt = 0.0
            self._condition.notify_all()
        _logger.info("otel-gemini: Langfuse accepts the credentials again; sending resumes")
        return True

    def wake(self) -> None:
        """New spans are on disk."""
        with self._condition:
            self._has_data = True
            self._condition.notify_all()

    def flush(self, target_seq: int, deadline: float) -> bool:
        """Waits (until ``deadline``, monotonic) for spans up to ``target_seq`` to be resolved.

        False when a send attempt failed, sending is paused or the deadline passed.
        """
        request = _FlushRequest(target_seq)
        with self._condition:
            self._flushes.append(request)
            self._has_data = True
            self._condition.notify_all()
        request.done.wait(max(0.0, deadline - self._clock()))
        with self._condition:
            if request in self._flushes:
                self._flushes.remove(request)
        return request.done.is_set() and request.result

    def stop(self, deadline: float) -> None:
        """Sends what it can until ``deadline`` (monotonic), then exits (first failure ends it)."""
        # The loop first: a body returning once it sees the deadline must find the loop
        # already asked to stop (else: "returned without being asked to stop", run again).
        self.loop.stop()
        with self._condition:
            self._stop_deadline = deadline
            self._condition.notify_all()

    # --- the thread ---

    def _run(self) -> None:
        # Supervised (BackgroundLoop): an error restarts this body; a batch half delivered
        # is remembered in ``_progress``, so the restart sends no span twice.
        self._spool_ready.wait()
        while self._await_turn():
            failed = not self._attempt()
            if failed and self._stop_deadline is not None:
                return  # shutting down: one failure is the answer

    def _after_error(self, error: BaseException) -> None:
        # Flushes waiting on this attempt get their answer now, and an attempt that never
        # ended is a failed one (else health would see a request in flight forever).
        self._resolve_flushes(False)
        if self._accounting.snapshot().in_flight_since is not None:
            self._accounting.attempt_failed(0, f"internal error: {type(error).__name__}")
        self._on_status(True)

    def _finished(self) -> None:
        self._resolve_flushes(False)
        self._on_status(True)
        self._on_exit()

    def _await_turn(self) -> bool:
        """Blocks until an attempt should be made; False when the thread should exit."""
        with self._condition:
            while True:
                now = self._clock()
                deadline = self._stop_deadline
                stopping = deadline is not None
                if deadline is not None and now >= deadline:
                    return False
                waiting = now < self._next_attempt
                if waiting and self._wait_kind in (_SERVER_WAIT, _PAUSED):
                    self._resolve_flushes_locked(False)
                    if stopping:
                        return False
                elif waiting and (self._flushes or stopping):
                    return True  # our own backoff yields to a flush or a last try
                elif not waiting and (self._has_data or self._flushes or stopping):
                    return True
                timeout = None
                if waiting:
                    timeout = self._next_attempt - now
                if deadline is not None:
                    remaining = deadline - now
                    timeout = remaining if timeout is None else min(timeout, remaining)
                self._condition.wait(timeout)

    def _attempt(self) -> bool:
        """Sends one batch (True: resolved or nothing to send; False: failed)."""
        try:
            batch = self._spool.read_batch(self._batch_max_spans, self._batch_max_bytes)
        except OSError as error:  # out of descriptors and the like: the spans wait on disk
            self._read_failed(error)
            return False
        self._read_failures = 0
        if self._read_failing:
            self._read_failing = False
            _logger.warning("otel-gemini: reading spool %s works again", self._spool.directory)
        if batch is None:
            with self._condition:
                self._has_data = False
                self._resolve_flushes_locked(True)
            if self._stop_deadline is not None:
                with self._condition:
                    self._stop_deadline = self._clock()  # all sent: exit now
            return True
        response = self._deliver(batch)
        if response is None:
            self._succeeded()
            return True
        self._failed(response, batch)
        return False

    def _read_failed(self, error: OSError) -> None:
        if not self._read_failing:
            _logger.error(
                "otel-gemini: reading spool %s failed (%s); spans stay on disk, retrying",
                self._spool.directory,
                describe_error(error),
            )
        self._read_failing = True
        self._read_failures += 1
        # A local fault: retry soon whatever Langfuse's backoff is (capped at 1 s).
        delay = min(1.0, self._policy.backoff(self._read_failures, self._rng))
        with self._condition:
            self._wait_kind = _BACKOFF
            self._next_attempt = self._clock() + delay
            self._resolve_flushes_locked(False)

    def _timeout(self) -> float | None:
        deadline = self._stop_deadline
        if deadline is None:
            return None
        return max(0.05, deadline - self._clock())

    def _deliver(self, batch: Batch) -> Response | None:
        """Posts ``batch`` (bisecting on 400); acks it when every span is resolved.

        Returns the failing response when the batch must be tried again later.
        """
        progress = self._progress
        if progress is None or (progress.segment, progress.start) != (batch.segment, batch.start):
            progress = self._progress = _Progress(batch.segment, batch.start)
        done = progress.sent | progress.dead
        todo = [span for span in batch.spans if span.seq not in done]
        stack = [todo] if todo else []
        while stack:
            part = stack.pop()
            self._accounting.attempt_started()
            if self.unanswered_since is None:
                self.unanswered_since = time.time()
            response = self._transport.post(_request_body(part), timeout=self._timeout())
            if response.status is not None:
                self.unanswered_since = None  # an answer, even an error, is an answer
            if response.outcome is Outcome.DELIVERED:
                progress.sent.update(span.seq for span in part)
                self._accounting.attempt_succeeded()
                continue
            if response.outcome is Outcome.REJECTED:
                self._accounting.attempt_rejected(len(part), response.message)
                if len(part) == 1:
                    self._dead_letter(part, response)
                    progress.dead.add(part[0].seq)
                else:
                    middle = len(part) // 2
                    stack.append(part[middle:])
                    stack.append(part[:middle])
                continue
            return response
        self._progress = None
        if not self._spool.ack(batch, sent=len(progress.sent), dead_lettered=len(progress.dead)):
            _logger.debug("A batch in flight was dropped to make room in the spool")
        return None

    def _dead_letter(self, part: list[SpoolSpan], response: Response) -> None:
        self._spool.dead_letter(part, response.status or 0)
        _logger.warning(
            "Langfuse refused a span (%s); it is kept in %s/dead-letter and counted",
            response.message,
            self._spool.directory,
        )

    def _succeeded(self) -> None:
        if self._failing_logged:
            _logger.warning(
                "otel-gemini: export to Langfuse recovered after %d failed attempt(s)",
                self._failures,
            )
        self._failing_logged = False
        self._failures = 0
        self._wait_kind = None
        self._next_attempt = 0.0
        self._paused_for = None
        with self._condition:
            self._resolve_flushes_locked(None)
        self._on_status(False)

    def _failed(self, response: Response, batch: Batch) -> None:
        self._failures += 1
        now = self._clock()
        spans = len(batch.spans)
        if response.outcome in (Outcome.AUTH, Outcome.REFUSED):
            pause = PAUSE_AUTH if response.outcome is Outcome.AUTH else PAUSE_REJECTED
            self._accounting.attempt_failed(spans, response.message, paused=pause)
            self._paused_for = pause
            self._wait_kind = _PAUSED
            self._next_attempt = now + self._policy.pause_interval
            if not self._failing_logged or self._failures == 1:
                hint = (
                    "check LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY and the project's ingestion"
                    if pause == PAUSE_AUTH
                    else f"check LANGFUSE_BASE_URL ({self._transport.url})"
                )
                _logger.error(
                    "otel-gemini: Langfuse refused the export (%s): %s. Sending is paused "
                    "and retried every %g s; spans are kept in %s",
                    response.message,
                    hint,
                    self._policy.pause_interval,
                    self._spool.directory,
                )
        else:
            self._accounting.attempt_failed(spans, response.message)
            if response.retry_after is not None:
                self._wait_kind = _SERVER_WAIT
                delay = self._policy.retry_after(response.retry_after)
            else:
                self._wait_kind = _BACKOFF
                delay = self._policy.backoff(self._failures, self._rng)
            self._next_attempt = now + delay
            if not self._failing_logged:
                _logger.warning(
                    "otel-gemini: export to Langfuse failing (%s); spans are kept in %s and "
                    "retried with backoff",
                    response.message,
                    self._spool.directory,
                )
        self._failing_logged = True
        with self._condition:
            self._resolve_flushes_locked(False)
        self._on_status(False)

    # --- flushes and status ---

    def _resolve_flushes(self, result: bool) -> None:
        with self._condition:
            self._resolve_flushes_locked(result)

    def _resolve_flushes_locked(self, result: bool | None) -> None:
        """Answers flushes: with ``result``, or (None) those whose spans are all resolved."""
        if not self._flushes:
            return
        resolved_through = self._spool.resolved_through
        remaining = []
        for request in self._flushes:
            if result is None:
                if request.target_seq <= resolved_through:
                    request.resolve(True)
                else:
                    remaining.append(request)
            else:
                request.resolve(result and request.target_seq <= resolved_through)
        self._flushes = remaining
