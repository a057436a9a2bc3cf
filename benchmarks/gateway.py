"""Spans per second through `otel-gemini gateway` against an OpenTelemetry Collector
forwarding the same load, in the same run.

Every variant receives the same pre-encoded OTLP/gRPC requests (Gemini generation spans with
the usual ~15 attributes, 512 per request) from 4 client threads and delivers them to the same
fake Langfuse over loopback; a variant's time runs from the first request to the last span
accepted by the fake Langfuse.

- collector-forward: Collector, memory_limiter + batch → otlp_http → Langfuse (the baseline:
  what a plain Collector tier costs),
- collector-ottl: collector-config/direct.yaml + gemini-cost.yaml (prices with OTTL, disk
  queue),
- gateway: `otel-gemini gateway` (decode, CostSpanProcessor, spool write before the answer,
  LangfuseExporter).

    python benchmarks/gateway.py [spans-per-variant] [rounds]

The Collector comes from collector-config/build-collector.sh (built if not cached).
"""

from __future__ import annotations

import base64
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_gemini.testing import FakeLangfuse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from collector_harness import (
    Collector,
    GatewayProcess,
    build_collector,
    free_port,
)

SPANS_PER_REQUEST = 512
CLIENT_THREADS = 4

FORWARD_CONFIG = """
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:OTELCOL_OTLP_GRPC_ENDPOINT}
      http:
        endpoint: ${env:OTELCOL_OTLP_HTTP_ENDPOINT}
extensions:
  health_check:
    endpoint: ${env:OTELCOL_HEALTH_ENDPOINT}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 512
    spike_limit_mib: 128
  batch:
    send_batch_size: 512
    send_batch_max_size: 1000
    timeout: 200ms
exporters:
  otlp_http/langfuse:
    traces_endpoint: ${env:LANGFUSE_BASE_URL}/api/public/otel/v1/traces
    compression: gzip
    headers:
      Authorization: Basic ${env:LANGFUSE_BASIC_AUTH}
      x-langfuse-ingestion-version: "4"
    sending_queue:
      enabled: true
      queue_size: 5000
    retry_on_failure:
      enabled: true
service:
  extensions: [health_check]
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp_http/langfuse]
"""


