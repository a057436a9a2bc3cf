"""Caller-thread time of a sampled-out Gemini call vs a recorded one, in the same run.

A call whose span a sampler did not record is still priced and written to the cost store
(``otel_gemini/_unrecorded.py``), but on the metrics worker: the application thread should
pay no more for it than for a recorded call, and barely more than for a sampled-out call with
no pipeline to hand it to. Same method as ``overhead.py`` (the real client over the in-process
fake Gemini transport, blocks of calls taking turns, median thread CPU time per call, medians
over rounds). Variants, each into its own SDK ``TracerProvider`` with the cost pipeline
``configure()`` builds (cost processor → cost store; the unrecorded-call sink registered) and a
real ``MeterProvider``:

- ``recorded``: ``ALWAYS_ON``;
- ``sampled out``: ``ALWAYS_OFF``, the sink registered (the calls reach the store);
- ``sampled out, no sink``: ``ALWAYS_OFF`` without it (what a user's own wiring gets).

Workloads: a plain call and a stream (``overhead.py``'s), and a long-running operation (on
google-genai 2+): a batch job created, then got finished with 20 inlined responses — on the
caller's thread, the create's span and a generation span per response, recorded when their
usage arrives (a sampled-out run hands each to the pipeline).

    python benchmarks/sampled_out.py [rounds] [calls-per-round]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from google import genai
from google.genai import batches
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler
from overhead import MODEL, UNINSTRUMENTED, USAGE, Variant, measure, workloads

from otel_gemini import CostSpanProcessor, GeminiInstrumentor
from otel_gemini._unrecorded import register_sink
from otel_gemini.aggregate import CostStore
from otel_gemini.instrumentation import flush_finished_calls
from otel_gemini.processing import UnrecordedPricing
from otel_gemini.testing import FakeGemini
from otel_gemini.testing.fake_gemini import BatchReply, JsonReply

RECORDED, SAMPLED_OUT, NO_SINK = "recorded", "sampled out", "sampled out, no sink"
BATCH_REQUESTS = 20
LATE = f"batch, {BATCH_REQUESTS} requests"
_JOB = "batches/bench"


def late_workload(fake: FakeGemini, client: genai.Client) -> tuple[object, Callable[[], object]]:
    """A batch job created, then got finished with its inlined responses: the reply to queue
    for the create (a job of a fixed name), and the call (which queues the get's reply)."""
    created = JsonReply(
        {"name": _JOB, "metadata": {"state": "BATCH_STATE_PENDING"}},
        rpcs=frozenset({"batchGenerateContent"}),
    )
    finished = BatchReply(_JOB, MODEL, responses=(("Done.", USAGE),) * BATCH_REQUESTS)
    source = [{"contents": [{"parts": [{"text": "Hi"}], "role": "user"}]}] * BATCH_REQUESTS

    def call() -> object:
        fake.add(finished)
        client.batches.create(model=MODEL, src=source)  # type: ignore[arg-type]
        return client.batches.get(name=_JOB)

    return created, call


def _pipeline(
    sampler: Sampler, db: Path, meter_provider: MeterProvider, sink: bool
) -> tuple[TracerProvider, CostStore]:
    provider = TracerProvider(sampler=sampler)
    store = CostStore(db)
    processor = CostSpanProcessor(store, meter_provider=meter_provider)
    provider.add_span_processor(processor)
    if sink:
        register_sink(provider, UnrecordedPricing(processor, provider.resource, store.add))
    return provider, store


def main() -> None:
    numbers = sys.argv[1:]
    rounds = int(numbers[0]) if numbers else 7
    calls = int(numbers[1]) if len(numbers) > 1 else 300
    fake = FakeGemini()
    client = fake.inprocess_client()
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    with tempfile.TemporaryDirectory() as directory:
        stores = []
        variants: dict[str, Variant] = {UNINSTRUMENTED: (lambda: None, lambda: None)}
        for name, sampler, sink in (
            (RECORDED, ALWAYS_ON, True),
            (SAMPLED_OUT, ALWAYS_OFF, True),
            (NO_SINK, ALWAYS_OFF, False),
        ):
            provider, store = _pipeline(
                sampler, Path(directory) / f"{len(stores)}.sqlite3", meter_provider, sink
            )
            stores.append(store)
            variants[name] = (
                lambda provider=provider: GeminiInstrumentor().instrument(
                    tracer_provider=provider, meter_provider=meter_provider
                ),
                lambda: GeminiInstrumentor().uninstrument(),
            )
        print(
            f"google-genai {genai.__version__}; {rounds} rounds x {calls} calls, in-process "
            "transport; µs added per call on the calling thread (CPU time) over uninstrumented"
        )
        print(f"{'workload':<18} {'bare':>6} {RECORDED:>9} {SAMPLED_OUT:>12} {NO_SINK:>21}")
        measured = workloads(client)
        if hasattr(batches, "_BatchJob_from_mldev"):  # Gemini API batch jobs: google-genai 2+
            measured[LATE] = late_workload(fake, client)
        for workload, (reply, call) in measured.items():
            for _ in range(50):  # warm-up
                fake.add(reply)  # type: ignore[arg-type]
                call()
            results = measure(fake, reply, call, variants, rounds, calls)
            median = {name: statistics.median(values) * 1e6 for name, values in results.items()}
            bare = median[UNINSTRUMENTED]
            added = {name: median[name] - bare for name in median if name != UNINSTRUMENTED}
            print(
                f"{workload:<18} {bare:6.0f} {added[RECORDED]:9.1f} {added[SAMPLED_OUT]:12.1f}"
                f" {added[NO_SINK]:21.1f}   sampled out / recorded "
                f"{added[SAMPLED_OUT] / added[RECORDED]:.2f}"
            )
        flush_finished_calls()  # the sampled-out calls still with the metrics worker
        for store in stores:
            store.force_flush()
        written = [store.stats()["written"] for store in stores]
        print(f"rows written (recorded, sampled out, no sink): {written}")
        for store in stores:
            store.shutdown()


if __name__ == "__main__":
    main()
