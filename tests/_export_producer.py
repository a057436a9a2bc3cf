"""A producer process for the crash test: ends spans as fast as asked and logs each one.

Usage: python _export_producer.py SPOOL_DIR BASE_URL PUBLIC_KEY SECRET_KEY LOG_PATH RATE

Each line of LOG_PATH is ``<span id hex> <CLOCK_MONOTONIC seconds>``, written with one
``write()`` right after the span ended, so a logged span has ended by the logged time.
Runs until killed.
"""

from __future__ import annotations

import os
import sys
import time

from opentelemetry.sdk.trace import TracerProvider

from otel_gemini.export import LangfuseExporter, RetryPolicy


def main() -> None:
    spool_dir, base_url, public_key, secret_key, log_path, rate = sys.argv[1:7]
    exporter = LangfuseExporter(
        base_url=base_url,
        public_key=public_key,
        secret_key=secret_key,
        spool_dir=spool_dir,
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.5),
        batch_max_spans=200,
        environ={},
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(exporter.span_processor())
    tracer = provider.get_tracer("crash-test")
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    interval = 1.0 / float(rate)
    next_at = time.monotonic()
    while True:
        with tracer.start_as_current_span("generate_content gemini-2.5-flash") as span:
            span_id = span.get_span_context().span_id
        os.write(log, f"{span_id:016x} {time.monotonic():.6f}\n".encode())
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the producer, not synchronising a test


if __name__ == "__main__":
    main()
