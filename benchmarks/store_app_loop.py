"""The application loop with the full ``configure(langfuse=False)`` pipeline (instrumentation,
pricing, the local cost store) against the same loop without otel-gemini, same run; and, to
tell the store's share from the instrumentation's, ``configure(langfuse=False,
cost_store=False)``.

One thread makes ``calls`` ``generate_content`` calls as fast as it can with the real
google-genai client against the in-process fake Gemini, each inside ``trace_attributes``.
Each variant runs in a fresh process (RSS and instrumentation are per process), the variants
interleaved round by round. Printed: calls/s (wall), the process's CPU seconds per call (all
its threads: the app's and the store writer's; on a shared machine the steadier figure, and
what calls/s is on an idle core, since the threads share one GIL), RSS growth over the loop
(after a warm-up) and, with the store, its rows and the generations it dropped.

    python benchmarks/store_app_loop.py [calls] [rounds]
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_WARM_UP = 500


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


_VARIANTS = ("uninstrumented", "no store", "full", "full+rollups")
# full+rollups: the store has the answers' rollups (as once `serve` or an answer built
# them), so the writer also folds its rows into them.


def _child(calls: int, variant: str, db: str) -> None:
    import otel_gemini
    from otel_gemini.testing import FakeGemini

    telemetry = None
    if variant != "uninstrumented":
        telemetry = otel_gemini.configure(
            langfuse=False,
            cost_store=db if variant.startswith("full") else False,
            health_probe=False,
        )
    with FakeGemini() as fake:
        client = fake.inprocess_client()
        generate = client.models.generate_content

        def call(index: int) -> None:
            with otel_gemini.trace_attributes(
                user_id=f"user-{index % 50}", session_id=f"s-{index % 500}", tags=["bench"]
            ):
                generate(model="gemini-2.5-flash", contents="hello")

        for index in range(_WARM_UP):
            call(index)
        if telemetry is not None:
            telemetry.force_flush(60)
        if variant == "full+rollups":
            from otel_gemini.aggregate._rollups import Rollups

            rollups = Rollups(Path(db))
            rollups.refresh()
            assert rollups.built()
        rss_before = _rss_mb()
        cpu_started = time.process_time()
        started = time.perf_counter()
        for index in range(calls):
            call(index)
            if index % 1000 == 999:
                fake.reset()  # the fake keeps the requests it served: not ours to count
        elapsed = time.perf_counter() - started
        rss_after = _rss_mb()
        if telemetry is not None:
            telemetry.force_flush(120)  # the writer's work for these calls counts too
        cpu = time.process_time() - cpu_started
    result: dict[str, object] = {
        "calls_per_s": calls / elapsed,
        "cpu_us_per_call": cpu / calls * 1e6,
        "rss_growth_mb": rss_after - rss_before,
    }
    if telemetry is not None and telemetry.cost_store is not None:
        telemetry.shutdown(timeout=120)
        with sqlite3.connect(db) as connection:
            result["rows"] = connection.execute("SELECT count(*) FROM generations").fetchone()[0]
        stats = telemetry.cost_store.stats() if telemetry.cost_store else {}
        result["dropped"] = sum(stats.get("dropped", {}).values())
    print(json.dumps(result))


def _run(calls: int, variant: str, directory: Path) -> dict[str, float]:
    db = directory / f"costs-{time.monotonic_ns()}.sqlite3"
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(calls), variant, str(db)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OTEL_GEMINI_SPOOL_DIR": str(directory / "spool")},
    )
    document: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    if "rows" in document:
        document["rows"] -= _WARM_UP
    return document


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    print(f"{calls} generate_content calls, one thread, in-process fake Gemini; {rounds} rounds")
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        os.chmod(directory, 0o700)
        results: dict[str, list[dict[str, float]]] = {variant: [] for variant in _VARIANTS}
        for index in range(rounds):
            for variant in _VARIANTS:
                result = _run(calls, variant, directory)
                results[variant].append(result)
                extra = (
                    f", rows {result['rows']:,.0f}, dropped {result['dropped']:,.0f}"
                    if "rows" in result
                    else ""
                )
                print(
                    f"round {index + 1} {variant:>14}: {result['calls_per_s']:6,.0f} calls/s, "
                    f"{result['cpu_us_per_call']:6.0f} CPU µs/call, "
                    f"RSS +{result['rss_growth_mb']:.1f} MB{extra}",
                    flush=True,
                )
        bare = results["uninstrumented"]
        print("ratios to uninstrumented, round by round:")
        for variant in _VARIANTS[1:]:
            for index, result in enumerate(results[variant]):
                base = bare[index]
                print(
                    f"  {variant:>8} round {index + 1}: calls/s "
                    f"{result['calls_per_s'] / base['calls_per_s']:.2f}x, calls per CPU-second "
                    f"{base['cpu_us_per_call'] / result['cpu_us_per_call']:.2f}x, RSS growth "
                    f"{result['rss_growth_mb'] - base['rss_growth_mb']:+.1f} MB"
                )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
