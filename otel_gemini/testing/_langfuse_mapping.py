"""How Langfuse turns an OTLP span into an observation, and a trace's spans into a trace.

A port of the rules in Langfuse's own ingestion code, read at langfuse/langfuse commit
``62751446149b702b419a9292ddfc2280cdf74b8c`` (August 2026, Langfuse 4.x), for the
attributes a Gemini pipeline can send. Each rule names the file it comes from:

- observation type: ``packages/shared/src/server/otel/ObservationTypeMapper.ts``
  (``ObservationTypeMapperRegistry``: ``langfuse.observation.type``, then OpenInference's
  ``openinference.span.kind``, then ``gen_ai.operation.name``, then ``gen_ai.tool.name`` /
  ``gen_ai.tool.call.id``, then any model attribute; else ``SPAN``).
- name, model, usage, cost, user, session, input/output: ``OtelIngestionProcessor.ts`` in the
  same directory (``processToEvent``, the ingestion-version-4 path we send to:
  ``extractName``, ``extractModelName``, ``extractUsageDetails`` /
  ``extractGenericGenAiUsageDetails``, ``extractCostDetails``, ``parseJsonObjectAttribute``,
  ``parseObservationLevel``, ``extractUserId``,
  ``extractSessionId``, ``extractInputAndOutput`` /
  ``extractOpenTelemetryGenAiInputAndOutput`` / ``prependSystemInstructions``,
  ``isAiSdkAgentOperation``: an ``invoke_agent`` span gets no model, usage or cost).
- usage values kept: ``packages/shared/src/server/ingestion/types.ts`` (``UsageDetails``:
  non-negative integers, or strings ``parseInt`` reads).
- a missing usage ``total`` is the sum of every bucket; a cost total from the provided cost
  details: ``worker/src/services/IngestionService/index.ts`` (``getUsageUnits``,
  ``calculateUsageCosts``).
- tool definitions (``gen_ai.tool.definitions``) merged into the input as
  ``{"messages": ..., "tools": ...}``: ``packages/shared/src/server/ingestion/
  extractToolsBackend.ts`` (``normalizeToolMetadataForObservation``).
- a trace's input and output are its root observation's (``parent_span_id = ''``); its user
  and session the last non-empty ones of its observations:
  ``packages/shared/src/server/queries/clickhouse-sql/event-query-builder.ts``
  (``EVENTS_AGGREGATION_FIELDS``).

Left out, on purpose: the rules for other frameworks' scopes (Genkit, the Vercel AI SDK,
Flue, LiveKit, Pydantic AI, Google ADK, Logfire, MLflow, Traceloop), the Python SDK <= 3.3
override, OpenAI-shaped usage objects, and the cost and tokens Langfuse infers itself from
its model table when a span provides none (``cost_details`` is then empty and
``total_cost`` None).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from otel_gemini._attributes import LANGFUSE_COMPLETION_START_TIME
from otel_gemini.testing._langfuse_otlp import ReceivedSpan

LANGFUSE_COMMIT: Final = "62751446149b702b419a9292ddfc2280cdf74b8c"
"""The langfuse/langfuse commit these rules were read at."""

# ObservationTypeMapper.ts, priority 1: langfuse.observation.type.
_LANGFUSE_TYPES: Final = {
    name: name.upper()
    for name in (
        "span",
        "generation",
        "event",
        "embedding",
        "agent",
        "tool",
        "chain",
        "retriever",
        "guardrail",
        "evaluator",
    )
}
# Priority 2: OpenInference.
_OPENINFERENCE_TYPES: Final = {
    "CHAIN": "CHAIN",
    "RETRIEVER": "RETRIEVER",
    "LLM": "GENERATION",
    "EMBEDDING": "EMBEDDING",
    "AGENT": "AGENT",
    "TOOL": "TOOL",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
}
# Priority 3: the GenAI operation.
_OPERATION_TYPES: Final = {
    "chat": "GENERATION",
    "completion": "GENERATION",
    "text_completion": "GENERATION",
    "generate_content": "GENERATION",
    "generate": "GENERATION",
    "embeddings": "EMBEDDING",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "execute_tool": "TOOL",
}
# Priority 10 (the model-based fallback) looks at these.
_TYPE_MODEL_KEYS: Final = (
    "langfuse.observation.model.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
    "model",
)
# OtelIngestionProcessor.extractModelName, first truthy.
_MODEL_KEYS: Final = (
    "langfuse.observation.model.name",
    "gen_ai.response.model",
    "ai.model.id",
    "gen_ai.request.model",
    "llm.response.model",
    "llm.model_name",
    "model",
)
_USER_KEYS: Final = (
    "langfuse.user.id",
    "user.id",
    "langfuse.observation.metadata.langfuse_user_id",
    "langfuse.trace.metadata.langfuse_user_id",
    "ai.telemetry.metadata.userId",
)
_SESSION_KEYS: Final = (
    "langfuse.session.id",
    "session.id",
    "gen_ai.conversation.id",
    "langfuse.observation.metadata.langfuse_session_id",
    "langfuse.trace.metadata.langfuse_session_id",
    "ai.telemetry.metadata.sessionId",
)
# isAiSdkAgentOperation: these carry their children's usage again, so none is read.
_AGENT_OPERATIONS: Final = frozenset(("invoke_agent", "agent_step"))

# extractGenericGenAiUsageDetails: the keys folded into input/output/total and the caches.
_INPUT_KEYS: Final = ("prompt_tokens", "input_tokens", "prompt")
_OUTPUT_KEYS: Final = ("completion_tokens", "output_tokens", "completion")
_TOTAL_KEYS: Final = ("total_tokens", "total")
_CACHE_READ_KEYS: Final = (
    "cache_read.input_tokens",
    "cache_read_input_tokens",
    "cache_read_tokens",
    "details.cache_read_tokens",
    "details.cache_read_input_tokens",
    "prompt_details.cache_read",
    "input_cached_tokens",
)
_CACHE_CREATION_KEYS: Final = (
    "cache_creation.input_tokens",
    "cache_creation_input_tokens",
    "cache_write_tokens",
    "details.cache_write_tokens",
    "details.cache_creation_input_tokens",
    "prompt_details.cache_write",
    "input_cache_creation",
)
_REASONING_KEYS: Final = ("reasoning.output_tokens", "completion_details.reasoning")
_OUTPUT_AUDIO_KEY: Final = "completion_details.audio"
_FOLDED_KEYS: Final = frozenset(
    (
        *_INPUT_KEYS,
        *_OUTPUT_KEYS,
        *_TOTAL_KEYS,
        *_CACHE_READ_KEYS,
        *_CACHE_CREATION_KEYS,
        *_REASONING_KEYS,
        _OUTPUT_AUDIO_KEY,
    )
)

# extractInputAndOutput: the attributes read before gen_ai.input/output.messages, in order
# (each pair wins when either side is truthy). Scope-gated frameworks are left out.
_EARLIER_PAIRS: Final = (
    ("gcp.vertex.agent.llm_request", "gcp.vertex.agent.llm_response"),
    ("prompt", "all_messages_events"),
    ("mlflow.spanInputs", "mlflow.spanOutputs"),
    ("traceloop.entity.input", "traceloop.entity.output"),
    ("input.value", "output.value"),
    ("input", "output"),
    ("tool_arguments", "tool_response"),
)
# parseObservationLevel's aliases.
_LEVELS: Final = {
    "DEBUG": "DEBUG",
    "DEFAULT": "DEFAULT",
    "WARNING": "WARNING",
    "ERROR": "ERROR",
    "TRACE": "DEBUG",
    "VERBOSE": "DEBUG",
    "INFO": "DEFAULT",
    "LOG": "DEFAULT",
    "NOTICE": "DEFAULT",
    "OK": "DEFAULT",
    "SUCCESS": "DEFAULT",
    "WARN": "WARNING",
    "FATAL": "ERROR",
    "CRITICAL": "ERROR",
}
_OPERATION_DETAILS_EVENT: Final = "gen_ai.client.inference.operation.details"
_INPUT_EVENTS: Final = frozenset(
    (
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
    )
)
_OUTPUT_EVENT: Final = "gen_ai.choice"


@dataclass(frozen=True)
class MappedObservation:
    """One span as Langfuse stores it: what its UI and Metrics API show."""

    id: str
    trace_id: str
    parent_id: str | None
    name: str
    type: str
    """``GENERATION``, ``SPAN``, ``AGENT``, ``TOOL``, ``EMBEDDING``, ..."""
    level: str
    """``langfuse.observation.level``, else ``ERROR`` for status ERROR, else ``DEFAULT``."""
    status_message: str | None
    model: str | None
    """The provided model name (``providedModelName``)."""
    user_id: str | None
    session_id: str | None
    usage_details: Mapping[str, int] = field(default_factory=dict)
    """Buckets of units, ``total`` included (the sum of the others when not provided)."""
    cost_details: Mapping[str, Decimal] = field(default_factory=dict)
    """The provided cost (USD) per bucket; empty when Langfuse would infer its own."""
    total_cost: Decimal | None = None
    input: Any = None
    """JSON values parsed, as the UI shows them; ``{"messages", "tools"}`` with tools."""
    output: Any = None
    tool_definitions: Mapping[str, Any] = field(default_factory=dict)
    """Tool name -> ``{"description", "parameters"}`` (``gen_ai.tool.definitions``)."""
    start_time_unix_nano: int = 0
    end_time_unix_nano: int = 0
    environment: str = "default"
    """``langfuse.environment``, else the resource's ``deployment.environment.name``."""
    completion_start_time: str | None = None
    """``langfuse.observation.completion_start_time`` as sent (ISO 8601), if a string."""

    @property
    def total_usage(self) -> int:
        """``usage_details["total"]`` (0 when there is no usage), the "Total tokens" shown."""
        return self.usage_details.get("total", 0)


