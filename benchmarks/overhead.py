"""Time added per Gemini call by our instrumentation vs the official one, in the same run.

The real google-genai client talks to the fake Gemini through an in-process transport (no
sockets), so the measured differences are instrumentation, not network. Two settings, each
with its own providers: a real SDK ``MeterProvider`` (an in-memory reader), and no-op metrics
(the API's ``NoOpMeterProvider``); spans go to an SDK ``TracerProvider`` with a no-op exporter
in both. In each, the variants are: uninstrumented; the floor (plain call only: a hand-written
wrapper making just the SDK calls for one span with otel-gemini's attributes, all prebuilt,
made current around the request: what any instrumentation with our output pays at least);
otel-gemini; and the official ``opentelemetry-instrumentation-google-genai`` (dependency check
skipped: it declares google-genai<3). A round's calls run in blocks of 25, the variants taking
turns (installed, two unmeasured warm-up calls, the block, uninstalled) in an order that
rotates, so a change in the machine's load weighs on all alike. Each round takes each
variant's median per-call CPU time of the calling thread (thread CPU time: what the
application's thread pays, and less disturbed by other processes on a shared machine than
wall-clock time; work handed to background threads is not in it, by design); the reported
figures are the medians over rounds.

    python benchmarks/overhead.py [rounds] [calls-per-round] [--processes N]

Where a process's memory happens to lie moves its figures by several per cent from one run
to the next, more than rounds within a run vary; ``--processes N`` runs the measurement in N
fresh processes one after another and reports the median over them, with each one's ratio.

Targets (issue 18): a plain call adds at most half of what the official adds in both
settings or, if the floor itself is above that, at most 1.15 times the floor; a stream adds
at most half of what the official adds.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google import genai
from google.genai import models
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from wrapt import wrap_function_wrapper

from otel_gemini import GeminiInstrumentor
from otel_gemini import _attributes as attrs
from otel_gemini.testing import FakeGemini, ScriptedUsage, stream_reply, text_reply

MODEL = "gemini-2.5-flash"
USAGE = ScriptedUsage(
    prompt=1200, cached=1000, candidates=300, thoughts=150, prompt_by_modality={"TEXT": 1200}
)
PLAIN_REPLY = text_reply("Hello there, this is a reply.", usage=USAGE)
STREAM_REPLY = stream_reply([f"chunk {i} " for i in range(20)], usage=USAGE)
PLAIN = "generate_content"
STREAM = "stream, 20 chunks"
UNINSTRUMENTED, FLOOR, OURS, OFFICIAL = "uninstrumented", "floor", "otel-gemini", "official"
SETTINGS = {"real MeterProvider": True, "no-op metrics": False}
BLOCK = 25  # calls measured per variant before switching to the next
BLOCK_WARM_UP = 2  # calls after each switch, not measured


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _call_seconds(
    fake: FakeGemini, reply: object, call: Callable[[], object], calls: int
) -> list[float]:
    samples = []
    for _ in range(calls):
        fake.add(reply)  # type: ignore[arg-type]
        started = time.thread_time()
        call()
        samples.append(time.thread_time() - started)
    return samples


Variant = tuple[Callable[[], None], Callable[[], None]]  # install, uninstall


def measure(
    fake: FakeGemini,
    reply: object,
    call: Callable[[], object],
    variants: dict[str, Variant],
    rounds: int,
    calls: int,
) -> dict[str, list[float]]:
    """Each variant's median CPU seconds per call, one per round."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(rounds):
        # The round's calls run in blocks, each variant's in turn, so a change in the
        # machine's load mid-round weighs on all alike; the order rotates too.
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for block in range(-(-calls // BLOCK)):
            shift = (round_ + block) % len(names)
            for name in names[shift:] + names[:shift]:
                install, uninstall = variants[name]
                install()
                try:
                    _call_seconds(fake, reply, call, BLOCK_WARM_UP)
                    size = min(BLOCK, calls - block * BLOCK)
                    samples[name].extend(_call_seconds(fake, reply, call, size))
                finally:
                    uninstall()
        for name, values in samples.items():
            results[name].append(statistics.median(values))
    return results


def providers(real_metrics: bool = True) -> tuple[TracerProvider, MeterProvider]:
    """The SDK providers every variant records into: spans to a no-op exporter; metrics read
    in memory, or (``real_metrics=False``) the API's no-op meter provider."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(_Discard()))
    if not real_metrics:
        return tracer_provider, NoOpMeterProvider()  # type: ignore[return-value]
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def workloads(client: genai.Client) -> dict[str, tuple[object, Callable[[], object]]]:
    """The measured calls, by name: the reply to queue for each call, and the call."""
    return {
        PLAIN: (
            PLAIN_REPLY,
            lambda: client.models.generate_content(model=MODEL, contents="hello"),
        ),
        STREAM: (
            STREAM_REPLY,
            lambda: sum(
                1 for _ in client.models.generate_content_stream(model=MODEL, contents="hi")
            ),
        ),
    }


# --- the floor ---------------------------------------------------------------------------

# The attributes otel-gemini knows before the request; the rest come from the response.
_REQUEST_KEYS = (
    attrs.GEN_AI_PROVIDER_NAME,
    attrs.SERVER_ADDRESS,
    attrs.SERVER_PORT,
    attrs.GEN_AI_OPERATION_NAME,
    attrs.GEN_AI_REQUEST_MODEL,
)
Attributes = Mapping[str, Any]
SPAN_PARTS = frozenset({"span", "attach", "attributes"})
"""The floor: one span with otel-gemini's attributes, made current around the request."""


def recorded_by_otel_gemini(
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


def floor_variant(
    fake: FakeGemini,
    client: genai.Client,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    parts: frozenset[str] = SPAN_PARTS,
) -> Variant:
    """A hand-written wrapper making only the SDK calls of ``parts`` of otel-gemini's work
    for a plain call, with the attributes otel-gemini recorded, all prebuilt: ``span`` (start
    and end one), ``attach`` (made current around the request), ``attributes`` (the span's),
    ``metrics`` (the three metric points, on the caller's thread)."""
    name, span_attributes, points = recorded_by_otel_gemini(fake, client)
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


def instrumentors(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> dict[str, Variant]:
    """Uninstrumented, otel-gemini and the official instrumentation, into these providers."""
    return {
        UNINSTRUMENTED: (lambda: None, lambda: None),
        OURS: (
            lambda: GeminiInstrumentor().instrument(
                tracer_provider=tracer_provider, meter_provider=meter_provider
            ),
            lambda: GeminiInstrumentor().uninstrument(),
        ),
        OFFICIAL: (
            lambda: GoogleGenAiSdkInstrumentor().instrument(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                skip_dep_check=True,
            ),
            lambda: GoogleGenAiSdkInstrumentor().uninstrument(),
        ),
    }


# --- the run -----------------------------------------------------------------------------

Figures = dict[str, dict[str, dict[str, float]]]
"""µs per call by setting, workload and variant."""


def run(rounds: int, calls: int) -> Figures:
    """Each setting's and workload's median µs per call for each variant, in this process."""
    figures: Figures = {}
    fake = FakeGemini()
    client = fake.inprocess_client()
    for setting, real_metrics in SETTINGS.items():
        tracer_provider, meter_provider = providers(real_metrics)
        base = instrumentors(tracer_provider, meter_provider)
        figures[setting] = {}
        for workload, (reply, call) in workloads(client).items():
            variants = dict(base)
            if workload == PLAIN:
                variants[FLOOR] = floor_variant(fake, client, tracer_provider, meter_provider)
            for _ in range(50):  # warm-up
                fake.add(reply)  # type: ignore[arg-type]
                call()
            results = measure(fake, reply, call, variants, rounds, calls)
            figures[setting][workload] = {
                name: statistics.median(values) * 1e6 for name, values in results.items()
            }
    return figures


def _verdict(workload: str, added: Mapping[str, float]) -> tuple[float, str]:
    """The ratio to the official's added time and whether it meets the workload's target."""
    ratio = added[OURS] / added[OFFICIAL]
    if ratio <= 0.5:
        return ratio, "met (<= 0.50 of official)"
    if workload == PLAIN and FLOOR in added:
        floor_ratio = added[FLOOR] / added[OFFICIAL]
        if floor_ratio > 0.5:
            within = added[OURS] / added[FLOOR]
            status = "met" if within <= 1.15 else "MISSED"
            return ratio, f"{status} (floor at {floor_ratio:.2f}: ours {within:.2f}x floor <= 1.15)"
    return ratio, "MISSED (target <= 0.50 of official)"


def report(runs: list[Figures]) -> None:
    """Print one table of medians over ``runs`` (one per process), each run's ratio."""
    header = (
        f"{'setting':<18} {'workload':<18} {'bare':>6} {'floor':>7} {'ours':>7} {'official':>8}"
    )
    print(
        f"\nµs per call (bare) and µs added per call (the rest), calling thread CPU time\n{header}"
    )
    verdicts = []
    for setting in runs[0]:
        for workload in runs[0][setting]:
            names = runs[0][setting][workload]
            median = {
                name: statistics.median(run[setting][workload][name] for run in runs)
                for name in names
            }
            added = {
                name: median[name] - median[UNINSTRUMENTED]
                for name in names
                if name != UNINSTRUMENTED
            }
            floor = f"{added[FLOOR]:7.1f}" if FLOOR in added else f"{'-':>7}"
            print(
                f"{setting:<18} {workload:<18} {median[UNINSTRUMENTED]:6.0f} {floor}"
                f" {added[OURS]:7.1f} {added[OFFICIAL]:8.1f}"
            )
            ratio, verdict = _verdict(workload, added)
            per_run = [
                (r[setting][workload][OURS] - r[setting][workload][UNINSTRUMENTED])
                / (r[setting][workload][OFFICIAL] - r[setting][workload][UNINSTRUMENTED])
                for r in runs
            ]
            each = " (processes: " + " ".join(f"{x:.2f}" for x in per_run) + ")"
            verdicts.append(
                f"{setting}, {workload}: ours/official {ratio:.2f}"
                + (f", ours/floor {added[OURS] / added[FLOOR]:.2f}" if FLOOR in added else "")
                + f" -> {verdict}"
                + (each if len(runs) > 1 else "")
            )
    print()
    for line in verdicts:
        print(line)


def main() -> None:
    arguments = sys.argv[1:]
    processes = 1
    if "--processes" in arguments:
        at = arguments.index("--processes")
        processes = int(arguments[at + 1])
        del arguments[at : at + 2]
    as_json = "--json" in arguments  # a child's output, for --processes
    numbers = [argument for argument in arguments if argument != "--json"]
    rounds = int(numbers[0]) if numbers else 7
    calls = int(numbers[1]) if len(numbers) > 1 else 300
    if as_json:
        print(json.dumps(run(rounds, calls)))
        return
    print(
        f"google-genai {genai.__version__}; {rounds} rounds x {calls} calls,"
        f" in-process transport, {processes} process(es)"
    )
    if processes == 1:
        runs = [run(rounds, calls)]
    else:
        child = [sys.executable, __file__, str(rounds), str(calls), "--json"]
        runs = [
            json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
            for _ in range(processes)
        ]
    report(runs)


if __name__ == "__main__":
    main()
