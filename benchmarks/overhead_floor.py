"""The least any instrumentation with otel-gemini's output can add to a plain call, measured.

The "floor" variant is a hand-written wrapper that makes exactly the OpenTelemetry SDK calls
otel-gemini makes for a plain ``generate_content``, with the same attributes, all prebuilt:
a CLIENT span started with the request attributes and made current around the request, the
response attributes set at once, the span ended, and the three metric points
(``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage`` input and output)
recorded. It reads nothing from the request or the response, so what it adds is the SDK's
share (plus the two wrapper layers); what otel-gemini adds beyond it is its own work. The
attributes are copied from a span and metric points otel-gemini recorded for the same call.
Same harness as ``overhead.py`` (same client, providers, blocks and rounds).

    python benchmarks/overhead_floor.py [rounds] [calls-per-round] [--parts]

``--parts`` adds variants of the floor that leave parts of its work out (the wrapper layers
alone; a bare span; made current; with its attributes; the metric points alone), to see by
difference what each costs.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Mapping
from typing import Any

from google import genai
from google.genai import models
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from overhead import MODEL, PLAIN_REPLY, Variant, measure, providers
from wrapt import wrap_function_wrapper

from otel_gemini import GeminiInstrumentor
from otel_gemini import _attributes as attrs
from otel_gemini.testing import FakeGemini

# The attributes otel-gemini knows before the request; the rest come from the response.
_REQUEST_KEYS = (
    attrs.GEN_AI_PROVIDER_NAME,
    attrs.SERVER_ADDRESS,
    attrs.SERVER_PORT,
    attrs.GEN_AI_OPERATION_NAME,
    attrs.GEN_AI_REQUEST_MODEL,
)
Attributes = Mapping[str, Any]
PARTS = frozenset({"span", "attach", "attributes", "metrics"})
# With --parts: the floor with parts of its work left out, each part's cost by difference.
BREAKDOWN: dict[str, frozenset[str]] = {
    "wrappers only": frozenset(),
    "+ bare span": frozenset({"span"}),
    "+ attach": frozenset({"span", "attach"}),
    "+ span attributes": frozenset({"span", "attach", "attributes"}),
    "metrics only": frozenset({"metrics"}),
}


def _recorded_by_otel_gemini(
    fake: FakeGemini, client: genai.Client
) -> tuple[str, Attributes, list[Attributes]]:
    """The span name, span attributes and metric points' attributes of one plain call."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    GeminiInstrumentor().instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    try:
        fake.add(PLAIN_REPLY)
        client.models.generate_content(model=MODEL, contents="hello")
    finally:
        GeminiInstrumentor().uninstrument()
    [span] = exporter.get_finished_spans()
    data = reader.get_metrics_data()
    assert data is not None
    points: list[Attributes] = [
        dict(point.attributes or {})
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        for point in metric.data.data_points
    ]
    return span.name, dict(span.attributes or {}), points


def _floor(
    fake: FakeGemini,
    client: genai.Client,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    parts: frozenset[str] = PARTS,
) -> Variant:
    """The floor wrapper, doing only ``parts`` of its work (for the breakdown)."""
    name, span_attributes, points = _recorded_by_otel_gemini(fake, client)
    by_token_type = {point.get(attrs.GEN_AI_TOKEN_TYPE): point for point in points}
    duration_point, input_point, output_point = (
        by_token_type[t] for t in (None, "input", "output")
    )
    request = {key: span_attributes[key] for key in _REQUEST_KEYS if key in span_attributes}
    response = {key: value for key, value in span_attributes.items() if key not in request}
    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    duration = meter.create_histogram("floor.operation.duration", unit="s")
    tokens = meter.create_histogram("floor.token.usage", unit="{token}")
    input_tokens = span_attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS]
    output_tokens = span_attributes[attrs.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert isinstance(input_tokens, int) and isinstance(output_tokens, int)

    def passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return wrapped(*args, **kwargs)  # otel-gemini's AFC-parent layer, minus its check

    with_span, with_attach = "span" in parts, "attach" in parts
    start_attributes = request if "attributes" in parts else None
    end_attributes = response if "attributes" in parts else None
    with_metrics = "metrics" in parts

    def request_span(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        started = time.perf_counter()
        if with_span:
            span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=start_attributes)
        if with_span and with_attach:
            token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = wrapped(*args, **kwargs)
        finally:
            if with_span and with_attach:
                otel_context.detach(token)
        if with_span:
            if end_attributes:
                span.set_attributes(end_attributes)
            span.end()
        if with_metrics:
            duration.record(time.perf_counter() - started, duration_point)
            tokens.record(input_tokens, input_point)
            tokens.record(output_tokens, output_point)
        return result

    def install() -> None:
        wrap_function_wrapper(models.__name__, "Models.generate_content", passthrough)
        wrap_function_wrapper(models.__name__, "Models._generate_content", request_span)

    def uninstall() -> None:
        unwrap(models.Models, "generate_content")
        unwrap(models.Models, "_generate_content")

    return install, uninstall


def main() -> None:
    breakdown = "--parts" in sys.argv
    numbers = [argument for argument in sys.argv[1:] if argument != "--parts"]
    rounds = int(numbers[0]) if numbers else 7
    calls = int(numbers[1]) if len(numbers) > 1 else 300
    tracer_provider, meter_provider = providers()
    fake = FakeGemini()
    client = fake.inprocess_client()
    variants: dict[str, Variant] = {
        "uninstrumented": (lambda: None, lambda: None),
        **{
            label: _floor(fake, client, tracer_provider, meter_provider, parts)
            for label, parts in (BREAKDOWN.items() if breakdown else ())
        },
        "floor": _floor(fake, client, tracer_provider, meter_provider),
        "otel-gemini": (
            lambda: GeminiInstrumentor().instrument(
                tracer_provider=tracer_provider, meter_provider=meter_provider
            ),
            lambda: GeminiInstrumentor().uninstrument(),
        ),
        "official": (
            lambda: GoogleGenAiSdkInstrumentor().instrument(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                skip_dep_check=True,
            ),
            lambda: GoogleGenAiSdkInstrumentor().uninstrument(),
        ),
    }

    def call() -> object:
        return client.models.generate_content(model=MODEL, contents="hello")

    for _ in range(50):  # warm-up
        fake.add(PLAIN_REPLY)
        call()
    results = measure(fake, PLAIN_REPLY, call, variants, rounds, calls)
    median = {name: statistics.median(values) * 1e6 for name, values in results.items()}
    added = {name: median[name] - median["uninstrumented"] for name in variants}
    print(f"generate_content, {rounds} rounds x {calls} calls, in-process transport:")
    print(f"  uninstrumented {median['uninstrumented']:.0f} µs/call")
    for name in (*(BREAKDOWN if breakdown else ()), "floor", "otel-gemini", "official"):
        ratio = added[name] / added["official"]
        print(f"  {name:<17} adds {added[name]:7.1f} µs/call  ({ratio:.2f} of official)")
    print(
        f"  otel-gemini's own work beyond the floor: {added['otel-gemini'] - added['floor']:.1f} µs"
    )


if __name__ == "__main__":
    main()
