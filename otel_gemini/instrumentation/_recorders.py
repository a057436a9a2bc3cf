"""Recorders for the non-generateContent operations (embeddings, tokens, images, videos, tools)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs
from otel_gemini.instrumentation._generate_content import json_attribute
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._invocation import Invocation
from otel_gemini.instrumentation._settings import InstrumentationSettings


class EmbeddingsRecorder:
    """embedContent: prompt tokens (Gemini API) or billable characters (Vertex AI)."""

    __slots__ = ("_result",)

    def __init__(self, settings: InstrumentationSettings) -> None:
        self._result: dict[str, AttributeValue] = {}

    def add(self, response: Any) -> None:
        usage = getattr(response, "usage_metadata", None)
        tokens = getattr(usage, "prompt_token_count", None) if usage is not None else None
        if isinstance(tokens, int):
            self._result[attrs.GEN_AI_USAGE_INPUT_TOKENS] = tokens
            self._result[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] = 0
        metadata = getattr(response, "metadata", None)
        characters = getattr(metadata, "billable_character_count", None) if metadata else None
        if isinstance(characters, int):
            self._result[attrs.USAGE_BILLABLE_CHARACTERS] = characters
        embeddings = getattr(response, "embeddings", None)
        if embeddings:
            values = getattr(embeddings[0], "values", None)
            if values:
                self._result[attrs.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] = len(values)

    def attributes(self) -> Mapping[str, AttributeValue]:
        return self._result


class CountTokensRecorder:
    """countTokens / computeTokens: informational, not billed usage."""

    __slots__ = ("_result",)

    def __init__(self, settings: InstrumentationSettings) -> None:
        self._result: dict[str, AttributeValue] = {}

    def add(self, response: Any) -> None:
        total = getattr(response, "total_tokens", None)
        if isinstance(total, int):
            self._result[attrs.COUNT_TOKENS_TOTAL] = total

    def attributes(self) -> Mapping[str, AttributeValue]:
        return self._result


class ImagesRecorder:
    """generate_images (Imagen): billed per generated image."""

    __slots__ = ("_result",)

    def __init__(self, settings: InstrumentationSettings) -> None:
        self._result: dict[str, AttributeValue] = {}

    def add(self, response: Any) -> None:
        images = getattr(response, "generated_images", None)
        self._result[attrs.USAGE_OUTPUT_IMAGE_COUNT] = len(images or ())

    def attributes(self) -> Mapping[str, AttributeValue]:
        return self._result


class ToolRecorder:
    """An automatic-function-calling tool execution; its result only with content capture."""

    __slots__ = ("_result", "_settings")

    def __init__(self, settings: InstrumentationSettings) -> None:
        self._settings = settings
        self._result: dict[str, AttributeValue] = {}

    def add(self, response: Any) -> None:
        if self._settings.capture_content:
            self._result[attrs.GEN_AI_TOOL_CALL_RESULT] = json_attribute(
                response, self._settings.content_max_length
            )

    def attributes(self) -> Mapping[str, AttributeValue]:
        return self._result


def start_tool_invocation(
    instruments: Instruments, name: str, arguments: Any, call_id: str | None = None
) -> Invocation:
    """The ``execute_tool {name}`` span of a function call (AFC's or a Live session's), started
    in the current context; the arguments are recorded only when content capture is on."""
    attributes: dict[str, AttributeValue] = {
        attrs.GEN_AI_OPERATION_NAME: attrs.OP_EXECUTE_TOOL,
        attrs.GEN_AI_TOOL_NAME: name,
        attrs.GEN_AI_TOOL_TYPE: "function",
    }
    if call_id:
        attributes[attrs.GEN_AI_TOOL_CALL_ID] = call_id
    settings = instruments.settings
    if settings.capture_content:
        attributes[attrs.GEN_AI_TOOL_CALL_ARGUMENTS] = json_attribute(
            arguments, settings.content_max_length
        )
    return Invocation(
        instruments,
        f"{attrs.OP_EXECUTE_TOOL} {name}",
        attributes,
        ToolRecorder(settings),
        kind=SpanKind.INTERNAL,
    )
