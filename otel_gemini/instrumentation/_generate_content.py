"""generateContent: request config → attributes, and a recorder for responses and chunks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs
from otel_gemini._model_names import bare_model_name
from otel_gemini.instrumentation import _content
from otel_gemini.instrumentation._fields import field
from otel_gemini.instrumentation._settings import InstrumentationSettings
from otel_gemini.instrumentation._usage import usage_attributes

# (config field, attribute, converter)
_REQUEST_PARAMETERS: tuple[tuple[str, str], ...] = (
    ("temperature", attrs.GEN_AI_REQUEST_TEMPERATURE),
    ("top_p", attrs.GEN_AI_REQUEST_TOP_P),
    ("top_k", attrs.GEN_AI_REQUEST_TOP_K),
    ("max_output_tokens", attrs.GEN_AI_REQUEST_MAX_TOKENS),
    ("seed", attrs.GEN_AI_REQUEST_SEED),
    ("presence_penalty", attrs.GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("frequency_penalty", attrs.GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("candidate_count", attrs.GEN_AI_REQUEST_CHOICE_COUNT),
)


def _enum_value(value: Any) -> str:
    raw = getattr(value, "value", value)
    return str(raw).lower()


def _finish_reason(reason: Any) -> str:
    """``FinishReason.STOP`` → ``"stop"``."""
    # The SDK's enums are str subclasses whose value is the member's name, so lower() reads
    # it at C speed; .name/.value are slow Python properties and hashing a member (to cache
    # them) calls Python code too.
    if isinstance(reason, str):
        return reason.lower()
    return _enum_value(getattr(reason, "name", reason))


def request_attributes(config: Any) -> dict[str, AttributeValue]:
    """``gen_ai.request.*`` (and our billing context) from a GenerateContentConfig."""
    result: dict[str, AttributeValue] = {}
    if config is None:
        return result
    for name, key in _REQUEST_PARAMETERS:
        value = field(config, name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result[key] = value
    stop = field(config, "stop_sequences")
    if stop:
        result[attrs.GEN_AI_REQUEST_STOP_SEQUENCES] = [str(s) for s in stop]
    mime = field(config, "response_mime_type")
    if mime:
        result[attrs.GEN_AI_OUTPUT_TYPE] = "json" if "json" in str(mime) else "text"
    tier = field(config, "service_tier")
    if tier:
        result[attrs.REQUEST_SERVICE_TIER] = _enum_value(tier)
    return result


class GenerateContentRecorder:
    """Accumulates a GenerateContentResponse, or the chunks of a streamed one.

    Usage is the running total on each chunk: the last one wins, never a sum.
    """

    __slots__ = ("_finish", "_model", "_parts", "_response_id", "_settings", "_usage")
    # Its state is the responses it was given: read on the metrics worker when not recorded.
    final_once_finished: ClassVar[bool] = True

    def __init__(self, settings: InstrumentationSettings) -> None:
        self._settings = settings
        self._usage: Any = None
        self._response_id: str | None = None
        self._model: str | None = None
        self._finish: dict[int, str] = {}
        self._parts: list[Any] | None = [] if settings.capture_content else None

    def add(self, response: Any) -> None:
        usage = getattr(response, "usage_metadata", None)
        if usage is not None:
            self._usage = usage
        response_id = getattr(response, "response_id", None)
        if response_id:
            self._response_id = response_id
        model = getattr(response, "model_version", None)
        if model:
            self._model = model
        candidates = getattr(response, "candidates", None)
        if candidates:
            for position, candidate in enumerate(candidates):
                reason = getattr(candidate, "finish_reason", None)
                if reason is not None:
                    index = getattr(candidate, "index", None)
                    self._finish[index if isinstance(index, int) else position] = _finish_reason(
                        reason
                    )
            if self._parts is not None:
                self._parts.extend(_content.candidate_parts(response))

    def attributes(self) -> Mapping[str, AttributeValue]:
        result: dict[str, AttributeValue] = {}
        if self._response_id:
            result[attrs.GEN_AI_RESPONSE_ID] = self._response_id
        if self._model:
            result[attrs.GEN_AI_RESPONSE_MODEL] = bare_model_name(self._model)
        if self._finish:
            result[attrs.GEN_AI_RESPONSE_FINISH_REASONS] = [
                self._finish[index] for index in sorted(self._finish)
            ]
        if self._usage is not None:
            result.update(usage_attributes(self._usage))
        if self._parts is not None and (self._parts or self._finish):
            finish = self._finish.get(0)
            message = _content.output_message(_merge_text_parts(self._parts), finish)
            result[attrs.GEN_AI_OUTPUT_MESSAGES] = _content.to_limited_json(
                [message], self._settings.content_max_length
            )
        return result


class AgentAnswerRecorder:
    """The AFC parent's output: the final answer, with content capture only.

    Never usage, model or response id: the generations under it carry those, and usage here
    would be priced a second time. Streamed, the chunks of every hop come through; a hop
    that ended asking for tools is not the answer, so the next hop's parts replace it.
    """

    __slots__ = ("_finish", "_parts", "_settings", "_wants_tools")

    def __init__(self, settings: InstrumentationSettings) -> None:
        self._settings = settings
        self._parts: list[Any] = []
        self._finish: str | None = None
        self._wants_tools = False

    def add(self, response: Any) -> None:
        if not self._settings.capture_content:
            return
        parts = _content.candidate_parts(response)
        if parts and self._wants_tools:
            self._parts, self._finish, self._wants_tools = [], None, False
        self._parts.extend(parts)
        if any(field(part, "function_call") is not None for part in parts):
            self._wants_tools = True
        candidates = getattr(response, "candidates", None)
        reason = getattr(candidates[0], "finish_reason", None) if candidates else None
        if reason is not None:
            self._finish = _finish_reason(reason)

    def attributes(self) -> Mapping[str, AttributeValue]:
        if not self._parts and self._finish is None:
            return {}
        message = _content.output_message(_merge_text_parts(self._parts), self._finish)
        return {
            attrs.GEN_AI_OUTPUT_MESSAGES: _content.to_limited_json(
                [message], self._settings.content_max_length
            )
        }


def _merge_text_parts(parts: list[Any]) -> list[Any]:
    """Join consecutive streamed text fragments into one part each."""
    merged: list[Any] = []
    for part in parts:
        text = getattr(part, "text", None)
        thought = bool(getattr(part, "thought", False))
        if text is not None and merged and isinstance(merged[-1], _TextPart):
            previous = merged[-1]
            if previous.thought == thought:
                previous.text += text
                continue
        merged.append(_TextPart(text, thought) if text is not None else part)
    return merged


class _TextPart:
    __slots__ = ("text", "thought")

    def __init__(self, text: str, thought: bool) -> None:
        self.text = text
        self.thought = thought


def input_content_attributes(
    contents: Any, config: Any, settings: InstrumentationSettings, api_client: Any = None
) -> dict[str, AttributeValue]:
    """``gen_ai.input.messages`` and ``gen_ai.system_instructions`` (content capture only)."""
    result: dict[str, AttributeValue] = {}
    result[attrs.GEN_AI_INPUT_MESSAGES] = _content.to_limited_json(
        _content.input_messages(contents, api_client), settings.content_max_length
    )
    system = _content.system_instructions(field(config, "system_instruction"))
    if system:
        result[attrs.GEN_AI_SYSTEM_INSTRUCTIONS] = _content.to_limited_json(
            system, settings.content_max_length
        )
    return result


def tool_definition_attributes(
    config: Any, settings: InstrumentationSettings, api_client: Any = None
) -> dict[str, AttributeValue]:
    """``gen_ai.tool.definitions`` from ``config.tools`` (content capture only)."""
    definitions = _content.tool_definitions(field(config, "tools"), api_client)
    encoded = _content.tool_definitions_json(definitions, settings.content_max_length)
    return {attrs.GEN_AI_TOOL_DEFINITIONS: encoded} if definitions and encoded else {}


def json_attribute(value: Any, max_length: int) -> str:
    """``value`` as JSON, cut to ``max_length`` characters (tool arguments and results)."""
    encoded = json.dumps(value, default=str, ensure_ascii=False)
    return encoded if len(encoded) <= max_length else encoded[:max_length]
