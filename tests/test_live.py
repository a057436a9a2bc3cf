"""Live API tracing and pricing: the real google-genai Live client against the fake over WSS."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import live, types
from live_audio import pcm
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from voice_session import (
    MODEL,
    TURN_3,
    run_voice_session,
    speak,
    voice_session_script,
)

from otel_gemini import CostSpanProcessor, GeminiInstrumentor, PriceTable, trace_attributes
from otel_gemini.export import LangfuseExporter
from otel_gemini.testing import (
    CloseConnection,
    DropConnection,
    FakeGemini,
    FakeLangfuse,
    InputTranscription,
    Interrupted,
    LiveRawMessage,
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
from tests.conftest import Recorded

pytestmark = pytest.mark.genai

PER_MINUTE_OVERRIDE = """
version = "voice-contract"

[[models]]
id = "gemini-2.5-flash-native-audio"

[[models.prices]]
source = "contract: audio billed per minute"
input_audio_per_minute = 0.40
output_audio_per_minute = 0.40
"""


@dataclass
class Traced:
    """An instrumented pipeline: spans priced by ``CostSpanProcessor``, kept in memory."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def session(self) -> ReadableSpan:
        (span,) = [s for s in self.spans() if s.name.startswith("live_session ")]
        return span

    def turns(self) -> list[ReadableSpan]:
        turns = [s for s in self.spans() if s.name.startswith("generate_content ")]
        return sorted(turns, key=lambda s: attr(s, "otel_gemini.live.turn.index"))

    def tools(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith("execute_tool ")]


def attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


@contextmanager
def traced(prices: PriceTable, **options: Any) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(SimpleSpanProcessor(exporter), prices))
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(tracer_provider=provider, **options)
    try:
        yield Traced(provider, exporter)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


@pytest.fixture
def tracing() -> Iterator[Traced]:
    with traced(PriceTable.default(), capture_content=False) as spans:
        yield spans


@pytest.fixture
def per_minute_tracing(tmp_path: Path) -> Iterator[Traced]:
    override = tmp_path / "prices.toml"
    override.write_text(PER_MINUTE_OVERRIDE)
    with traced(PriceTable.load(override), capture_content=False) as spans:
        yield spans


# --- the scripted 3-turn voice session ---------------------------------------------------------


def cost_details(span: ReadableSpan) -> dict[str, Decimal]:
    parsed: dict[str, Decimal] = json.loads(
        attr(span, "langfuse.observation.cost_details"), parse_float=Decimal
    )
    return parsed


def turn_figures(span: ReadableSpan) -> dict[str, Any]:
    keys = (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.text.input_tokens",
        "gen_ai.usage.audio.input_tokens",
        "gen_ai.usage.text.output_tokens",
        "gen_ai.usage.audio.output_tokens",
        "otel_gemini.usage.tool_use_prompt.input_tokens",
        "otel_gemini.usage.audio.input_seconds",
        "otel_gemini.usage.audio.output_seconds",
        "otel_gemini.live.interrupted",
        "gen_ai.response.finish_reasons",
    )
    figures = {key: attr(span, key) for key in keys if attr(span, key) is not None}
    reasons = figures.get("gen_ai.response.finish_reasons")
    if reasons is not None:
        figures["gen_ai.response.finish_reasons"] = list(reasons)
    return figures


