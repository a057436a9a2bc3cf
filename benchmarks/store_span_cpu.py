"""The background CPU one real instrumented generation span costs in the full
``configure(langfuse=False)`` pipeline, stage by stage, on one thread and without a profiler
(cProfile inflates small calls unevenly): pricing (the cost processor's deferred price),
building the store row, and inserting it (in batches, as the writer does).

The spans are those our instrumentation made for real ``generate_content`` calls (the real
google-genai client against the in-process fake Gemini, each inside ``trace_attributes``),
captured as they ended. A bare baseline is measured in the same run: a plain dict copy of
the span's attributes (the least any pricing of a copy costs). Best of several rounds.

    python benchmarks/store_span_cpu.py [spans] [rounds]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import otel_gemini
from otel_gemini import CostSpanProcessor, PriceTable
from otel_gemini.aggregate._rows import GenerationRow, record_row, span_record
from otel_gemini.aggregate._schema import open_for_writing
from otel_gemini.aggregate._store import _insert
from otel_gemini.processing._priced_span import plain_attributes
from otel_gemini.testing import FakeGemini


class _Capture(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class _Keep(SpanProcessor):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def real_spans(count: int) -> list[ReadableSpan]:
    """``count`` generation spans our instrumentation made for real calls."""
    telemetry = otel_gemini.configure(langfuse=False, cost_store=False, health_probe=False)
    capture = _Capture()
    telemetry.tracer_provider.add_span_processor(capture)
    with FakeGemini() as fake:
        client = fake.inprocess_client()
        for index in range(count):
            with otel_gemini.trace_attributes(
                user_id=f"user-{index % 50}", session_id=f"s-{index % 500}", tags=["bench"]
            ):
                client.models.generate_content(model="gemini-2.5-flash", contents="hello")
            if index % 1000 == 999:
                fake.reset()
    telemetry.shutdown(timeout=10)
    return [
        span for span in capture.spans if "gen_ai.usage.input_tokens" in (span.attributes or {})
    ]


def _us(work: Callable[[], object], count: int) -> float:
    started = time.thread_time()
    work()
    return (time.thread_time() - started) / count * 1e6


def _one_round(spans: list[ReadableSpan], prices: PriceTable, database: Path) -> dict[str, float]:
    """CPU µs per span of each stage, the spans going through a fresh cost processor."""
    count = len(spans)
    figures: dict[str, float] = {}
    figures[BASELINE] = _us(
        lambda: [plain_attributes(span.attributes or {}) for span in spans], count
    )
    sink = _Keep()
    processor = CostSpanProcessor(sink, prices)
    figures[ON_END] = _us(lambda: [processor.on_end(span) for span in spans], count)
    forwarded = sink.spans
    figures[PRICING] = _us(lambda: [span.attributes.get("") for span in forwarded], count)
    records = [record for record in map(span_record, forwarded) if record is not None]
    rows: list[GenerationRow] = []

    def build() -> None:
        rows.extend(row for row in map(record_row, records) if row is not None)

    figures[ROW] = _us(build, count)
    assert len(rows) == count, "every span makes a row"
    connection = open_for_writing(database)

    def insert() -> None:
        for start in range(0, len(rows), 1000):
            with connection:
                _insert(connection, rows[start : start + 1000], {})

    figures[INSERT] = _us(insert, count)
    connection.close()
    return figures


BASELINE = "baseline: plain copy of the attributes"
ON_END = "cost processor on_end (app thread)"
PRICING = "pricing (first read of the copy)"
ROW = "store row from the priced span"
INSERT = "insert (batches of 1,000)"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    spans = real_spans(count)
    prices = PriceTable.default()
    print(f"{len(spans)} real generate_content spans; CPU µs per span, best of {rounds} rounds")
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as name:
        for index in range(rounds):
            figures = _one_round(spans, prices, Path(name) / f"round-{index}.sqlite3")
            for title, value in figures.items():
                best[title] = min(best.get(title, value), value)
    for title, value in best.items():
        print(f"  {title:<40}: {value:7.2f} µs")
    background = best[PRICING] + best[ROW] + best[INSERT]
    print(f"  {'background total (price + row + insert)':<40}: {background:7.2f} µs")


if __name__ == "__main__":
    main()
