"""Time added per Gemini call by our instrumentation vs the official one, in the same run.

The real google-genai client talks to the fake Gemini through an in-process transport (no
sockets), so the measured differences are instrumentation, not network. Each round measures
uninstrumented, otel-gemini and the official ``opentelemetry-instrumentation-google-genai``
(dependency check skipped: it declares google-genai<3) with the same client, the same SDK
TracerProvider (a no-op exporter) and MeterProvider. A round's calls run in blocks of 25, the
three variants taking turns (installed, two unmeasured warm-up calls, the block, uninstalled)
in an order that rotates, so a change in the machine's load weighs on all three alike. Each
round takes each variant's median per-call CPU time of the calling thread (thread CPU time, so
other processes on a shared machine disturb the figures less than wall-clock time would); the
reported figures are the medians over rounds.

    python benchmarks/overhead.py [rounds] [calls-per-round] [--processes N]

Where a process's memory happens to lie moves its figures by several per cent from one run
to the next, more than rounds within a run vary; ``--processes N`` runs the measurement in N
fresh processes one after another and reports the median over them, with each one's ratio.

Target (issue 2): ours adds at most half of what the official adds, with our full attribute set.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from google import genai
from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_gemini import GeminiInstrumentor
from otel_gemini.testing import FakeGemini, ScriptedUsage, stream_reply, text_reply

MODEL = "gemini-2.5-flash"
USAGE = ScriptedUsage(
    prompt=1200, cached=1000, candidates=300, thoughts=150, prompt_by_modality={"TEXT": 1200}
)
PLAIN_REPLY = text_reply("Hello there, this is a reply.", usage=USAGE)
STREAM_REPLY = stream_reply([f"chunk {i} " for i in range(20)], usage=USAGE)
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


def providers() -> tuple[TracerProvider, MeterProvider]:
    """The SDK providers every variant records into: spans to a no-op exporter, metrics read
    in memory."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(_Discard()))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


def workloads(client: genai.Client) -> dict[str, tuple[object, Callable[[], object]]]:
    """The measured calls, by name: the reply to queue for each call, and the call."""
    return {
        "generate_content": (
            PLAIN_REPLY,
            lambda: client.models.generate_content(model=MODEL, contents="hello"),
        ),
        "stream, 20 chunks": (
            STREAM_REPLY,
            lambda: sum(
                1 for _ in client.models.generate_content_stream(model=MODEL, contents="hi")
            ),
        ),
    }


def run(rounds: int, calls: int) -> dict[str, dict[str, float]]:
    """Each workload's median µs per call for each variant, measured in this process."""
    tracer_provider, meter_provider = providers()
    fake = FakeGemini()
    client = fake.inprocess_client()
    variants: dict[str, Variant] = {
        "uninstrumented": (lambda: None, lambda: None),
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
    figures: dict[str, dict[str, float]] = {}
    for workload, (reply, call) in workloads(client).items():
        for _ in range(50):  # warm-up
            fake.add(reply)  # type: ignore[arg-type]
            call()
        results = measure(fake, reply, call, variants, rounds, calls)
        figures[workload] = {
            name: statistics.median(values) * 1e6 for name, values in results.items()
        }
    return figures


def _added(figures: dict[str, float]) -> tuple[float, float]:
    """µs per call added by otel-gemini and by the official instrumentation."""
    bare = figures["uninstrumented"]
    return figures["otel-gemini"] - bare, figures["official"] - bare


def report(runs: list[dict[str, dict[str, float]]]) -> None:
    """Print each workload's medians over ``runs`` (one per process) and each run's ratio."""
    for workload in runs[0]:
        median = {
            name: statistics.median(run[workload][name] for run in runs)
            for name in runs[0][workload]
        }
        ours, official = _added(median)
        per_run = [ours_ / official_ for ours_, official_ in (_added(r[workload]) for r in runs)]
        print(f"\n{workload}: uninstrumented {median['uninstrumented']:.0f} µs/call")
        print(f"  otel-gemini adds {ours:7.1f} µs/call")
        print(f"  official    adds {official:7.1f} µs/call")
        print(f"  ratio ours/official: {ours / official:.2f}  (target <= 0.50)")
        if len(runs) > 1:
            print("  each process: " + " ".join(f"{ratio:.2f}" for ratio in per_run))


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
