"""The OTLP gateway in-process: real HTTP and gRPC over loopback, the real exporter and spool,
the fake Langfuse."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from polling import wait_until

from otel_gemini import _attributes as attrs
from otel_gemini.cli import main as cli_main
from otel_gemini.export import LangfuseExporter, RetryPolicy
from otel_gemini.gateway import Gateway, GatewaySettings
from otel_gemini.testing import FakeLangfuse

pytestmark = pytest.mark.timeout(60)

PROTOBUF = {"content-type": "application/x-protobuf"}
FLASH = {
    attrs.GEN_AI_OPERATION_NAME: "generate_content",
    attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
    attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
}


def _spans(count: int, attributes: dict[str, Any] | None = None) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("gateway-test", "1.2.3")
    for index in range(count):
        with tracer.start_as_current_span(
            f"generate_content {index}", kind=SpanKind.CLIENT, attributes=attributes or FLASH
        ) as span:
            span.add_event("first chunk", {"index": index})
    return list(memory.get_finished_spans())


def _request(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    request: ExportTraceServiceRequest = encode_spans(spans)
    return request


@pytest.fixture
def langfuse() -> Iterator[FakeLangfuse]:
    with FakeLangfuse() as fake:
        yield fake


def _gateway(langfuse: FakeLangfuse, spool: Path, **settings: Any) -> Gateway:
    exporter = LangfuseExporter(
        spool_dir=spool,
        spool_max_bytes=settings.pop("spool_max_bytes", None),
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.5),
        **langfuse.exporter_settings(),
    )
    return Gateway(exporter, settings=GatewaySettings(grpc_port=0, http_port=0, **settings))


@pytest.fixture
def gateway(langfuse: FakeLangfuse, tmp_path: Path) -> Iterator[Gateway]:
    with _gateway(langfuse, tmp_path).start() as running:
        yield running


def _post(gateway: Gateway, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{gateway.http_endpoint}/v1/traces", content=body, headers=headers)


def _health(gateway: Gateway) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{gateway.http_endpoint}/api/observability/health").json()
    return document


# --- OTLP/HTTP ---------------------------------------------------------------------------------


def test_http_protobuf_spans_arrive_priced_with_everything_kept(
    gateway: Gateway, langfuse: FakeLangfuse
) -> None:
    spans = _spans(3)
    response = _post(gateway, _request(spans).SerializeToString(), PROTOBUF)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    ExportTraceServiceResponse().ParseFromString(response.content)
    received = {span.span_id: span for span in langfuse.wait_for_spans(3)}
    for span in spans:
        got = received[format_span_id(span.context.span_id)]
        assert got.trace_id == format_trace_id(span.context.trace_id)
        assert got.name == span.name
        assert got.kind == "CLIENT"
        assert got.start_time_unix_nano == span.start_time
        assert got.end_time_unix_nano == span.end_time
        assert got.scope_name == "gateway-test"
        assert got.scope_version == "1.2.3"
        assert got.events == ("first chunk",)
        assert got.resource["telemetry.sdk.language"] == "python"
        assert got.attributes[attrs.GEN_AI_USAGE_COST] == 0.0008
        assert got.attributes[attrs.LANGFUSE_COST_DETAILS] == (
            '{"input":0.0003,"output":0.0005,"total":0.0008}'
        )
        assert got.attributes[attrs.COST_STATUS] == "priced"


def test_http_json_with_gzip(gateway: Gateway, langfuse: FakeLangfuse) -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "ts-app"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "ts-sdk"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "eee19b7ec3c1b173",
                                "name": "generate_content gemini-2.5-pro",
                                "kind": 3,
                                "startTimeUnixNano": "1764000000000000000",
                                "endTimeUnixNano": "1764000001000000000",
                                "attributes": [
                                    {
                                        "key": "gen_ai.request.model",
                                        "value": {"stringValue": "gemini-2.5-pro"},
                                    },
                                    {
                                        "key": "gen_ai.usage.input_tokens",
                                        "value": {"intValue": "1000"},
                                    },
                                    {
                                        "key": "gen_ai.usage.output_tokens",
                                        "value": {"intValue": 100},
                                    },
                                ],
                                "status": {"code": 2, "message": "boom"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    body = gzip.compress(json.dumps(document).encode())
    response = _post(
        gateway, body, {"content-type": "application/json", "content-encoding": "gzip"}
    )

    assert response.status_code == 200
    assert response.json() == {}
    # Every byte taken from the in-flight budget (raw as it arrived, then the decoded share
    # of the gunzipped JSON) went back: exactly 0, neither held nor over-returned.
    assert _health(gateway)["gateway"]["inflight_bytes"] == 0
    (span,) = langfuse.wait_for_spans(1)
    assert span.key == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert span.parent_span_id == "eee19b7ec3c1b173"
    assert span.resource["service.name"] == "ts-app"
    assert span.status_code == "ERROR"
    assert span.status_message == "boom"
    # 1000 x 1.25 + 100 x 10 per 1M tokens
    assert span.attributes[attrs.GEN_AI_USAGE_COST] == 0.00225


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"\xff\xff\xff", PROTOBUF, 400, "not an OTLP protobuf"),
        (b"{not json", {"content-type": "application/json"}, 400, "not JSON"),
        (
            json.dumps(
                {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}
            ).encode(),
            {"content-type": "application/json"},
            400,
            "is not hex",
        ),
        (b"abc", {"content-type": "text/plain"}, 415, "unsupported content type"),
        (b"abc", {**PROTOBUF, "content-encoding": "br"}, 415, "unsupported content encoding"),
        (b"not gzip", {**PROTOBUF, "content-encoding": "gzip"}, 400, "not valid gzip"),
    ],
)
def test_http_malformed_payloads_get_a_message_and_are_counted(
    gateway: Gateway, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    response = _post(gateway, body, headers)

    assert response.status_code == status
    if response.headers["content-type"] == "application/x-protobuf":
        text = status_pb2.Status.FromString(response.content).message
    else:
        text = response.json()["message"]
    assert message in text
    stats = _health(gateway)["gateway"]
    assert stats["requests_malformed"] == 1
    assert message in stats["last_malformed"]
    assert stats["spans_accepted"] == 0


def test_span_with_invalid_id_rejects_the_request(gateway: Gateway, langfuse: FakeLangfuse) -> None:
    request = _request(_spans(2))
    request.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x00" * 8
    response = _post(gateway, request.SerializeToString(), PROTOBUF)

    assert response.status_code == 400
    assert (
        "invalid span_id 0000000000000000" in status_pb2.Status.FromString(response.content).message
    )
    assert _health(gateway)["exporter"]["accepted"] == 0


def test_a_sender_gone_mid_body_is_counted_aborted(gateway: Gateway) -> None:
    assert gateway.http_port is not None
    head = (
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.http_port)) as sock:
        sock.sendall(head + b"\0" * 1000)  # then gone, 99 000 bytes short

    def aborted() -> int:
        count: int = _health(gateway)["gateway"]["requests_aborted"]
        return count

    wait_until(lambda: aborted() == 1, 10, "the aborted request to be counted")
    counts = _health(gateway)["gateway"]
    assert (counts["requests"], counts["requests_malformed"], counts["inflight_bytes"]) == (1, 0, 0)


def test_a_10_mib_request_is_taken_while_another_is_in_flight(
    gateway: Gateway, langfuse: FakeLangfuse
) -> None:
    assert gateway.http_port is not None and gateway.grpc_endpoint is not None
    # Another request in progress: 5 MiB of its body received, the rest still coming.
    head = (
        b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: %d\r\n\r\n" % (8 * 2**20)
    )
    with socket.create_connection(("127.0.0.1", gateway.http_port)) as sending:
        sending.sendall(head + b"\0" * (5 * 2**20))
        wait_until(
            lambda: _health(gateway)["gateway"]["inflight_bytes"] >= 5 * 2**20,
            10,
            "the other body to be in flight",
        )
        large = _request(_spans(1, {**FLASH, "payload": "x" * (10 * 2**20)})).SerializeToString()
        assert 10 * 2**20 < len(large) < 11 * 2**20

        # Decoding it takes 6 times its size: the default budget has room beside the other.
        assert _post(gateway, large, PROTOBUF).status_code == 200
        with grpc.insecure_channel(
            gateway.grpc_endpoint, options=[("grpc.max_send_message_length", 16 * 2**20)]
        ) as channel:
            export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=None,
                response_deserializer=ExportTraceServiceResponse.FromString,
            )
            assert isinstance(export(large, timeout=30), ExportTraceServiceResponse)
            # Decoded after admission now, by the gateway: not protobuf is its malformed.
            with pytest.raises(grpc.RpcError) as raised:
                export(b"\xff\xff\xff", timeout=10)
    langfuse.wait_for_spans(2)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not an OTLP protobuf" in raised.value.details()
    counts = _health(gateway)["gateway"]
    assert (counts["requests_busy"], counts["requests_malformed"]) == (0, 1)


def test_an_inflight_budget_below_the_largest_request_is_refused_naming_both() -> None:
    with pytest.raises(ValueError, match="max_inflight_bytes") as refused:
        GatewaySettings(max_request_bytes=16 * 2**20, max_inflight_bytes=64 * 2**20)
    message = str(refused.value)
    assert "--max-inflight-bytes" in message and "--max-request-bytes" in message
    assert "\n" not in message
    derived = GatewaySettings(max_request_bytes=2**20)
    assert derived.max_inflight_bytes == 12 * 2**20 + 16 * 2**20
    assert GatewaySettings().max_inflight_bytes == 208 * 2**20


def test_request_over_the_size_limit_is_413(langfuse: FakeLangfuse, tmp_path: Path) -> None:
    with _gateway(langfuse, tmp_path, max_request_bytes=2048).start() as gateway:
        big = _request(_spans(1, {**FLASH, "blob": "x" * 4096})).SerializeToString()
        assert _post(gateway, big, PROTOBUF).status_code == 413
        # A gzip body that inflates past the limit too.
        bomb = gzip.compress(big)
        response = _post(gateway, bomb, {**PROTOBUF, "content-encoding": "gzip"})
        assert response.status_code == 413
        assert _health(gateway)["gateway"]["requests_too_large"] == 2


# --- OTLP/gRPC ---------------------------------------------------------------------------------


def test_grpc_export_and_invalid_argument(gateway: Gateway, langfuse: FakeLangfuse) -> None:
    assert gateway.grpc_endpoint is not None
    with grpc.insecure_channel(gateway.grpc_endpoint) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        stub.Export(_request(_spans(4)), timeout=10)
        assert len(langfuse.wait_for_spans(4)) == 4

        bad = _request(_spans(1))
        bad.resource_spans[0].scope_spans[0].spans[0].trace_id = b"\x01"
        with pytest.raises(grpc.RpcError) as raised:
            stub.Export(bad, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid trace_id 01" in raised.value.details()


# --- backpressure ------------------------------------------------------------------------------


def _retry_delay(error: grpc.RpcError) -> float:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    raise AssertionError("no RetryInfo in the status details")


HIGH_WATER = "spool at its high-water mark: new requests are refused for now"


def test_full_spool_answers_429_and_resource_exhausted_then_recovers(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    langfuse.refuse_connections()
    gateway = _gateway(langfuse, tmp_path, spool_max_bytes=64 * 1024, retry_after=2.5)
    with gateway.start():
        body = _request(_spans(40)).SerializeToString()
        accepted = 0
        for _ in range(100):
            response = _post(gateway, body, PROTOBUF)
            if response.status_code != 200:
                break
            accepted += 40
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert "spool full" in status_pb2.Status.FromString(response.content).message

        assert gateway.grpc_endpoint is not None
        with grpc.insecure_channel(gateway.grpc_endpoint) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Export(_request(_spans(40)), timeout=10)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _retry_delay(raised.value) == 2.5

        health = _health(gateway)
        assert health["exporter"]["dropped"] == {}  # refused, never dropped
        assert health["exporter"]["accepted"] == accepted
        assert health["gateway"]["requests_busy"] == 2
        assert health["status"] != "healthy"
        assert HIGH_WATER in health["reasons"]

        langfuse.up()
        assert len(langfuse.wait_for_spans(accepted, timeout=30)) >= accepted
        # Room again once the spool drained.
        wait_until(lambda: HIGH_WATER not in _health(gateway)["reasons"], 10, "the spool to drain")
        assert _post(gateway, body, PROTOBUF).status_code == 200


# --- lifecycle ---------------------------------------------------------------------------------


def test_shutdown_finishes_and_refuses_after(langfuse: FakeLangfuse, tmp_path: Path) -> None:
    gateway = _gateway(langfuse, tmp_path).start()
    assert _post(gateway, _request(_spans(5)).SerializeToString(), PROTOBUF).status_code == 200
    gateway.shutdown(timeout=10)

    assert gateway.wait(0)
    assert langfuse.span_count == 5  # sent during shutdown
    with pytest.raises(httpx.TransportError):
        _post(gateway, _request(_spans(1)).SerializeToString(), PROTOBUF)


def test_cli_gateway_runs_until_sigterm(langfuse: FakeLangfuse, tmp_path: Path) -> None:
    env = {**os.environ, **langfuse.environment(), "OTEL_GEMINI_SPOOL_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_gemini.cli",
            "gateway",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("otel-gemini gateway listening grpc=127.0.0.1:")
        http = line.split("http=")[1].split()[0]
        body = _request(_spans(2)).SerializeToString()
        response = httpx.post(f"{http}/v1/traces", content=body, headers=PROTOBUF)
        assert response.status_code == 200
        process.terminate()
        out, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert "2 spans sent, 0 left in the spool" in out


def test_cli_gateway_bad_configuration_names_the_setting(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LANGFUSE_")}
    result = subprocess.run(
        [sys.executable, "-m", "otel_gemini.cli", "gateway", "--grpc-port", "0"],
        env={**env, "OTEL_GEMINI_SPOOL_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "LANGFUSE_PUBLIC_KEY" in result.stderr


def test_cli_gateway_names_a_bad_budget_rule(langfuse: FakeLangfuse, tmp_path: Path) -> None:
    rules = tmp_path / "budgets.toml"
    rules.write_text('[[budget]]\nname = "fleet"\nscope = "team"\nlimit_usd = 5\n')
    env = {key: value for key, value in os.environ.items() if not key.startswith("LANGFUSE_")}
    result = subprocess.run(
        [sys.executable, "-m", "otel_gemini.cli", "gateway", "--budgets", str(rules)],
        env={**env, **langfuse.environment(), "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "s")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stderr) == (
        2,
        "otel-gemini gateway: budget rule 'fleet': key 'scope' must be one of total, user, "
        "session, model, service.name, tag (got 'team')\n",
    )


def test_cli_gateway_refuses_a_store_keeping_rows_shorter_than_a_budget_period(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    rules = tmp_path / "budgets.toml"
    rules.write_text('[[budget]]\nname = "fleet"\nperiod = "day"\nlimit_usd = 5\n')
    env = {key: value for key, value in os.environ.items() if not key.startswith("LANGFUSE_")}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "otel_gemini.cli", "gateway", "--budgets", str(rules)),
            *("--db", str(tmp_path / "costs.sqlite3"), "--retention-days", "0.5"),
        ],
        env={**env, **langfuse.environment(), "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "s")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stderr) == (
        2,
        "otel-gemini gateway: --retention-days / OTEL_GEMINI_COST_RETENTION_DAYS is 0.5 days, "
        "shorter than the budget rules read (1.042 days): the store would delete spend they "
        "count; raise it, or 0 keeps rows for ever\n",
    )
    assert not (tmp_path / "costs.sqlite3").exists()


def test_health_is_the_shared_report_with_the_gateways_counters(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    gateway = _gateway(langfuse, tmp_path).start()
    try:
        _post(gateway, _request(_spans(2)).SerializeToString(), PROTOBUF)
        langfuse.wait_for_spans(2)
        wait_until(lambda: _health(gateway)["counts"]["sent"] == 2, 10, "the spans to be sent")
        response = httpx.get(f"{gateway.http_endpoint}/api/observability/health")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        document = response.json()
        assert document["status"] == "healthy"
        assert document["counts"]["accepted"] == 2
        assert document["gateway"]["spans_accepted"] == 2
        assert document["pricing"]["spans"]["priced"] == 2
        assert document["langfuse"]["base_url"] == langfuse.base_url
    finally:
        gateway.shutdown()
    report = gateway.health()
    assert report.status.value == "unhealthy"
    assert report.reasons[0] == "shutting down"


def test_otel_gemini_health_reads_the_gateway(
    gateway: Gateway, langfuse: FakeLangfuse, capsys: pytest.CaptureFixture[str]
) -> None:
    _post(gateway, _request(_spans(2)).SerializeToString(), PROTOBUF)
    langfuse.wait_for_spans(2)
    wait_until(lambda: _health(gateway)["counts"]["sent"] == 2, 10, "the spans to be sent")
    assert gateway.http_endpoint is not None

    assert cli_main(["health", "--url", gateway.http_endpoint, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "healthy"
    assert document["counts"]["sent"] == 2
    assert document["gateway"]["spans_accepted"] == 2
    assert document["pricing"]["spans"]["priced"] == 2

    assert cli_main(["health", "--url", gateway.http_endpoint]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "status: healthy"
    assert "sent 2, failed attempts 0, dropped 0, dead-lettered 0" in lines
    assert (
        "gateway: requests 1, spans_accepted 2, requests_malformed 0, requests_busy 0,"
        " requests_unavailable 0, requests_too_large 0, requests_aborted 0, inflight_bytes 0,"
        f" inflight_capacity_bytes {gateway.settings.max_inflight_bytes}"
    ) in lines
    assert (
        "pricing: spans.priced 2, inconsistent_usage 0, implausible_usage 0, unknown_models []"
    ) in lines


def test_refused_keys_make_the_gateway_unhealthy_with_503(
    langfuse: FakeLangfuse, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    langfuse.suspend_ingestion()  # 403 on ingestion: sending pauses, spans stay in the spool
    with _gateway(langfuse, tmp_path).start() as gateway:
        assert _post(gateway, _request(_spans(3)).SerializeToString(), PROTOBUF).status_code == 200
        wait_until(lambda: gateway.exporter.stats().paused == "auth", 10, "sending to pause")

        response = httpx.get(f"{gateway.http_endpoint}/api/observability/health")
        assert response.status_code == 503
        document = response.json()
        assert document["status"] == "unhealthy"
        assert document["reasons"][0].startswith(
            "Langfuse refused the credentials (HTTP 403 Forbidden)"
        )
        assert document["queue"]["spans"] == 3
        assert document["gateway"]["spans_accepted"] == 3
        assert langfuse.secret_key not in response.text

        assert gateway.http_endpoint is not None
        assert cli_main(["health", "--url", gateway.http_endpoint]) == 2
        out = capsys.readouterr().out
        assert "status: unhealthy" in out
        assert "queue: 3 spans" in out


def test_the_gateway_evaluates_budgets_over_the_node_apps_spans(
    langfuse: FakeLangfuse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from collector_harness import node_app_ready, run_node_app

    from otel_gemini.aggregate import CostStore
    from otel_gemini.budgets import BudgetRules, budget_status

    if node_app_ready():
        pytest.skip(node_app_ready())
    caplog.set_level(logging.WARNING, logger="otel_gemini.budgets")
    rules = BudgetRules.parse(
        '[[budget]]\nname = "per-user"\nscope = "user"\nlimit_usd = "0.012"\nwarn_at = [0.5]\n'
        '[[budget]]\nname = "node-service"\nscope = "service.name"\nlimit_usd = 1\n'
    )
    store = CostStore(tmp_path / "costs.sqlite3")
    exporter = LangfuseExporter(
        spool_dir=tmp_path / "spool",
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.5),
        **langfuse.exporter_settings(),
    )
    gateway = Gateway(
        exporter,
        settings=GatewaySettings(grpc_port=0, http_port=0),
        cost_store=store,
        budgets=rules,
    )
    with gateway.start():
        # 6 traces of two generations each ($0.0008 and $0.0016) for node-user: $0.0144.
        node = run_node_app(f"{gateway.http_endpoint}/v1/traces", traces=6)
        assert node["spans"] == 18
        assert gateway.budgets is not None
        wait_until(
            lambda: (
                store.stats()["written"] == 12
                and bool(gateway.budgets and gateway.budgets.force_flush(1))
                and len([r for r in caplog.records if hasattr(r, "budget_alert")]) == 2
            ),
            what="12 generations stored and evaluated",
        )
        document = budget_status(rules, store.path)
        health = _health(gateway)
    kinds = [
        (record.budget_alert["rule"], record.budget_alert["kind"])  # type: ignore[attr-defined]
        for record in caplog.records
        if hasattr(record, "budget_alert")
    ]
    assert kinds == [("per-user", "warning"), ("per-user", "limit")]
    per_user, per_service = document["budgets"]
    assert [(e["scope_value"], e["spend_usd"], e["requests"]) for e in per_user["entries"]] == [
        ("node-user", "0.0144", 12)
    ]
    assert per_service["scope_values_with_spend"] == 1
    assert health["budgets"]["alerts"] == 2


def test_check_refuses_the_paths_the_gateway_would_refuse_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``gateway --check`` checks the cost store and spool paths as starting does (a
    directory others can write, a symlink), without creating anything: a check that passes
    is a gateway that starts."""
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-test")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    shared.chmod(0o777)  # as /tmp, without the sticky bit
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "link.sqlite3").symlink_to(private / "elsewhere.sqlite3")
    cases = [
        (
            {"OTEL_GEMINI_SPOOL_DIR": str(private / "spool")},
            ["--db", str(shared / "costs.sqlite3")],
            f"otel-gemini gateway: --db / OTEL_GEMINI_COST_DB: cannot open the cost store "
            f"'{shared / 'costs.sqlite3'}': {shared} is writable by other users (chmod go-w); "
            "refusing to write there\n",
        ),
        (
            {"OTEL_GEMINI_SPOOL_DIR": str(shared / "spool")},
            [],
            f"otel-gemini gateway: cannot use the spool directory {shared / 'spool'} "
            f"(OTEL_GEMINI_SPOOL_DIR / spool_dir=): {shared} is writable by other users "
            "without the sticky bit (chmod o-w or +t); refusing to write there\n",
        ),
        (
            {"OTEL_GEMINI_SPOOL_DIR": str(private / "spool")},
            ["--db", str(private / "link.sqlite3")],
            f"otel-gemini gateway: --db / OTEL_GEMINI_COST_DB: cannot open the cost store "
            f"'{private / 'link.sqlite3'}': {private / 'link.sqlite3'} is a symlink "
            "(not followed); refusing to write there\n",
        ),
    ]
    (private / "notes.txt").write_text("not a store")
    newer = private / "newer.sqlite3"
    with contextlib.closing(sqlite3.connect(newer)) as connection:
        connection.execute("PRAGMA user_version=99")
        connection.execute("CREATE TABLE t (x)")
    planted = tmp_path / "planted-spool"
    planted.mkdir(mode=0o700)
    (planted / "slot-0").symlink_to(private)
    cases += [
        (
            {"OTEL_GEMINI_SPOOL_DIR": str(private / "spool")},
            ["--db", str(private / "notes.txt")],
            f"otel-gemini gateway: --db / OTEL_GEMINI_COST_DB: cannot use the cost store "
            f"'{private / 'notes.txt'}': file is not a database\n",
        ),
        (
            {"OTEL_GEMINI_SPOOL_DIR": str(private / "spool")},
            ["--db", str(newer)],
            f"otel-gemini gateway: --db / OTEL_GEMINI_COST_DB: the cost store '{newer}' was "
            "written by a newer otel-gemini (schema 99, this one knows 2)\n",
        ),
        (
            {"OTEL_GEMINI_SPOOL_DIR": str(planted)},
            [],
            f"otel-gemini gateway: cannot use the spool directory {planted} "
            f"(OTEL_GEMINI_SPOOL_DIR / spool_dir=): {planted / 'slot-0'} is a symlink (not "
            "followed); refusing to write there\n",
        ),
    ]
    for environ, argv, message in cases:
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        assert cli_main(["gateway", "--check", *argv]) == 2
        assert capsys.readouterr().err == message
    monkeypatch.setenv("OTEL_GEMINI_SPOOL_DIR", str(private / "spool"))
    for made in ("notes.txt", "newer.sqlite3"):
        (private / made).unlink()
    assert sorted(p.name for p in private.iterdir()) == ["link.sqlite3"]
    assert list(shared.iterdir()) == []
    assert cli_main(["gateway", "--check", "--db", str(private / "costs.sqlite3")]) == 0
    assert sorted(p.name for p in private.iterdir()) == ["link.sqlite3"]  # nothing created
