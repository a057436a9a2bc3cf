"""A producer process for the spool fault tests that must run as another user.

Usage: python _fault_producer.py '{"spool_dir": ..., "base_url": ..., "public_key": ...,
"secret_key": ..., "rate": 1000, "seconds": 14, "spool_max_bytes": ..., "memory_max_bytes": ...}'

Ends spans at ``rate`` per second for ``seconds``, printing a JSON status line about every
0.1 s (``kind: "status"``: CLOCK_MONOTONIC time, spans ended, stats, health). Then it
flushes until nothing is queued (or 20 s pass) and prints ``kind: "final"`` with the ids
of every span it ended, the stats, the health and whether the exporter's threads live.
"""

from __future__ import annotations

import json
import sys
import time

from opentelemetry.sdk.trace import TracerProvider

from otel_gemini.export import LangfuseExporter, RetryPolicy
from otel_gemini.health import HealthReporter


def main() -> None:
    settings = json.loads(sys.argv[1])
    exporter = LangfuseExporter(
        base_url=settings["base_url"],
        public_key=settings["public_key"],
        secret_key=settings["secret_key"],
        spool_dir=settings["spool_dir"],
        spool_max_bytes=settings["spool_max_bytes"],
        memory_max_bytes=settings["memory_max_bytes"],
        retry=RetryPolicy(initial_backoff=0.1, max_backoff=1.0, pause_interval=1.0),
        environ={},
    )
    reporter = HealthReporter(exporter, probe=False)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(exporter.span_processor())
    tracer = provider.get_tracer("fault-test")
    ids: list[str] = []

    def report(kind: str, **extra: object) -> None:
        health = reporter.report()
        line = {
            "kind": kind,
            "at": time.monotonic(),
            "produced": len(ids),
            "stats": exporter.stats().to_dict(),
            "status": health.status.value,
            "reasons": list(health.reasons),
            **extra,
        }
        print(json.dumps(line), flush=True)

    rate, seconds = float(settings["rate"]), float(settings["seconds"])
    start = time.monotonic()
    reported = start
    while (elapsed := time.monotonic() - start) < seconds:
        for _ in range(10):
            with tracer.start_as_current_span("generate_content gemini-2.5-flash") as span:
                ids.append(f"{span.get_span_context().span_id:016x}")
        if time.monotonic() - reported >= 0.1:
            reported = time.monotonic()
            report("status")
        ahead = len(ids) / rate - elapsed
        if ahead > 0:
            time.sleep(ahead)  # pacing the producer, not synchronising a test
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if exporter.force_flush(timeout_millis=2000) and exporter.stats().queued == 0:
            break
    report("final", ids=ids, alive=exporter._pipeline.threads_alive())
    exporter.shutdown(timeout_millis=2000)


if __name__ == "__main__":
    main()
