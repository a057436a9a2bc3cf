"""``Gateway``: OTLP in (gRPC and HTTP), priced, spooled and exported to Langfuse."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

import grpc  # type: ignore[import-untyped]
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor

from otel_gemini._background import LoopStatus
from otel_gemini._http_limits import RequestLimit
from otel_gemini._listen_security import grpc_bearer_auth
from otel_gemini.aggregate import CostStore
from otel_gemini.budgets import BudgetConfigError, BudgetRules
from otel_gemini.export import ExportStats, LangfuseExporter
from otel_gemini.gateway._grpc import build_grpc_server
from otel_gemini.gateway._http import build_http_app
from otel_gemini.gateway._http_server import HttpListener
from otel_gemini.gateway._intake import SpanIntake
from otel_gemini.gateway._settings import GatewaySettings
from otel_gemini.health import HealthReport, HealthReporter, HealthStatus, iso_time
from otel_gemini.pricing import PriceTable
from otel_gemini.processing import CostSpanProcessor

if TYPE_CHECKING:
    from otel_gemini.budgets import BudgetEvaluator

_logger = logging.getLogger("otel_gemini.gateway")


class Gateway:
    """An OTLP trace receiver that prices spans like ``CostSpanProcessor`` in-process and
    sends them through ``exporter`` (its durable spool and retries) to Langfuse.

    A request is acknowledged once its spans are in the spool, so a sender that retries
    unacknowledged requests (the OpenTelemetry Collector does) loses nothing if the gateway
    is killed; a full spool or memory budget answers "retry later" instead of growing memory.
    The gateway owns ``exporter`` and shuts it down in :meth:`shutdown`.

    With ``cost_store``, every span it prices is also kept there (the store ``otel-gemini
    serve``, ``costs`` and budgets read), as in-process with ``configure()``; the gateway
    owns it too.

        exporter = LangfuseExporter(memory_max_bytes=4 * settings.max_inflight_bytes)
        with Gateway(exporter, settings=settings).start() as gateway:
            gateway.wait()  # until shutdown() from another thread or a signal handler
    """

    def __init__(
        self,
        exporter: LangfuseExporter,
        prices: PriceTable | None = None,
        settings: GatewaySettings | None = None,
        *,
        probe: bool = True,
        cost_store: CostStore | None = None,
        budgets: BudgetRules | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.settings = settings or GatewaySettings()
        self.exporter = exporter
        self.cost_store = cost_store
        """The local cost store the gateway also writes (``None``: none); with ``budgets``
        it is their ledger, covering every app that sends to this gateway."""
        self.budgets: BudgetEvaluator | None = None
        if budgets is not None:
            if cost_store is None:
                raise BudgetConfigError(
                    "gateway budgets (--budgets / OTEL_GEMINI_BUDGETS) need its cost store "
                    "(--db / OTEL_GEMINI_COST_DB)"
                )
            from otel_gemini.budgets import BudgetEvaluator

            # No enforcement here: the gateway sees spans after the requests were billed.
            self.budgets = BudgetEvaluator(
                budgets, cost_store.path, meter_provider=meter_provider, enforce=False
            )
            cost_store.add_commit_listener(self.budgets.on_committed)
        downstream: SpanProcessor = exporter.span_processor()
        if cost_store is not None:
            cost_store.exported_to = "Langfuse"
            fan_out = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
            fan_out.add_span_processor(downstream)
            fan_out.add_span_processor(cost_store)
            downstream = fan_out
        self.processor = CostSpanProcessor(downstream, prices)
        self.intake = SpanIntake(
            exporter,
            self.processor,
            max_request_bytes=self.settings.max_request_bytes,
            max_inflight_bytes=self.settings.max_inflight_bytes,
            spool_high_water=self.settings.spool_high_water,
            persist_timeout=self.settings.persist_timeout,
            retry_after=self.settings.retry_after,
        )
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._shut_down = False
        self._started_at: float | None = None
        sections: dict[str, Callable[[], object]] = {
            "started_at": lambda: iso_time(self._started_at),
            "gateway": self.intake.stats,
            "pricing": self.processor.stats,
        }
        if cost_store is not None:
            sections["cost_store"] = cost_store.stats
        if self.budgets is not None:
            sections["budgets"] = self.budgets.stats
        self.health_reporter = HealthReporter(
            exporter,
            probe=probe,
            sections=sections,
            loops=self._loops,
            conditions=self._conditions,
        )
        self.app = build_http_app(self.intake, self.health)
        """The HTTP side as an ASGI app (OTLP ``/v1/traces`` and the health endpoint),
        without the listener's token check and request limit."""
        self._grpc: grpc.Server | None = None
        self._http: HttpListener | None = None
        self.grpc_port: int | None = None
        self.http_port: int | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Gateway:
        """Binds the listeners and starts serving; raises ``OSError`` if a port is taken."""
        settings = self.settings
        try:
            if settings.grpc_port is not None:
                security = settings.security
                self._grpc, self.grpc_port = build_grpc_server(
                    self.intake,
                    f"{_grpc_host(settings.host)}:{settings.grpc_port}",
                    workers=settings.grpc_workers,
                    max_concurrent_rpcs=settings.max_concurrent_rpcs,
                    credentials=security.grpc_credentials(),
                    interceptors=([grpc_bearer_auth(security.tokens)] if security.tokens else []),
                    handshake_timeout=settings.header_timeout,
                )
                self._grpc.start()
            if settings.http_port is not None:
                limits = settings.connection_limits()
                self._http = HttpListener(
                    RequestLimit(settings.security.wrap(self.app), limits),
                    settings.host,
                    settings.http_port,
                    limits=limits,
                    ssl_options=settings.security.uvicorn_options(),
                    grace=settings.shutdown_grace,
                )
                self.http_port = self._http.port
                self._http.start()
        except BaseException:
            self.shutdown(timeout=1.0)
            raise
        self._started_at = time.time()
        _logger.info(
            "otel-gemini gateway listening: OTLP/gRPC %s, OTLP/HTTP %s",
            self.grpc_endpoint or "off",
            self.http_endpoint or "off",
        )
        return self

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stops taking requests, lets those in progress finish, writes every accepted span
        to the spool and sends what it can within ``timeout``; the rest stays in the spool
        for the next start. Idempotent."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        deadline = time.monotonic() + timeout
        self.intake.close()
        grace = min(self.settings.shutdown_grace, timeout / 2)
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1)
        if self._http is not None:
            self._http.stop(grace + 1)
        remaining = max(0.5, deadline - time.monotonic())
        self.exporter.shutdown(timeout_millis=remaining * 1000)
        if self.cost_store is not None:
            self.cost_store.shutdown(max(0.5, deadline - time.monotonic()) * 1000)
        if self.budgets is not None:
            self.budgets.shutdown(max(0.5, deadline - time.monotonic()))
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until :meth:`shutdown` completed (True) or ``timeout`` passed (False)."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Gateway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    # --- state ---------------------------------------------------------------------------------

    @property
    def grpc_endpoint(self) -> str | None:
        """``host:port`` of the OTLP/gRPC listener (for an OTLP exporter's endpoint)."""
        return None if self.grpc_port is None else f"{self.settings.host}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str | None:
        """``http://host:port`` (``https`` with TLS) of the OTLP/HTTP listener (traces at
        ``/v1/traces``)."""
        if self.http_port is None:
            return None
        return (
            f"{self.settings.security.scheme}://{_grpc_host(self.settings.host)}:{self.http_port}"
        )

    def health(self) -> HealthReport:
        """The gateway's health: its exporter's, judged as everywhere else (docs/operations.md),
        and unhealthy while shutting down; the receiver's counters are under ``gateway``, the
        cost processor's under ``pricing`` in ``extra``."""
        return self.health_reporter.report()

    def _loops(self) -> list[LoopStatus]:
        # gRPC's worker pool is gRPC's own (a failing call fails alone); the HTTP listener
        # is ours.
        loops = [self._http.loop.status()] if self._http is not None else []
        if self.cost_store is not None:
            loops.append(self.cost_store.loop_status())
        if self.budgets is not None:
            loops.extend(self.budgets.loop_statuses())
        return loops

    def _conditions(self, stats: ExportStats) -> list[tuple[HealthStatus, str]]:
        conditions: list[tuple[HealthStatus, str]] = []
        problems = self.cost_store.problems() if self.cost_store is not None else []
        if self.budgets is not None:
            problems += self.budgets.problems()
        conditions.extend((HealthStatus.DEGRADED, reason) for reason in problems)
        if self._shut_down or stats.shut_down:
            conditions.append((HealthStatus.UNHEALTHY, "shutting down"))
        if self.intake.refusing_for_spool(stats):
            conditions.append(
                (
                    HealthStatus.DEGRADED,
                    "spool at its high-water mark: new requests are refused for now",
                )
            )
        return conditions


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