EXPECTED_TURNS = [
    {
        "gen_ai.usage.input_tokens": 150,
        "gen_ai.usage.output_tokens": 87,
        "gen_ai.usage.reasoning.output_tokens": 12,
        "gen_ai.usage.text.input_tokens": 112,
        "gen_ai.usage.audio.input_tokens": 38,
        "gen_ai.usage.text.output_tokens": 12,
        "gen_ai.usage.audio.output_tokens": 75,
        "otel_gemini.usage.audio.input_seconds": 1.5,
        "otel_gemini.usage.audio.output_seconds": 3.0,
        "otel_gemini.live.interrupted": False,
        "gen_ai.response.finish_reasons": ["stop"],
    },
    {
        "gen_ai.usage.input_tokens": 275,
        "gen_ai.usage.output_tokens": 38,
        "gen_ai.usage.text.input_tokens": 212,
        "gen_ai.usage.audio.input_tokens": 63,
        "gen_ai.usage.audio.output_tokens": 38,
        "otel_gemini.usage.tool_use_prompt.input_tokens": 15,
        "otel_gemini.usage.audio.input_seconds": 0.75,
        "otel_gemini.usage.audio.output_seconds": 1.5,
        "otel_gemini.live.interrupted": False,
        "gen_ai.response.finish_reasons": ["stop"],
    },
    {
        "gen_ai.usage.input_tokens": 350,
        "gen_ai.usage.output_tokens": 19,
        "gen_ai.usage.text.input_tokens": 270,
        "gen_ai.usage.audio.input_tokens": 80,
        "gen_ai.usage.audio.output_tokens": 19,
        "otel_gemini.usage.audio.input_seconds": 0.75,
        "otel_gemini.usage.audio.output_seconds": 0.75,
        "otel_gemini.live.interrupted": True,
        "gen_ai.response.finish_reasons": ["interrupted"],
    },
]
EXPECTED_SESSION_TOTALS = {
    "otel_gemini.live.turns": 3,
    "otel_gemini.live.interruptions": 1,
    "otel_gemini.live.tool_calls": 1,
    "otel_gemini.live.usage.input_tokens": 775,
    "otel_gemini.live.usage.output_tokens": 144,
    "otel_gemini.live.usage.reasoning.output_tokens": 12,
    "otel_gemini.live.usage.text.input_tokens": 594,
    "otel_gemini.live.usage.audio.input_tokens": 181,
    "otel_gemini.live.usage.text.output_tokens": 12,
    "otel_gemini.live.usage.audio.output_tokens": 132,
    "otel_gemini.live.usage.tool_use_prompt.input_tokens": 15,
    "otel_gemini.live.usage.audio.input_seconds": 3.0,
    "otel_gemini.live.usage.audio.output_seconds": 5.25,
}


