"""The scripted three-turn Live voice session the Live and Langfuse-observation tests run."""

from __future__ import annotations

from typing import Any

from google import genai
from google.genai import types
from live_audio import pcm

from otel_gemini.testing import (
    InputTranscription,
    Interrupted,
    LiveScript,
    LiveUsage,
    ModelAudio,
    OutputTranscription,
    ScriptedUsage,
    ToolCall,
    TurnComplete,
    WaitFor,
)

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"

TURN_1 = ScriptedUsage(
    prompt=150,
    candidates=75,
    thoughts=12,
    prompt_by_modality={"TEXT": 112, "AUDIO": 38},
    candidates_by_modality={"AUDIO": 75},
)
TURN_1_PARTIAL = ScriptedUsage(
    prompt=150,
    candidates=25,
    prompt_by_modality={"TEXT": 112, "AUDIO": 38},
    candidates_by_modality={"AUDIO": 25},
)
TURN_2 = ScriptedUsage(
    prompt=260,
    candidates=38,
    tool_use_prompt=15,
    prompt_by_modality={"TEXT": 197, "AUDIO": 63},
    candidates_by_modality={"AUDIO": 38},
    tool_use_prompt_by_modality={"TEXT": 15},
)
TURN_3 = ScriptedUsage(
    prompt=350,
    candidates=19,
    prompt_by_modality={"TEXT": 270, "AUDIO": 80},
    candidates_by_modality={"AUDIO": 19},
)


def voice_session_script() -> LiveScript:
    """Turn 1: usage repeated within the turn. Turn 2: a tool call. Turn 3: the user barges
    in, the model is interrupted and its usage arrives after the interruption."""
    return LiveScript(
        [
            WaitFor("audio_stream_end"),
            InputTranscription("Hi, who are you?"),
            ModelAudio(1.0, chunks=2),
            LiveUsage(TURN_1_PARTIAL),
            ModelAudio(2.0, chunks=4),
            OutputTranscription("I am your assistant."),
            TurnComplete(usage=TURN_1),
            WaitFor("audio_stream_end"),
            InputTranscription("What's the weather in Paris?"),
            ToolCall("get_weather", {"city": "Paris"}, call_id="call-1"),
            WaitFor("tool_response"),
            ModelAudio(1.5, chunks=3),
            OutputTranscription("It is sunny in Paris."),
            TurnComplete(usage=TURN_2),
            WaitFor("audio_stream_end"),
            ModelAudio(0.75, chunks=3),
            WaitFor("audio_stream_end"),
            Interrupted(),
            LiveUsage(TURN_3),
        ],
        session_id="voice-1",
    )


async def speak(session: Any, *chunks: float) -> None:
    for seconds in chunks:
        await session.send_realtime_input(audio=pcm(seconds))
    await session.send_realtime_input(audio_stream_end=True)


async def run_voice_session(client: genai.Client) -> list[types.LiveServerMessage]:
    received: list[types.LiveServerMessage] = []
    async with client.aio.live.connect(
        model=MODEL, config={"response_modalities": ["AUDIO"]}
    ) as session:
        await speak(session, 0.5, 0.5, 0.5)
        received += [message async for message in session.receive()]
        await speak(session, 0.25, 0.25, 0.25)
        async for message in session.receive():
            received.append(message)
            if message.tool_call:
                call = message.tool_call.function_calls[0]
                await session.send_tool_response(
                    function_responses=[
                        types.FunctionResponse(id=call.id, name=call.name, response={"t": 21})
                    ]
                )
        await speak(session, 0.5)
        model_audio = 0
        async for message in session.receive():
            received.append(message)
            if message.server_content and message.server_content.model_turn:
                model_audio += 1
                if model_audio == 3:
                    await speak(session, 0.25)  # the user barges in
            if message.usage_metadata and not message.server_content:
                break  # the interrupted turn's usage came late: the session is over
    return received
