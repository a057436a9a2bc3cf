"""The fake Langfuse enforces the ingestion contract and switches behaviour on demand."""

from __future__ import annotations

import gzip
import json
import socket

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otel_gemini.export._transport import basic_auth
from otel_gemini.testing import FakeLangfuse

TRACE_ID = bytes(range(1, 17))


def otlp(*span_ids: int, attributes: dict[str, str] | None = None) -> bytes:
    spans = [
        Span(
            trace_id=TRACE_ID,
            span_id=span_id.to_bytes(8, "big"),
            name=f"span {span_id}",
            kind=Span.SPAN_KIND_CLIENT,
            attributes=[
                KeyValue(key=key, value=AnyValue(string_value=value))
                for key, value in (attributes or {}).items()
            ],
        )
        for span_id in span_ids
    ]
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
    )
    return request.SerializeToString()


def post(
    fake: FakeLangfuse,
    body: bytes,
    *,
    content_type: str = "application/x-protobuf",
    encoding: str | None = "gzip",
    version: str | None = "4",
    secret: str | None = None,
    public: str | None = None,
    timeout: float = 5.0,
) -> httpx.Response:
    headers = {
        "Content-Type": content_type,
        "Authorization": basic_auth(public or fake.public_key, secret or fake.secret_key),
    }
    if encoding is not None:
        headers["Content-Encoding"] = encoding
        body = gzip.compress(body) if encoding == "gzip" else body
    if version is not None:
        headers["x-langfuse-ingestion-version"] = version
    return httpx.post(
        f"{fake.base_url}/api/public/otel/v1/traces", content=body, headers=headers, timeout=timeout
    )


def test_protobuf_spans_are_decoded_and_recorded(fake_langfuse: FakeLangfuse) -> None:
    response = post(fake_langfuse, otlp(1, 2, attributes={"gen_ai.request.model": "gemini"}))
    assert response.status_code == 200
    first, second = fake_langfuse.wait_for_spans(2)
    assert (first.trace_id, first.span_id, first.name, first.kind) == (
        TRACE_ID.hex(),
        "0000000000000001",
        "span 1",
        "CLIENT",
    )
    assert second.attributes == {"gen_ai.request.model": "gemini"}
    (request,) = fake_langfuse.requests
    assert (request.status, request.span_count, request.headers["authorization"]) == (
        200,
        2,
        "<withheld>",
    )


def test_otlp_json_with_hex_ids_is_accepted(fake_langfuse: FakeLangfuse) -> None:
    document = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE_ID.hex(),
                                "spanId": "00000000000000aa",
                                "name": "json span",
                                "kind": 3,
                                "attributes": [{"key": "n", "value": {"intValue": "7"}}],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    response = post(fake_langfuse, json.dumps(document).encode(), content_type="application/json")
    assert response.status_code == 200
    (span,) = fake_langfuse.spans
    assert (span.span_id, span.kind, span.attributes) == ("00000000000000aa", "CLIENT", {"n": 7})


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"secret": "sk-lf-wrong"}, 401),
        ({"public": "pk-lf-org", "secret": "sk-lf-org"}, 403),
        ({"content_type": "text/plain"}, 400),
        ({"encoding": "deflate"}, 400),
        ({"version": "5"}, 400),
    ],
)
def test_the_contract_is_enforced(changes: dict[str, str], status: int) -> None:
    with FakeLangfuse(organization_keys={"pk-lf-org": "sk-lf-org"}) as fake:
        response = post(fake, otlp(1), **changes)  # type: ignore[arg-type]
        assert response.status_code == status
        assert fake.spans == []


def test_one_bad_span_id_rejects_the_whole_request(fake_langfuse: FakeLangfuse) -> None:
    good = ExportTraceServiceRequest()
    good.ParseFromString(otlp(1, 2))
    good.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x00" * 8
    assert post(fake_langfuse, good.SerializeToString()).status_code == 400
    assert fake_langfuse.span_count == 0


