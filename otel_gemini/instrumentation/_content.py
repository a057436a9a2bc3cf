"""Prompt and response content as GenAI semantic-convention JSON (only when capture is on).

Messages follow the GenAI conventions' shape (``[{"role", "parts": [{"type", ...}]}]``).
Binary parts are never inlined: they become ``{"type": "blob", "mime_type", "size"}``.
Each attribute is limited to ``max_length`` characters by shortening text parts first and
then dropping trailing messages, so the value always stays valid JSON.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from google.genai import types

from otel_gemini.instrumentation._fields import field

_TRUNCATION_MARK = "…[truncated]"


def _part_to_json(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "content": part}
    text = field(part, "text")
    if text is not None:
        kind = "reasoning" if field(part, "thought") else "text"
        return {"type": kind, "content": text}
    inline = field(part, "inline_data")
    if inline is not None:
        data = field(inline, "data") or b""
        return {"type": "blob", "mime_type": field(inline, "mime_type"), "size": len(data)}
    file_data = field(part, "file_data")
    if file_data is not None:
        return {
            "type": "uri",
            "mime_type": field(file_data, "mime_type"),
            "uri": field(file_data, "file_uri"),
        }
    call = field(part, "function_call")
    if call is not None:
        return {
            "type": "tool_call",
            "id": field(call, "id"),
            "name": field(call, "name"),
            "arguments": field(call, "args"),
        }
    response = field(part, "function_response")
    if response is not None:
        return {
            "type": "tool_call_response",
            "id": field(response, "id"),
            "response": field(response, "response"),
        }
    return {"type": "unknown"}


def _content_parts(content: Any) -> list[Any]:
    parts = field(content, "parts")
    return list(parts) if parts else []


def content_parts_json(content: Any) -> list[dict[str, Any]]:
    """A ``Content``'s parts as GenAI message parts (binary data as placeholders)."""
    return [_part_to_json(part) for part in _content_parts(content)]


@lru_cache(maxsize=1)
def _t_contents_takes_client() -> bool:
    from google.genai import _transformers

    return "client" in inspect.signature(_transformers.t_contents).parameters


def input_messages(contents: Any, api_client: Any = None) -> list[dict[str, Any]]:
    """The request's contents as GenAI input messages."""
    from google.genai import _transformers

    # google-genai 1.x's t_contents takes the API client first; 2.x and later do not.
    normalised: Sequence[types.Content] = (
        _transformers.t_contents(api_client, contents)  # type: ignore[call-arg]
        if _t_contents_takes_client()
        else _transformers.t_contents(contents)
    )
    return [
        {"role": content.role or "user", "parts": content_parts_json(content)}
        for content in normalised
    ]


def system_instructions(instruction: Any) -> list[dict[str, Any]] | None:
    """``config.system_instruction`` as a list of GenAI parts, or None if unset."""
    if instruction is None:
        return None
    if isinstance(instruction, str):
        return [_part_to_json(instruction)]
    parts = field(instruction, "parts")
    if parts is not None:
        return [_part_to_json(part) for part in parts]
    if isinstance(instruction, list):
        return [_part_to_json(part) for part in instruction]
    return [_part_to_json(instruction)]


def output_message(parts: Iterable[Any], finish_reason: str | None) -> dict[str, Any]:
    """One assistant message from the model's parts."""
    message: dict[str, Any] = {
        "role": "assistant",
        "parts": [_part_to_json(part) for part in parts],
    }
    if finish_reason:
        message["finish_reason"] = finish_reason
    return message


def candidate_parts(response: Any) -> list[Any]:
    """The parts of a response's first candidate (empty if there is none)."""
    candidates = field(response, "candidates")
    if not candidates:
        return []
    return _content_parts(field(candidates[0], "content"))


def _function_definition(declaration: Any) -> dict[str, Any]:
    definition: dict[str, Any] = {"type": "function", "name": field(declaration, "name")}
    description = field(declaration, "description")
    if description:
        definition["description"] = description
    parameters = field(declaration, "parameters_json_schema")
    if parameters is None:
        schema = field(declaration, "parameters")
        dump = getattr(schema, "model_dump", None)
        parameters = dump(mode="json", exclude_none=True) if dump is not None else schema
    if parameters is not None:
        definition["parameters"] = parameters
    return definition


