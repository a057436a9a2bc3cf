"""Answers at scale: every answer the dashboard needs, from stores of 10k / 100k / 1M rows
(30 days, 2,000 users, 4 models, a few generations of a model without a price), timed
against SQLite's bare ``GROUP BY model`` scan of the same table in the same run.

For each size: the time to build the store's rollups (the first answer on a store written
before them), the time to fold 1,000 new rows, then each answer (best of 3) in
milliseconds and as a ratio to the bare scan. ``--raw`` also times the raw-row answers
(the code before the rollups, ``LocalCostSource(rollups=False)``) on a few of them.

    python benchmarks/answers_at_scale.py [sizes...] [--raw]     # e.g. 10000 100000 1000000
"""

from __future__ import annotations

import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from otel_gemini.aggregate import LocalCostSource, parse_cost_query, parse_latency_query
from otel_gemini.aggregate._rollups import fold_pending
from otel_gemini.aggregate._rows import COLUMNS
from otel_gemini.aggregate._schema import UPSERT, open_for_writing

END = datetime(2026, 12, 1, 9, 37, 21, tzinfo=timezone.utc)
"""'Now' for the generated store and the queries: not on a 15-minute boundary."""
DAYS = 30
USERS = 2000
MODELS = (
    ("gemini-2.5-flash", "gcp.gemini", 300_000, 2_500_000),  # femto-USD per token in/out
    ("gemini-2.5-pro", "gcp.gemini", 1_250_000, 10_000_000),
    ("gemini-2.5-flash-lite", "gcp.vertex_ai", 100_000, 400_000),
    ("gemini-live-2.5-flash", "gcp.gemini", 3_000_000, 12_000_000),
)
UNKNOWN_MODEL = "gemini-9-experimental"


def generated_rows(count: int, seed: int = 20) -> Iterator[tuple[Any, ...]]:
    """``count`` generations in sessions of 5-40 turns a few seconds apart, over 30 days;
    one in 10,000 of a model without a price."""
    rng = random.Random(seed)
    end_ns = int(END.timestamp()) * 10**9
    start_ns = end_ns - DAYS * 86_400 * 10**9
    made = 0
    session = 0
    while made < count:
        session += 1
        user = f"user-{rng.randrange(USERS):04d}"
        model, provider, input_price, output_price = MODELS[rng.randrange(len(MODELS))]
        moment = rng.randrange(start_ns, end_ns)
        for _ in range(min(rng.randint(5, 40), count - made)):
            made += 1
            moment += rng.randrange(2, 30) * 10**9
            if moment >= end_ns:
                break
            unknown = made % 10_000 == 0
            input_tokens = rng.randrange(50, 8_000)
            output_tokens = rng.randrange(10, 1_500)
            latency = rng.lognormvariate(6.5, 0.6)
            streamed = rng.random() < 0.6
            error = rng.random() < 0.01
            input_cost = None if unknown else input_tokens * input_price
            output_cost = None if unknown else output_tokens * output_price
            row = {
                "trace_id": f"{made:032x}",
                "span_id": f"{made:016x}",
                "start_ns": moment,
                "end_ns": moment + int(latency * 1e6),
                "user_id": user,
                "session_id": f"session-{session}",
                "model": UNKNOWN_MODEL if unknown else model,
                "provider": provider,
                "operation": "generate_content",
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "total_tokens": input_tokens + output_tokens,
                "usage_details": f'{{"input":{input_tokens},"output":{output_tokens}}}',
                "cost_femto": None if unknown else input_cost + output_cost,  # type: ignore[operator]
                "input_cost_femto": input_cost,
                "output_cost_femto": output_cost,
                "cost_details": None,
                "cost_status": "unknown_model" if unknown else "priced",
                "prices_version": "2026-11-01",
                "latency_ms": latency,
                "ttft_ms": latency * rng.uniform(0.1, 0.5) if streamed else None,
                "is_error": int(error),
                "error_type": "500" if error else None,
            }
            yield tuple(row.get(column) for column in COLUMNS)  # later columns: none


def build_store(path: Path, count: int) -> None:
    connection = open_for_writing(path)
    rows = generated_rows(count)
    while True:
        batch = [row for _, row in zip(range(10_000), rows, strict=False)]
        if not batch:
            break
        connection.executemany(UPSERT, batch)
        connection.commit()
    connection.close()