async def test_a_three_turn_voice_session_with_a_tool_call_and_an_interruption(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(voice_session_script())
    with trace_attributes(user_id="caller-7", session_id="call-2024"):
        received = await run_voice_session(gemini_live_client)
    assert len(received) == 22  # the SDK's messages reach the app unchanged

    turns = tracing.turns()
    session = tracing.session()
    (tool,) = tracing.tools()
    assert len(tracing.spans()) == 5
    assert [turn_figures(turn) for turn in turns] == EXPECTED_TURNS

    # Prices of the Live native-audio row: text in 0.50, audio in 3.00, text out 2.00,
    # audio out 12.00 per 1M tokens; thinking at the output price, tool-use at input.
    assert [cost_details(turn) for turn in turns] == [
        {
            "input": Decimal("0.000056"),
            "input_audio": Decimal("0.000114"),
            "output_reasoning": Decimal("0.000024"),
            "output_audio": Decimal("0.0009"),
            "total": Decimal("0.001094"),
        },
        {
            "input": Decimal("0.0000985"),
            "input_audio": Decimal("0.000189"),
            "input_tool_use": Decimal("0.0000075"),
            "output_audio": Decimal("0.000456"),
            "total": Decimal("0.000751"),
        },
        {
            "input": Decimal("0.000135"),
            "input_audio": Decimal("0.00024"),
            "output_audio": Decimal("0.000228"),
            "total": Decimal("0.000603"),
        },
    ]
    assert {attr(turn, "otel_gemini.prices.model") for turn in turns} == {
        "gemini-2.5-flash-native-audio"
    }

    # The session: totals under otel_gemini.live.*, its cost the sum of its turns', and
    # nothing that would be priced (or counted by Langfuse) a second time.
    figures = {key: attr(session, key) for key in EXPECTED_SESSION_TOTALS}
    assert figures == EXPECTED_SESSION_TOTALS
    assert json.loads(attr(session, "otel_gemini.live.cost_details"), parse_float=Decimal) == {
        "input": Decimal("0.0002895"),
        "input_audio": Decimal("0.000543"),
        "output_reasoning": Decimal("0.000024"),
        "output_audio": Decimal("0.001584"),
        "input_tool_use": Decimal("0.0000075"),
        "total": Decimal("0.002448"),
    }
    assert attr(session, "otel_gemini.live.cost") == pytest.approx(0.002448, abs=1e-15)
    assert attr(session, "otel_gemini.live.cost.status") == "priced"
    assert sum(cost_details(turn)["total"] for turn in turns) == Decimal("0.002448")
    assert session.attributes is not None
    assert not [key for key in session.attributes if key.startswith("gen_ai.usage.")]
    assert not [key for key in session.attributes if key.startswith("langfuse.observation.c")]
    assert attr(session, "langfuse.observation.type") == "span"
    assert attr(session, "otel_gemini.live.end_reason") == "closed"
    assert attr(session, "otel_gemini.live.messages_received") == 22
    assert session.status.status_code == StatusCode.UNSET

    # Shape: one trace; turns are children of the session, the tool of its turn.
    assert {span.context.trace_id for span in tracing.spans()} == {session.context.trace_id}
    assert [turn.parent.span_id for turn in turns if turn.parent] == [session.context.span_id] * 3
    assert tool.parent is not None and tool.parent.span_id == turns[1].context.span_id
    assert attr(tool, "gen_ai.tool.name") == "get_weather"
    assert attr(tool, "gen_ai.tool.call.id") == "call-1"
    assert turns[1].start_time <= tool.start_time <= tool.end_time <= turns[1].end_time
    for earlier, later in itertools.pairwise(turns):
        assert earlier.end_time <= later.start_time
    for span in tracing.spans():
        assert attr(span, "user.id") == "caller-7"
        assert attr(span, "session.id") == "call-2024"
    for turn in turns:
        assert attr(turn, "gen_ai.operation.name") == "generate_content"
        assert attr(turn, "langfuse.observation.type") == "generation"
        assert attr(turn, "gen_ai.request.model") == MODEL
        assert 0 < attr(turn, "otel_gemini.live.time_to_first_audio") < 5
        assert attr(turn, "langfuse.observation.completion_start_time")
        assert turn.status.status_code == StatusCode.UNSET
    assert attr(turns[1], "otel_gemini.live.tool_calls") == 1
    if hasattr(live.AsyncSession(api_client=None, websocket=None), "session_id"):  # type: ignore[arg-type]
        assert attr(session, "otel_gemini.live.session_id") == "voice-1"


async def test_per_minute_audio_prices_bill_the_measured_seconds(
    per_minute_tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(voice_session_script())
    await run_voice_session(gemini_live_client)

    turns = per_minute_tracing.turns()
    session = per_minute_tracing.session()
    # $0.40 a minute: 1.5 s in = $0.01, 3 s out = $0.02; text tokens keep their prices.
    assert [cost_details(turn) for turn in turns] == [
        {
            "input": Decimal("0.000056"),
            "input_audio": Decimal("0.01"),
            "output_reasoning": Decimal("0.000024"),
            "output_audio": Decimal("0.02"),
            "total": Decimal("0.03008"),
        },
        {
            "input": Decimal("0.0000985"),
            "input_audio": Decimal("0.005"),
            "input_tool_use": Decimal("0.0000075"),
            "output_audio": Decimal("0.01"),
            "total": Decimal("0.015106"),
        },
        {
            "input": Decimal("0.000135"),
            "input_audio": Decimal("0.005"),
            "output_audio": Decimal("0.005"),
            "total": Decimal("0.010135"),
        },
    ]
    assert {attr(turn, "otel_gemini.prices.version") for turn in turns} == {
        f"{PriceTable.default().version}+voice-contract"
    }
    session_cost = json.loads(attr(session, "otel_gemini.live.cost_details"), parse_float=Decimal)
    assert session_cost["total"] == Decimal("0.055321")
    assert session_cost["input_audio"] + session_cost["output_audio"] == Decimal("0.055")


async def test_the_session_reaches_langfuse_as_one_trace_whose_generations_add_up(
    fake_gemini_live: FakeGemini,
    gemini_live_client: genai.Client,
    fake_langfuse: FakeLangfuse,
    tmp_path: Path,
) -> None:
    exporter = LangfuseExporter(
        spool_dir=tmp_path / "spool", environ={}, **fake_langfuse.exporter_settings()
    )
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(exporter.span_processor(), PriceTable.default()))
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        fake_gemini_live.add_live_session(voice_session_script())
        with trace_attributes(user_id="caller-7", session_id="call-2024"):
            await run_voice_session(gemini_live_client)
        assert await asyncio.to_thread(exporter.force_flush)
    finally:
        instrumentor.uninstrument()
        exporter.shutdown(timeout_millis=1000)

    spans = fake_langfuse.spans
    assert len({span.trace_id for span in spans}) == 1
    (session,) = [s for s in spans if s.attributes.get("langfuse.observation.type") == "span"]
    generations = [
        s for s in spans if s.attributes.get("langfuse.observation.type") == "generation"
    ]
    (tool,) = [s for s in spans if s.attributes.get("gen_ai.operation.name") == "execute_tool"]
    assert len(spans) == 5
    assert [g.attributes["otel_gemini.live.turn.index"] for g in generations] == [1, 2, 3]
    assert {g.parent_span_id for g in generations} == {session.span_id}
    assert tool.parent_span_id == generations[1].span_id
    costs = [
        json.loads(str(g.attributes["langfuse.observation.cost_details"]), parse_float=Decimal)
        for g in generations
    ]
    assert [cost["total"] for cost in costs] == [
        Decimal("0.001094"),
        Decimal("0.000751"),
        Decimal("0.000603"),
    ]
    usage = [
        json.loads(str(g.attributes["langfuse.observation.usage_details"])) for g in generations
    ]
    assert usage[0] == {
        "input": 112,
        "input_audio": 38,
        "output_reasoning": 12,
        "output_audio": 75,
        "total": 237,
    }
    session_cost = json.loads(
        str(session.attributes["otel_gemini.live.cost_details"]), parse_float=Decimal
    )
    assert session_cost["total"] == sum(cost["total"] for cost in costs) == Decimal("0.002448")
    # Langfuse adds up the trace's cost from its observations: the session adds nothing.
    assert not [key for key in session.attributes if key.startswith("gen_ai.usage.")]
    assert "langfuse.observation.cost_details" not in session.attributes
    for span in spans:
        assert span.attributes["user.id"] == "caller-7"
        assert span.attributes["session.id"] == "call-2024"


async def test_turns_record_the_genai_client_metrics(
    instrumented: Recorded, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(voice_session_script())
    await run_voice_session(gemini_live_client)

    tokens = instrumented.metric_points("gen_ai.client.token.usage")
    by_type = {
        point.attributes["gen_ai.token.type"]: point  # type: ignore[attr-defined]
        for point in tokens
        if point.attributes["gen_ai.operation.name"] == "generate_content"  # type: ignore[attr-defined]
    }
    assert (by_type["input"].count, by_type["input"].sum) == (3, 775)  # type: ignore[attr-defined]
    assert (by_type["output"].count, by_type["output"].sum) == (3, 144)  # type: ignore[attr-defined]
    durations = instrumented.metric_points("gen_ai.client.operation.duration")
    operations = sorted(
        (point.attributes["gen_ai.operation.name"], point.count)  # type: ignore[attr-defined]
        for point in durations
    )
    assert operations == [("execute_tool", 1), ("generate_content", 3), ("live_session", 1)]


# --- which turn a message belongs to ------------------------------------------------------------


async def test_late_usage_belongs_to_its_own_turn_not_the_next(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    first = ScriptedUsage(prompt=40, candidates=10, candidates_by_modality={"AUDIO": 10})
    second = ScriptedUsage(prompt=90, candidates=20, candidates_by_modality={"AUDIO": 20})
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("audio_stream_end"),
                ModelAudio(0.5),
                Interrupted(),
                WaitFor("audio"),  # the next turn's input has begun...
                LiveUsage(first),  # ...when the interrupted turn's usage arrives
                WaitFor("audio_stream_end"),
                ModelAudio(0.25),
                TurnComplete(usage=second),
            ]
        )
    )
    async with gemini_live_client.aio.live.connect(model=MODEL) as session:
        await speak(session, 0.5)
        async for message in session.receive():
            if message.server_content and message.server_content.interrupted:
                break
        await session.send_realtime_input(audio=pcm(0.25))
        late = await session._receive()
        assert late.usage_metadata is not None
        await session.send_realtime_input(audio_stream_end=True)
        async for _ in session.receive():
            pass

    turns = tracing.turns()
    assert [attr(t, "gen_ai.usage.input_tokens") for t in turns] == [40, 90]
    assert [attr(t, "gen_ai.usage.output_tokens") for t in turns] == [10, 20]
    assert [attr(t, "otel_gemini.usage.audio.input_seconds") for t in turns] == [0.5, 0.25]
    assert [attr(t, "otel_gemini.usage.audio.output_seconds") for t in turns] == [0.5, 0.25]
    assert [attr(t, "otel_gemini.live.interrupted") for t in turns] == [True, False]
    # The interrupted turn ends at the interruption, not when its usage came.
    assert turns[0].end_time <= turns[1].end_time
    assert attr(tracing.session(), "otel_gemini.live.usage.input_tokens") == 130


