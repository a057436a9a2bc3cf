"""Frameworks' spans that arrive at the gateway without any span of ours (another process,
another language): each model-call span with usage is priced once, agent spans never."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import set_span_in_context

from otel_gemini import _attributes as attrs
from otel_gemini.export import LangfuseExporter, RetryPolicy
from otel_gemini.gateway import Gateway, GatewaySettings
from otel_gemini.testing import FakeLangfuse

pytestmark = pytest.mark.timeout(60)

FLASH = "gemini-2.5-flash"
USAGE = {attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000, attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 200}
COST = Decimal("0.0008")


def _framework_spans() -> list[ReadableSpan]:
    """ADK's and pydantic-ai's traces and a LangSmith span, as those frameworks emit them."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))

    def start(scope: str, name: str, parent: Any = None, **attributes: Any) -> Any:
        context = set_span_in_context(parent) if parent is not None else None
        return provider.get_tracer(scope).start_span(name, context, attributes=attributes)

    model = {attrs.GEN_AI_REQUEST_MODEL: FLASH, attrs.GEN_AI_RESPONSE_MODEL: FLASH}
    adk_agent = start(
        "gcp.vertex.agent",
        "invoke_agent a",
        **{attrs.GEN_AI_OPERATION_NAME: "invoke_agent", attrs.GEN_AI_CONVERSATION_ID: "s1"},
    )
    adk_call = start(
        "gcp.vertex.agent",
        f"generate_content {FLASH}",
        adk_agent,
        **{attrs.GEN_AI_OPERATION_NAME: "generate_content", **model, **USAGE},
    )
    # pydantic-ai with use_aggregated_usage_attribute_names=False: the run's usage, no model.
    run = start(
        "pydantic-ai", "agent run", **{attrs.GEN_AI_OPERATION_NAME: "invoke_agent", **USAGE}
    )
    chat = start(
        "pydantic-ai",
        f"chat {FLASH}",
        run,
        **{attrs.GEN_AI_OPERATION_NAME: "chat", **model, **USAGE},
    )
    langsmith = start(
        "langsmith",
        "ChatGoogleGenerativeAI",
        **{attrs.GEN_AI_OPERATION_NAME: "chat", attrs.GEN_AI_SYSTEM: "gemini", **model, **USAGE},
    )
    for span in (adk_call, adk_agent, chat, run, langsmith):
        span.end()
    provider.shutdown()
    return list(memory.get_finished_spans())


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[Gateway, FakeLangfuse]]:
    with FakeLangfuse() as langfuse:
        exporter = LangfuseExporter(
            spool_dir=tmp_path,
            retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.5),
            **langfuse.exporter_settings(),
        )
        settings = GatewaySettings(grpc_port=0, http_port=0)
        with Gateway(exporter, settings=settings).start() as running:
            yield running, langfuse


def test_framework_spans_without_ours_are_each_priced_once(
    gateway: tuple[Gateway, FakeLangfuse],
) -> None:
    running, langfuse = gateway
    spans = _framework_spans()
    body = encode_spans(spans).SerializeToString()
    response = httpx.post(
        f"{running.http_endpoint}/v1/traces",
        content=body,
        headers={"content-type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    langfuse.wait_for_spans(len(spans))

    statuses = {s.name: s.attributes.get(attrs.COST_STATUS) for s in langfuse.spans}
    assert statuses == {
        "invoke_agent a": None,
        f"generate_content {FLASH}": "priced",
        "agent run": None,  # a grouping span: neither priced nor an unknown_model
        f"chat {FLASH}": "priced",
        "ChatGoogleGenerativeAI": "priced",  # no span of ours in the gateway's process
    }
    observations = langfuse.observations()
    generations = [o for o in observations if o.type == "GENERATION"]
    assert len(generations) == 3 and all(o.total_cost == COST for o in generations)
    assert sum(o.total_cost or 0 for o in observations) == 3 * COST
