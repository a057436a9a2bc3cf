"""Export throughput and app-thread cost: LangfuseExporter vs the stock OTLP pipeline.

Three pipelines, same run, same spans, same loopback sink (a separate process that gunzips,
parses and counts OTLP spans, so it does not compete for this process's GIL):

- ours:     LangfuseExporter.span_processor()  (spool on disk, gzip level 1, batches of 1000)
- stock:    BatchSpanProcessor + OTLPSpanExporter(compression=gzip)
- langfuse: the langfuse SDK's LangfuseSpanProcessor (its own export path, same stock parts)

1. Throughput: N pre-built GenAI spans handed to the processor's on_end as fast as
   possible, then force_flush(); time until the sink has counted all N. The batch
   processors get a queue of N so they drop nothing (with their default of 2048 they would
   drop most of them). Also the CPU time of this process per span (all threads), which
   depends less on what else the machine is doing.
2. App thread: span.end() latency (p50/p99) for spans ended at a steady 2000/s, with the
   sink healthy and with the sink answering 503 (an outage).

Usage: python benchmarks/export.py [--spans 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PUBLIC_KEY = "pk-lf-bench"
SECRET_KEY = "sk-lf-bench"

# --- the sink (runs in its own process) -------------------------------------------------


def run_sink() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    state = {"spans": 0, "down": False}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm on, each response
        # would wait ~40 ms for the client's delayed ACK and the sink would be the bottleneck.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes = b"{}") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with lock:
                self._answer(200, json.dumps(state).encode())

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.startswith("/mode/"):
                with lock:
                    state["down"] = self.path == "/mode/down"
                self._answer(200)
                return
            if state["down"]:
                self._answer(503)
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            with lock:
                state["spans"] += count
            self._answer(200)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Sink:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--sink"], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.base_url = f"http://127.0.0.1:{self.port}"
        import httpx

        self._client = httpx.Client(base_url=self.base_url, timeout=10)

    def count(self) -> int:
        return int(self._client.get("/count").json()["spans"])

    def mode(self, down: bool) -> None:
        self._client.post("/mode/down" if down else "/mode/up")

    def wait_for(self, total: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink has {self.count()} of {total} spans")
            time.sleep(0.005)

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


# --- the pipelines -----------------------------------------------------------------------


def make_ours(sink: Sink, queue: int, spool_dir: str) -> Any:
    from otel_gemini.export import LangfuseExporter

    exporter = LangfuseExporter(
        base_url=sink.base_url,
        public_key=PUBLIC_KEY,
        secret_key=SECRET_KEY,
        spool_dir=spool_dir,
        memory_max_bytes=max(16 * 1024 * 1024, queue * 2048),  # like a queue of N
        environ={},
    )
    return exporter.span_processor()


def make_stock(sink: Sink, queue: int, spool_dir: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = OTLPSpanExporter(
        endpoint=f"{sink.base_url}/api/public/otel/v1/traces",
        compression=Compression.Gzip,
        headers={"x-langfuse-ingestion-version": "4"},
    )
    return BatchSpanProcessor(exporter, max_queue_size=queue)


def make_langfuse(sink: Sink, queue: int, spool_dir: str) -> Any:
    from langfuse._client.span_processor import LangfuseSpanProcessor

    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(queue)
    try:
        return LangfuseSpanProcessor(
            public_key=PUBLIC_KEY, secret_key=SECRET_KEY, base_url=sink.base_url
        )
    finally:
        del os.environ["OTEL_BSP_MAX_QUEUE_SIZE"]


PIPELINES: dict[str, Callable[[Sink, int, str], Any]] = {
    "ours": make_ours,
    "stock": make_stock,
    "langfuse": make_langfuse,
}


def genai_attributes(index: int) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "gemini-2.5-flash",
        "gen_ai.response.model": "gemini-2.5-flash",
        "gen_ai.response.id": f"resp-{index}",
        "gen_ai.response.finish_reasons": ("STOP",),
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 340,
        "gen_ai.usage.cost": 0.00121,
        "langfuse.observation.cost_details": '{"input":0.00036,"output":0.00085,"total":0.00121}',
        "langfuse.observation.usage_details": '{"input":1200,"output":340}',
        "otel_gemini.cost.status": "priced",
        "otel_gemini.prices.version": "2026-11-01",
        "user.id": f"user-{index % 50}",
        "session.id": f"session-{index % 400}",
        "server.address": "generativelanguage.googleapis.com",
    }


def build_spans(count: int) -> list[Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("otel_gemini.bench")
    for index in range(count):
        with tracer.start_as_current_span(
            "generate_content gemini-2.5-flash", attributes=genai_attributes(index)
        ):
            pass
    return list(exporter.get_finished_spans())


def throughput(name: str, sink: Sink, spans: list[Any], spool_dir: str) -> tuple[float, float]:
    """(spans per second, CPU µs per span in this process, all threads)."""
    processor = PIPELINES[name](sink, len(spans), spool_dir)
    before = sink.count()
    cpu_started = time.process_time()
    started = time.perf_counter()
    for span in spans:
        processor.on_end(span)
    # Without a flush the batch processors hold the last partial batch for their 5 s
    # schedule delay, which would measure the timer rather than the pipeline.
    processor.force_flush(60_000)
    sink.wait_for(before + len(spans))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    processor.shutdown()
    return len(spans) / elapsed, cpu / len(spans) * 1e6


def end_latencies(
    name: str, sink: Sink, spool_dir: str, *, down: bool, count: int = 5000, rate: float = 2000
) -> tuple[float, float, int]:
    """(p50 µs, p99 µs, spans the sink received) of span.end() at a steady rate."""
    from opentelemetry.sdk.trace import TracerProvider

    sink.mode(down)
    processor = PIPELINES[name](sink, 2048, spool_dir)  # defaults (2048: the BSP's queue)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("otel_gemini.bench")
    samples: list[float] = []
    before = sink.count()
    next_at = time.perf_counter()
    for index in range(count):
        span = tracer.start_span(
            "generate_content gemini-2.5-flash", attributes=genai_attributes(index)
        )
        started = time.perf_counter_ns()
        span.end()
        samples.append((time.perf_counter_ns() - started) / 1000)
        next_at += 1 / rate
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    received = sink.count() - before
    sink.mode(False)
    threading.Thread(target=processor.shutdown, daemon=True).start()  # stock may block 30 s
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)], received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink()
        return
    import logging

    logging.disable(logging.WARNING)  # outage retries would fill the screen
    sink = Sink()
    try:
        spans = build_spans(args.spans)
        results: dict[str, list[float]] = {name: [] for name in PIPELINES}
        cpu: dict[str, list[float]] = {name: [] for name in PIPELINES}
        with tempfile.TemporaryDirectory() as spool_root:
            for name in PIPELINES:  # warm-up, not measured: imports, caches, connections
                throughput(name, sink, spans[:2000], os.path.join(spool_root, f"{name}-w"))
            for round_number in range(args.rounds):
                for name in PIPELINES:
                    spool_dir = os.path.join(spool_root, f"{name}-{round_number}")
                    rate, cpu_per_span = throughput(name, sink, spans, spool_dir)
                    results[name].append(rate)
                    cpu[name].append(cpu_per_span)
            print(f"Throughput, {args.spans} GenAI spans end to end into a loopback sink")
            print(f"(median of {args.rounds} rounds, interleaved):")
            baseline = statistics.median(results["stock"])
            cpu_baseline = statistics.median(cpu["stock"])
            for name, values in results.items():
                median = statistics.median(values)
                cpu_median = statistics.median(cpu[name])
                print(
                    f"  {name:9s} {median:9.0f} spans/s   {median / baseline:5.2f}x stock"
                    f"   CPU {cpu_median:5.1f} µs/span ({cpu_baseline / cpu_median:4.2f}x less)"
                    f"   (rounds: {', '.join(f'{value:.0f}' for value in values)})"
                )
            print("\nspan.end() on the app thread, 5000 spans at 2000/s (µs):")
            print(f"  {'':9s} {'healthy p50':>12s} {'p99':>8s} {'outage p50':>12s} {'p99':>8s}")
            for name in PIPELINES:
                spool_dir = os.path.join(spool_root, f"{name}-latency")
                healthy = end_latencies(name, sink, spool_dir + "-up", down=False)
                outage = end_latencies(name, sink, spool_dir + "-down", down=True)
                print(
                    f"  {name:9s} {healthy[0]:12.1f} {healthy[1]:8.1f}"
                    f" {outage[0]:12.1f} {outage[1]:8.1f}"
                )
    finally:
        sink.close()


if __name__ == "__main__":
    main()