async def test_a_text_session_with_content_capture_records_size_limited_transcripts(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    long_answer = "sunny " * 40
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("turn_complete"),
                ToolCall("get_weather", {"city": "Paris"}, call_id="w1"),
                WaitFor("tool_response"),
                ModelText("It is "),
                ModelText("sunny."),
                TurnComplete(usage=ScriptedUsage(prompt=12, candidates=3)),
                WaitFor("audio_stream_end"),
                InputTranscription("and "),
                InputTranscription("tomorrow?"),
                ModelAudio(0.25),
                OutputTranscription(long_answer),
                TurnComplete(usage=ScriptedUsage(prompt=30, candidates=8)),
            ]
        )
    )
    with traced(PriceTable.default(), capture_content=True, content_max_length=200) as spans:
        async with gemini_live_client.aio.live.connect(
            model=MODEL, config={"system_instruction": "Be brief."}
        ) as session:
            await session.send_client_content(
                turns=types.Content(role="user", parts=[types.Part(text="Weather?")])
            )
            async for message in session.receive():
                if message.tool_call:
                    await session.send_tool_response(
                        function_responses={
                            "id": "w1",
                            "name": "get_weather",
                            "response": {"sky": "clear"},
                        }
                    )
            await speak(session, 0.25)
            async for _ in session.receive():
                pass
        first, second = spans.turns()
        session_span = spans.session()
        (tool,) = spans.tools()

    assert json.loads(attr(first, "gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}
    ]
    assert json.loads(attr(first, "gen_ai.output.messages")) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "It is sunny."},
                {
                    "type": "tool_call",
                    "id": "w1",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                },
            ],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(attr(tool, "gen_ai.tool.call.arguments")) == {"city": "Paris"}
    assert json.loads(attr(tool, "gen_ai.tool.call.result")) == {"sky": "clear"}
    assert [attr(first, key) for key in ("otel_gemini.usage.audio.input_seconds",)] == [0.0]
    assert json.loads(attr(second, "gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": "and tomorrow?"}]}
    ]
    output = attr(second, "gen_ai.output.messages")
    assert len(output) <= 200
    assert json.loads(output)[0]["parts"][0]["content"].endswith("…[truncated]")
    assert json.loads(attr(session_span, "gen_ai.system_instructions")) == [
        {"type": "text", "content": "Be brief."}
    ]