def _requests(total: int) -> list[ExportTraceServiceRequest]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-app"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for index in range(SPANS_PER_REQUEST):
        with tracer.start_as_current_span(
            "generate_content gemini-2.5-flash",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "generate_content",
                "gen_ai.provider.name": "gcp.gemini",
                "gen_ai.request.model": "gemini-2.5-flash",
                "gen_ai.response.model": "gemini-2.5-flash",
                "gen_ai.response.id": f"resp-{index}",
                "gen_ai.response.finish_reasons": ("stop",),
                "gen_ai.request.temperature": 0.7,
                "gen_ai.request.max_tokens": 1024,
                "gen_ai.usage.input_tokens": 1200 + index,
                "gen_ai.usage.output_tokens": 300,
                "gen_ai.usage.cache_read.input_tokens": 1000,
                "gen_ai.usage.reasoning.output_tokens": 150,
                "server.address": "generativelanguage.googleapis.com",
                "user.id": f"user-{index % 50}",
                "session.id": f"session-{index % 200}",
            },
        ):
            pass
    template: ExportTraceServiceRequest = encode_spans(memory.get_finished_spans())
    count = max(1, total // SPANS_PER_REQUEST)
    requests = []
    for number in range(count):
        request = ExportTraceServiceRequest()
        request.CopyFrom(template)
        # Distinct ids per request, so the sink counts distinct spans.
        for span in request.resource_spans[0].scope_spans[0].spans:
            span.trace_id = number.to_bytes(4, "big") + span.trace_id[4:]
        requests.append(request)
    return requests


def _send_all(endpoint: str, requests: list[ExportTraceServiceRequest]) -> None:
    queue = list(requests)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        with grpc.insecure_channel(endpoint) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            while True:
                with lock:
                    if not queue:
                        return
                    request = queue.pop()
                for _ in range(200):  # retry "busy" answers, as an OTLP exporter would
                    try:
                        stub.Export(request, timeout=30)
                        break
                    except grpc.RpcError as error:
                        if error.code() not in (
                            grpc.StatusCode.RESOURCE_EXHAUSTED,
                            grpc.StatusCode.UNAVAILABLE,
                        ):
                            errors.append(error)
                            return
                        time.sleep(0.05)

    threads = [threading.Thread(target=worker) for _ in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"export failed: {errors[0]}")


def _measure(
    endpoint: str, requests: list[ExportTraceServiceRequest], langfuse: FakeLangfuse
) -> tuple[float, float]:
    """(spans/s delivered to Langfuse, spans/s acknowledged to the sender)."""
    total = len(requests) * SPANS_PER_REQUEST
    langfuse.reset()
    started = time.perf_counter()
    _send_all(endpoint, requests)
    acknowledged = time.perf_counter() - started
    langfuse.wait_for_spans(total, timeout=300)
    delivered = time.perf_counter() - started
    return total / delivered, total / acknowledged


def main() -> None:
    spans = int(sys.argv[1]) if len(sys.argv) > 1 else 20_480
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    binary, why = build_collector()
    if binary is None:
        sys.exit(f"cannot build the Collector: {why}")
    requests = _requests(spans)
    total = len(requests) * SPANS_PER_REQUEST
    results: dict[str, list[tuple[float, float]]] = {}
    with FakeLangfuse() as langfuse, tempfile.TemporaryDirectory() as scratch:
        token = base64.b64encode(f"{langfuse.public_key}:{langfuse.secret_key}".encode()).decode()
        forward_config = Path(scratch) / "forward.yaml"
        forward_config.write_text(FORWARD_CONFIG, encoding="utf-8")
        collector_env = {
            "LANGFUSE_BASE_URL": langfuse.base_url,
            "LANGFUSE_BASIC_AUTH": token,
            "OTELCOL_STORAGE_DIR": str(Path(scratch) / "queue"),
        }
        variants: dict[str, Callable[[], tuple[str, Callable[[], object]]]] = {}

        def forward() -> tuple[str, Callable[[], object]]:
            collector = Collector(binary, [str(forward_config)], collector_env)
            return f"127.0.0.1:{collector.grpc_port}", collector.stop

        def ottl() -> tuple[str, Callable[[], object]]:
            collector = Collector(binary, ["direct.yaml", "gemini-cost.yaml"], collector_env)
            return f"127.0.0.1:{collector.grpc_port}", collector.stop

        def gateway() -> tuple[str, Callable[[], object]]:
            env = {
                **langfuse.environment(),
                "OTEL_GEMINI_SPOOL_DIR": str(Path(scratch) / f"spool-{free_port()}"),
                "OTEL_GEMINI_SPOOL_MAX_BYTES": "512MiB",
            }
            process = GatewayProcess(env)
            return process.grpc_endpoint, process.stop

        variants = {"collector-forward": forward, "collector-ottl": ottl, "gateway": gateway}
        for _ in range(rounds):
            for name, start in variants.items():
                endpoint, stop = start()
                try:
                    results.setdefault(name, []).append(_measure(endpoint, requests, langfuse))
                finally:
                    stop()

    print(
        f"{total} spans per variant, {SPANS_PER_REQUEST} per request, "
        f"{CLIENT_THREADS} client threads, median of {rounds} rounds, {os.cpu_count()} cores"
    )
    baseline = statistics.median(rate for rate, _ in results["collector-forward"])
    for name, samples in results.items():
        delivered = statistics.median(rate for rate, _ in samples)
        acknowledged = statistics.median(rate for _, rate in samples)
        print(
            f"  {name:18s} {delivered:9.0f} spans/s delivered ({acknowledged:9.0f} acknowledged)"
            f"  ratio to collector-forward: {delivered / baseline:.2f}"
        )


if __name__ == "__main__":
    main()
