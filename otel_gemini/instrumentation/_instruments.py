"""The tracer, meters and settings one instrumentation run uses."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import metrics, trace

from otel_gemini._version import __version__
from otel_gemini.instrumentation._metric_queue import record_queued_on_collect
from otel_gemini.instrumentation._settings import InstrumentationSettings

SCOPE = "otel_gemini.instrumentation"
# Bucket boundaries advised by the GenAI semantic conventions.
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TOKEN_BUCKETS = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)


@dataclass(frozen=True)
class Instruments:
    """Everything an invocation needs to record itself."""

    tracer: trace.Tracer
    operation_duration: metrics.Histogram
    token_usage: metrics.Histogram
    time_to_first_chunk: metrics.Histogram
    settings: InstrumentationSettings

    @classmethod
    def create(
        cls,
        settings: InstrumentationSettings,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> Instruments:
        tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        # Reports nothing: its callback, which the SDK runs as each collection starts,
        # records the points still queued for the metrics worker (see _metric_queue).
        meter.create_observable_gauge(
            "otel_gemini.instrumentation.queued_metrics",
            callbacks=[record_queued_on_collect],
            description="Records the GenAI metric points still queued when a reader collects",
        )
        return cls(
            tracer=tracer,
            operation_duration=meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            ),
            token_usage=meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used",
                explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
            ),
            time_to_first_chunk=meter.create_histogram(
                "gen_ai.client.operation.time_to_first_chunk",
                unit="s",
                description="Time from the request to the first chunk of a streamed response",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            ),
            settings=settings,
        )