@dataclass(frozen=True)
class MappedTrace:
    """A trace as Langfuse shows it: input and output from its root observation."""

    id: str
    root: MappedObservation | None
    """The observation without a parent (None until it arrives)."""
    observations: tuple[MappedObservation, ...]
    user_id: str | None
    session_id: str | None
    input: Any
    output: Any
    total_cost: Decimal | None
    """The sum of its observations' costs (None when none has one)."""


# --- JavaScript's truthiness and number conversions -------------------------------------------


def _truthy(value: Any) -> bool:
    """JavaScript's ``Boolean(value)`` for attribute values (lists and dicts are truthy)."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    return True


def _meaningful(value: Any) -> bool:
    """ObservationTypeMapper's ``hasMeaningfulValue``: not null, "", [] or {}."""
    if value is None or value == "":
        return False
    if isinstance(value, (list, dict)):
        return len(value) > 0
    return True


def _js_string(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _js_number(value: Any) -> float | None:
    """``Number(value)``, None for NaN."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            number = float(text)
        except ValueError:
            return None
        return None if math.isnan(number) else number
    return None


def _first_text(attributes: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        if _truthy(attributes.get(key)):
            return _js_string(attributes[key])
    return None


def _parse_json(value: Any) -> Any:
    """A string that is JSON, parsed (as the UI renders it); anything else unchanged."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --- the rules ---------------------------------------------------------------------------------


def observation_type(span: ReceivedSpan) -> str:
    """ObservationTypeMapperRegistry.mapToObservationType, the mappers a Gemini span can hit."""
    attributes = span.attributes
    for key, mapping in (
        ("langfuse.observation.type", _LANGFUSE_TYPES),
        ("openinference.span.kind", _OPENINFERENCE_TYPES),
        ("gen_ai.operation.name", _OPERATION_TYPES),
    ):
        value = attributes.get(key)
        # A value outside the mapping falls through to the next mapper.
        if _meaningful(value) and isinstance(value, str) and value in mapping:
            return mapping[value]
    if _meaningful(attributes.get("gen_ai.tool.name")) or _meaningful(
        attributes.get("gen_ai.tool.call.id")
    ):
        return "TOOL"
    if any(_meaningful(attributes.get(key)) for key in _TYPE_MODEL_KEYS):
        return "GENERATION"
    return "SPAN"


def _is_agent(attributes: Mapping[str, Any]) -> bool:
    return attributes.get("gen_ai.operation.name") in _AGENT_OPERATIONS


def _json_object_attribute(attributes: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    """parseJsonObjectAttribute: None (fall back) when absent or not JSON; {} when not an
    object (no fallback)."""
    raw = attributes.get(key)
    if not _truthy(raw):
        return None
    if not isinstance(raw, str):
        return {}
    try:
        parsed = json.loads(raw, parse_float=Decimal)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else {}


def generic_usage(attributes: Mapping[str, Any]) -> dict[str, float]:
    """extractGenericGenAiUsageDetails: ``gen_ai.usage.*`` / ``llm.token_count.*`` as buckets.

    Input minus cache reads and writes, output minus reasoning (and ``completion_details.
    audio``); every other key (per-modality counts, say) is kept as a bucket of its own."""
    raw: dict[str, float] = {}
    for key, value in attributes.items():
        if key.startswith("gen_ai.usage.") and key != "gen_ai.usage.cost":
            name = key.replace("gen_ai.usage.", "", 1)
        elif key.startswith("llm.token_count."):
            name = key.replace("llm.token_count.", "", 1)
        else:
            continue
        number = _js_number(value)
        if number is not None:
            raw[name] = number
    if not raw:
        return {}

    def first(keys: Sequence[str]) -> float | None:
        return next((raw[key] for key in keys if key in raw), None)

    input_tokens, output_tokens = first(_INPUT_KEYS), first(_OUTPUT_KEYS)
    total, cache_read = first(_TOTAL_KEYS), first(_CACHE_READ_KEYS)
    cache_creation, reasoning = first(_CACHE_CREATION_KEYS), first(_REASONING_KEYS)
    output_audio = raw.get(_OUTPUT_AUDIO_KEY)
    usage = {
        key.removeprefix("details."): value for key, value in raw.items() if key not in _FOLDED_KEYS
    }
    if input_tokens is not None:
        usage["input"] = max(input_tokens - (cache_read or 0) - (cache_creation or 0), 0)
    if output_tokens is not None:
        usage["output"] = max(output_tokens - (reasoning or 0) - (output_audio or 0), 0)
    if total is not None:
        usage["total"] = total
    if cache_read is not None:
        usage["input_cached_tokens"] = cache_read
    if cache_creation is not None:
        usage["input_cache_creation"] = cache_creation
    if reasoning is not None:
        usage["output_reasoning_tokens"] = reasoning
    if output_audio is not None:
        usage["output_audio_tokens"] = output_audio
    return usage


def _kept_usage(usage: Mapping[str, Any]) -> dict[str, int]:
    """ingestion/types.ts ``RawUsageDetails``: non-negative integers (or integer strings)."""
    kept: dict[str, int] = {}
    for key, value in usage.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float, Decimal)):
            if value >= 0 and value == int(value):
                kept[key] = int(value)
        elif isinstance(value, str):
            match = re.match(r"\s*[+-]?\d+", value)  # parseInt: the leading digits
            if match and int(match.group()) >= 0:
                kept[key] = int(match.group())
    return kept