async def test_without_content_capture_no_text_is_recorded(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(voice_session_script())
    await run_voice_session(gemini_live_client)
    for span in tracing.spans():
        assert span.attributes is not None
        assert not {
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
        } & set(span.attributes)


async def test_a_cancelled_tool_call_ends_its_span(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("turn_complete"),
                ToolCall("slow_lookup", call_id="c-1"),
                ToolCallCancellation(["c-1"]),
                ModelText("Never mind."),
                TurnComplete(usage=ScriptedUsage(prompt=5, candidates=2)),
            ]
        )
    )
    async with gemini_live_client.aio.live.connect(model=MODEL) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "Look"}]})
        async for _ in session.receive():
            pass
    (tool,) = tracing.tools()
    assert attr(tool, "otel_gemini.live.tool.cancelled") is True
    assert tool.parent is not None
    assert tool.parent.span_id == tracing.turns()[0].context.span_id


async def test_vertex_ai_sessions_are_traced_the_same(
    tracing: Traced, fake_gemini_live: FakeGemini
) -> None:
    client = fake_gemini_live.client(vertexai=True)
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("audio_stream_end"),
                ModelAudio(0.5, chunks=2),
                TurnComplete(usage=TURN_3),
            ]
        )
    )
    async with client.aio.live.connect(model=MODEL) as session:
        # google-genai 1.x's Vertex AI client takes audio as media only.
        await session.send_realtime_input(media=pcm(0.75))
        await session.send_realtime_input(audio_stream_end=True)
        async for _ in session.receive():
            pass
    (turn,) = tracing.turns()
    assert attr(turn, "gen_ai.provider.name") == "gcp.vertex_ai"
    assert attr(turn, "gen_ai.request.model") == MODEL
    assert turn_figures(turn) == {
        **EXPECTED_TURNS[2],
        **{
            "otel_gemini.usage.audio.output_seconds": 0.5,
            "otel_gemini.live.interrupted": False,
            "gen_ai.response.finish_reasons": ["stop"],
        },
    }
    assert cost_details(turn)["total"] == Decimal("0.000603")
    assert "LlmBidiService" in fake_gemini_live.live_sessions[0].path


