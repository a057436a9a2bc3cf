"""The fake Langfuse maps spans to observations and traces as Langfuse's own code does.

The rules are ported in ``otel_gemini/testing/_langfuse_mapping.py`` from langfuse/langfuse
at commit 62751446149b702b419a9292ddfc2280cdf74b8c. The cases below are taken from
Langfuse's own tests at that commit, ``web/src/__tests__/server/api/otel/
otelMapping.servertest.ts`` (cited by test title), and from the code where no test covers a
rule (cited by file and function).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from otel_gemini.testing import MappedObservation
from otel_gemini.testing._langfuse_mapping import LANGFUSE_COMMIT, map_observation, map_traces
from otel_gemini.testing._langfuse_otlp import ReceivedSpan

OTEL_MAPPING_TESTS = "otelMapping.servertest.ts"


def span(
    attributes: dict[str, Any],
    *,
    span_id: str = "1234567890abcdef",
    parent: str | None = None,
    events: tuple[tuple[str, dict[str, Any]], ...] = (),
    status: str = "UNSET",
    start: int = 1,
) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id="abcdef1234567890abcdef1234567890",
        span_id=span_id,
        parent_span_id=parent,
        name="a span",
        kind="CLIENT",
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1,
        attributes=attributes,
        status_code=status,
        events=tuple(name for name, _ in events),
        event_attributes=tuple(values for _, values in events),
    )


def mapped(attributes: dict[str, Any], **options: Any) -> MappedObservation:
    return map_observation(span(attributes, **options))


def test_the_rules_name_the_commit_they_were_read_at() -> None:
    assert LANGFUSE_COMMIT == "62751446149b702b419a9292ddfc2280cdf74b8c"


# (source, attributes, expected type)
TYPE_CASES = [
    (
        f"{OTEL_MAPPING_TESTS}: should prioritize OpenInference over OTel GenAI and model "
        "detection",
        {
            "openinference.span.kind": "TOOL",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4",
        },
        "TOOL",
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should prioritize OTel GenAI over model-based detection",
        {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "gpt-4"},
        "EMBEDDING",
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should trust Langfuse type over OpenInference or model detection",
        {
            "langfuse.observation.type": "span",
            "openinference.span.kind": "Agent",
            "gen_ai.request.model": "gpt-4",
        },
        "SPAN",
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should trust OpenInference over model detection but keep model",
        {"openinference.span.kind": "RETRIEVER", "gen_ai.request.model": "text-embedding-ada-002"},
        "RETRIEVER",
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should map tool-call spans with empty model-related attributes "
        "to span-create (not generation-create)",
        {"model": "", "provided_model_name": ""},
        "SPAN",
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should map Pydantic AI tool call to TOOL observation type via "
        "gen_ai.tool.* attributes",
        {"gen_ai.tool.name": "get_weather", "gen_ai.tool.call.id": "call_1"},
        "TOOL",
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should default to span-create for unknown observation type",
        {"custom.attribute": "x"},
        "SPAN",
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should fall back to generation-create for model names without "
        "explicit type",
        {"gen_ai.request.model": "gemini-2.5-flash"},
        "GENERATION",
    ),
    (
        "ObservationTypeMapper.ts OTel_GenAI_Operation: generate_content",
        {"gen_ai.operation.name": "generate_content"},
        "GENERATION",
    ),
    (
        "ObservationTypeMapper.ts OTel_GenAI_Operation: invoke_agent (our AFC root)",
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gemini-2.5-flash"},
        "AGENT",
    ),
    (
        "ObservationTypeMapper.ts: an unmapped operation falls through to the model fallback",
        {"gen_ai.operation.name": "live_session", "gen_ai.request.model": "gemini-live"},
        "GENERATION",
    ),
    (
        "ObservationTypeMapper.ts LangfuseObservationTypeDirectMapping (our Live session)",
        {
            "langfuse.observation.type": "span",
            "gen_ai.operation.name": "live_session",
            "gen_ai.request.model": "gemini-live",
        },
        "SPAN",
    ),
]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [pytest.param(a, e, id=s) for s, a, e in TYPE_CASES],
)
def test_observation_type(attributes: dict[str, Any], expected: str) -> None:
    assert mapped(attributes).type == expected


# (source, attributes, expected usage_details)
USAGE_CASES = [
    (
        f"{OTEL_MAPPING_TESTS}: should normalize official gen_ai cache usage into Langfuse "
        "canonical keys",
        {
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.total_tokens": 140,
            "gen_ai.usage.cache_read.input_tokens": 20,
            "gen_ai.usage.cache_creation.input_tokens": 10,
            "gen_ai.usage.output_audio_tokens": 5,
        },
        {
            "input": 70,
            "output": 40,
            "total": 140,
            "input_cached_tokens": 20,
            "input_cache_creation": 10,
            "output_audio_tokens": 5,
        },
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should extract OpenInference llm.token_count.completion_details."
        "reasoning/audio into output detail buckets without double counting",
        {
            "llm.token_count.prompt": 100,
            "llm.token_count.completion": 50,
            "llm.token_count.completion_details.reasoning": 30,
            "llm.token_count.completion_details.audio": 5,
        },
        # No total given: IngestionService.getUsageUnits sums the buckets.
        {
            "input": 100,
            "output": 15,
            "output_reasoning_tokens": 30,
            "output_audio_tokens": 5,
            "total": 150,
        },
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should subtract gen_ai.usage.reasoning.output_tokens from "
        "inclusive output tokens (Google ADK)",
        {
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 60,
            "gen_ai.usage.total_tokens": 160,
            "gen_ai.usage.reasoning.output_tokens": 25,
        },
        {"input": 100, "output": 35, "output_reasoning_tokens": 25, "total": 160},
    ),
    (
        "OtelIngestionProcessor.extractGenericGenAiUsageDetails + IngestionService.getUsageUnits:"
        " the issue's span without usage_details, per-modality counts become buckets (320)",
        {
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 20,
            "gen_ai.usage.output_tokens": 60,
            "gen_ai.usage.reasoning.output_tokens": 10,
            "gen_ai.usage.text.input_tokens": 100,
            "gen_ai.usage.text.output_tokens": 60,
        },
        {
            "input": 80,
            "input_cached_tokens": 20,
            "output": 50,
            "output_reasoning_tokens": 10,
            "text.input_tokens": 100,
            "text.output_tokens": 60,
            "total": 320,
        },
    ),
    (
        "OtelIngestionProcessor.extractUsageDetails: langfuse.observation.usage_details wins",
        {
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 20,
            "gen_ai.usage.output_tokens": 60,
            "gen_ai.usage.reasoning.output_tokens": 10,
            "gen_ai.usage.text.input_tokens": 100,
            "gen_ai.usage.text.output_tokens": 60,
            "langfuse.observation.usage_details": json.dumps(
                {"input": 80, "input_cached": 20, "output": 50, "output_reasoning": 10}
            ),
        },
        {"input": 80, "input_cached": 20, "output": 50, "output_reasoning": 10, "total": 160},
    ),
    (
        "OtelIngestionProcessor.parseJsonObjectAttribute: JSON that is not an object gives {}",
        {"gen_ai.usage.input_tokens": 7, "langfuse.observation.usage_details": "[1, 2]"},
        {},
    ),
    (
        "OtelIngestionProcessor.parseJsonObjectAttribute: invalid JSON falls back to gen_ai.usage",
        {"gen_ai.usage.input_tokens": 7, "langfuse.observation.usage_details": "{"},
        {"input": 7, "total": 7},
    ),
    (
        "ingestion/types.ts RawUsageDetails: only non-negative integers are kept",
        {"langfuse.observation.usage_details": '{"input": 3, "audio_seconds": 1.5, "x": -1}'},
        {"input": 3, "total": 3},
    ),
    (
        "OtelIngestionProcessor.isAiSdkAgentOperation: an invoke_agent span has no usage",
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 10},
        {},
    ),
]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [pytest.param(a, e, id=s) for s, a, e in USAGE_CASES],
)
def test_usage_details(attributes: dict[str, Any], expected: dict[str, int]) -> None:
    observation = mapped(attributes)
    assert dict(observation.usage_details) == expected
    assert observation.total_usage == expected.get("total", 0)


# (source, attributes, expected cost details, expected total)
COST_CASES = [
    (
        "OtelIngestionProcessor.extractCostDetails: langfuse.observation.cost_details",
        {
            "langfuse.observation.cost_details": '{"input": 0.25, "output": 0.5, "total": 0.75}',
            "gen_ai.usage.cost": 9.0,
        },
        {"input": Decimal("0.25"), "output": Decimal("0.5"), "total": Decimal("0.75")},
        Decimal("0.75"),
    ),
    (
        "OtelIngestionProcessor.extractCostDetails: gen_ai.usage.cost becomes {total}",
        {"gen_ai.usage.cost": 0.0025},
        {"total": Decimal("0.0025")},
        Decimal("0.0025"),
    ),
    (
        "IngestionService.calculateUsageCosts: input and output only, their sum is the total",
        {"langfuse.observation.cost_details": '{"input": 1, "output": 2}'},
        {"input": Decimal(1), "output": Decimal(2), "total": Decimal(3)},
        Decimal(3),
    ),
    (
        "IngestionService.calculateUsageCosts: other keys without total have no total",
        {"langfuse.observation.cost_details": '{"input_audio": 1}'},
        {"input_audio": Decimal(1)},
        None,
    ),
    (
        "IngestionService.calculateUsageCosts: no cost provided (Langfuse infers its own)",
        {"gen_ai.request.model": "gemini-9-ultra"},
        {},
        None,
    ),
    (
        "OtelIngestionProcessor.isAiSdkAgentOperation: an invoke_agent span has no cost",
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.cost": 1.0},
        {},
        None,
    ),
]


@pytest.mark.parametrize(
    ("attributes", "details", "total"),
    [pytest.param(a, d, t, id=s) for s, a, d, t in COST_CASES],
)
def test_cost(attributes: dict[str, Any], details: dict[str, Decimal], total: Any) -> None:
    observation = mapped(attributes)
    assert dict(observation.cost_details) == details
    assert observation.total_cost == total


# (source, attributes, model, user, session)
IDENTITY_CASES = [
    (
        "OtelIngestionProcessor.extractModelName: the response model before the request model",
        {
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.response.model": "gemini-2.5-flash-001",
        },
        "gemini-2.5-flash-001",
        None,
        None,
    ),
    (
        "OtelIngestionProcessor.extractModelName: langfuse.observation.model.name first",
        {"langfuse.observation.model.name": "mine", "gen_ai.response.model": "theirs"},
        "mine",
        None,
        None,
    ),
    (
        "OtelIngestionProcessor.isAiSdkAgentOperation: an invoke_agent span has no model",
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gemini-2.5-flash"},
        None,
        None,
        None,
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should prioritize langfuse.session.id over gen_ai.conversation.id",
        {"langfuse.session.id": "lf-session", "gen_ai.conversation.id": "conversation"},
        None,
        None,
        "lf-session",
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should prioritize session.id over gen_ai.conversation.id",
        {"session.id": "otel-session", "gen_ai.conversation.id": "conversation"},
        None,
        None,
        "otel-session",
    ),
    (
        "OtelIngestionProcessor.extractSessionId: gen_ai.conversation.id alone",
        {"gen_ai.conversation.id": "conversation"},
        None,
        None,
        "conversation",
    ),
    (
        "OtelIngestionProcessor.extractUserId: langfuse.user.id before user.id",
        {"langfuse.user.id": "lf-user", "user.id": "otel-user"},
        None,
        "lf-user",
        None,
    ),
]


@pytest.mark.parametrize(
    ("attributes", "model", "user", "session"),
    [pytest.param(a, m, u, s, id=source) for source, a, m, u, s in IDENTITY_CASES],
)
def test_model_user_and_session(
    attributes: dict[str, Any], model: str | None, user: str | None, session: str | None
) -> None:
    observation = mapped(attributes)
    assert (observation.model, observation.user_id, observation.session_id) == (
        model,
        user,
        session,
    )


MESSAGES = [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
ANSWER = [{"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}]
CALCULATOR = {
    "type": "function",
    "name": "calculator",
    "description": "Do math",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}},
}

# (source, attributes, events, expected input, expected output)
IO_CASES = [
    (
        "OtelIngestionProcessor.extractOpenTelemetryGenAiInputAndOutput: gen_ai.*.messages",
        {
            "gen_ai.input.messages": json.dumps(MESSAGES),
            "gen_ai.output.messages": json.dumps(ANSWER),
        },
        (),
        MESSAGES,
        ANSWER,
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should prepend gen_ai.system_instructions ... when system "
        "message is absent (prependSystemInstructions)",
        {
            "gen_ai.input.messages": json.dumps(MESSAGES),
            "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        },
        (),
        [{"role": "system", "content": "Be brief."}, *MESSAGES],
        None,
    ),
    (
        "OtelIngestionProcessor.extractInputAndOutput: langfuse.observation.input/output first",
        {
            "langfuse.observation.input": '"mine"',
            "gen_ai.input.messages": json.dumps(MESSAGES),
            "gen_ai.output.messages": json.dumps(ANSWER),
        },
        (),
        "mine",
        None,
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should extract input/output from gen_ai.client.inference."
        "operation.details span event",
        {},
        (
            (
                "gen_ai.client.inference.operation.details",
                {
                    "gen_ai.input.messages": json.dumps(MESSAGES),
                    "gen_ai.output.messages": json.dumps(ANSWER),
                },
            ),
        ),
        MESSAGES,
        ANSWER,
    ),
    (
        f"{OTEL_MAPPING_TESTS}: should move gen_ai.tool.definitions from metadata to "
        "observation input",
        {"gen_ai.tool.definitions": json.dumps([CALCULATOR])},
        (("gen_ai.user.message", {"content": "What is 2 + 2?"}),),
        {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "tools": [CALCULATOR]},
        None,
    ),
    (
        "extractToolsBackend.parseToolDefinitionArray: one entry without a name voids them all",
        {
            "gen_ai.input.messages": json.dumps(MESSAGES),
            "gen_ai.tool.definitions": json.dumps([CALCULATOR, {"type": "google_search"}]),
        },
        (),
        MESSAGES,
        None,
    ),
    (
        "OtelIngestionProcessor.extractOpenTelemetryGenAiInputAndOutput: tool call arguments",
        {"gen_ai.tool.call.arguments": '{"city": "Paris"}', "gen_ai.tool.call.result": '"sunny"'},
        (),
        {"city": "Paris"},
        "sunny",
    ),
]


@pytest.mark.parametrize(
    ("attributes", "events", "input_", "output"),
    [pytest.param(a, ev, i, o, id=s) for s, a, ev, i, o in IO_CASES],
)
def test_input_and_output(
    attributes: dict[str, Any], events: tuple[Any, ...], input_: Any, output: Any
) -> None:
    observation = mapped(attributes, events=events)
    assert (observation.input, observation.output) == (input_, output)


def test_tool_definitions_are_kept_by_name() -> None:
    observation = mapped(
        {
            "gen_ai.input.messages": json.dumps(MESSAGES),
            "gen_ai.tool.definitions": json.dumps([CALCULATOR]),
        }
    )
    assert observation.input == {"messages": MESSAGES, "tools": [CALCULATOR]}
    assert observation.tool_definitions == {
        "calculator": {"description": "Do math", "parameters": CALCULATOR["parameters"]}
    }


def test_a_tool_observation_is_named_after_its_tool() -> None:
    # otelMapping.servertest.ts: should prioritize gen_ai.tool.name over logfire.msg for tool
    # observation name (OtelIngestionProcessor.extractName).
    assert mapped({"gen_ai.tool.name": "get_weather", "logfire.msg": "running tool"}).name == (
        "get_weather"
    )
    assert mapped({"logfire.msg": "running tool"}).name == "running tool"
    assert mapped({}).name == "a span"


def test_level_follows_the_status_unless_given() -> None:
    # OtelIngestionProcessor.processToEvent: parseObservationLevel ?? status ERROR ?? DEFAULT.
    assert mapped({}, status="ERROR").level == "ERROR"
    assert mapped({}).level == "DEFAULT"
    assert mapped({"langfuse.observation.level": "warn"}, status="ERROR").level == "WARNING"


def test_a_trace_takes_input_and_output_from_its_root_and_sums_its_costs() -> None:
    # event-query-builder.ts EVENTS_AGGREGATION_FIELDS: argMaxIf(input, ..., parent_span_id
    # = ''), argMaxIf(user_id, ..., user_id <> ''), sum(total_cost).
    root = span(
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.output.messages": json.dumps(ANSWER)},
        span_id="aaaaaaaaaaaaaaaa",
    )
    child = span(
        {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.input.messages": json.dumps(MESSAGES),
            "gen_ai.usage.cost": 0.5,
            "user.id": "u-1",
        },
        span_id="bbbbbbbbbbbbbbbb",
        parent="aaaaaaaaaaaaaaaa",
        start=2,
    )
    (trace,) = map_traces([map_observation(child), map_observation(root)])
    assert trace.root is not None and trace.root.id == "aaaaaaaaaaaaaaaa"
    assert (trace.input, trace.output) == (None, ANSWER)
    assert trace.user_id == "u-1"
    assert trace.total_cost == Decimal("0.5")