def usage_details(attributes: Mapping[str, Any]) -> dict[str, int]:
    """The observation's usage: the provided buckets (``langfuse.observation.usage_details``
    wins, else the generic parse), with ``total`` the sum of the others when not given."""
    if _is_agent(attributes):
        return {}
    provided = _json_object_attribute(attributes, "langfuse.observation.usage_details")
    usage = _kept_usage(provided if provided is not None else generic_usage(attributes))
    if usage and "total" not in usage:
        usage["total"] = sum(usage.values())
    return usage


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, float)):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def cost_details(attributes: Mapping[str, Any]) -> tuple[dict[str, Decimal], Decimal | None]:
    """extractCostDetails then calculateUsageCosts: the provided cost and its total.

    A provided object without ``total`` has a total only when its keys are just input and
    output (their sum); otherwise none, and Langfuse's metrics count it as 0."""
    if _is_agent(attributes):
        return {}, None
    provided: dict[str, Any] | None = _json_object_attribute(
        attributes, "langfuse.observation.cost_details"
    )
    if provided is None:
        for key in ("gen_ai.usage.cost", "llm.cost.total"):
            value = attributes.get(key)
            if value is not None and value != "":
                provided = {"total": value}
                break
    details = {
        key: number
        for key, value in (provided or {}).items()
        if (number := _decimal(value)) is not None
    }
    if not details:
        return {}, None
    total = details.get("total")
    if total is None and set(details) <= {"input", "output"}:
        total = details.get("input", Decimal(0)) + details.get("output", Decimal(0))
        details["total"] = total
    return details, total