async def test_concurrent_send_and_receive_tasks_and_odd_messages_are_handled(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    from otel_gemini.instrumentation._internal_errors import internal_error_counts

    before = internal_error_counts()
    odd = {
        "serverContent": {
            "modelTurn": {
                "parts": [
                    {"inlineData": {"data": "AAAA"}},  # no mime type: not measured
                    {"inlineData": {"mimeType": "audio/mp3", "data": "AAAA"}},  # not PCM
                    {"text": "thinking...", "thought": True},
                ]
            }
        },
        "usageMetadata": {
            "promptTokenCount": 7,
            "responseTokensDetails": [{"modality": "MODALITY_UNSPECIFIED", "tokenCount": 2}],
        },
    }
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("audio", count=10),
                LiveRawMessage(odd),
                WaitFor("audio_stream_end"),
                ModelAudio(0.5, chunks=5),
                TurnComplete(usage=ScriptedUsage(prompt=30, candidates=12)),
            ]
        )
    )
    async with gemini_live_client.aio.live.connect(model=MODEL) as session:

        async def microphone() -> None:
            for _ in range(10):
                await session.send_realtime_input(
                    audio={"data": b"\x00\x01" * 1600, "mime_type": "audio/pcm"}  # 0.1 s
                )
            await session.send_realtime_input(audio_stream_end=True)

        sender = asyncio.create_task(microphone())
        received = [message async for message in session.receive()]
        await sender
    assert len(received) == 7
    (turn,) = tracing.turns()
    assert attr(turn, "otel_gemini.usage.audio.input_seconds") == pytest.approx(1.0)
    assert attr(turn, "otel_gemini.usage.audio.output_seconds") == 0.5
    assert attr(turn, "gen_ai.usage.input_tokens") == 30
    assert internal_error_counts() == before


async def test_the_deprecated_send_is_measured_too(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("turn_complete"),
                ModelAudio(0.25),
                TurnComplete(usage=ScriptedUsage(prompt=4, candidates=1)),
            ]
        )
    )
    async with gemini_live_client.aio.live.connect(model=MODEL) as session:
        with pytest.warns(DeprecationWarning):
            await session.send(input=pcm(0.5))
            await session.send(input="What did I say?", end_of_turn=True)
        async for _ in session.receive():
            pass
    (turn,) = tracing.turns()
    assert attr(turn, "otel_gemini.usage.audio.input_seconds") == 0.5
    assert attr(turn, "gen_ai.usage.input_tokens") == 4


# --- abnormal endings ---------------------------------------------------------------------------


def dropped_after_half_a_second_of_audio() -> LiveScript:
    return LiveScript(
        [
            WaitFor("audio_stream_end"),
            ModelAudio(0.25),
            LiveUsage(ScriptedUsage(prompt=20, candidates=6)),
            ModelAudio(0.25),
            DropConnection(),
        ]
    )


def qualified_name(error: BaseException) -> str:
    cls = type(error)
    return f"{cls.__module__}.{cls.__qualname__}"


