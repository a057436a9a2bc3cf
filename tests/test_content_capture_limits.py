"""Content capture JSON: size limit keeps valid JSON, binary parts are never inlined."""

from __future__ import annotations

import json

from google.genai import types

from otel_gemini.instrumentation import _content


def test_binary_parts_become_placeholders_with_mime_type_and_size() -> None:
    audio = types.Part.from_bytes(data=b"\x00\x01" * 8000, mime_type="audio/pcm;rate=16000")
    messages = _content.input_messages([types.Content(role="user", parts=[audio])])
    assert messages == [
        {
            "role": "user",
            "parts": [{"type": "blob", "mime_type": "audio/pcm;rate=16000", "size": 16000}],
        }
    ]
    assert "AAE" not in json.dumps(messages)  # no base64 of the payload


def test_long_text_is_cut_to_the_limit_and_stays_valid_json() -> None:
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": "x" * 10_000}]},
        {"role": "model", "parts": [{"type": "text", "content": "y" * 10_000}]},
    ]
    encoded = _content.to_limited_json(messages, 1000)
    assert len(encoded) <= 1000
    decoded = json.loads(encoded)
    assert decoded[0]["parts"][0]["content"].startswith("xxx")
    assert decoded[0]["parts"][0]["content"].endswith("…[truncated]")


def test_many_messages_drop_from_the_end_and_stay_valid_json() -> None:
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": f"message {i} " + "z" * 50}]}
        for i in range(200)
    ]
    encoded = _content.to_limited_json(messages, 500)
    assert len(encoded) <= 500
    decoded = json.loads(encoded)
    assert decoded[0]["parts"][0]["content"].startswith("message 0")
    assert decoded[-1]["parts"][0]["content"] == "…[truncated]"


def test_short_content_is_unchanged() -> None:
    messages = [{"role": "user", "parts": [{"type": "text", "content": "hello"}]}]
    assert json.loads(_content.to_limited_json(messages, 100)) == messages


def lookup(city: str) -> str:
    """Looks a city up."""
    return city


def test_tool_definitions_declare_functions_and_name_built_in_tools() -> None:
    from google import genai

    client = genai.Client(api_key="test-key")
    definitions = _content.tool_definitions(
        [
            lookup,
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name="add",
                        description="Adds.",
                        parameters=types.Schema(type=types.Type.OBJECT),
                    )
                ]
            ),
            types.Tool(google_search=types.GoogleSearch()),
            {"code_execution": {}},
        ],
        client._api_client,
    )
    assert [(d["type"], d["name"]) for d in definitions] == [
        ("function", "lookup"),
        ("function", "add"),
        ("google_search", "google_search"),
        ("code_execution", "code_execution"),
    ]
    assert definitions[0]["description"] == "Looks a city up."
    # A JSON schema (google-genai 3.x) or the SDK's own Schema (1.x: "STRING").
    assert definitions[0]["parameters"]["properties"]["city"]["type"].lower() == "string"
    assert definitions[1]["parameters"] == {"type": "OBJECT"}


def test_tool_definitions_over_the_limit_drop_parameters_then_whole_definitions() -> None:
    definitions = [
        {"type": "function", "name": f"tool_{i}", "parameters": {"x": "y" * 100}} for i in range(20)
    ]
    encoded = _content.tool_definitions_json(definitions, 300)
    assert encoded is not None and len(encoded) <= 300
    decoded = json.loads(encoded)
    # Whole definitions, each with its name (Langfuse drops the array if one has none).
    assert [d["name"] for d in decoded] == [f"tool_{i}" for i in range(len(decoded))]
    assert all("parameters" not in d for d in decoded)
    assert _content.tool_definitions_json(definitions[:1], 10) is None
    assert _content.tool_definitions_json(definitions[:1], 1000) == json.dumps(definitions[:1])
