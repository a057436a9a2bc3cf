"""``HealthReporter``: the exporter's health on demand, Langfuse probed in the background."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from otel_gemini.export import LangfuseExporter
from otel_gemini.health._assess import assess
from otel_gemini.health._probe import LangfuseProbe
from otel_gemini.health._report import HealthReport, ProbeResult

_logger = logging.getLogger(__name__)

DEFAULT_PROBE_INTERVAL = 30.0


class HealthReporter:
    """Answers "is telemetry getting to Langfuse?" for one :class:`LangfuseExporter`.

    :meth:`report` never blocks on the network: it reads the exporter's counters and the
    latest Langfuse probe, and when that probe is older than ``probe_interval`` starts a
    new one on a background thread (its result shows in a later report). Pass
    ``probe=False`` to judge by deliveries alone.
    """

    def __init__(
        self,
        exporter: LangfuseExporter,
        *,
        probe: LangfuseProbe | bool = True,
        probe_interval: float = DEFAULT_PROBE_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._exporter = exporter
        if probe is True:
            self._probe: LangfuseProbe | None = LangfuseProbe(
                exporter.base_url, exporter.public_key, exporter.secret_key
            )
        else:
            self._probe = probe or None
        self._interval = probe_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: ProbeResult | None = None
        self._probing: threading.Thread | None = None
        self._probed = threading.Condition(self._lock)

    def report(self) -> HealthReport:
        """The current health (cheap; safe from any thread and from async handlers)."""
        now = self._clock()
        with self._lock:
            latest = self._latest
        if self._probe is not None and (
            latest is None or now - latest.checked_at >= self._interval
        ):
            self._start_probe()
        stats = self._exporter.stats()
        status, reasons = assess(stats, latest, now)
        return HealthReport(status, tuple(reasons), now, stats, latest, self._exporter.base_url)

    def refresh(self, timeout: float = 10.0) -> HealthReport:
        """Probes Langfuse now (waiting up to ``timeout``), then reports."""
        if self._probe is not None:
            with self._lock:
                previous = self._latest
            self._start_probe()
            with self._probed:
                self._probed.wait_for(lambda: self._latest is not previous, timeout)
        return self.report()

    def _start_probe(self) -> None:
        with self._lock:
            if self._probing is not None and self._probing.is_alive():
                return
            self._probing = threading.Thread(
                target=self._run_probe, name="otel-gemini-health-probe", daemon=True
            )
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