async def test_a_dropped_connection_ends_every_span_as_an_error_keeping_what_was_measured(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(dropped_after_half_a_second_of_audio())
    with pytest.raises(Exception) as raised:
        async with gemini_live_client.aio.live.connect(model=MODEL) as session:
            await speak(session, 0.5)
            async for _ in session.receive():
                pass

    (turn,) = tracing.turns()
    session_span = tracing.session()
    for span in (turn, session_span):
        assert span.status.status_code == StatusCode.ERROR
        assert attr(span, "error.type") == qualified_name(raised.value)
    assert attr(session_span, "otel_gemini.live.end_reason") == "connection_lost"
    assert attr(session_span, "otel_gemini.live.close_code") == 1006
    assert attr(turn, "otel_gemini.live.end_reason") == "connection_lost"
    assert attr(turn, "otel_gemini.usage.audio.input_seconds") == 0.5
    assert attr(turn, "otel_gemini.usage.audio.output_seconds") == 0.5
    assert attr(turn, "gen_ai.usage.input_tokens") == 20  # what arrived before the drop
    assert attr(turn, "gen_ai.response.finish_reasons") is None
    assert attr(session_span, "otel_gemini.live.usage.audio.output_seconds") == 0.5


async def test_a_drop_the_app_catches_still_marks_the_session_failed(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(dropped_after_half_a_second_of_audio())
    async with gemini_live_client.aio.live.connect(model=MODEL) as session:
        await speak(session, 0.5)
        with pytest.raises(Exception):  # noqa: B017 - the SDK's error type differs by version
            async for _ in session.receive():
                pass
    session_span = tracing.session()
    assert session_span.status.status_code == StatusCode.ERROR
    assert attr(session_span, "otel_gemini.live.end_reason") == "connection_lost"
    assert tracing.turns()[0].status.status_code == StatusCode.ERROR


async def test_a_server_error_close_is_reported_with_its_code(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript([WaitFor("audio_stream_end"), ModelAudio(0.25), CloseConnection(1011, "oops")])
    )
    with pytest.raises(Exception):  # noqa: B017
        async with gemini_live_client.aio.live.connect(model=MODEL) as session:
            await speak(session, 0.25)
            async for _ in session.receive():
                pass
    session_span = tracing.session()
    assert attr(session_span, "otel_gemini.live.close_code") == 1011
    assert attr(session_span, "otel_gemini.live.end_reason") == "connection_lost"
    assert session_span.status.status_code == StatusCode.ERROR


async def test_a_normal_close_by_the_server_is_not_an_error(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("audio_stream_end"),
                ModelAudio(0.25),
                TurnComplete(usage=ScriptedUsage(prompt=9, candidates=3)),
                CloseConnection(1000),
            ]
        )
    )
    async with gemini_live_client.aio.live.connect(model=MODEL) as session:
        await speak(session, 0.25)
        async for _ in session.receive():
            pass
        with pytest.raises(Exception):  # noqa: B017 - the SDK raises even on a normal close
            await session._receive()
    session_span = tracing.session()
    assert session_span.status.status_code == StatusCode.UNSET
    assert attr(session_span, "otel_gemini.live.end_reason") == "server_closed"
    assert attr(session_span, "otel_gemini.live.close_code") == 1000
    assert tracing.turns()[0].status.status_code == StatusCode.UNSET


async def test_cancelling_the_session_task_ends_the_spans_without_an_error(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript([WaitFor("audio_stream_end"), ModelAudio(0.5), WaitFor("turn_complete")])
    )
    speaking = asyncio.Event()

    async def call() -> None:
        async with gemini_live_client.aio.live.connect(model=MODEL) as session:
            await speak(session, 0.75)
            async for _ in session.receive():
                speaking.set()  # the model is speaking; the caller hangs up

    task = asyncio.create_task(call())
    await asyncio.wait_for(speaking.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    (turn,) = tracing.turns()
    session_span = tracing.session()
    assert session_span.status.status_code == StatusCode.UNSET
    assert attr(session_span, "otel_gemini.live.end_reason") == "cancelled"
    assert turn.status.status_code == StatusCode.UNSET
    assert attr(turn, "otel_gemini.live.end_reason") == "cancelled"
    assert attr(turn, "otel_gemini.usage.audio.input_seconds") == 0.75
    assert attr(turn, "otel_gemini.usage.audio.output_seconds") == 0.5


async def test_an_exception_in_app_code_propagates_unchanged_and_fails_the_spans(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    fake_gemini_live.add_live_session(
        LiveScript(
            [WaitFor("audio_stream_end"), ToolCall("book_table", call_id="t1"), WaitFor("any")]
        )
    )
    bug = LookupError("no such table")
    with pytest.raises(LookupError) as raised:
        async with gemini_live_client.aio.live.connect(model=MODEL) as session:
            await speak(session, 0.25)
            async for message in session.receive():
                if message.tool_call:
                    raise bug
    assert raised.value is bug

    (turn,) = tracing.turns()
    (tool,) = tracing.tools()
    session_span = tracing.session()
    for span in (session_span, turn, tool):
        assert span.status.status_code == StatusCode.ERROR
        assert attr(span, "error.type") == "LookupError"
    assert attr(session_span, "otel_gemini.live.end_reason") == "error"
    assert attr(turn, "otel_gemini.usage.audio.input_seconds") == 0.25


async def test_a_failed_connect_ends_the_session_span(tracing: Traced) -> None:
    with FakeGemini(tls=True) as fake:
        client = fake.client()
    with pytest.raises(OSError):
        async with client.aio.live.connect(model=MODEL):
            pass
    session_span = tracing.session()
    assert session_span.status.status_code == StatusCode.ERROR
    assert attr(session_span, "otel_gemini.live.end_reason") == "connect_failed"
    assert tracing.turns() == []


# --- instrumenting and uninstrumenting ----------------------------------------------------------


async def test_uninstrument_restores_the_sdk(
    fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    originals = {
        name: live.AsyncSession.__dict__[name]
        for name in ("_receive", "send_client_content", "send_realtime_input", "send")
    }
    original_connect = live.AsyncLive.__dict__["connect"]
    with traced(PriceTable.default()) as spans:
        assert live.AsyncLive.__dict__["connect"] is not original_connect
    assert live.AsyncLive.__dict__["connect"] is original_connect
    for name, function in originals.items():
        assert live.AsyncSession.__dict__[name] is function

    async with gemini_live_client.aio.live.connect(model=MODEL) as session:
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "hi"}]})
        async for _ in session.receive():
            pass
    assert spans.spans() == []


