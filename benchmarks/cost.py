"""Cost of pricing a span: CostSpanProcessor versus a pass-through processor, same run.

The span is a real SDK span shaped like our generate_content spans (usage, modalities, cache,
thinking, request parameters). Measured, as the best of several rounds (the least disturbed
by other processes on the machine):

1. the application thread: ``on_end`` forwarding to a sink that keeps the span (what a
   ``BatchSpanProcessor`` does on the caller's thread); target: <= 10 µs added per span;
2. all the work: the same, plus reading every attribute of the forwarded span (what the
   exporter does on its thread; for the cost processor this is where pricing happens);
3. a whole span (start, 19 attributes, end) through a real TracerProvider, for scale.

    python benchmarks/cost.py [spans-per-round]
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable

from _generation_span import KeepLast, emit_span, finished_spans
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from otel_gemini import CostSpanProcessor, PriceTable


class _ReadingSink(SpanProcessor):
    """Reads every attribute of each span, as an exporter encoding it would."""

    def on_end(self, span: ReadableSpan) -> None:
        for _key, _value in (span.attributes or {}).items():
            pass


class _PassThrough(SpanProcessor):
    """The baseline: a processor that only forwards, as the cost processor's shell does."""

    def __init__(self, downstream: SpanProcessor) -> None:
        self._downstream = downstream

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._downstream.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._downstream.on_end(span)


def _best_us(call: Callable[[], object], repeats: int, rounds: int = 15) -> float:
    for _ in range(repeats // 10 + 1):
        call()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        best = min(best, (time.perf_counter() - started) / repeats * 1e6)
    return best


def _whole_span_us(processor: SpanProcessor, repeats: int) -> float:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("benchmark")
    return _best_us(functools.partial(emit_span, tracer), repeats)


def _compare(title: str, baseline: SpanProcessor, priced: SpanProcessor, repeats: int) -> None:
    [span] = finished_spans(1)
    base_us = _best_us(lambda: baseline.on_end(span), repeats)
    cost_us = _best_us(lambda: priced.on_end(span), repeats)
    print(title)
    print(f"  pass-through processor : {base_us:7.2f} µs/span")
    print(f"  CostSpanProcessor      : {cost_us:7.2f} µs/span")
    print(f"  added                  : {cost_us - base_us:7.2f} µs/span")
    print(f"  ratio                  : {cost_us / base_us:7.1f}x")


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    prices = PriceTable.default()
    print(f"best of 15 rounds of {repeats} spans; model gemini-2.5-flash, 19 attributes")
    _compare(
        "1. application thread (on_end; target <= 10 µs added)",
        _PassThrough(KeepLast()),
        CostSpanProcessor(KeepLast(), prices),
        repeats,
    )
    _compare(
        "2. all the work (on_end, then the exporter reads the attributes: pricing)",
        _PassThrough(_ReadingSink()),
        CostSpanProcessor(_ReadingSink(), prices),
        repeats,
    )
    whole_base = _whole_span_us(_PassThrough(KeepLast()), repeats)
    whole_cost = _whole_span_us(CostSpanProcessor(KeepLast(), prices), repeats)
    print("3. whole span (start, 19 attributes, end) through a TracerProvider")
    print(f"  with pass-through      : {whole_base:7.2f} µs/span")
    print(f"  with CostSpanProcessor : {whole_cost:7.2f} µs/span")
    print(f"  ratio                  : {whole_cost / whole_base:7.2f}x")


if __name__ == "__main__":
    main()
