"""``configure()``: the whole pipeline from the environment in one call."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    ReadableSpan,
    Span,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)

from otel_gemini import _background
from otel_gemini._langfuse_sdk import LangfuseSdkGuard
from otel_gemini._langfuse_settings import langfuse_requested
from otel_gemini._trace_attributes import TraceAttributesSpanProcessor
from otel_gemini._unrecorded import register_sink, unregister_sink
from otel_gemini.aggregate import (
    CostStore,
    CostStoreOptions,
    CostStoreSettings,
    default_cost_db,
)
from otel_gemini.budgets import BudgetConfigError, BudgetRules, rules_from
from otel_gemini.export import ExporterOptions, LangfuseExporter
from otel_gemini.health import HealthReport, HealthReporter, HealthStatus
from otel_gemini.instrumentation import (
    GeminiInstrumentor,
    InstrumentationSettings,
    flush_finished_calls,
    internal_error_counts,
    metrics_loops,
)
from otel_gemini.pricing import PriceTable
from otel_gemini.processing import CostSpanProcessor, UnrecordedPricing

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from typing_extensions import Unpack

    from otel_gemini.budgets import BudgetEvaluator

_logger = logging.getLogger("otel_gemini")

_DEFAULT_TIMEOUT = 5.0

_active_lock = threading.Lock()
_active: Telemetry | None = None


class Telemetry:
    """The pipeline :func:`configure` set up, and the handle to flush, stop and check it.

    Its parts are there to read (``tracer_provider``, ``cost_processor``, ``exporter``,
    ``cost_store``, ``budgets``, ``health_reporter``); ``exporter`` and ``health_reporter``
    are ``None`` when Langfuse export is off, ``cost_store`` when the local store is off,
    ``budgets`` without budget rules.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider,
        owns_tracer_provider: bool,
        slot: _PipelineSlot,
        cost_processor: CostSpanProcessor,
        exporter: LangfuseExporter | None,
        cost_store: CostStore | None,
        health_reporter: HealthReporter,
        instrumentor: GeminiInstrumentor | None,
        auto: bool = False,
        budgets: BudgetEvaluator | None = None,
        unrecorded: UnrecordedPricing | None = None,
    ) -> None:
        self.tracer_provider: TracerProvider = tracer_provider
        self.budgets: BudgetEvaluator | None = budgets
        """The budget evaluator (``None`` without rules): ``budgets.force_flush()``,
        ``budgets.evaluate_now()``, ``budgets.stats()``."""
        self.cost_processor: CostSpanProcessor = cost_processor
        self.exporter: LangfuseExporter | None = exporter
        self.cost_store: CostStore | None = cost_store
        # One reporter answers every health question about this pipeline (health(), the
        # asgi_app() route, the spool's status.json); exposed only with an exporter.
        self._health = health_reporter
        self.health_reporter: HealthReporter | None = (
            health_reporter if exporter is not None else None
        )
        self._owns_tracer_provider = owns_tracer_provider
        self._slot = slot
        self._instrumentor = instrumentor
        self._auto = auto  # set up by opentelemetry-instrument, not by the app
        self._unrecorded = unrecorded
        self._lock = threading.Lock()
        self._shut_down = False
        # At a normal process end (multiprocessing workers too, which skip atexit), held
        # spans are released and everything is flushed; see docs/deployment.md.
        _background.at_exit(self._at_exit)

    def _at_exit(self, timeout: float) -> None:
        self.shutdown(timeout)

    @property
    def prices(self) -> PriceTable:
        """The price table spans are priced with."""
        return self.cost_processor.prices

    def force_flush(self, timeout: float = _DEFAULT_TIMEOUT) -> bool:
        """Sends every span finished so far to Langfuse and writes it to the cost store.

        Returns within ``timeout`` seconds whatever Langfuse does: ``True`` when everything
        got there in time, ``False`` otherwise (unsent spans stay in the spool and go later).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        done = True
        # Calls whose span was not recorded reach the cost store through the metrics worker.
        flush_finished_calls()
        for part in (self.exporter, self.cost_store):
            if part is not None:
                remaining = max(0.0, deadline - time.monotonic())
                done = part.force_flush(int(remaining * 1000)) and done
        if self.budgets is not None:  # after the store: it evaluates what the store wrote
            done = self.budgets.force_flush(max(0.0, deadline - time.monotonic())) and done
        return done

    def shutdown(self, timeout: float = _DEFAULT_TIMEOUT) -> None:
        """Stops the pipeline within ``timeout`` seconds, even with Langfuse down.

        Sends what it can in that time; the rest stays in the spool for the next start.
        Removes the instrumentation ``configure()`` added and shuts down the tracer provider
        if ``configure()`` created it. Idempotent.
        """
        global _active
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        deadline = time.monotonic() + max(0.0, timeout)
        if self._instrumentor is not None:
            self._instrumentor.uninstrument()
        # Calls whose span was not recorded go to the cost store while it is open.
        flush_finished_calls()
        if self._unrecorded is not None:
            unregister_sink(self.tracer_provider, self._unrecorded)
        # The Langfuse SDK's processor exports again from here on (a span ending meanwhile
        # may reach Langfuse twice, never not at all).
        self._slot.guard.detach()
        # Spans still waiting for their descendants go out now, while the exporter is open.
        self.cost_processor.release_held()
        # The exporter first and with the deadline: the provider's shutdown has none, and
        # reaches the exporter again only once it is already closed (a no-op).
        if self.exporter is not None:
            self.exporter.shutdown(max(0.0, deadline - time.monotonic()) * 1000)
        if self.cost_store is not None:
            self.cost_store.shutdown(max(0.0, deadline - time.monotonic()) * 1000)
        if self.budgets is not None:
            self.budgets.shutdown(max(0.0, deadline - time.monotonic()))
        self._slot.processors = ()
        if self._owns_tracer_provider:
            self.tracer_provider.shutdown()
        with _active_lock:
            if _active is self:
                _active = None

    def health(self) -> HealthReport:
        """Is telemetry flowing? Langfuse export's health (see docs/operations.md), with the
        pricing, cost store and instrumentation counters under ``extra``; the same report
        :meth:`asgi_app` serves."""
        return self._health.report()

    def asgi_app(self) -> Starlette:
        """The observability HTTP API over this pipeline (costs and latency from the local
        store or Langfuse, health from :meth:`health`'s reporter), to serve or mount. Starts
        building the local store's rollups in the background (see docs/answers-at-scale.md);
        until built, answers read the raw rows (exact)."""
        from otel_gemini.aggregate import CostAnswers
        from otel_gemini.server import observability_app

        db = self.cost_store.path if self.cost_store is not None else None
        budgets: Callable[[], Mapping[str, Any]] | None = None
        if self.budgets is not None:
            from otel_gemini.budgets import budget_status

            rules, path = self.budgets.rules, self.budgets.store_path
            budgets = lambda: budget_status(rules, path)  # noqa: E731
        answers = CostAnswers.from_env(db)
        if self.cost_store is not None and answers.local is not None:
            # One view of the rollups per store in this process: the writer's fold errors
            # and this build's are both in health. Built in the background: the first page
            # view reads the raw rows meanwhile instead of waiting for the build.
            answers.local.rollups = self.cost_store.rollups
            self.cost_store.rollups.start_building()
        return observability_app(answers, self._health, budgets=budgets)


def configure(
    *,
    service_name: str | None = None,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    prices: PriceTable | str | os.PathLike[str] | None = None,
    langfuse: bool | None = None,
    cost_store: bool | str | os.PathLike[str] = True,
    instrument: bool = True,
    capture_content: bool | None = None,
    health_probe: bool = True,
    environ: Mapping[str, str] | None = None,
    budgets: BudgetRules | str | os.PathLike[str] | Mapping[str, Any] | None = None,
    cost_store_options: CostStoreOptions | None = None,
    **exporter_options: Unpack[ExporterOptions],
) -> Telemetry:
    """Sets up tracing, Gemini instrumentation, pricing, Langfuse export and the local cost
    store in one call, from the environment, and returns the handle on it.

    The tracer provider is ``tracer_provider``, else the global one if it is an SDK
    provider (e.g. set up by ``opentelemetry-instrument``), else a new one (resource,
    sampler and limits from the standard ``OTEL_*`` variables) made global. On it:
    ``trace_attributes()`` stamping, then a :class:`CostSpanProcessor` feeding the Langfuse
    exporter's spooling processor and the :class:`~otel_gemini.aggregate.CostStore`.

    Langfuse export is on when ``langfuse`` is true, or (``None``) when any of
    ``LANGFUSE_PUBLIC_KEY``, ``LANGFUSE_SECRET_KEY``, ``LANGFUSE_BASE_URL`` /
    ``LANGFUSE_HOST`` (or the ``public_key`` / ``secret_key`` / ``base_url`` options) is
    set; a missing or malformed one then fails here with a message naming it.
    ``exporter_options`` go to :class:`LangfuseExporter` (``spool_dir``,
    ``spool_max_bytes``, …). ``prices``: a table or an override file (default
    ``OTEL_GEMINI_PRICES``). ``cost_store``: ``True`` (``OTEL_GEMINI_COST_DB`` or the
    default path), a path, or ``False``; ``cost_store_options`` go to the
    :class:`~otel_gemini.aggregate.CostStore` (``retention_days``, default
    ``OTEL_GEMINI_COST_RETENTION_DAYS`` or 90; queue bounds). ``capture_content`` overrides
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``. ``budgets``: budget rules (a
    :class:`~otel_gemini.budgets.BudgetRules`, a TOML file, or its parsed document; default
    ``OTEL_GEMINI_BUDGETS``), evaluated over the cost store (docs/budgets.md); a bad rule
    fails here, naming the rule and the key.

    A second call while a pipeline is configured logs a warning and returns that one. Under
    ``opentelemetry-instrument``, which configures the pipeline before the app runs (see
    ``docs/configuration.md``), the app's own call returns that pipeline: quietly, or with a
    warning naming the arguments it did not apply.
    """
    global _active
    with _active_lock:
        if _active is not None:
            if _active._auto:
                _warn_if_ignored(
                    service_name=service_name,
                    tracer_provider=tracer_provider,
                    meter_provider=meter_provider,
                    prices=prices,
                    langfuse=langfuse,
                    cost_store=cost_store if cost_store is not True else None,
                    instrument=None if instrument else False,
                    capture_content=capture_content,
                    health_probe=None if health_probe else False,
                    environ=environ,
                    budgets=budgets,
                    cost_store_options=cost_store_options,
                    **exporter_options,
                )
                return _active
            _logger.warning(
                "otel_gemini.configure() was called again; keeping the pipeline already "
                "configured (call its shutdown() first to configure a new one)"
            )
            return _active
        telemetry = _build(
            service_name=service_name,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            prices=prices,
            langfuse=langfuse,
            cost_store=cost_store,
            instrument=instrument,
            capture_content=capture_content,
            health_probe=health_probe,
            environ=os.environ if environ is None else environ,
            exporter_options=exporter_options,
            budgets=budgets,
            cost_store_options=cost_store_options or {},
        )
        _active = telemetry
        return telemetry


def _build(
    *,
    service_name: str | None,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    prices: PriceTable | str | os.PathLike[str] | None,
    langfuse: bool | None,
    cost_store: bool | str | os.PathLike[str],
    instrument: bool,
    capture_content: bool | None,
    health_probe: bool,
    environ: Mapping[str, str],
    exporter_options: ExporterOptions,
    auto: bool = False,
    budgets: BudgetRules | str | os.PathLike[str] | Mapping[str, Any] | bool | None = None,
    cost_store_options: CostStoreOptions | None = None,
) -> Telemetry:
    # Everything that can fail on bad configuration comes first, before anything starts.
    table = _price_table(prices, environ)
    rules = None if budgets is False or budgets is True else rules_from(budgets, environ)
    if rules is not None and cost_store is False:
        raise BudgetConfigError(
            "budgets (OTEL_GEMINI_BUDGETS / budgets=) are evaluated over the cost store, "
            "which is off (cost_store=False)"
        )
    store_settings = None
    if cost_store is not False:
        store_settings = CostStoreSettings.resolve(
            default_cost_db(environ) if cost_store is True else cost_store,
            environ=environ,
            **(cost_store_options or {}),
        )
        if rules is not None:
            rules.check_retention(
                store_settings.retention_days, "retention_days / OTEL_GEMINI_COST_RETENTION_DAYS"
            )
    # Resolved once, here (a bad setting fails before anything starts), and handed to the
    # instrumentor.
    instrumentation = (
        InstrumentationSettings.resolve(capture_content=capture_content) if instrument else None
    )
    export = langfuse if langfuse is not None else _langfuse_requested(environ, exporter_options)
    exporter: LangfuseExporter | None = None
    store: CostStore | None = None
    try:
        if export:
            exporter = LangfuseExporter(
                meter_provider=meter_provider, environ=environ, **exporter_options
            )
        elif exporter_options:
            raise TypeError(
                f"configure() got exporter options ({', '.join(sorted(exporter_options))}) "
                "but Langfuse export is off; set LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY "
                "or pass langfuse=True"
            )
        if store_settings is not None:
            store = CostStore(
                store_settings.path,
                retention_days=store_settings.retention_days or 0,  # 0: kept for ever
                max_queue=store_settings.max_queue,
                max_queue_bytes=store_settings.max_queue_bytes,
                batch_delay=store_settings.batch_delay,
                exported_to="Langfuse" if exporter is not None else None,
                # A call a sampler recorded without sampling is billed all the same.
                unsampled=True,
            )
    except BaseException:
        if exporter is not None:
            exporter.shutdown(0)
        raise

    provider, owned = _tracer_provider(tracer_provider, service_name)
    slot = _slot_on(provider)
    if auto:  # the slot forwards to them from now on: no span ends with nobody to take it
        slot.adopted += _take_span_processors(provider)
    downstream: list[SpanProcessor] = []
    if exporter is not None:
        downstream.append(exporter.span_processor())
    if store is not None:
        downstream.append(store)
    if slot.adopted:
        downstream.append(_Adopted(slot))
    if not downstream:
        _logger.info(
            "otel-gemini: Langfuse export and the cost store are both off; spans are priced "
            "for the tracer provider's other processors only"
        )
    fan_out = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]  # untyped SDK
    for processor in downstream:
        fan_out.add_span_processor(processor)
    cost_processor = CostSpanProcessor(fan_out, table, meter_provider=meter_provider)
    slot.processors = (TraceAttributesSpanProcessor(), cost_processor)
    # Calls whose span a sampler did not record: priced and stored all the same, never
    # exported (otel_gemini/_unrecorded.py).
    unrecorded = UnrecordedPricing(
        cost_processor, provider.resource, store.add if store is not None else None
    )
    register_sink(provider, unrecorded)
    # Beside the Langfuse SDK our spool is the one path to Langfuse (otel_gemini/_langfuse_sdk.py).
    slot.guard.attach(exporter.public_key if exporter is not None else None, lambda: slot.adopted)

    instrumentor: GeminiInstrumentor | None = None
    if instrument:
        candidate = GeminiInstrumentor()
        if candidate.is_instrumented_by_opentelemetry:
            _logger.info("otel-gemini: google-genai is already instrumented; leaving it as is")
        else:
            candidate.instrument(
                tracer_provider=provider,
                meter_provider=meter_provider,
                settings=instrumentation,
            )
            instrumentor = candidate

    evaluator: BudgetEvaluator | None = None
    if rules is not None and store is not None:
        from otel_gemini.budgets import BudgetEvaluator

        service = provider.resource.attributes.get("service.name")
        evaluator = BudgetEvaluator(
            rules,
            store.path,
            meter_provider=meter_provider,
            service_name=service if isinstance(service, str) else None,
        )
        store.add_commit_listener(evaluator.on_committed)

    sections: dict[str, Callable[[], object]] = {
        "pricing": cost_processor.stats,
        "instrumentation_errors": internal_error_counts,
    }
    if store is not None:
        sections["cost_store"] = store.stats
    if evaluator is not None:
        sections["budgets"] = evaluator.stats
    reporter = HealthReporter(
        exporter,
        probe=health_probe,
        sections=sections,
        # The metrics worker (instrumentation), the cost store's writer, the budget evaluator.
        loops=lambda: _loops(store, evaluator),
        conditions=(
            (lambda _: [(HealthStatus.DEGRADED, reason) for reason in _problems(store, evaluator)])
            if store is not None
            else None
        ),
    )
    return Telemetry(
        tracer_provider=provider,
        owns_tracer_provider=owned,
        slot=slot,
        cost_processor=cost_processor,
        exporter=exporter,
        cost_store=store,
        health_reporter=reporter,
        instrumentor=instrumentor,
        auto=auto,
        budgets=evaluator,
        unrecorded=unrecorded,
    )


def _loops(
    store: CostStore | None, evaluator: BudgetEvaluator | None
) -> list[_background.LoopStatus]:
    loops = list(metrics_loops())
    if store is not None:
        loops.append(store.loop_status())
    if evaluator is not None:
        loops.extend(evaluator.loop_statuses())
    return loops


def _problems(store: CostStore, evaluator: BudgetEvaluator | None) -> list[str]:
    return store.problems() + (evaluator.problems() if evaluator is not None else [])


def configure_under_auto_instrumentation(
    *, cost_store: bool = True, budgets: bool = True
) -> Telemetry | None:
    """The pipeline ``opentelemetry-instrument`` gets (its ``opentelemetry_post_instrument``
    hook, after the configurator and every instrumentor ran): ``configure()`` on the global
    provider, with the span processors the configurator put there for ``OTEL_TRACES_EXPORTER``
    moved behind the cost processor, so each exporter gets the priced span and each span is
    priced once. ``None`` when the app's process already has a pipeline."""
    global _active
    with _active_lock:
        if _active is not None:
            return None
        # The loader already ran the instrumentors: ours unless the user disabled it.
        telemetry = _build(
            service_name=None,
            tracer_provider=None,
            meter_provider=None,
            prices=None,
            langfuse=None,
            cost_store=cost_store,
            instrument=False,
            capture_content=None,
            health_probe=True,
            environ=os.environ,
            exporter_options={},
            auto=True,
            budgets=None if budgets else False,  # None: OTEL_GEMINI_BUDGETS
        )
        _active = telemetry
        return telemetry


def _take_span_processors(provider: TracerProvider) -> tuple[SpanProcessor, ...]:
    """Removes and returns the provider's span processors (but our slot).

    The SDK has no public way to remove a processor, nor to put one in front of those a
    configurator added; its multi-processor keeps them in a tuple replaced under its lock,
    which is what ``add_span_processor`` does too.
    """
    active = getattr(provider, "_active_span_processor", None)
    lock = getattr(active, "_lock", None)
    current = getattr(active, "_span_processors", None)
    if lock is None or not isinstance(current, tuple):
        _logger.warning(
            "otel-gemini: cannot put the cost processor in front of the OTEL_TRACES_EXPORTER "
            "exporters on this OpenTelemetry SDK; they get unpriced spans (Langfuse and the "
            "cost store are priced)"
        )
        return ()
    with lock:
        processors: tuple[SpanProcessor, ...] = active._span_processors  # type: ignore[union-attr]
        kept = tuple(p for p in processors if isinstance(p, _PipelineSlot))
        active._span_processors = kept  # type: ignore[union-attr]
    return tuple(p for p in processors if not isinstance(p, _PipelineSlot))


def _warn_if_ignored(**given: Any) -> None:
    ignored = sorted(name for name, value in given.items() if value is not None)
    if not ignored:
        _logger.debug("otel_gemini.configure(): using the pipeline opentelemetry-instrument set up")
        return
    _logger.warning(
        "otel_gemini.configure() was called under opentelemetry-instrument, which already "
        "configured the pipeline from the environment; keeping it, without %s. Set them "
        "through the environment (docs/configuration.md), or set "
        "OTEL_GEMINI_AUTO_CONFIGURE=false to configure the pipeline in the app only.",
        ", ".join(ignored),
    )


class _Adopted(SpanProcessor):
    """The processors a configurator had put on the provider, fed by the cost processor.

    Shutdown is the slot's (it also reaches them when no pipeline is configured).
    """

    def __init__(self, slot: _PipelineSlot) -> None:
        self._slot = slot

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self._slot.adopted:
            processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        for processor in self._slot.adopted:
            hook = getattr(processor, "_on_ending", None)
            if hook is not None:
                hook(span)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._slot.adopted:
            processor.on_end(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return _flush_all(self._slot.adopted, timeout_millis)


def _flush_all(processors: tuple[SpanProcessor, ...], timeout_millis: int) -> bool:
    deadline = time.monotonic() + max(0, timeout_millis) / 1000
    done = True
    for processor in processors:
        remaining = int(max(0.0, deadline - time.monotonic()) * 1000)
        done = processor.force_flush(remaining) and done
    return done


class _PipelineSlot(SpanProcessor):
    """Where a pipeline's processors sit on a tracer provider.

    A provider cannot remove a processor, so each provider gets one slot, emptied by
    ``Telemetry.shutdown()`` and refilled by the next ``configure()``: configuring again
    (tests, reloads) never leaves closed pipelines copying every span.
    """

    def __init__(self, provider: TracerProvider) -> None:
        self.processors: tuple[SpanProcessor, ...] = ()
        # Stops the Langfuse SDK's span processor exporting what the pipeline delivers; it
        # may be added after us (a lazy get_client()), so every span start and end checks.
        self.guard = LangfuseSdkGuard(provider)
        # Processors taken off the provider to sit behind the cost processor (under
        # opentelemetry-instrument: its OTEL_TRACES_EXPORTER exporters). With no pipeline
        # configured they get the spans directly, as they did before.
        self.adopted: tuple[SpanProcessor, ...] = ()
        self._guard_failed = False

    def _check_guard(self) -> None:
        # On every span start and end, in the app's thread: a failure never reaches the app
        # (logged once; the SDK's processor then exports as it would without us).
        try:
            self.guard.check()
        except Exception:
            if not self._guard_failed:
                self._guard_failed = True
                _logger.warning(
                    "otel-gemini: checking for the Langfuse SDK's span processor failed "
                    "(logged once); spans it exports may reach Langfuse twice",
                    exc_info=True,
                )

    def _current(self) -> tuple[SpanProcessor, ...]:
        return self.processors or self.adopted

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._check_guard()
        for processor in self._current():
            processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        for processor in self._current():
            hook = getattr(processor, "_on_ending", None)
            if hook is not None:
                hook(span)

    def on_end(self, span: ReadableSpan) -> None:
        self._check_guard()
        for processor in self._current():
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()
        for processor in self.adopted:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return _flush_all(self._current(), timeout_millis)


_slots: weakref.WeakKeyDictionary[TracerProvider, _PipelineSlot] = weakref.WeakKeyDictionary()


def _slot_on(provider: TracerProvider) -> _PipelineSlot:
    slot = _slots.get(provider)
    if slot is None:
        slot = _slots[provider] = _PipelineSlot(provider)
        provider.add_span_processor(slot)
    return slot


def _price_table(
    prices: PriceTable | str | os.PathLike[str] | None, environ: Mapping[str, str]
) -> PriceTable:
    if isinstance(prices, PriceTable):
        return prices
    if prices is not None:
        return PriceTable.load(Path(prices))
    return PriceTable.from_env(environ)


def _langfuse_requested(environ: Mapping[str, str], options: ExporterOptions) -> bool:
    return langfuse_requested(
        environ,
        base_url=options.get("base_url"),
        public_key=options.get("public_key"),
        secret_key=options.get("secret_key"),
    )


def _tracer_provider(
    given: TracerProvider | None, service_name: str | None
) -> tuple[TracerProvider, bool]:
    if given is not None:
        return given, False
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current, False
    attributes = {"service.name": service_name} if service_name else {}
    # No atexit of its own: Telemetry.shutdown() shuts it down, within our one exit deadline
    # (the SDK's handler, registered after ours, would run first and shut the exporter and
    # the cost store down with its own, longer timeouts).
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    trace.set_tracer_provider(provider)
    return provider, True
