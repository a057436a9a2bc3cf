"""Collector configs on a real Collector with real `otel-gemini gateway` processes.

- gateway-tier.yaml: spans from a Python app and from a Node.js app (OpenTelemetry JS SDK)
  reach two gateways through the load_balancing exporter, arrive priced, and every trace
  stays on one gateway (each gateway exports to its own fake Langfuse, so we can tell).
- agent.yaml: the agent reaches the gateway over TLS with a bearer token (a gateway with
  another token refuses it); a gateway killed (SIGKILL) and restarted loses nothing it had
  acknowledged, and nothing sent while it was down (the Collector's queue retries).
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_harness import (
    NODE_APP,
    Collector,
    GatewayProcess,
    node_app_ready,
    run_node_app,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from polling import wait_until
from tls_material import Material, make

from otel_gemini import _attributes as attrs
from otel_gemini.testing import FakeLangfuse

pytestmark = [pytest.mark.collector, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def node_app() -> Path:
    if node_app_ready():
        # CI installs it (make collector); a developer's first run installs it here.
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_APP, check=True)
    assert not node_app_ready(), node_app_ready()
    return NODE_APP


@pytest.fixture
def langfuses() -> Iterator[tuple[FakeLangfuse, FakeLangfuse]]:
    with FakeLangfuse() as first, FakeLangfuse() as second:
        yield first, second


@pytest.fixture
def material(tmp_path: Path) -> Material:
    directory = tmp_path / "tls"
    directory.mkdir()
    return make(directory)


def _gateway_env(langfuse: FakeLangfuse, spool: Path) -> dict[str, str]:
    return {**langfuse.environment(), "OTEL_GEMINI_SPOOL_DIR": str(spool)}


def _python_app(endpoint: str, traces: int, service: str = "python-test-app") -> dict[str, int]:
    """Traces of a root span and two Gemini generations each; span id -> trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    tracer = provider.get_tracer("python-test-app")
    spans: dict[str, int] = {}
    for _ in range(traces):
        with tracer.start_as_current_span("handle request") as root:
            for input_tokens, output_tokens in ((1000, 200), (2000, 400)):
                with tracer.start_as_current_span(
                    "generate_content gemini-2.5-flash",
                    kind=SpanKind.CLIENT,
                    attributes={
                        attrs.GEN_AI_OPERATION_NAME: "generate_content",
                        attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
                        attrs.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
                        attrs.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
                        attrs.USER_ID: "python-user",
                    },
                ) as generation:
                    context = generation.get_span_context()
                    spans[format_span_id(context.span_id)] = context.trace_id
            spans[format_span_id(root.get_span_context().span_id)] = (
                root.get_span_context().trace_id
            )
    provider.shutdown()
    return spans


def test_gateway_tier_keeps_traces_on_one_gateway_and_prices_python_and_node_spans(
    collector_binary: Path,
    node_app: Path,
    langfuses: tuple[FakeLangfuse, FakeLangfuse],
    tmp_path: Path,
) -> None:
    gateways = [
        GatewayProcess(_gateway_env(langfuse, tmp_path / f"spool-{index}"))
        for index, langfuse in enumerate(langfuses)
    ]
    hostnames = ", ".join(gateway.grpc_endpoint for gateway in gateways)
    collector = Collector(
        collector_binary, ["gateway-tier.yaml"], {"OTEL_GEMINI_GATEWAYS": f"[{hostnames}]"}
    )
    try:
        python_spans = _python_app(collector.otlp_http_traces, traces=12)
        node = run_node_app(collector.otlp_http_traces, traces=6)
        total = len(python_spans) + node["spans"]
        assert total == 36 + 18
        wait_until(
            lambda: sum(langfuse.span_count for langfuse in langfuses) >= total,
            30,
            f"{total} spans at the fake Langfuses",
        )
    finally:
        collector.stop()
        for gateway in gateways:
            gateway.stop()

    traces_by_gateway: dict[str, set[int]] = defaultdict(set)
    received = []
    for index, langfuse in enumerate(langfuses):
        for span in langfuse.spans:
            traces_by_gateway[span.trace_id].add(index)
            received.append(span)
    assert len({span.key for span in received}) == total
    # Every trace went to exactly one gateway, and both gateways got traces.
    assert all(len(indexes) == 1 for indexes in traces_by_gateway.values())
    assert {next(iter(indexes)) for indexes in traces_by_gateway.values()} == {0, 1}
    expected_traces = {format_trace_id(trace_id) for trace_id in python_spans.values()}
    expected_traces |= set(node["traces"])
    assert set(traces_by_gateway) == expected_traces

    generations = [span for span in received if span.name.startswith("generate_content")]
    assert len(generations) == 24 + 12
    by_service: dict[str, list[float]] = defaultdict(list)
    for span in generations:
        assert span.attributes[attrs.COST_STATUS] == "priced"
        by_service[str(span.resource["service.name"])].append(
            float(span.attributes[attrs.GEN_AI_USAGE_COST])  # type: ignore[arg-type]
        )
    assert sorted(by_service["python-test-app"]) == [0.0008] * 12 + [0.0016] * 12
    assert sorted(by_service["node-test-app"]) == [0.0008] * 6 + [0.0016] * 6
    roots = [span for span in received if span.name == "handle request"]
    assert len(roots) == 18
    assert all(attrs.COST_STATUS not in span.attributes for span in roots)


