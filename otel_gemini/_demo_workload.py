"""The demo's workload: several users chatting, streaming, calling a Python tool through
automatic function calling and talking to the Live API, each step with the fake Gemini's
script (realistic token counts) for when no real Gemini is used.

(No ``from __future__ import annotations`` here: google-genai 1.x cannot call a tool whose
annotations are strings.)
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.genai import types

from otel_gemini.testing import (
    FakeGemini,
    InputTranscription,
    LiveScript,
    ModelAudio,
    OutputTranscription,
    ScriptedUsage,
    TurnComplete,
    WaitFor,
)

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
LITE = "gemini-2.5-flash-lite"
VOICE = "gemini-2.5-flash-native-audio-preview-09-2025"
PCM_16K = "audio/pcm;rate=16000"


@dataclass(frozen=True)
class Step:
    """One user's piece of work."""

    user: str
    session: str
    title: str
    run: Callable[[Any], str]
    """Runs it with a ``google.genai.Client``; returns what happened, briefly."""
    script: Callable[[FakeGemini], None]
    """Queues the fake Gemini's answers for it."""
    fake_only: bool = False
    """Only against the fake (a scripted failure)."""


def get_weather(city: str) -> str:
    """The weather in a city (the demo's Python tool, called by automatic function calling)."""
    return f"Sunny and 21 degrees in {city}."


# --- the steps ---------------------------------------------------------------------------


def _chat(client: Any) -> str:
    chat = client.chats.create(model=FLASH)
    for question in (
        "Plan a three-day trip to Lisbon.",
        "Make day two about food.",
        "Shorter, please: one line per day.",
    ):
        chat.send_message(question)
    return "3 turns"


def _chat_script(fake: FakeGemini) -> None:
    fake.add_text(
        "Day 1: Alfama and the castle. Day 2: Belém. Day 3: Sintra.",
        usage=ScriptedUsage(prompt=42, candidates=120, thoughts=30),
        model=FLASH,
    )
    fake.add_text(
        "Day 2: pastéis de nata in Belém, lunch at Time Out Market, dinner in Bairro Alto.",
        usage=ScriptedUsage(prompt=190, candidates=95, thoughts=22),
        model=FLASH,
    )
    fake.add_text(
        "1: Alfama. 2: food in Belém and Bairro Alto. 3: Sintra.",
        usage=ScriptedUsage(prompt=310, cached=128, candidates=60),
        model=FLASH,
    )


def _stream(client: Any) -> str:
    chunks = 0
    for _chunk in client.models.generate_content_stream(
        model=FLASH, contents="Tell a four-sentence story about a lighthouse keeper."
    ):
        chunks += 1
    return f"{chunks} chunks streamed"


def _stream_script(fake: FakeGemini) -> None:
    fake.add_stream(
        [
            "The lighthouse keeper counted ships. ",
            "One night, none came. ",
            "He lit the lamp anyway. ",
            "At dawn, a small boat thanked him.",
        ],
        usage=ScriptedUsage(prompt=25, candidates=180, thoughts=40),
        model=FLASH,
    )


def _summary(client: Any) -> str:
    client.models.generate_content(
        model=PRO,
        contents="Summarise the attached quarterly report in five bullet points. " * 40,
    )
    return "1 request"


def _summary_script(fake: FakeGemini) -> None:
    fake.add_text(
        "- Revenue up 12%\n- Costs flat\n- Two new markets\n- Churn down\n- Hiring paused",
        usage=ScriptedUsage(prompt=2400, candidates=220, thoughts=350),
        model=PRO,
    )


def _tool(client: Any) -> str:
    chat = client.chats.create(model=FLASH, config=types.GenerateContentConfig(tools=[get_weather]))
    response = chat.send_message("Should I take an umbrella in Lisbon today?")
    return f"tool called, answer: {(response.text or '').strip()[:40]!r}"


def _tool_script(fake: FakeGemini) -> None:
    fake.add_afc_exchange(
        "get_weather",
        {"city": "Lisbon"},
        call_usage=ScriptedUsage(prompt=85, candidates=12),
        final_text="No umbrella needed: it is sunny.",
        final_usage=ScriptedUsage(prompt=130, candidates=28),
        model=FLASH,
    )


