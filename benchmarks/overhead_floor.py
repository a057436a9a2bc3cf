"""The least any instrumentation with otel-gemini's output can add to a plain call, measured.

The "floor" variant (``overhead.floor_variant``) is a hand-written wrapper that makes exactly
the OpenTelemetry SDK calls otel-gemini makes on the application's thread for a plain
``generate_content``, with the same attributes, all prebuilt: a CLIENT span started with the
request attributes and made current around the request, the response attributes set at once,
the span ended. (otel-gemini records its metric points on a background worker; "floor +
metrics" adds them on the caller's thread, as the official instrumentation does.) It reads
nothing from the request or the response, so what it adds is the SDK's share (plus the two
wrapper layers); what otel-gemini adds beyond it is its own work. The attributes are copied
from a span otel-gemini recorded for the same call. Same harness as ``overhead.py`` (same
client, providers, blocks and rounds; real MeterProvider).

    python benchmarks/overhead_floor.py [rounds] [calls-per-round] [--parts]

``--parts`` adds variants of the floor that leave parts of its work out (the wrapper layers
alone; a bare span; made current), the metric points alone, and the floor plus the metric
points, to see by difference what each costs.
"""

from __future__ import annotations

import statistics
import sys

from overhead import (
    FLOOR,
    MODEL,
    OFFICIAL,
    OURS,
    PLAIN_REPLY,
    SPAN_PARTS,
    UNINSTRUMENTED,
    Variant,
    floor_variant,
    instrumentors,
    measure,
    providers,
)

from otel_gemini.testing import FakeGemini

# With --parts: the floor with parts of its work left out, each part's cost by difference.
BREAKDOWN: dict[str, frozenset[str]] = {
    "wrappers only": frozenset(),
    "+ bare span": frozenset({"span"}),
    "+ attach": frozenset({"span", "attach"}),
    "metrics only": frozenset({"metrics"}),
    "floor + metrics": SPAN_PARTS | {"metrics"},
}


def main() -> None:
    breakdown = "--parts" in sys.argv
    numbers = [argument for argument in sys.argv[1:] if argument != "--parts"]
    rounds = int(numbers[0]) if numbers else 7
    calls = int(numbers[1]) if len(numbers) > 1 else 300
    tracer_provider, meter_provider = providers()
    fake = FakeGemini()
    client = fake.inprocess_client()
    base = instrumentors(tracer_provider, meter_provider)
    variants: dict[str, Variant] = {
        UNINSTRUMENTED: base[UNINSTRUMENTED],
        **{
            label: floor_variant(fake, client, tracer_provider, meter_provider, parts)
            for label, parts in (BREAKDOWN.items() if breakdown else ())
        },
        FLOOR: floor_variant(fake, client, tracer_provider, meter_provider),
        OURS: base[OURS],
        OFFICIAL: base[OFFICIAL],
    }

    def call() -> object:
        return client.models.generate_content(model=MODEL, contents="hello")

    for _ in range(50):  # warm-up
        fake.add(PLAIN_REPLY)
        call()
    results = measure(fake, PLAIN_REPLY, call, variants, rounds, calls)
    median = {name: statistics.median(values) * 1e6 for name, values in results.items()}
    added = {name: median[name] - median[UNINSTRUMENTED] for name in variants}
    print(f"generate_content, {rounds} rounds x {calls} calls, in-process transport:")
    print(f"  uninstrumented {median[UNINSTRUMENTED]:.0f} µs/call")
    for name in (*(BREAKDOWN if breakdown else ()), FLOOR, OURS, OFFICIAL):
        ratio = added[name] / added[OFFICIAL]
        print(f"  {name:<17} adds {added[name]:7.1f} µs/call  ({ratio:.2f} of official)")
    print(f"  otel-gemini's own work beyond the floor: {added[OURS] - added[FLOOR]:.1f} µs")


if __name__ == "__main__":
    main()
