"""Issue 22: hostile input costs a bounded amount of memory, log and answer, never invents
spend, and never crashes a handler (docs/security.md, "Input limits")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from polling import wait_until

from otel_gemini import CostSpanProcessor
from otel_gemini import _attributes as attrs
from otel_gemini.aggregate import CostStore, LocalCostSource
from otel_gemini.aggregate._query import parse_cost_query
from otel_gemini.export import LangfuseExporter, RetryPolicy
from otel_gemini.gateway import Gateway, GatewaySettings
from otel_gemini.testing import FakeLangfuse

pytestmark = pytest.mark.timeout(120)

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
MiB = 1024 * 1024


def _spans(attributes: list[dict[str, Any]]) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("hostile-test")
    for index, attrs_ in enumerate(attributes):
        tracer.start_span(
            f"generate_content {index}", kind=SpanKind.CLIENT, attributes=attrs_
        ).end()
    return list(memory.get_finished_spans())


def _body(attributes: list[dict[str, Any]]) -> bytes:
    data: bytes = encode_spans(_spans(attributes)).SerializeToString()
    return data


@pytest.fixture
def langfuse() -> Iterator[FakeLangfuse]:
    with FakeLangfuse() as fake:
        yield fake


@pytest.fixture
def gateway(langfuse: FakeLangfuse, tmp_path: Path) -> Iterator[Gateway]:
    exporter = LangfuseExporter(
        spool_dir=tmp_path / "spool",
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.5),
        **langfuse.exporter_settings(),
    )
    settings = GatewaySettings(grpc_port=0, http_port=0)
    with Gateway(exporter, settings=settings).start() as running:
        yield running


def _post(gateway: Gateway, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{gateway.http_endpoint}/v1/traces", content=body, headers=headers)


def _health(gateway: Gateway) -> httpx.Response:
    return httpx.get(f"{gateway.http_endpoint}/api/observability/health")


# --- invented spend ----------------------------------------------------------------------------

HUGE_COUNTS = [10**15, 2**63 - 1, 1e308, float("inf"), -5, 12.5]


def test_implausible_counts_are_unpriced_counted_and_cost_nothing_in_langfuse(
    gateway: Gateway, langfuse: FakeLangfuse
) -> None:
    spans = [
        {
            attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
            attrs.GEN_AI_USAGE_INPUT_TOKENS: count,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
        }
        for count in HUGE_COUNTS
    ]
    assert _post(gateway, _body(spans), PROTOBUF).status_code == 200

    received = langfuse.wait_for_spans(len(spans))
    for span in received:
        assert span.attributes[attrs.COST_STATUS] == "implausible_usage"
        assert "implausible usage: input_tokens" in span.attributes[attrs.COST_REASON]
        assert attrs.GEN_AI_USAGE_COST not in span.attributes
        # The counts as sent stay on the span; Langfuse gets no usage to price itself.
        assert attrs.GEN_AI_USAGE_INPUT_TOKENS in span.attributes
        assert span.attributes[attrs.LANGFUSE_USAGE_DETAILS] == "{}"
    for observation in langfuse.observations():
        assert observation.total_cost is None
        assert not observation.cost_details
        assert observation.total_usage == 0
    pricing = _health(gateway).json()["pricing"]
    assert pricing["spans"] == {"implausible_usage": len(spans)}
    assert pricing["implausible_usage"] == len(spans)


def test_implausible_counts_are_unpriced_requests_in_the_store(tmp_path: Path) -> None:
    path = tmp_path / "costs.sqlite3"
    store = CostStore(path, batch_delay=0.01, retention_days=0)
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(store))
    tracer = provider.get_tracer("t")
    for count in HUGE_COUNTS:
        attributes = {
            attrs.GEN_AI_OPERATION_NAME: "generate_content",
            attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
            attrs.GEN_AI_USAGE_INPUT_TOKENS: count,
        }
        tracer.start_span("generate_content", attributes=attributes).end()
    store.shutdown(10_000)

    query = parse_cost_query({"group_by": "model"}, datetime.now(timezone.utc))
    document = LocalCostSource(path).costs(query).to_dict()
    assert document["total"]["requests"] == len(HUGE_COUNTS)
    assert document["total"]["unpriced_requests"] == len(HUGE_COUNTS)
    assert document["total"]["cost"] is None
    assert document["total"]["input_tokens"] == 0


# --- input that crashed a handler --------------------------------------------------------------


def _malformed_count(gateway: Gateway) -> int:
    count: int = _health(gateway).json()["gateway"]["requests_malformed"]
    return count


def test_json_nested_100000_deep_is_400_and_counted(gateway: Gateway) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    response = _post(gateway, body, JSON)

    assert response.status_code == 400
    assert "nested deeper than 64" in response.json()["message"]
    assert _malformed_count(gateway) == 1


def test_json_attribute_nested_300_deep_is_400(gateway: Gateway) -> None:
    # Written out: json.dumps itself recurses too deeply for this.
    value = '{"stringValue": "leaf"}'
    for _ in range(300):
        value = '{"kvlistValue": {"values": [{"key": "k", "value": VALUE}]}}'.replace(
            "VALUE", value
        )
    span = (
        '{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",'
        ' "name": "deep", "attributes": [{"key": "deep", "value": VALUE}]}'
    ).replace("VALUE", value)
    document = '{"resourceSpans": [{"scopeSpans": [{"spans": [SPAN]}]}]}'.replace("SPAN", span)
    response = _post(gateway, document.encode(), JSON)

    assert response.status_code == 400
    assert _malformed_count(gateway) == 1


def test_protobuf_attribute_nested_past_the_limit_is_400(gateway: Gateway) -> None:
    request = encode_spans(_spans([{"a": 1}]))
    value = AnyValue(string_value="leaf")
    for _ in range(20):  # under protobuf's own limit (100 message levels), over ours (16)
        outer = AnyValue()
        outer.kvlist_value.values.append(KeyValue(key="k", value=value))
        value = outer
    request.resource_spans[0].scope_spans[0].spans[0].attributes.append(
        KeyValue(key="deep", value=value)
    )
    response = _post(gateway, request.SerializeToString(), PROTOBUF)

    assert response.status_code == 400
    assert _malformed_count(gateway) == 1


def test_a_10_mib_bad_trace_id_is_quoted_200_bytes_at_most(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    span = {"traceId": "zz" * (5 * MiB), "spanId": "b7ad6b7169203331", "name": "bad"}
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    response = _post(gateway, json.dumps(document).encode(), JSON)

    assert response.status_code == 400
    assert len(response.content) <= 400  # the 200 bytes of input plus the JSON around it
    message = response.json()["message"]
    assert "traceId" in message and "10485760 characters" in message
    assert message.count("z") <= 200
    assert _health(gateway).json()["gateway"]["last_malformed"] == message
    assert len(_health(gateway).content) < 64 * 1024
    logged = [
        record.getMessage() for record in caplog.records if "malformed" in record.getMessage()
    ]
    assert logged and all(text.count("z") <= 200 for text in logged)


# --- memory held by hostile names --------------------------------------------------------------


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc for RSS")
def test_20_distinct_7_mib_unknown_names_cost_bounded_memory_health_and_log(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    stderr_path = tmp_path / "stderr"
    env = {
        **os.environ,
        **langfuse.environment(),
        "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    command = [sys.executable, "-m", "otel_gemini.cli", "gateway"]
    command += ["--grpc-port", "0", "--http-port", "0"]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        http = line.split("http=")[1].split()[0]
        unknown = {
            attrs.GEN_AI_REQUEST_MODEL: "gemini-9-warmup",
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 10,
        }
        client = httpx.Client(timeout=60)
        assert client.post(f"{http}/v1/traces", content=_body([unknown]), headers=PROTOBUF)
        langfuse.wait_for_spans(1)
        time.sleep(0.5)
        rss_before, log_before = _rss(process.pid), stderr_path.stat().st_size
        for index in range(20):
            name = f"{index:02d}" + "m" * (7 * MiB)
            body = _body([{**unknown, attrs.GEN_AI_REQUEST_MODEL: name}])
            response = client.post(f"{http}/v1/traces", content=body, headers=PROTOBUF)
            assert response.status_code == 200
            del body, name
        langfuse.wait_for_spans(21, timeout=60)
        wait_until(lambda: _rss(process.pid) - rss_before <= 50 * MiB, timeout=10)
        health = client.get(f"{http}/api/observability/health")
        assert len(health.content) <= 64 * 1024
        shown = health.json()["pricing"]["unknown_models"]
        assert len(shown) == 21 and all(len(name) <= 256 for name in shown)
        assert stderr_path.stat().st_size - log_before <= 64 * 1024
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- serve: dates out of range -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"to": "0001-01-01"}, "to"),
        ({"from": "9999-12-31T23:59:59", "tz": "-12:00"}, "from"),
        ({"from": "0001-01-01T00:00:00", "to": "0001-01-02", "tz": "+14:00"}, "to"),
        ({"from": "1969-12-31", "to": "1970-01-02"}, "from"),
        ({"to": "9999-12-31"}, "to"),
    ],
)
def test_serve_answers_400_for_dates_out_of_range(
    tmp_path: Path, params: dict[str, str], parameter: str
) -> None:
    from starlette.testclient import TestClient

    from otel_gemini.aggregate import CostAnswers
    from otel_gemini.server import observability_app

    path = tmp_path / "costs.sqlite3"
    CostStore(path).shutdown()
    app = observability_app(CostAnswers(LocalCostSource(path)))
    with TestClient(app) as client:
        for endpoint in ("costs", "latency"):
            response = client.get(f"/api/observability/{endpoint}", params=params)
            assert response.status_code == 400, response.text
            assert parameter in response.text and "out of range" in response.text


def test_the_inflight_budget_counts_what_a_request_becomes_once_decoded(
    gateway: Gateway,
) -> None:
    # Four concurrent 13.6 MB JSON requests peaked at 880 MB inside a 64 MiB budget of wire
    # bytes: the budget now reserves the decoded size, so the second waits (429).
    intake = gateway.intake
    size = 13 * MiB
    assert intake.admit(size, json=True) is None  # 156 MiB decoded, in a 208 MiB budget
    try:
        refused = intake.admit(size, json=True)
        assert refused is not None and refused.verdict.value == "busy"
        left = intake.budget.capacity - intake.reservation(size, json=True)
        assert intake.admit(left // 6 + 1) is not None  # 6 times that does not fit either
    finally:
        intake.release(size, json=True)
    assert intake.budget.used == 0
    assert intake.admit(5 * MiB) is None  # 30 MiB decoded: fits
    intake.release(5 * MiB)


def test_values_past_sqlite_integers_never_cost_the_store_a_batch(tmp_path: Path) -> None:
    # One such row made the whole batch's insert fail (OverflowError), legitimate rows with it.
    path = tmp_path / "costs.sqlite3"
    store = CostStore(path, batch_delay=0.5, retention_days=0)  # one batch for all
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(store))
    tracer = provider.get_tracer("t")
    base = {attrs.GEN_AI_OPERATION_NAME: "generate_content", attrs.GEN_AI_REQUEST_MODEL: "m"}
    hostile: list[dict[str, Any]] = [
        {attrs.GEN_AI_USAGE_COST: 1e300},
        {attrs.GEN_AI_USAGE_COST: -5.0},
        {attrs.LANGFUSE_USAGE_DETAILS: '{"input": 100000000000000000000000}'},
        {attrs.LANGFUSE_COST_DETAILS: '{"total": 100000000000000000000000}'},
        {attrs.LANGFUSE_COST_DETAILS: '{"total": "1E+999999"}'},
        {attrs.LANGFUSE_COST_DETAILS: '{"total": "' + "9" * 10_000 + '"}'},
    ]
    for extra in hostile:
        tracer.start_span("generate_content", attributes={**base, **extra}).end()
    tracer.start_span(
        "generate_content",
        attributes={
            **base,
            attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
            "gen_ai.usage.input_tokens": 5,
        },
    ).end()
    store.shutdown(10_000)

    assert store.stats()["dropped"] == dict.fromkeys(store.stats()["dropped"], 0)
    query = parse_cost_query({"group_by": "model"}, datetime.now(timezone.utc))
    groups = {g["model"]: g for g in LocalCostSource(path).costs(query).to_dict()["groups"]}
    assert groups["m"]["requests"] == len(hostile)
    # No status and no believable cost: nothing invented (these spans carry no usage of ours).
    assert groups["m"]["cost"] in (None, "0") and groups["m"]["input_tokens"] == 0
    assert groups["gemini-2.5-flash"]["cost"] == "0.0000015"
