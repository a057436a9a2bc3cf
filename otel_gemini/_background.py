"""Supervised background loops: every thread otel-gemini runs goes through here.

A :class:`BackgroundLoop` runs a body on a daemon thread with OpenTelemetry
instrumentation suppressed (our own disk and network I/O must never become spans), and
keeps it running:

- an exception in the body is logged (once per loop, with its traceback), counted, and the
  body is started again on the same thread after a backoff (0.1 s doubling to 5 s);
- a body that returns before :meth:`BackgroundLoop.stop` was called counts as a failure
  too (a loop that leaves silently is the bug this module exists for);
- a ``BaseException`` (or the thread vanishing) leaves the loop ``stopped``; the watchdog
  thread notices within :data:`TICK` seconds and starts it on a new thread, after the same
  backoff;
- a body that returns after ``stop()`` has finished: not an error.

Health reads each loop's :class:`LoopStatus`. The watchdog also calls the tick callbacks
registered with :func:`on_tick` (the exporter refreshes its ``status.json`` there).

Forked children start with no loops and no watchdog: the parent's threads do not exist in
them, and their owners (the exporter, the cost store, the health reporter) start new ones,
with new locks (:func:`fork_hooks`, :func:`renew_locks_after_fork`).

Every process that started a loop flushes at its normal end (:func:`at_exit`): through
``atexit``, and through ``multiprocessing``'s worker exit, which skips ``atexit``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from otel_gemini._suppress import suppress_instrumentation

_logger = logging.getLogger("otel_gemini")

RUNNING: Final = "running"
RESTARTING: Final = "restarting"
"""Failed; waiting for its backoff to start again on the same thread."""
STOPPED: Final = "stopped"
"""Its thread is gone (``BaseException``, or vanished); the watchdog starts it again."""
FINISHED: Final = "finished"
"""Returned after ``stop()``: done, not an error."""

Batch = TypeVar("Batch")

INITIAL_BACKOFF: Final = 0.1
MAX_BACKOFF: Final = 5.0
MAX_BATCH_FAILURES: Final = 5
"""Failures in a row after which a :class:`BatchWorker` gives its batch in hand up."""
TICK: Final = 0.25
"""Seconds between watchdog checks (a stopped loop is restarted, status files refreshed)."""


@dataclass(frozen=True)
class LoopStatus:
    """One background loop, as health sees it. Times are Unix seconds."""

    name: str
    state: str
    restarts: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None

    @property
    def problem(self) -> str | None:
        """``"unhealthy"`` when stopped, ``"degraded"`` while restarting, else None."""
        if self.state == STOPPED:
            return "unhealthy"
        if self.state == RESTARTING:
            return "degraded"
        return None

    def reason(self) -> str:
        """The health reason naming the loop (for a loop with a :attr:`problem`)."""
        cause = self.last_error or "no error recorded"
        if self.state == STOPPED:
            return f"background loop {self.name} stopped ({cause}); it is being restarted"
        return f"background loop {self.name} failed ({cause}); restarting it"

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state": self.state,
            "restarts": self.restarts,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoopStatus:
        """Inverse of :meth:`to_dict` (reads a status file)."""
        return cls(
            name=str(data.get("name")),
            state=str(data.get("state")),
            restarts=int(data.get("restarts") or 0),
            errors=int(data.get("errors") or 0),
            last_error=data.get("last_error"),
            last_error_at=data.get("last_error_at"),
        )


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class BackgroundLoop:
    """Runs ``body`` on a daemon thread named ``otel-gemini-<name>``, supervised.

    ``on_error(error)`` runs on the loop's thread after each failure, before the backoff
    (to release waiters, reset half-done state); ``on_exit()`` runs once, when the loop has
    finished after :meth:`stop`. With ``oneshot``, a body that returns has finished (a job,
    such as one health probe, rather than a loop). With ``last_run=False``, a loop asked to
    stop while backing off after an error finishes without running its body again (a
    listener has no work to finish).
    """

    def __init__(
        self,
        name: str,
        body: Callable[[], None],
        *,
        on_error: Callable[[BaseException], None] | None = None,
        on_exit: Callable[[], None] | None = None,
        oneshot: bool = False,
        last_run: bool = True,
        initial_backoff: float = INITIAL_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.name = name
        self._body = body
        self._on_error = on_error
        self._on_exit = on_exit
        self._oneshot = oneshot
        self._last_run = last_run
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._lock = threading.Lock()
        self._wake = threading.Event()  # interrupts a backoff (stop)
        self._finished = threading.Event()
        self._stop_requested = False
        self._state = RUNNING
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._restarts = 0
        self._errors = 0
        self._streak = 0  # failures since the body last ran a while
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._restart_at = 0.0  # monotonic: when the watchdog may restart a stopped loop
        self._logged = False
        self._exited = False

    # --- control (any thread) ---

    def start(self) -> BackgroundLoop:
        with self._lock:
            self._spawn_locked()
        _watch(self)
        # A process that runs loops has something to flush when it ends.
        _ensure_exit_hooks()
        return self

    def stop(self) -> None:
        """Marks the loop as asked to stop (its body must return on its own signal). A loop
        whose thread is gone finishes at once; one backing off after an error gets one last
        run to finish its work (unless made with ``last_run=False``)."""
        with self._lock:
            self._stop_requested = True
            idle = self._state == STOPPED or self._thread is None
        self._wake.set()
        if idle:
            self._finish()

    def join(self, timeout: float | None = None) -> bool:
        """Waits until the loop finished (True) or ``timeout`` passed (False)."""
        return self._finished.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def thread(self) -> threading.Thread | None:
        """The thread running the loop now (a restart after a stop gives a new one)."""
        return self._thread

    def status(self) -> LoopStatus:
        """The loop's state now; a thread found gone counts as stopped."""
        with self._lock:
            self._check_thread_locked()
            return LoopStatus(
                self.name,
                self._state,
                self._restarts,
                self._errors,
                self._last_error,
                self._last_error_at,
            )

    # --- the thread ---

    def _spawn_locked(self) -> None:
        self._state = RUNNING
        self._pid = os.getpid()
        self._thread = threading.Thread(
            target=self._run, name=f"otel-gemini-{self.name}", daemon=True
        )
        self._thread.start()

    def _check_thread_locked(self) -> None:
        thread = self._thread
        vanished = thread is None or not thread.is_alive() or self._pid != os.getpid()
        if self._state in (RUNNING, RESTARTING) and thread is not None and vanished:
            self._state = STOPPED
            self._errors += 1
            self._last_error = "its thread is gone"
            self._last_error_at = time.time()
            self._restart_at = time.monotonic() + self._backoff_locked()

    def _backoff_locked(self) -> float:
        self._streak += 1
        return min(self._max_backoff, self._initial_backoff * 2.0 ** min(self._streak - 1, 30))

    def _run(self) -> None:
        # Our own I/O on this thread is never traced, for the thread's whole life (as the
        # SDK's BatchProcessor does for its worker).
        with suppress_instrumentation():
            finished = self._supervise()
        if finished:
            self._finish()

    def _supervise(self) -> bool:
        """Runs the body until asked to stop; False when a fatal error left it for the
        watchdog to start again (then it does not finish)."""
        last_try = False  # asked to stop while failing: one more run to finish its work
        while True:
            started = time.monotonic()
            try:
                self._body()
            except Exception as error:
                failure: BaseException = error
            except BaseException as error:
                self._failed(error, fatal=True, ran=time.monotonic() - started)
                with self._lock:
                    if not self._stop_requested:
                        return False  # the watchdog starts it again
                break
            else:
                with self._lock:
                    done = self._stop_requested or self._oneshot
                if done:
                    break
                failure = RuntimeError("the loop returned without being asked to stop")
            delay = self._failed(failure, fatal=False, ran=time.monotonic() - started)
            self._wake.wait(delay)
            with self._lock:
                if self._stop_requested:
                    if last_try or not self._last_run:
                        break
                    last_try = True
                self._state = RUNNING
                self._restarts += 1
        return True

    def _failed(self, error: BaseException, *, fatal: bool, ran: float) -> float:
        with self._lock:
            if ran > self._max_backoff * 2:
                self._streak = 0  # it ran a good while: start the backoff over
            self._errors += 1
            self._last_error = _describe(error)
            self._last_error_at = time.time()
            delay = self._backoff_locked()
            self._state = STOPPED if fatal else RESTARTING
            self._restart_at = time.monotonic() + delay
            first = not self._logged
            self._logged = True
        if first:
            _logger.error(
                "otel-gemini: background loop %s failed (%s); restarting it in %.1f s "
                "(logged once; health shows further failures)",
                self.name,
                self._last_error,
                delay,
                exc_info=error,
            )
        else:
            _logger.debug("otel-gemini: background loop %s failed again", self.name, exc_info=error)
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                _logger.debug("otel-gemini: %s's error handler failed", self.name, exc_info=True)
        return delay

    def _finish(self) -> None:
        with self._lock:
            if self._exited:
                return
            self._exited = True
            self._state = FINISHED
        try:
            if self._on_exit is not None:
                self._on_exit()
        finally:
            self._finished.set()

    def _restart_if_due(self) -> bool:
        """The watchdog's part: starts a stopped loop again once its backoff is over.
        False once the loop has finished (the watchdog forgets it)."""
        with self._lock:
            self._check_thread_locked()
            if self._state == FINISHED:
                return False
            abandoned = self._state == STOPPED and self._stop_requested
            if self._state == STOPPED and not abandoned and time.monotonic() >= self._restart_at:
                self._restarts += 1
                self._spawn_locked()
        if abandoned:
            self._finish()
        return True