def tool_definitions(tools: Any, api_client: Any = None) -> list[dict[str, Any]]:
    """A request's ``config.tools`` as GenAI tool definitions (``{"type", "name", ...}``).

    Python functions (automatic function calling) are declared the way the SDK declares
    them; a built-in tool (Google Search, code execution, ...) is named after its field, so
    that every definition has the name Langfuse requires of each entry. Anything else (an
    MCP session, say) is left out."""
    from google.genai import _transformers

    result: list[dict[str, Any]] = []
    for origin in tools or ():
        try:
            tool = _transformers.t_tool(api_client, origin)
        except Exception:  # an SDK that cannot declare it would fail the request itself
            continue
        if not isinstance(tool, types.Tool):
            continue
        for declaration in tool.function_declarations or ():
            result.append(_function_definition(declaration))
        for name in type(tool).model_fields:
            if name != "function_declarations" and getattr(tool, name) is not None:
                result.append({"type": name, "name": name})
    return [definition for definition in result if definition.get("name")]


def interaction_tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """An Interactions API request's ``tools`` as GenAI tool definitions: its functions are
    already ``{"type": "function", "name", "description", "parameters"}``; a built-in tool
    (``{"type": "google_search"}``, ...) is named after its type."""
    result: list[dict[str, Any]] = []
    for tool in tools or ():
        kind = field(tool, "type")
        if not isinstance(kind, str) or not kind:
            continue
        if kind != "function":
            result.append({"type": kind, "name": kind})
            continue
        name = field(tool, "name")
        if not isinstance(name, str) or not name:
            continue
        definition: dict[str, Any] = {"type": "function", "name": name}
        for key in ("description", "parameters"):
            value = field(tool, key)
            if value is not None:
                definition[key] = value
        result.append(definition)
    return result


def tool_definitions_json(definitions: list[dict[str, Any]], max_length: int) -> str | None:
    """JSON of ``definitions`` within ``max_length`` characters: parameters are dropped
    first, then trailing definitions; never a cut string (Langfuse drops an array it cannot
    parse whole). None when not even one name fits."""
    encoded = json.dumps(definitions, default=str, ensure_ascii=False)
    if len(encoded) <= max_length:
        return encoded
    kept = [{k: v for k, v in d.items() if k != "parameters"} for d in definitions]
    while kept:
        encoded = json.dumps(kept, default=str, ensure_ascii=False)
        if len(encoded) <= max_length:
            return encoded
        kept.pop()
    return None


def to_limited_json(value: list[dict[str, Any]], max_length: int) -> str:
    """JSON of ``value`` no longer than ``max_length`` characters, still valid JSON."""
    encoded = json.dumps(value, default=str, ensure_ascii=False)
    if len(encoded) <= max_length:
        return encoded
    budget = max(16, max_length // 4)
    shortened = [_shorten_message(message, budget) for message in value]
    encoded = json.dumps(shortened, default=str, ensure_ascii=False)
    while len(encoded) > max_length and len(shortened) > 1:
        shortened.pop()
        encoded = json.dumps(
            [
                *shortened,
                {"role": "system", "parts": [{"type": "text", "content": _TRUNCATION_MARK}]},
            ],
            default=str,
            ensure_ascii=False,
        )
    if len(encoded) > max_length:
        return json.dumps([{"type": "text", "content": _TRUNCATION_MARK}])
    return encoded


def _shorten_message(message: dict[str, Any], budget: int) -> Any:
    parts = message.get("parts")
    if not isinstance(parts, list):
        return _shorten_part(message, budget)
    return {**message, "parts": [_shorten_part(part, budget) for part in parts]}


def _shorten_part(part: Any, budget: int) -> Any:
    if not isinstance(part, dict):
        return part
    content = part.get("content")
    if isinstance(content, str) and len(content) > budget:
        return {**part, "content": content[:budget] + _TRUNCATION_MARK}
    for key in ("arguments", "response"):
        value = part.get(key)
        if value is not None:
            encoded = json.dumps(value, default=str, ensure_ascii=False)
            if len(encoded) > budget:
                return {**part, key: encoded[:budget] + _TRUNCATION_MARK}
    return part