def test_health_and_projects(fake_langfuse: FakeLangfuse) -> None:
    health = httpx.get(f"{fake_langfuse.base_url}/api/public/health")
    assert (health.status_code, health.json()["status"]) == (200, "OK")
    projects = httpx.get(f"{fake_langfuse.base_url}/api/public/projects")
    assert projects.status_code == 401
    authorized = httpx.get(
        f"{fake_langfuse.base_url}/api/public/projects",
        headers={"Authorization": basic_auth(fake_langfuse.public_key, fake_langfuse.secret_key)},
    )
    assert authorized.json() == {"data": [{"id": "fake-project", "name": "Fake project"}]}


def test_modes_switch_at_runtime(fake_langfuse: FakeLangfuse) -> None:
    port = fake_langfuse.port
    fake_langfuse.refuse_connections()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    # The port stays the fake's: a server given a "free" port meanwhile cannot take it.
    with socket.socket() as other, pytest.raises(OSError, match="in use"):
        other.bind(("127.0.0.1", port))
    fake_langfuse.rate_limit(retry_after=7)
    limited = post(fake_langfuse, otlp(1))
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "7")
    assert fake_langfuse.port == port
    fake_langfuse.respond_with(503)
    assert post(fake_langfuse, otlp(1)).status_code == 503
    assert httpx.get(f"{fake_langfuse.base_url}/api/public/health").status_code == 503
    fake_langfuse.hang()
    with pytest.raises(httpx.ReadTimeout):
        post(fake_langfuse, otlp(1), timeout=0.3)
    fake_langfuse.up()
    fake_langfuse.reject_spans_with_attribute("poison")
    assert post(fake_langfuse, otlp(1, attributes={"poison": "yes"})).status_code == 400
    assert post(fake_langfuse, otlp(2)).status_code == 200
    assert [request.status for request in fake_langfuse.requests] == [429, 503, 503, 400, 200]


@pytest.mark.allow_duplicate_spans  # re-sends a span on purpose
def test_observations_keep_the_last_copy_of_each_span_and_read_event_attributes(
    fake_langfuse: FakeLangfuse,
) -> None:
    # A re-sent span collapses to one observation (storage keeps one per span id and start).
    post(fake_langfuse, otlp(1, attributes={"gen_ai.request.model": "first"}))
    post(fake_langfuse, otlp(1, attributes={"gen_ai.request.model": "second"}))
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}])
    span = Span(
        trace_id=TRACE_ID,
        span_id=(2).to_bytes(8, "big"),
        parent_span_id=(1).to_bytes(8, "big"),
        name="with an event",
        events=[
            Span.Event(
                name="gen_ai.client.inference.operation.details",
                attributes=[
                    KeyValue(key="gen_ai.input.messages", value=AnyValue(string_value=messages))
                ],
            )
        ],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    post(fake_langfuse, request.SerializeToString())
    fake_langfuse.wait_for_spans(3)

    root, child = fake_langfuse.observations()
    assert (root.model, root.type, root.parent_id) == ("second", "GENERATION", None)
    assert child.input == json.loads(messages)
    assert fake_langfuse.spans[-1].event_attributes == ({"gen_ai.input.messages": messages},)
    (trace,) = fake_langfuse.traces()
    assert trace.root == root and trace.observations == (root, child)


def test_a_span_id_received_twice_is_reported(fake_langfuse: FakeLangfuse) -> None:
    post(fake_langfuse, otlp(1, 2))
    post(fake_langfuse, otlp(2))
    fake_langfuse.wait_for_spans(3)
    assert fake_langfuse.duplicate_span_ids == {(TRACE_ID.hex(), (2).to_bytes(8, "big").hex()): 2}
    fake_langfuse.reset()  # else the fixture fails this test at teardown, as it should
    assert fake_langfuse.duplicate_span_ids == {}
