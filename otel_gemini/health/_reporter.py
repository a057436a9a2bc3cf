"""``HealthReporter``: the one place a :class:`HealthReport` is assembled.

``Telemetry.health()``, its ``asgi_app()`` route, ``otel-gemini serve``, the gateway and
``otel-gemini health --spool-dir`` (through the owner's ``status.json``, see
:func:`report_from_status`) all judge with :func:`build_report`, so they agree.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from otel_gemini import _background
from otel_gemini._background import BackgroundLoop, LoopStatus
from otel_gemini.export import ExportStats, LangfuseExporter
from otel_gemini.health._assess import DEFAULT_REQUEST_TIMEOUT, assess
from otel_gemini.health._probe import LangfuseProbe
from otel_gemini.health._report import HealthReport, HealthStatus, ProbeResult

_logger = logging.getLogger(__name__)

DEFAULT_PROBE_INTERVAL = 30.0
PAUSED_PROBE_INTERVAL = 5.0
"""While sending is paused for refused keys, only a probe can end the pause early."""
EXPORT_OFF = (
    "Langfuse export is off (no exporter in this process: LANGFUSE_PUBLIC_KEY and "
    "LANGFUSE_SECRET_KEY are not set, or export was turned off): costs are kept in the "
    "local store only"
)

Condition = tuple[HealthStatus, str]


def build_report(
    stats: ExportStats,
    probe: ProbeResult | None,
    now: float,
    *,
    base_url: str | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    unanswered_since: float | None = None,
    loops: Sequence[LoopStatus] = (),
    conditions: Iterable[Condition] = (),
    export_off: bool = False,
    extra: dict[str, object] | None = None,
) -> HealthReport:
    """The report for these inputs: every health answer is made here."""
    status, reasons = assess(
        stats,
        probe,
        now,
        request_timeout=request_timeout,
        unanswered_since=unanswered_since,
        loops=loops,
        conditions=conditions,
        notes=(EXPORT_OFF,) if export_off else (),
    )
    return HealthReport(
        status,
        tuple(reasons),
        now,
        stats,
        probe,
        base_url,
        dict(extra or {}),
        tuple(loops),
    )


def report_from_status(document: Mapping[str, Any], now: float) -> HealthReport:
    """The report an exporter's ``status.json`` (written by its owner) stands for."""
    probe = document.get("probe")
    return build_report(
        ExportStats.from_dict(document),
        ProbeResult.from_raw(probe) if isinstance(probe, Mapping) else None,
        now,
        base_url=document.get("base_url"),
        request_timeout=float(document.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT),
        unanswered_since=document.get("unanswered_since"),
        loops=[LoopStatus.from_dict(loop) for loop in document.get("loops") or ()],
        conditions=[
            (HealthStatus(level), str(reason)) for level, reason in document.get("conditions") or ()
        ],
    )


