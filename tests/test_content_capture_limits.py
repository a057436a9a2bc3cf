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