def test_agent_reaches_the_gateway_with_its_token_over_tls_and_nothing_else_does(
    collector_binary: Path,
    langfuses: tuple[FakeLangfuse, FakeLangfuse],
    material: Material,
    tmp_path: Path,
) -> None:
    langfuse = langfuses[0]
    gateway = GatewayProcess(_gateway_env(langfuse, tmp_path / "spool"), secured=material)
    agent_env = {"OTEL_GEMINI_GATEWAY_ENDPOINT": gateway.grpc_endpoint, **material.collector_env()}
    collector = Collector(collector_binary, ["agent.yaml"], agent_env)
    try:
        spans = _python_app(collector.otlp_http_traces, traces=4)
        langfuse.wait_for_spans(len(spans), timeout=30)
        assert {span.span_id for span in langfuse.spans} == set(spans)
        assert gateway.health()["gateway"]["spans_accepted"] == len(spans)
    finally:
        collector.stop()
    # The same agent with a token the gateway does not know: refused, nothing accepted.
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token")
    collector = Collector(
        collector_binary,
        ["agent.yaml"],
        {**agent_env, "OTEL_GEMINI_GATEWAY_TOKEN_FILE": str(wrong)},
    )
    try:
        _python_app(collector.otlp_http_traces, traces=1)
        collector.wait_for_output("Unauthenticated", 30)
        assert gateway.health()["gateway"]["spans_accepted"] == len(spans)
    finally:
        collector.stop()
        gateway.stop()


def test_gateway_killed_and_restarted_loses_nothing_it_accepted(
    collector_binary: Path,
    langfuses: tuple[FakeLangfuse, FakeLangfuse],
    material: Material,
    tmp_path: Path,
) -> None:
    langfuse = langfuses[0]
    langfuse.refuse_connections()  # nothing leaves the spool until the end
    env = _gateway_env(langfuse, tmp_path / "spool")
    gateway = GatewayProcess(env, secured=material)
    collector = Collector(
        collector_binary,
        ["agent.yaml"],
        {"OTEL_GEMINI_GATEWAY_ENDPOINT": gateway.grpc_endpoint, **material.collector_env()},
    )
    restarted: GatewayProcess | None = None
    try:
        before = _python_app(collector.otlp_http_traces, traces=10)
        # The gateway acknowledges a request once its spans are in the spool.
        wait_until(
            lambda: gateway.health()["gateway"]["spans_accepted"] == len(before),
            30,
            "the gateway to accept the first spans",
        )
        gateway.kill()
        # Sent while the gateway is down: the Collector's queue holds and retries them.
        during = _python_app(collector.otlp_http_traces, traces=5)
        restarted = GatewayProcess(
            env, grpc_port=gateway.grpc_port, http_port=gateway.http_port, secured=material
        )
        langfuse.up()
        expected = set(before) | set(during)
        wait_until(lambda: len(langfuse.span_keys()) >= len(expected), 60, "every span at Langfuse")
    finally:
        collector.stop()
        if restarted is not None:
            restarted.stop()
        gateway.kill()

    received = {span.span_id for span in langfuse.spans}
    assert received == expected
    costs = sorted(
        span.attributes[attrs.GEN_AI_USAGE_COST]  # type: ignore[type-var]
        for span in langfuse.spans
        if span.name.startswith("generate_content")
    )
    # Duplicates are allowed (at least once), losses are not: count distinct spans.
    distinct = {span.span_id: span for span in langfuse.spans}
    priced = [s for s in distinct.values() if s.name.startswith("generate_content")]
    assert len(priced) == 30
    assert {s.attributes[attrs.COST_STATUS] for s in priced} == {"priced"}
    assert set(costs) == {0.0008, 0.0016}