def _classify(client: Any) -> str:
    client.models.generate_content(
        model=LITE, contents="Is this message a complaint? 'The app is great!' Answer yes or no."
    )
    return "1 request"


def _classify_script(fake: FakeGemini) -> None:
    fake.add_text("no", usage=ScriptedUsage(prompt=60, candidates=1), model=LITE)


def _overloaded(client: Any) -> str:
    from google.genai import errors

    try:
        client.models.generate_content(model=FLASH, contents="Translate 'hello' to Czech.")
    except errors.APIError as error:
        return f"failed as scripted (HTTP {error.code}): counted as an error, not billed"
    return "answered"


def _overloaded_script(fake: FakeGemini) -> None:
    fake.add_error(503, "The model is overloaded. Please try again later.", model=FLASH)


async def _voice_call(client: Any, real: bool) -> int:
    turns = 0
    async with client.aio.live.connect(
        model=VOICE, config={"response_modalities": ["AUDIO"]}
    ) as session:
        for question in ("What's the weather like?", "And tomorrow?"):
            if real:  # no microphone here: the real API gets the question as text
                await session.send_client_content(
                    turns=types.Content(role="user", parts=[types.Part(text=question)]),
                    turn_complete=True,
                )
            else:  # one second of 16 kHz PCM, then the end of the user's speech
                silence = types.Blob(data=b"\x00\x00" * 16_000, mime_type=PCM_16K)
                await session.send_realtime_input(audio=silence)
                await session.send_realtime_input(audio_stream_end=True)
            async for message in session.receive():
                content = message.server_content
                if content is not None and content.turn_complete:
                    turns += 1
                    break
    return turns


def _voice(client: Any, real: bool = False) -> str:
    return f"{asyncio.run(_voice_call(client, real))} spoken turns"


def _voice_script(fake: FakeGemini) -> None:
    fake.add_live_session(
        LiveScript(
            [
                WaitFor("audio_stream_end"),
                InputTranscription("What's the weather like?"),
                ModelAudio(2.0, chunks=4),
                OutputTranscription("Sunny, twenty-one degrees."),
                TurnComplete(
                    usage=ScriptedUsage(
                        prompt=180,
                        candidates=50,
                        prompt_by_modality={"TEXT": 155, "AUDIO": 25},
                        candidates_by_modality={"AUDIO": 50},
                    )
                ),
                WaitFor("audio_stream_end"),
                InputTranscription("And tomorrow?"),
                ModelAudio(1.5, chunks=3),
                OutputTranscription("Clouds in the afternoon."),
                TurnComplete(
                    usage=ScriptedUsage(
                        prompt=265,
                        candidates=38,
                        prompt_by_modality={"TEXT": 215, "AUDIO": 50},
                        candidates_by_modality={"AUDIO": 38},
                    )
                ),
            ],
            model=VOICE,
        )
    )


def steps(real_gemini: bool) -> list[Step]:
    """The workload, in order (the scripted failure only against the fake)."""
    every = [
        Step("ana", "ana-trip", f"chats with {FLASH}", _chat, _chat_script),
        Step("ben", "ben-story", f"streams a story from {FLASH}", _stream, _stream_script),
        Step("ben", "ben-report", f"summarises a report with {PRO}", _summary, _summary_script),
        Step("chen", "chen-trip", f"asks {FLASH}, which calls a Python tool", _tool, _tool_script),
        Step(
            "chen", "chen-inbox", f"classifies a message with {LITE}", _classify, _classify_script
        ),
        Step(
            "dana",
            "dana-call",
            f"talks to {VOICE} (Live API)",
            lambda client: _voice(client, real=real_gemini),
            _voice_script,
        ),
        Step(
            "eve",
            "eve-translate",
            f"asks {FLASH} while it is overloaded",
            _overloaded,
            _overloaded_script,
            fake_only=True,
        ),
    ]
    return [step for step in every if not (real_gemini and step.fake_only)]
