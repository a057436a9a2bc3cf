"""The application loop with the full ``configure(langfuse=False)`` pipeline (instrumentation,
pricing, the local cost store) against the same loop without otel-gemini, same run.

One thread makes ``calls`` ``generate_content`` calls as fast as it can with the real
google-genai client against the in-process fake Gemini, each inside ``trace_attributes``.
Each variant runs in a fresh process (RSS and instrumentation are per process), the two
interleaved round by round. Printed: calls/s, RSS growth over the loop (after a warm-up),
and, instrumented, the rows in the store and the generations it dropped.

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


def _child(calls: int, instrumented: bool, db: str) -> None:
    import otel_gemini
    from otel_gemini.testing import FakeGemini

    telemetry = None
    if instrumented:
        telemetry = otel_gemini.configure(langfuse=False, cost_store=db, health_probe=False)
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
        rss_before = _rss_mb()
        started = time.perf_counter()
        for index in range(calls):
            call(index)
            if index % 1000 == 999:
                fake.reset()  # the fake keeps the requests it served: not ours to count
        elapsed = time.perf_counter() - started
        rss_after = _rss_mb()
    result: dict[str, object] = {
        "calls_per_s": calls / elapsed,
        "rss_growth_mb": rss_after - rss_before,
    }
    if telemetry is not None:
        telemetry.shutdown(timeout=120)
        with sqlite3.connect(db) as connection:
            result["rows"] = connection.execute("SELECT count(*) FROM generations").fetchone()[0]
        stats = telemetry.cost_store.stats() if telemetry.cost_store else {}
        result["dropped"] = sum(stats.get("dropped", {}).values())
    print(json.dumps(result))


def _run(calls: int, instrumented: bool, directory: Path) -> dict[str, float]:
    db = directory / f"costs-{time.monotonic_ns()}.sqlite3"
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(calls), "1" if instrumented else "0", str(db)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OTEL_GEMINI_SPOOL_DIR": str(directory / "spool")},
    )
    document: dict[str, float] = json.loads(output.stdout.strip().splitlines()[-1])
    if instrumented:
        document["rows"] -= _WARM_UP
    return document


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    print(f"{calls} generate_content calls, one thread, in-process fake Gemini; {rounds} rounds")
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        os.chmod(directory, 0o700)
        for index in range(rounds):
            bare = _run(calls, False, directory)
            full = _run(calls, True, directory)
            print(
                f"round {index + 1}: uninstrumented {bare['calls_per_s']:7,.0f} calls/s, "
                f"RSS +{bare['rss_growth_mb']:.1f} MB | configure(langfuse=False) "
                f"{full['calls_per_s']:7,.0f} calls/s, RSS +{full['rss_growth_mb']:.1f} MB, "
                f"rows {full['rows']:,.0f}, dropped {full['dropped']:,.0f}"
            )
            print(
                f"  ratio calls/s {full['calls_per_s'] / bare['calls_per_s']:.2f}x, "
                f"RSS growth over uninstrumented "
                f"{full['rss_growth_mb'] - bare['rss_growth_mb']:+.1f} MB"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4])
    else:
        main()