def write_batches(path: Path, seed: int, fold: bool) -> float:
    """Seconds to write 5,000 new rows (of the last minutes, as a writer's are) in batches
    of 500, each one transaction as the writer's (with ``fold``: also folding them into
    the rollups, as the writer does)."""
    end_ns = int(END.timestamp()) * 10**9
    rows = [
        (f"{seed:08x}{i:024x}", f"{seed:04x}{i:012x}", end_ns + (seed * 5000 + i) * 10**7, *row[3:])
        for i, row in enumerate(generated_rows(5000, seed=seed))
    ]
    connection = open_for_writing(path)
    connection.isolation_level = None
    started = time.perf_counter()
    for first in range(0, len(rows), 500):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(UPSERT, rows[first : first + 500])
        if fold:
            fold_pending(connection)
        connection.execute("COMMIT")
    took = time.perf_counter() - started
    connection.close()
    return took


def best_ms(action: Callable[[], object], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def answers(source: LocalCostSource, top_user: str) -> dict[str, Callable[[], object]]:
    def costs(**params: str) -> Callable[[], object]:
        query = parse_cost_query(params, END)
        return lambda: source.costs(query)

    def latency(**params: str) -> Callable[[], object]:
        query = parse_latency_query(params, END)
        return lambda: source.latency(query)

    return {
        "costs total (30 days to now)": costs(),
        "costs by model": costs(group_by="model"),
        "costs by day,model": costs(group_by="day,model"),
        "costs by day,model tz=+05:45": costs(group_by="day,model", tz="+05:45"),
        "costs by user, top 10 (dashboard)": costs(group_by="user", top="10"),
        "costs by session, top 10 (dashboard)": costs(group_by="session", top="10"),
        "costs by user (every group)": costs(group_by="user"),
        "costs by session (every group)": costs(group_by="session"),
        "costs by user,day tz=Europe/Paris": costs(group_by="user,day", tz="Europe/Paris"),
        "costs by provider, model=flash": costs(group_by="provider", model="gemini-2.5-flash"),
        "costs by day,model, user=one": costs(group_by="day,model", user=top_user),
        "latency by model": latency(group_by="model"),
        "latency by model,day": latency(group_by="model,day"),
        "latency by model,day tz=+05:30": latency(group_by="model,day", tz="+05:30"),
        "latency by provider, user=one": latency(group_by="provider", user=top_user),
    }


def bare_scan(path: Path) -> Callable[[], object]:
    def scan() -> object:
        connection = sqlite3.connect(path)
        try:
            return connection.execute(
                "SELECT model, count(*), sum(cost_femto) FROM generations GROUP BY model"
            ).fetchall()
        finally:
            connection.close()

    return scan


def run(count: int, raw: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "costs.sqlite3"
        started = time.perf_counter()
        build_store(path, count)
        print(
            f"\n{count:,} rows (store written in {time.perf_counter() - started:.1f} s, "
            f"{path.stat().st_size / 1e6:.0f} MB)"
        )
        plain = min(write_batches(path, seed, fold=False) for seed in (101, 102))
        source = LocalCostSource(path)
        started = time.perf_counter()
        source.rollups.refresh()  # type: ignore[union-attr]
        print(
            f"  first build of the rollups: {time.perf_counter() - started:.2f} s "
            f"({path.stat().st_size / 1e6:.0f} MB after)"
        )
        folding = min(write_batches(path, seed, fold=True) for seed in (103, 104))
        print(
            f"  writer, 5,000 rows in batches of 500: {plain * 1000:.0f} ms without rollups, "
            f"{folding * 1000:.0f} ms with their triggers and fold ({folding / plain:.2f}x)"
        )
        connection = open_for_writing(path)
        extra = [
            (f"{i:032x}", f"{i:016x}", *row[2:])
            for i, row in zip(
                range(10**9, 10**9 + 1000), generated_rows(1000, seed=7), strict=False
            )
        ]
        connection.executemany(UPSERT, extra)
        connection.commit()
        connection.close()
        started = time.perf_counter()
        source.rollups.refresh()  # type: ignore[union-attr]
        print(f"  catch-up of 1,000 new rows: {(time.perf_counter() - started) * 1000:.1f} ms")
        baseline = best_ms(bare_scan(path))
        print(f"  baseline: bare SQLite GROUP BY model scan {baseline:8.1f} ms")
        top_user = f"user-{0:04d}"
        for name, action in answers(source, top_user).items():
            took = best_ms(action)
            print(f"  {name:38s} {took:8.1f} ms  {took / baseline:6.3f}x the scan")
        if raw:
            raw_source = LocalCostSource(path, rollups=False)
            chosen = ("costs by model", "costs by user,day tz=Europe/Paris", "latency by model")
            for name, action in answers(raw_source, top_user).items():
                if name in chosen:
                    took = best_ms(action, rounds=1)
                    print(f"  raw rows: {name:28s} {took:8.1f} ms  {took / baseline:6.3f}x")


def main() -> None:
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    sizes = [int(a) for a in arguments] or [10_000, 100_000, 1_000_000]
    for count in sizes:
        run(count, "--raw" in sys.argv)


if __name__ == "__main__":
    main()