class HealthReporter:
    """Answers "is telemetry getting to Langfuse?" for one :class:`LangfuseExporter` (or,
    with ``exporter=None``, for a process whose Langfuse export is off).

    :meth:`report` never blocks on the network: it reads the exporter's counters, its
    background loops and the latest Langfuse probe, and when that probe is older than
    ``probe_interval`` (5 s while sending is paused for refused keys) starts a new one on a
    background thread (its result shows in a later report). A probe that finds the keys
    accepted again ends such a pause at once. Pass ``probe=False`` to judge by deliveries
    alone.

    ``sections`` are added to the report's ``extra`` (name: a callable giving its value);
    ``loops`` gives further background loops to judge (a cost store's writer); and
    ``conditions(stats)`` a component's own (status, reason) pairs (a gateway shutting
    down). What the exporter's ``status.json`` needs to give the same answer is written
    there too.
    """

    def __init__(
        self,
        exporter: LangfuseExporter | None,
        *,
        probe: LangfuseProbe | bool = True,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        clock: Callable[[], float] = time.time,
        sections: Mapping[str, Callable[[], object]] | None = None,
        loops: Callable[[], Iterable[LoopStatus]] | None = None,
        conditions: Callable[[ExportStats], Iterable[Condition]] | None = None,
    ) -> None:
        self._exporter = exporter
        if exporter is None:
            self._probe: LangfuseProbe | None = None
        elif probe is True:
            self._probe = LangfuseProbe(exporter.base_url, exporter.public_key, exporter.secret_key)
        else:
            self._probe = probe or None
        self._interval = probe_interval
        self._clock = clock
        self._sections = dict(sections or {})
        self._loops = loops
        self._conditions = conditions
        self._lock = threading.Lock()
        self._latest: ProbeResult | None = None
        self._probing: BackgroundLoop | None = None
        self._probed = threading.Condition(self._lock)
        if exporter is not None:
            exporter.set_status_extras(self._status_extras)
        _background.fork_hooks(after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        # The parent's probe thread does not exist here (a probe "in progress" would block
        # every later one) and its lock may have been held at fork: the child probes anew.
        self._lock = threading.Lock()
        self._probed = threading.Condition(self._lock)
        self._probing = None

    def report(self) -> HealthReport:
        """The current health (cheap; safe from any thread and from async handlers)."""
        now = self._clock()
        with self._lock:
            latest = self._latest
        exporter = self._exporter
        stats = exporter.stats() if exporter is not None else ExportStats()
        if self._probe is not None:
            interval = self._interval
            if stats.paused == "auth":
                interval = min(interval, PAUSED_PROBE_INTERVAL)
            if latest is None or now - latest.checked_at >= interval:
                self._start_probe()
        extra = {name: section() for name, section in self._sections.items()}
        conditions = self._conditions(stats) if self._conditions is not None else ()
        if exporter is None:
            return build_report(
                stats,
                None,
                now,
                loops=self._other_loops(),
                conditions=conditions,
                export_off=True,
                extra=extra,
            )
        inputs = exporter.health_inputs()
        return build_report(
            stats,
            latest,
            now,
            base_url=exporter.base_url,
            request_timeout=inputs.request_timeout,
            unanswered_since=inputs.unanswered_since,
            loops=(*inputs.loops, *self._other_loops()),
            conditions=conditions,
            extra=extra,
        )

    def refresh(self, timeout: float = 10.0) -> HealthReport:
        """Probes Langfuse now (waiting up to ``timeout``), then reports."""
        if self._probe is not None:
            with self._lock:
                previous = self._latest
            self._start_probe()
            with self._probed:
                self._probed.wait_for(lambda: self._latest is not previous, timeout)
        return self.report()

    def _other_loops(self) -> list[LoopStatus]:
        loops = list(self._loops()) if self._loops is not None else []
        with self._lock:
            probing = self._probing
        if probing is not None:
            loops.append(probing.status())
        return loops

    def _status_extras(self) -> dict[str, object]:
        # Called from the exporter's status writer (the watchdog thread, or the sender).
        with self._lock:
            latest = self._latest
        extras: dict[str, object] = {
            "base_url": self._exporter.base_url if self._exporter is not None else None,
            "probe": latest.raw() if latest is not None else None,
            "loops": [loop.to_dict() for loop in self._other_loops()],
        }
        if self._conditions is not None and self._exporter is not None:
            extras["conditions"] = [
                [level.value, reason] for level, reason in self._conditions(self._exporter.stats())
            ]
        return extras

    def _start_probe(self) -> None:
        with self._lock:
            if self._probing is not None and not self._probing.finished:
                return
            self._probing = BackgroundLoop("health-probe", self._run_probe, oneshot=True)
            self._probing.start()

    def _run_probe(self) -> None:
        assert self._probe is not None
        try:
            result = self._probe.check()
        except Exception as error:  # a bug: report it as unknown, never crash
            _logger.exception("otel-gemini health probe failed")
            result = ProbeResult(time.time(), error=f"probe failed: {type(error).__name__}")
        with self._probed:
            self._latest = result
            self._probed.notify_all()
        if result.credentials_valid and self._exporter is not None:
            self._exporter.credentials_confirmed()
