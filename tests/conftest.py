"""Shared fixtures: a real OTel SDK pipeline recording spans and metrics in memory."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from collector_harness import build_collector
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_gemini import CostSpanProcessor, GeminiInstrumentor
from otel_gemini.export import LangfuseExporter, RetryPolicy
from otel_gemini.instrumentation import _internal_errors
from otel_gemini.testing import FakeGemini, FakeLangfuse


@dataclass
class Recorded:
    """What an in-memory OTel SDK pipeline has recorded."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    exporter: InMemorySpanExporter
    metric_reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def spans_named(self, prefix: str) -> list[ReadableSpan]:
        return [span for span in self.spans() if (span.name or "").startswith(prefix)]

    def metric_points(self, name: str) -> list[object]:
        data = self.metric_reader.get_metrics_data()
        points: list[object] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


@pytest.fixture
def priced(fake_gemini: FakeGemini) -> Iterator[InMemorySpanExporter]:
    """Our instrumentation into a TracerProvider whose spans CostSpanProcessor prices on the
    way to an in-memory exporter."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(SimpleSpanProcessor(exporter)))
    GeminiInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        GeminiInstrumentor().uninstrument()
        provider.shutdown()


@pytest.fixture(autouse=True)
def _internal_errors_logged_afresh() -> None:
    """Each test sees instrumentation errors logged "once" afresh: which test of a worker
    process first hit a place would otherwise decide which one sees its log."""
    _internal_errors.INCIDENTS.forget_logged()


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    """A TracerProvider and MeterProvider recording into memory (not set globally)."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Recorded(tracer_provider, meter_provider, exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def instrumented(recorded: Recorded) -> Iterator[Recorded]:
    """``recorded``, with google-genai instrumented by ``GeminiInstrumentor`` for the test."""
    from otel_gemini import GeminiInstrumentor

    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(
        tracer_provider=recorded.tracer_provider, meter_provider=recorded.meter_provider
    )
    try:
        yield recorded
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def exporter_retry() -> RetryPolicy:
    """How fast the exporters of ``make_exporter`` retry (a test module may override it)."""
    return RetryPolicy(initial_backoff=0.02, max_backoff=0.2, pause_interval=0.3)


@pytest.fixture
def make_exporter(
    tmp_path: Path, fake_langfuse: FakeLangfuse, exporter_retry: RetryPolicy
) -> Iterator[Callable[..., LangfuseExporter]]:
    """Makes LangfuseExporters sending to ``fake_langfuse`` with a spool in ``tmp_path``
    (keyword arguments override); shuts them down after the test."""
    made: list[LangfuseExporter] = []

    def make(**overrides: object) -> LangfuseExporter:
        settings: dict[str, object] = {
            **fake_langfuse.exporter_settings(),
            "spool_dir": tmp_path / "spool",
            "retry": exporter_retry,
            "environ": {},
            **overrides,
        }
        exporter = LangfuseExporter(**settings)  # type: ignore[arg-type]
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.shutdown(timeout_millis=500)


@functools.cache
def _collector() -> tuple[Path | None, str]:
    return build_collector()


@pytest.fixture(scope="session")
def collector_binary() -> Path:
    """The OpenTelemetry Collector built by collector-config/build-collector.sh (``make
    collector`` builds it first in CI); skips the test where it cannot be built."""
    binary, why = _collector()
    if binary is None:
        pytest.skip(f"no OpenTelemetry Collector: {why}")
    return binary