def _prepend_system_instructions(messages: Any, instructions: Any) -> Any:
    """prependSystemInstructions: a ``{"role": "system", "content"}`` message first, unless
    the messages already hold a system message."""
    parsed = _parse_json(messages)
    if not isinstance(parsed, list) or any(
        isinstance(m, dict) and m.get("role") == "system" for m in parsed
    ):
        return messages
    system = _parse_json(instructions)
    if isinstance(system, list):
        content = "\n".join(
            str(p["content"]) if isinstance(p, dict) and p.get("content") else _js_string(p)
            for p in system
        )
    else:
        content = system if isinstance(system, str) else _js_string(system)
    merged = [{"role": "system", "content": content}, *parsed]
    return json.dumps(merged) if isinstance(messages, str) else merged


def _genai_messages(attributes: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """extractOpenTelemetryGenAiInputAndOutput."""
    input_, output = (
        attributes.get("gen_ai.input.messages"),
        attributes.get("gen_ai.output.messages"),
    )
    if _truthy(input_) and _truthy(attributes.get("gen_ai.system_instructions")):
        input_ = _prepend_system_instructions(input_, attributes["gen_ai.system_instructions"])
    if _truthy(input_) or _truthy(output):
        return input_, output
    input_ = attributes.get("gen_ai.tool.call.arguments")
    output = attributes.get("gen_ai.tool.call.result")
    if _truthy(input_) or _truthy(output):
        return input_, output
    return None


def input_output(span: ReceivedSpan) -> tuple[Any, Any]:
    """extractInputAndOutput for an observation (raw values, before JSON parsing)."""
    attributes = span.attributes
    input_ = attributes.get("langfuse.observation.input")
    output = attributes.get("langfuse.observation.output")
    if input_ is not None or output is not None:
        return input_, output
    events = list(zip(span.events, span.event_attributes, strict=False))
    for name, event_attributes in events:
        if name == _OPERATION_DETAILS_EVENT:
            found = _genai_messages(event_attributes)
            if found is not None:
                return found
    inputs = [
        {"role": name.removeprefix("gen_ai.").removesuffix(".message"), **values}
        for name, values in events
        if name in _INPUT_EVENTS
    ]
    outputs = [dict(values) for name, values in events if name == _OUTPUT_EVENT]
    if inputs or outputs:
        return inputs or None, (outputs[0] if len(outputs) == 1 else outputs or None)
    for input_key, output_key in _EARLIER_PAIRS:
        input_, output = attributes.get(input_key), attributes.get(output_key)
        if _truthy(input_) or _truthy(output):
            return input_, output
    found = _genai_messages(attributes)
    return found if found is not None else (None, None)


def _flat_tool(entry: Any) -> dict[str, Any] | None:
    """flattenToolDefinition: the definition itself, or OpenAI's nested ``function``."""
    if not isinstance(entry, dict):
        return None
    nested = entry.get("function")
    data: dict[str, Any] = nested if isinstance(nested, dict) else entry
    return data if _truthy(data.get("name")) else None


def _tool_definitions(attributes: Mapping[str, Any]) -> list[Any] | None:
    """``gen_ai.tool.definitions`` as extractToolsBackend reads it: a JSON array every entry
    of which has a name, else none of it is used; deduplicated by name, the first kept."""
    tools = _parse_json(attributes.get("gen_ai.tool.definitions"))
    if not isinstance(tools, list):
        return None
    entries = [_parse_json(tool) for tool in tools]
    names = [_flat_tool(entry) for entry in entries]
    if not all(names):
        return None
    kept: dict[str, Any] = {}
    for entry, flat in zip(entries, names, strict=True):
        assert flat is not None
        kept.setdefault(str(flat["name"]), entry)
    return list(kept.values())


def _with_tools(input_: Any, tools: list[Any]) -> Any:
    """appendToolsToInput: messages become ``{"messages", "tools"}``, text ``{"prompt",
    "tools"}``, nothing ``{"tools"}``."""
    parsed = _parse_json(input_)
    if isinstance(parsed, list):
        return {"messages": parsed, "tools": tools}
    if isinstance(parsed, dict):
        return {**parsed, "tools": [*(parsed.get("tools") or []), *tools]}
    if parsed is None:
        return {"tools": tools}
    if isinstance(parsed, str):
        return {"prompt": parsed, "tools": tools}
    return input_


def observation_name(span: ReceivedSpan) -> str:
    """extractName: ``gen_ai.tool.name`` (a tool span is named after its tool), then
    Logfire's ``logfire.msg``, else the span's name."""
    for key in ("gen_ai.tool.name", "logfire.msg"):
        value = span.attributes.get(key)
        if _truthy(value):
            return _js_string(value)
    return span.name


def map_observation(span: ReceivedSpan) -> MappedObservation:
    """The observation Langfuse makes of ``span``."""
    attributes = span.attributes
    input_, output = input_output(span)
    tools = _tool_definitions(attributes)
    shown_input = _parse_json(input_)
    if tools:
        shown_input = _with_tools(input_, tools)
    costs, total_cost = cost_details(attributes)
    level = _LEVELS.get(str(attributes.get("langfuse.observation.level", "")).strip().upper())
    if level is None:
        level = "ERROR" if span.status_code == "ERROR" else "DEFAULT"
    status_message = attributes.get("langfuse.observation.status_message")
    if status_message is None:
        status_message = span.status_message or None
    environment = attributes.get("langfuse.environment") or span.resource.get(
        "deployment.environment.name"
    )
    completion_start = attributes.get(LANGFUSE_COMPLETION_START_TIME)
    return MappedObservation(
        id=span.span_id,
        trace_id=span.trace_id,
        parent_id=span.parent_span_id,
        name=observation_name(span),
        type=observation_type(span),
        level=level,
        status_message=_js_string(status_message) if status_message is not None else None,
        model=None if _is_agent(attributes) else _first_text(attributes, _MODEL_KEYS),
        user_id=_first_text(attributes, _USER_KEYS),
        session_id=_first_text(attributes, _SESSION_KEYS),
        usage_details=usage_details(attributes),
        cost_details=costs,
        total_cost=total_cost,
        input=shown_input,
        output=_parse_json(output),
        tool_definitions={
            str(flat["name"]): {
                "description": flat.get("description", flat.get("desc")),
                "parameters": flat.get(
                    "parameters", flat.get("parameters_json_schema", flat.get("inputSchema"))
                ),
            }
            for tool in tools or ()
            if (flat := _flat_tool(tool)) is not None
        },
        start_time_unix_nano=span.start_time_unix_nano,
        end_time_unix_nano=span.end_time_unix_nano,
        environment=environment if isinstance(environment, str) else "default",
        completion_start_time=completion_start if isinstance(completion_start, str) else None,
    )


def latest_copies(spans: Iterable[ReceivedSpan]) -> list[ReceivedSpan]:
    """One span per (trace id, span id), the last one received (storage keeps one)."""
    latest: dict[tuple[str, str], ReceivedSpan] = {}
    for span in spans:
        latest[span.key] = span
    return list(latest.values())


def map_traces(observations: Iterable[MappedObservation]) -> list[MappedTrace]:
    """Traces of ``observations``, in the order their first observation comes."""
    grouped: dict[str, list[MappedObservation]] = {}
    for item in observations:
        grouped.setdefault(item.trace_id, []).append(item)
    traces = []
    for trace_id, members in grouped.items():
        roots = [m for m in members if m.parent_id is None]
        root = roots[-1] if roots else None
        by_time = sorted(members, key=lambda m: m.start_time_unix_nano)
        costs = [m.total_cost for m in members if m.total_cost is not None]
        traces.append(
            MappedTrace(
                id=trace_id,
                root=root,
                observations=tuple(members),
                # argMaxIf(user_id, event_ts, user_id <> ''): the latest non-empty one.
                user_id=next((m.user_id for m in reversed(by_time) if m.user_id), None),
                session_id=next((m.session_id for m in reversed(by_time) if m.session_id), None),
                input=root.input if root is not None else None,
                output=root.output if root is not None else None,
                total_cost=sum(costs, Decimal(0)) if costs else None,
            )
        )
    return traces
