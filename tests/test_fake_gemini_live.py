"""The fake Gemini's Live API endpoint, driven by the real google-genai Live client over WSS."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
from google import genai
from google.genai import types
from live_audio import pcm

from otel_gemini.testing import (
    CloseConnection,
    DropConnection,
    FakeGemini,
    InputTranscription,
    Interrupted,
    LiveScript,
    LiveUsage,
    ModelAudio,
    ModelText,
    OutputTranscription,
    ScriptedUsage,
    ToolCall,
    ToolCallCancellation,
    TurnComplete,
    WaitFor,
)

pytestmark = pytest.mark.genai

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"


def close_code_of(error: BaseException) -> int | None:
    """google-genai 3.x raises APIError(code); 1.x lets websockets' ConnectionClosed out."""
    if hasattr(error, "rcvd"):
        return error.rcvd.code if error.rcvd is not None else 1006
    code = getattr(error, "code", None)
    return code if isinstance(code, int) else None


async def receive_turn(session: Any) -> list[types.LiveServerMessage]:
    return [message async for message in session.receive()]


async def test_a_scripted_voice_turn_reaches_the_real_client(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    usage = ScriptedUsage(
        prompt=60,
        candidates=50,
        thoughts=4,
        tool_use_prompt=3,
        prompt_by_modality={"TEXT": 22, "AUDIO": 38},
        candidates_by_modality={"AUDIO": 50},
    )
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("audio_stream_end"),
                InputTranscription("Hello?"),
                ModelAudio(seconds=0.5, chunks=2),
                OutputTranscription("Hi there."),
                TurnComplete(usage=usage),
            ],
            session_id="live-42",
        )
    )
    async with gemini_live_client.aio.live.connect(
        model=MODEL, config={"response_modalities": ["AUDIO"]}
    ) as session:
        await session.send_realtime_input(audio=pcm(0.25))
        await session.send_realtime_input(audio_stream_end=True)
        messages = await receive_turn(session)

    assert [m.server_content.input_transcription.text for m in messages[:1]] == ["Hello?"]
    chunks = [m.server_content.model_turn.parts[0].inline_data for m in messages[1:3]]
    assert [len(chunk.data) for chunk in chunks] == [12_000, 12_000]  # 0.5 s at 24 kHz
    assert {chunk.mime_type for chunk in chunks} == {"audio/pcm;rate=24000"}
    assert messages[3].server_content.output_transcription.text == "Hi there."
    last = messages[4]
    assert last.server_content.turn_complete is True
    got = last.usage_metadata
    assert (got.prompt_token_count, got.response_token_count, got.total_token_count) == (
        60,
        50,
        117,
    )
    assert (got.thoughts_token_count, got.tool_use_prompt_token_count) == (4, 3)
    assert [(d.modality.name, d.token_count) for d in got.response_tokens_details] == [
        ("AUDIO", 50)
    ]
    if hasattr(session, "session_id"):  # google-genai 3.x
        assert session.session_id == "live-42"

    recorded = fake_gemini_live.live_sessions[0]
    recorded.wait_ended()
    assert recorded.model == MODEL
    assert recorded.scripted
    assert recorded.audio_bytes_received == 8_000  # 0.25 s at 16 kHz, 16-bit
    assert [sorted(events - {"any"}) for events in recorded.events()] == [
        ["audio", "realtime_input"],
        ["audio_stream_end", "realtime_input"],
    ]
    assert "GenerativeService.BidiGenerateContent" in recorded.path
    assert fake_gemini_live.pending_live_sessions == []


