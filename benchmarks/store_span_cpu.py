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

import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import otel_gemini
from otel_gemini import CostSpanProcessor, PriceTable
from otel_gemini.aggregate._rows import record_row, span_record
from otel_gemini.aggregate._schema import open_for_writing
from otel_gemini.aggregate._store import _insert
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
    return [span for span in capture.spans if span.attributes and "gen_ai.usage.input_tokens" in span.attributes]


def _us(work: Callable[[], Any], count: int) -> float:
    started = time.thread_time()
    work()
    return (time.thread_time() - started) / count * 1e6


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    spans = real_spans(count)
    prices = PriceTable.default()
    print(f"{len(spans)} real generate_content spans; CPU µs per span, best of {rounds} rounds")
    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = min(best.get(name, value), value)

    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        for round_index in range(rounds):
            keep("baseline: dict copy of the attributes", _us(
                lambda: [dict(span.attributes or {}) for span in spans], len(spans)
            ))
            sink = _Keep()
            processor = CostSpanProcessor(sink, prices)
            keep("cost processor on_end (app thread)", _us(
                lambda: [processor.on_end(span) for span in spans],  # noqa: B023
                len(spans),
            ))
            forwarded = sink.spans
            keep("pricing (first read of the copy)", _us(
                lambda: [span.attributes.get("") for span in forwarded],  # noqa: B023
                len(spans),
            ))
            records = [span_record(span) for span in forwarded]
            rows: list[Any] = []
            keep("store row from the priced span", _us(
                lambda: rows.extend(record_row(record) for record in records),  # type: ignore[arg-type]  # noqa: B023
                len(spans),
            ))
            connection = open_for_writing(directory / f"r{round_index}.sqlite3")

            def insert(connection: sqlite3.Connection = connection) -> None:
                for start in range(0, len(rows), 1000):
                    with connection:
                        _insert(connection, rows[start : start + 1000], {})

            keep("insert (batches of 1,000)", _us(insert, len(spans)))
            connection.close()
    for title, value in best.items():
        print(f"  {title:<40}: {value:7.2f} µs")
    background = (
        best["pricing (first read of the copy)"]
        + best["store row from the priced span"]
        + best["insert (batches of 1,000)"]
    )
    print(f"  {'background total (price + row + insert)':<40}: {background:7.2f} µs")


if __name__ == "__main__":
    main()