class BatchWorker(Generic[Batch]):
    """The queue-plus-writer-thread machine, supervised: the spool writer and the cost
    store's writer are each one of these.

    Producers put work in their own queue and set ``has_data`` (and ``urgent`` when a lot
    waits or a flush asks). The worker waits for data, gathers a batch for up to ``delay``
    seconds (unless urgent or stopping), takes it with ``drain()`` (which clears both
    events under the queue's lock) and hands it to ``process``. A batch is kept in hand
    until processed, so an error (the loop restarts) never loses it. After :meth:`stop`,
    it processes what is queued (``pending()`` tells) and finishes.

    ``prepare`` runs once before the first batch (opening files; retried if it raises);
    ``idle`` runs before each wait, which lasts at most ``idle_interval`` (housekeeping).

    A batch whose processing fails :data:`MAX_BATCH_FAILURES` times in a row is given up:
    ``discard(batch, error)`` counts it as dropped (logged once), and the worker goes on
    with the next one. One bad item must not stop the worker for good.
    """

    def __init__(
        self,
        name: str,
        *,
        has_data: threading.Event,
        urgent: threading.Event,
        delay: float,
        drain: Callable[[], Batch],
        process: Callable[[Batch], None],
        pending: Callable[[], bool],
        on_exit: Callable[[], None] | None = None,
        prepare: Callable[[], None] | None = None,
        idle: Callable[[], None] | None = None,
        idle_interval: float | None = None,
        discard: Callable[[Batch, BaseException], None] | None = None,
        max_failures: int | None = None,
    ) -> None:
        self.name = name
        self._discard = discard
        self._max_failures = MAX_BATCH_FAILURES if max_failures is None else max_failures
        self._failures = 0  # consecutive failures of the batch in hand
        self._discard_logged = False
        self._has_data = has_data
        self._urgent = urgent
        self._delay = delay
        self._drain = drain
        self._process = process
        self._pending = pending
        self._prepare = prepare
        self._idle = idle
        self._idle_interval = idle_interval
        self._prepared = prepare is None
        self._in_hand: tuple[Batch] | None = None
        self.stopping = False
        self.loop = BackgroundLoop(name, self._run, on_exit=on_exit)

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        """Process what is queued, then finish (see :meth:`BackgroundLoop.join`)."""
        # The loop first: a body returning once it sees ``stopping`` must find the loop
        # already asked to stop (else: "returned without being asked to stop", run again).
        self.loop.stop()
        self.stopping = True
        self._urgent.set()
        self._has_data.set()

    def flush(
        self, progress: threading.Condition, done: Callable[[], bool], timeout: float
    ) -> bool:
        """Asks for what is queued to be processed now and waits on ``progress`` (which the
        owner's ``process`` notifies) until ``done()``; False if ``timeout`` seconds pass
        first or the worker has finished."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._urgent.set()
        self._has_data.set()
        with progress:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.loop.finished:
                    return done()
                progress.wait(remaining)
        return True

    def _run(self) -> None:
        if not self._prepared:
            assert self._prepare is not None
            self._prepare()
            self._prepared = True
        while True:
            if self._in_hand is None:
                if self._idle is not None:
                    self._idle()
                self._has_data.wait(self._idle_interval)
                if not self.stopping:
                    # Gather a batch: one write for many items is much cheaper.
                    self._urgent.wait(self._delay)
                self._in_hand = (self._drain(),)
                self._failures = 0
            try:
                self._process(self._in_hand[0])
            except Exception as error:
                self._failures += 1
                if self._discard is not None and self._failures >= self._max_failures:
                    self._give_up(error)
                raise  # the supervisor logs, counts and runs the body again after a backoff
            self._in_hand = None
            if self.stopping and not self._pending():
                return

    def _give_up(self, error: Exception) -> None:
        assert self._in_hand is not None and self._discard is not None
        batch = self._in_hand[0]
        failures, self._in_hand, self._failures = self._failures, None, 0
        if not self._discard_logged:
            self._discard_logged = True
            _logger.error(
                "otel-gemini: %s gave up a batch that failed %d times in a row (%s); it is "
                "counted as dropped (logged once; health shows further drops)",
                self.name,
                failures,
                _describe(error),
            )
        try:
            self._discard(batch, error)
        except Exception:
            _logger.debug("otel-gemini: %s's discard failed", self.name, exc_info=True)


# --- the watchdog ---

_registry_lock = threading.Lock()
_loops: set[BackgroundLoop] = set()
_ticks: list[weakref.WeakMethod[Callable[[], None]]] = []
_watchdog: threading.Thread | None = None
_watchdog_pid = 0


def on_tick(callback: Callable[[], None]) -> None:
    """Calls the bound method ``callback`` every :data:`TICK` seconds from the watchdog
    thread, for as long as its object lives (it is held weakly)."""
    with _registry_lock:
        _ticks.append(weakref.WeakMethod(callback))
    _ensure_watchdog()


def _watch(loop: BackgroundLoop) -> None:
    with _registry_lock:
        _loops.add(loop)
    _ensure_watchdog()


def _ensure_watchdog() -> None:
    global _watchdog, _watchdog_pid
    with _registry_lock:
        if _watchdog is not None and _watchdog.is_alive() and _watchdog_pid == os.getpid():
            return
        _watchdog_pid = os.getpid()
        _watchdog = threading.Thread(target=_watch_loops, name="otel-gemini-watchdog", daemon=True)
        _watchdog.start()


def _watch_loops() -> None:
    with suppress_instrumentation():
        _watch_loops_forever()


def _watch_loops_forever() -> None:
    while True:
        time.sleep(TICK)
        with _registry_lock:
            loops = list(_loops)
            ticks = list(_ticks)
        for loop in loops:
            try:
                if not loop._restart_if_due():
                    with _registry_lock:
                        _loops.discard(loop)
            except Exception:  # never let the watchdog die of one loop
                _logger.debug("otel-gemini watchdog: checking %s failed", loop.name, exc_info=True)
        for reference in ticks:
            callback = reference()
            if callback is None:
                with _registry_lock:
                    if reference in _ticks:
                        _ticks.remove(reference)
                continue
            try:
                callback()
            except Exception:
                _logger.debug("otel-gemini watchdog: a tick callback failed", exc_info=True)


def _forget_in_child() -> None:
    # The parent's threads do not exist in a forked child; their owners start anew there.
    global _watchdog, _registry_lock
    _registry_lock = threading.Lock()
    _loops.clear()
    _ticks.clear()
    _watchdog = None


os.register_at_fork(after_in_child=_forget_in_child)


# --- fork and exit hooks ---


def fork_hooks(
    *,
    before: Callable[[], None] | None = None,
    after_in_parent: Callable[[], None] | None = None,
    after_in_child: Callable[[], None] | None = None,
) -> None:
    """``os.register_at_fork`` for bound methods, held weakly (a hook of an object that is
    gone does nothing): ``os.register_at_fork`` can never unregister, and configuring again
    (tests, reloads) must not keep old pipelines alive.

    ``after_in_child`` runs in the child right after ``fork()``: it must start no thread and
    create no file (the child may be about to ``exec``); owners start anew on first use.
    """

    def weak(callback: Callable[[], None] | None) -> Callable[[], None] | None:
        if callback is None:
            return None
        reference = weakref.WeakMethod(callback)

        def call() -> None:
            method = reference()
            if method is not None:
                try:
                    method()
                except Exception:  # a fork hook must never break the application's fork
                    _logger.debug("otel-gemini: a fork hook failed", exc_info=True)

        return call

    hooks = {
        "before": weak(before),
        "after_in_parent": weak(after_in_parent),
        "after_in_child": weak(after_in_child),
    }
    os.register_at_fork(**{name: hook for name, hook in hooks.items() if hook is not None})


def renew_locks_after_fork(owner: object, *names: str) -> None:
    """Gives ``owner`` new locks at the attributes ``names`` in a forked child.

    A lock another thread held at the moment of ``fork()`` stays held forever in the child
    (that thread does not exist there): the first span would deadlock. Each attribute gets
    a new lock of its kind (``threading.Lock`` or ``RLock``).
    """
    reference = weakref.ref(owner)
    reentrant = type(threading.RLock())

    def renew() -> None:
        target = reference()
        if target is None:
            return
        for name in names:
            old = getattr(target, name)
            setattr(
                target, name, threading.RLock() if isinstance(old, reentrant) else threading.Lock()
            )

    os.register_at_fork(after_in_child=renew)


EXIT_TIMEOUT: Final = 5.0
"""Seconds a process ending normally spends, at most, flushing what it holds."""
EXIT_PRIORITY: Final = 100
"""Our ``multiprocessing.util.Finalize`` priority: before the pool's and queues' own (<= 15)."""

_exit_lock = threading.Lock()
_exit_callbacks: list[weakref.WeakMethod[Callable[[float], None]]] = []
_atexit_registered = False
_finalizer_pid = 0
_exited_pid = 0


def at_exit(callback: Callable[[float], None]) -> None:
    """Calls the bound method ``callback(timeout)`` when the process ends normally (the last
    registered first; one shared :data:`EXIT_TIMEOUT`), for as long as its object lives.

    The hooks themselves are set when a loop starts in a process (:func:`_ensure_exit_hooks`):
    ``atexit`` once (forked children inherit it), and a ``multiprocessing.util.Finalize`` in
    each process, because a ``multiprocessing`` worker clears the finalizers it inherited and
    ends with ``os._exit()``, which skips ``atexit``.
    """
    with _exit_lock:
        _exit_callbacks[:] = [ref for ref in _exit_callbacks if ref() is not None]
        _exit_callbacks.append(weakref.WeakMethod(callback))


def _ensure_exit_hooks() -> None:
    global _atexit_registered, _finalizer_pid
    pid = os.getpid()
    with _exit_lock:
        if not _atexit_registered:
            _atexit_registered = True
            atexit.register(run_exit_callbacks)
        if _finalizer_pid == pid:
            return
        _finalizer_pid = pid
    import multiprocessing.util  # here: 16 ms at import, for a process that may never need it

    # A finalizer of no object runs at multiprocessing's exit: a worker's end (before its
    # os._exit), and the main process's atexit. Whichever runs first does the work.
    multiprocessing.util.Finalize(None, run_exit_callbacks, exitpriority=EXIT_PRIORITY)


def run_exit_callbacks(timeout: float = EXIT_TIMEOUT) -> None:
    """Runs the :func:`at_exit` callbacks once in this process, within ``timeout`` seconds
    altogether (each gets what is left). For runners whose workers end in a way no hook
    sees (a Celery ``worker_process_shutdown`` handler may call it; see
    docs/deployment.md)."""
    global _exited_pid
    pid = os.getpid()
    with _exit_lock:
        if _exited_pid == pid:
            return
        _exited_pid = pid
        callbacks = [reference() for reference in reversed(_exit_callbacks)]
    deadline = time.monotonic() + max(0.0, timeout)
    for callback in callbacks:
        if callback is None:
            continue
        try:
            callback(max(0.0, deadline - time.monotonic()))
        except Exception:  # one failing part must not keep the others from flushing
            _logger.warning("otel-gemini: flushing at exit failed", exc_info=True)


def _forget_exit_state_in_child() -> None:
    global _exit_lock
    _exit_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_exit_state_in_child)
