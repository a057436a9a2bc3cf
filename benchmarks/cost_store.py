"""CostStore: the application thread's cost of its ``on_end`` and its rows per second,
against baselines measured in the same run.

1. Application thread: ``on_end`` of the CostStore versus a pass-through processor that
   keeps the span (what any batching processor costs at least), both behind the real
   CostSpanProcessor, for one priced generation span. Two clocks: the application
   thread's own CPU time (``time.thread_time``: what ``on_end`` itself costs), and wall
   time while the writer works through the same spans on its thread (it takes turns on
   the GIL, as any Python export thread does). Best of several rounds.
2. A whole span (start, 19 attributes, end) through a TracerProvider with the same two
   chains, on the same two clocks. Spans come here far faster than any application makes
   Gemini calls, so the writer is busy all along: the wall-time ratio is the worst case.
3. Rows per second: spans handed to the store until ``force_flush`` returns (the writer
   builds each row and writes batches in WAL mode; when nobody priced the span before,
   it also works out the price), versus the bare SQLite baseline: the same rows,
   prebuilt, inserted with one ``executemany`` per 1,000.

    python benchmarks/cost_store.py [spans-per-round]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _generation_span import KeepLast, emit_span, finished_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from otel_gemini import CostSpanProcessor, PriceTable
from otel_gemini.aggregate import CostStore
from otel_gemini.aggregate._rollups import Rollups
from otel_gemini.aggregate._rows import generation_row
from otel_gemini.aggregate._schema import UPSERT, open_for_writing
from otel_gemini.aggregate._store import RECORD_BYTES


def _best_us(run_round: Callable[[], float], rounds: int) -> float:
    return min(run_round() for _ in range(rounds))


def _best_pair(
    baseline: Callable[[], float], measured: Callable[[], float], rounds: int
) -> tuple[float, float]:
    """Best of ``rounds`` for each, the two interleaved round by round (so that a slower
    or faster moment of a shared machine hits both alike)."""
    pairs = [(baseline(), measured()) for _ in range(rounds)]
    return min(pair[0] for pair in pairs), min(pair[1] for pair in pairs)


def _on_end_us(
    processor: SpanProcessor, spans: list[ReadableSpan], clock: Callable[[], float]
) -> float:
    on_end = processor.on_end
    started = clock()
    for span in spans:
        on_end(span)
    return (clock() - started) / len(spans) * 1e6


def _whole_span_us(processor: SpanProcessor, count: int, clock: Callable[[], float]) -> float:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("benchmark")
    started = clock()
    for _ in range(count):
        emit_span(tracer)
    return (clock() - started) / count * 1e6


def _priced(spans: list[ReadableSpan], prices: PriceTable) -> list[ReadableSpan]:
    """The spans as CostSpanProcessor forwards them, their prices worked out already (as
    when an exporter has read them first)."""
    keep = KeepLast()
    pricer = CostSpanProcessor(keep, prices)
    priced = []
    for span in spans:
        pricer.on_end(span)
        assert keep.last is not None
        keep.last.attributes.get("")  # prices it
        priced.append(keep.last)
    return priced


def _store_rows_per_second(
    directory: Path,
    spans: list[ReadableSpan],
    prices: PriceTable,
    priced_before: bool,
    rollups: bool = False,
) -> float:
    """Rows/s through a CostStore; ``priced_before``: the spans' prices were worked out
    already (by an exporter reading them first), so the writer only builds and writes rows;
    ``rollups``: the store has the answers' rollups (built before the first span), which
    the writer keeps up to date."""
    name = f"throughput-{time.monotonic_ns()}.sqlite3"
    store = CostStore(
        directory / name,
        retention_days=0,
        max_queue=len(spans),
        max_queue_bytes=len(spans) * RECORD_BYTES,
    )
    if rollups:
        rollup_tables = Rollups(directory / name)
        rollup_tables.refresh()
        assert rollup_tables.built(), "the rollups were not built"
    if priced_before:
        hand_off: Callable[[ReadableSpan], None] = store.on_end
        spans = _priced(spans, prices)
    else:
        hand_off = CostSpanProcessor(store, prices).on_end
    started = time.perf_counter()
    for span in spans:
        hand_off(span)
    assert store.force_flush(120_000)
    elapsed = time.perf_counter() - started
    stats = store.stats()
    store.shutdown(10_000)
    assert stats["written"] == len(spans), stats
    if rollups:
        # Exactness is tests/test_rollups.py's; here: the writer left nothing unfolded
        # beyond what its timer allows, and the answers' catch-up finishes it.
        rollup_tables.refresh()
    return len(spans) / elapsed


def _bare_sqlite_rows_per_second(
    directory: Path, spans: list[ReadableSpan], prices: PriceTable
) -> float:
    rows = []
    for span in _priced(spans, prices):
        row = generation_row(span)
        assert row is not None
        rows.append(row)
    connection = open_for_writing(directory / f"bare-{time.monotonic_ns()}.sqlite3")
    started = time.perf_counter()
    for index in range(0, len(rows), 1000):
        with connection:
            connection.executemany(UPSERT, rows[index : index + 1000])
    elapsed = time.perf_counter() - started
    connection.close()
    return len(rows) / elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    rounds = 9
    prices = PriceTable.default()
    spans = finished_spans(count)
    print(f"gemini-2.5-flash generation spans, 19 attributes; best of {rounds} rounds of {count}")
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        store = CostStore(
            directory / "app.sqlite3",
            retention_days=0,
            max_queue=count * (rounds + 2),
            max_queue_bytes=count * (rounds + 2) * RECORD_BYTES,
        )
        keep_chain = CostSpanProcessor(KeepLast(), prices)
        store_chain = CostSpanProcessor(store, prices)
        for chain in (keep_chain, store_chain):  # warm-up
            _on_end_us(chain, spans[: count // 10 + 1], time.perf_counter)
        store.force_flush(60_000)
        print("1. application thread: on_end behind CostSpanProcessor")
        for title, clock in (
            ("its own CPU time", time.thread_time),
            ("wall time, writer busy", time.perf_counter),
        ):
            base, cost = _best_pair(
                lambda: _on_end_us(keep_chain, spans, clock),  # noqa: B023
                lambda: _on_end_us(store_chain, spans, clock),  # noqa: B023
                rounds,
            )
            store.force_flush(120_000)
            print(f"  {title}:")
            print(f"    pass-through (keeps the span) : {base:7.2f} µs/span")
            print(f"    CostStore                     : {cost:7.2f} µs/span")
            print(f"    added                         : {cost - base:7.2f} µs/span")
            print(f"    ratio                         : {cost / base:7.2f}x")
        print("2. whole span (start, 19 attributes, end) through a TracerProvider")
        for title, clock in (
            ("its own CPU time", time.thread_time),
            ("wall time, writer busy", time.perf_counter),
        ):
            whole_base, whole_store = _best_pair(
                lambda: _whole_span_us(CostSpanProcessor(KeepLast(), prices), count, clock),  # noqa: B023
                lambda: _whole_span_us(CostSpanProcessor(store, prices), count, clock),  # noqa: B023
                5,
            )
            store.force_flush(120_000)
            print(f"  {title}:")
            print(f"    with pass-through             : {whole_base:7.2f} µs/span")
            print(f"    with CostStore                : {whole_store:7.2f} µs/span")
            print(f"    ratio                         : {whole_store / whole_base:7.2f}x")
        dropped = store.stats()["dropped"]
        store.shutdown(30_000)
        print(f"  spans dropped by the store      : {sum(dropped.values())}")

        many = finished_spans(max(count * 4, 20_000))
        bare_rate = max(_bare_sqlite_rows_per_second(directory, many, prices) for _ in range(3))
        rows_rate = max(
            _store_rows_per_second(directory, many, prices, priced_before=True) for _ in range(3)
        )
        store_rate = max(
            _store_rows_per_second(directory, many, prices, priced_before=False) for _ in range(3)
        )
        rollup_rate = max(
            _store_rows_per_second(directory, many, prices, priced_before=True, rollups=True)
            for _ in range(3)
        )
        print(f"3. rows per second ({len(many)} spans, best of 3)")
        print(f"  bare SQLite executemany of prebuilt rows  : {bare_rate:9,.0f} rows/s")
        print(f"  CostStore, spans priced before (row+write): {rows_rate:9,.0f} rows/s")
        print(f"    ratio to bare SQLite                    : {rows_rate / bare_rate:9.2f}x")
        print(f"  CostStore, pricing on its writer          : {store_rate:9,.0f} rows/s")
        print(f"    ratio to bare SQLite                    : {store_rate / bare_rate:9.2f}x")
        print(f"  CostStore with rollups, priced before     : {rollup_rate:9,.0f} rows/s")
        print(f"    ratio to bare SQLite                    : {rollup_rate / bare_rate:9.2f}x")


if __name__ == "__main__":
    main()