async def test_the_session_object_is_the_sdks_own(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    manager = gemini_live_client.aio.live.connect(model=MODEL)
    async with manager as session:
        assert type(session) is live.AsyncSession
        await session.send_client_content(turns={"role": "user", "parts": [{"text": "hi"}]})
        messages = [message async for message in session.receive()]
    assert isinstance(messages[-1], types.LiveServerMessage)
    assert [span.name.split()[0] for span in tracing.spans()] == [
        "generate_content",
        "live_session",
    ]


# --- a session resumed on a second connection -----------------------------------------------


async def test_a_resumed_session_links_to_the_connection_that_issued_its_handle(
    tracing: Traced, fake_gemini_live: FakeGemini, gemini_live_client: genai.Client
) -> None:
    secret_handle = "resumption-handle-7f3a"
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("audio_stream_end"),
                ModelAudio(0.25),
                LiveRawMessage(
                    {"sessionResumptionUpdate": {"newHandle": secret_handle, "resumable": True}}
                ),
                LiveRawMessage({"goAway": {"timeLeft": "10s"}}),
                TurnComplete(usage=ScriptedUsage(prompt=9, candidates=3)),
            ]
        )
    )
    fake_gemini_live.add_live_session(
        LiveScript(
            [
                WaitFor("audio_stream_end"),
                ModelAudio(0.25),
                TurnComplete(usage=ScriptedUsage(prompt=12, candidates=4)),
            ]
        )
    )
    async with gemini_live_client.aio.live.connect(
        model=MODEL, config={"session_resumption": {}}
    ) as session:
        await speak(session, 0.25)
        async for _ in session.receive():
            pass
    async with gemini_live_client.aio.live.connect(
        model=MODEL, config={"session_resumption": {"handle": secret_handle}}
    ) as session:
        await speak(session, 0.25)
        async for _ in session.receive():
            pass

    first, second = sorted(
        (s for s in tracing.spans() if s.name.startswith("live_session ")),
        key=lambda s: s.start_time or 0,
    )
    assert attr(first, "otel_gemini.live.resumption_updates") == 1
    assert attr(first, "otel_gemini.live.resumable") is True
    assert attr(first, "otel_gemini.live.go_away.time_left") == 10.0
    assert [event.name for event in first.events] == ["otel_gemini.live.go_away"]
    assert "otel_gemini.live.resumed" not in (first.attributes or {})
    assert attr(second, "otel_gemini.live.resumed") is True
    assert [link.context for link in second.links] == [first.context]
    assert second.context is not None and first.context is not None
    assert second.context.trace_id != first.context.trace_id  # one trace per connection
    # The handle resumes the session: it is never written anywhere.
    for span in tracing.spans():
        assert secret_handle not in json.dumps(dict(span.attributes or {}), default=str)
        for event in span.events:
            assert secret_handle not in json.dumps(dict(event.attributes or {}), default=str)


def test_resumption_handles_are_bounded_and_kept_only_as_digests() -> None:
    from opentelemetry.trace import SpanContext, TraceFlags

    from otel_gemini.instrumentation._live_resumption import ResumptionHandles, duration_seconds

    handles = ResumptionHandles(max_handles=2)
    contexts = [SpanContext(1, n, False, TraceFlags(1)) for n in (1, 2, 3)]
    for name, context in zip(("a", "b", "c"), contexts, strict=True):
        handles.remember(f"handle-{name}", context)
    assert (handles.find("handle-a"), handles.find("handle-b"), handles.find("handle-c")) == (
        None,
        contexts[1],
        contexts[2],
    )
    assert len(handles) == 2
    assert not any(b"handle-" in key for key in handles._sessions)
    assert [duration_seconds(text) for text in ("10s", "1.5s", "soon", None)] == [
        10.0,
        1.5,
        None,
        None,
    ]