async def test_tool_calls_wait_for_the_clients_response(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("turn_complete"),
                ToolCall("get_weather", {"city": "Paris"}, call_id="c-7"),
                ToolCall("get_time", call_id="c-8"),
                ToolCallCancellation(["c-8"]),
                WaitFor("tool_response"),
                ModelText("Sunny."),
                TurnComplete(),
            ]
        )
    )
    async with gemini_live_client.aio.live.connect(
        model="gemini-live-2.5-flash-preview", config={"response_modalities": ["TEXT"]}
    ) as session:
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text="Weather?")])
        )
        seen: list[str] = []
        async for message in session.receive():
            if message.tool_call:
                call = message.tool_call.function_calls[0]
                seen.append(f"call {call.name} {call.id} {call.args}")
                if call.name == "get_weather":
                    await session.send_tool_response(
                        function_responses=types.FunctionResponse(
                            id=call.id, name=call.name, response={"sky": "clear"}
                        )
                    )
            elif message.tool_call_cancellation:
                seen.append(f"cancel {message.tool_call_cancellation.ids}")
            elif message.text:
                seen.append(message.text)
    assert seen == [
        "call get_weather c-7 {'city': 'Paris'}",
        "call get_time c-8 {}",
        "cancel ['c-8']",
        "Sunny.",
    ]
    recorded = fake_gemini_live.live_sessions[0]
    recorded.wait_ended()
    response = recorded.messages[1]["tool_response"]["functionResponses"][0]
    assert response == {"id": "c-7", "name": "get_weather", "response": {"sky": "clear"}}


async def test_unscripted_sessions_answer_each_turn(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    async with gemini_live_client.aio.live.connect(model=MODEL) as session:
        for _ in range(2):
            await session.send_client_content(turns={"role": "user", "parts": [{"text": "hi"}]})
            messages = await receive_turn(session)
            audio_bytes = sum(
                len(m.server_content.model_turn.parts[0].inline_data.data)
                for m in messages
                if m.server_content and m.server_content.model_turn
            )
            assert audio_bytes == 9_600  # 0.2 s at 24 kHz
            assert messages[-1].usage_metadata.response_token_count == 5
    assert not fake_gemini_live.live_sessions[0].scripted


async def test_scripts_can_be_for_one_model(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(LiveScript([ModelText("for b")], model="model-b"))
    fake_gemini_live.add_live_session(LiveScript([ModelText("for a")], model="models/model-a"))
    async with gemini_live_client.aio.live.connect(model="model-a") as session:
        message = await session._receive()
    assert message.text == "for a"
    assert [s.model for s in fake_gemini_live.pending_live_sessions] == ["model-b"]


async def test_a_dropped_connection_fails_the_clients_receive(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript([WaitFor("audio"), ModelAudio(0.1), DropConnection()])
    )
    received: list[Any] = []
    with pytest.raises(Exception) as raised:
        async with gemini_live_client.aio.live.connect(model=MODEL) as session:
            await session.send_realtime_input(audio=pcm(0.1))
            async for message in session.receive():
                received.append(message)
    assert len(received) == 1
    assert close_code_of(raised.value) == 1006  # no close frame
    fake_gemini_live.live_sessions[0].wait_ended()


async def test_a_scripted_close_sends_its_code(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript([Interrupted(usage=ScriptedUsage(prompt=1)), CloseConnection(1011, "boom")])
    )
    with pytest.raises(Exception) as raised:
        async with gemini_live_client.aio.live.connect(model=MODEL) as session:
            async for _ in session.receive():
                pass
    assert close_code_of(raised.value) == 1011


async def test_late_usage_is_a_message_of_its_own(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript([LiveUsage(ScriptedUsage(prompt=9, candidates=2))])
    )
    async with gemini_live_client.aio.live.connect(model=MODEL) as session:
        message = await session._receive()
    assert message.server_content is None
    assert message.usage_metadata.prompt_token_count == 9
    assert message.usage_metadata.response_token_count == 2


def test_the_certificate_is_for_loopback_and_rest_works_over_it(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    assert fake_gemini_live.base_url.startswith("https://127.0.0.1:")
    fake_gemini_live.add_text("over TLS")
    reply = gemini_live_client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert reply.text == "over TLS"
    context = ssl.create_default_context(cafile=fake_gemini_live.ca_bundle())
    assert context.cert_store_stats()["x509_ca"] > 1  # the usual roots and ours


def test_live_needs_tls_to_give_a_ca_bundle() -> None:
    with pytest.raises(RuntimeError, match="tls=True"):
        FakeGemini().ca_bundle()


async def test_sessions_can_be_awaited_from_another_thread(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(LiveScript([ModelText("x")]))
    async with gemini_live_client.aio.live.connect(model=MODEL) as session:
        await session._receive()
        sessions = await asyncio.to_thread(fake_gemini_live.wait_for_live_sessions, 1)
    assert len(sessions) == 1
    with pytest.raises(TimeoutError):
        fake_gemini_live.wait_for_live_sessions(2, timeout=0.05)
