"""What Langfuse shows of our traces: the real google-genai client against the fake Gemini,
our instrumentation, pricing and exporter, read back through the fake Langfuse's mapping
(``FakeLangfuse.observations()`` / ``.traces()``, Langfuse's own rules)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from afc_exchange import queue_afc
from google import genai
from google.genai import types
from issue_usage import ISSUE_USAGE
from opentelemetry.sdk.trace import TracerProvider

from otel_gemini import CostSpanProcessor, GeminiInstrumentor, PriceTable
from otel_gemini.export import LangfuseExporter
from otel_gemini.testing import (
    FakeGemini,
    FakeLangfuse,
    InputTranscription,
    LiveScript,
    MappedTrace,
    ModelText,
    OutputTranscription,
    ScriptedUsage,
    ToolCall,
    TurnComplete,
    WaitFor,
)
from otel_gemini.testing._langfuse_mapping import map_observation

pytestmark = pytest.mark.genai

MODEL = "gemini-2.5-flash"
LIVE_MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"


@dataclasses.dataclass
class Pipeline:
    exporter: LangfuseExporter
    langfuse: FakeLangfuse

    def traces(self) -> list[MappedTrace]:
        assert self.exporter.force_flush()
        return self.langfuse.traces()


@contextmanager
def pipeline(langfuse: FakeLangfuse, tmp_path: Path, **options: Any) -> Iterator[Pipeline]:
    """Instrumentation (``options``), pricing and the durable exporter to ``langfuse``."""
    exporter = LangfuseExporter(
        spool_dir=tmp_path / "spool", environ={}, **langfuse.exporter_settings()
    )
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(exporter.span_processor(), PriceTable.default()))
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(tracer_provider=provider, **options)
    try:
        yield Pipeline(exporter, langfuse)
    finally:
        instrumentor.uninstrument()
        exporter.shutdown(timeout_millis=1000)


# --- usage: the total is what the request used, priced or not ---------------------------------


@pytest.mark.parametrize("model", ["gemini-9-ultra", MODEL])
def test_a_generation_totals_the_tokens_it_used_priced_or_not(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path, model: str
) -> None:
    fake_gemini.add_text("Hi", usage=ISSUE_USAGE)
    with pipeline(fake_langfuse, tmp_path) as run:
        client = fake_gemini.client()
        client.models.generate_content(model=model, contents="Hello")
        (trace,) = run.traces()
    (generation,) = trace.observations
    (span,) = fake_langfuse.spans
    # Per-modality counts are on the span (for other readers) ...
    assert span.attributes["gen_ai.usage.text.input_tokens"] == 100
    assert generation.type == "GENERATION"
    assert generation.model == model
    # ... and Langfuse's total is still the 160 tokens used, not 320.
    assert dict(generation.usage_details) == {
        "input": 80,
        "input_cached": 20,
        "output": 50,
        "output_reasoning": 10,
        "total": 160,
    }
    if model == MODEL:
        assert generation.total_cost is not None and generation.total_cost > 0
    else:  # no price: no cost at all (Langfuse would infer one, or none), never a false 0
        assert generation.total_cost is None
        assert span.attributes["otel_gemini.cost.status"] == "unknown_model"
    # Without our usage details, Langfuse's own gen_ai.usage.* parse makes a bucket of each
    # per-modality count and sums them all: the double count this guards against.
    bare = dataclasses.replace(
        span,
        attributes={
            k: v for k, v in span.attributes.items() if k != "langfuse.observation.usage_details"
        },
    )
    assert map_observation(bare).total_usage == 320


# --- automatic function calling: the root shows the user's input and the final answer ---------


def get_weather(city: str) -> str:
    """Returns the weather in a city."""
    return f"sunny in {city}"


USER_INPUT = [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}]
ANSWER = [
    {
        "role": "assistant",
        "parts": [{"type": "text", "content": "It is sunny in Paris."}],
        "finish_reason": "stop",
    }
]
GET_WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Returns the weather in a city.",
}


def run_afc(client: genai.Client, how: str) -> str:
    config = types.GenerateContentConfig(tools=[get_weather], system_instruction="Be brief.")
    if how == "models":
        response = client.models.generate_content(
            model=MODEL, contents="Weather in Paris?", config=config
        )
        return response.text or ""
    if how == "stream":
        chunks = client.models.generate_content_stream(
            model=MODEL, contents="Weather in Paris?", config=config
        )
        return "".join(chunk.text or "" for chunk in chunks)
    chat = client.chats.create(model=MODEL, config=config)
    return chat.send_message("Weather in Paris?").text or ""


@pytest.mark.parametrize("how", ["models", "stream", "chat"])
def test_an_afc_trace_shows_the_users_input_and_the_final_answer(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path, how: str
) -> None:
    queue_afc(fake_gemini)
    with pipeline(fake_langfuse, tmp_path, capture_content=True) as run:
        assert run_afc(fake_gemini.client(), how) == "It is sunny in Paris."
        (trace,) = run.traces()

    root = trace.root
    assert root is not None and root.type == "AGENT"
    # Langfuse prepends the system instruction to the input it shows.
    assert trace.input == [{"role": "system", "content": "Be brief."}, *USER_INPUT]
    assert trace.output == ANSWER
    # The root adds no model, usage or cost: its generations carry them.
    assert (root.model, dict(root.usage_details), root.total_cost) == (None, {}, None)
    generations = sorted(
        (o for o in trace.observations if o.type == "GENERATION"),
        key=lambda o: o.start_time_unix_nano,
    )
    assert [g.total_usage for g in generations] == [1050, 1105]
    for generation in generations:
        # Each generation shows the tools it offered the model, as Langfuse merges them.
        assert set(generation.tool_definitions) == {"get_weather"}
        assert (
            generation.tool_definitions["get_weather"]["description"] == GET_WEATHER["description"]
        )
        assert generation.input["tools"][0]["name"] == "get_weather"
        assert generation.input["messages"][:2] == [
            {"role": "system", "content": "Be brief."},
            *USER_INPUT,
        ]
    assert generations[-1].output == ANSWER
    (tool,) = [o for o in trace.observations if o.type == "TOOL"]
    assert tool.input == {"city": "Paris"}


def test_without_content_capture_nothing_is_added(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    queue_afc(fake_gemini)
    with pipeline(fake_langfuse, tmp_path, capture_content=False) as run:
        run_afc(fake_gemini.client(), "models")
        (trace,) = run.traces()
    assert (trace.input, trace.output) == (None, None)
    for observation in trace.observations:
        assert (observation.input, observation.output) == (None, None)
        assert not observation.tool_definitions
    for span in fake_langfuse.spans:
        assert not {
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.system_instructions",
            "gen_ai.tool.definitions",
        } & set(span.attributes)


# --- Live: the session shows what was said in and out -----------------------------------------


def live_script() -> LiveScript:
    return LiveScript(
        [
            WaitFor("turn_complete"),
            ToolCall("get_weather", {"city": "Paris"}, call_id="w1"),
            WaitFor("tool_response"),
            ModelText("It is "),
            ModelText("sunny."),
            TurnComplete(usage=ScriptedUsage(prompt=12, candidates=3)),
            WaitFor("turn_complete"),
            InputTranscription("and tomorrow?"),
            OutputTranscription("Rain."),
            TurnComplete(usage=ScriptedUsage(prompt=30, candidates=8)),
        ]
    )


async def run_live(client: genai.Client) -> None:
    config = types.LiveConnectConfig(
        system_instruction="Be brief.",
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(name="get_weather", description="The weather.")
                ]
            )
        ],
    )
    async with client.aio.live.connect(model=LIVE_MODEL, config=config) as session:
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text="Weather?")])
        )
        async for message in session.receive():
            if message.tool_call:
                await session.send_tool_response(
                    function_responses={"id": "w1", "name": "get_weather", "response": {}}
                )
        await session.send_client_content(
            turns=types.Content(role="user", parts=[types.Part(text="And tomorrow?")])
        )
        async for _ in session.receive():
            pass


async def test_a_live_trace_shows_what_was_said_in_and_out(
    fake_gemini_live: FakeGemini,
    gemini_live_client: genai.Client,
    fake_langfuse: FakeLangfuse,
    tmp_path: Path,
) -> None:
    import asyncio

    fake_gemini_live.add_live_session(live_script())
    with pipeline(fake_langfuse, tmp_path, capture_content=True) as run:
        await run_live(gemini_live_client)
        assert await asyncio.to_thread(run.exporter.force_flush)
        (trace,) = fake_langfuse.traces()

    root = trace.root
    assert root is not None and root.type == "SPAN" and root.name.startswith("live_session ")
    assert trace.input == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "parts": [{"type": "text", "content": "Weather?"}]},
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "And tomorrow?"},
                {"type": "text", "content": "and tomorrow?"},
            ],
        },
    ]
    assert trace.output == [
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
        },
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Rain."}],
            "finish_reason": "stop",
        },
    ]
    turns = [o for o in trace.observations if o.type == "GENERATION"]
    assert len(turns) == 2
    assert [set(turn.tool_definitions) for turn in turns] == [{"get_weather"}] * 2
    assert sum(turn.total_usage for turn in turns) == 53
    assert root.total_usage == 0


async def test_a_long_live_session_keeps_its_conversation_within_the_limit(
    fake_gemini_live: FakeGemini,
    gemini_live_client: genai.Client,
    fake_langfuse: FakeLangfuse,
    tmp_path: Path,
) -> None:
    import asyncio

    fake_gemini_live.add_live_session(
        LiveScript(
            [
                step
                for _ in range(6)
                for step in (
                    WaitFor("turn_complete"),
                    OutputTranscription("word " * 30),
                    TurnComplete(usage=ScriptedUsage(prompt=10, candidates=5)),
                )
            ]
        )
    )
    with pipeline(fake_langfuse, tmp_path, capture_content=True, content_max_length=300) as run:
        async with gemini_live_client.aio.live.connect(model=LIVE_MODEL) as session:
            for index in range(6):
                await session.send_client_content(
                    turns=types.Content(role="user", parts=[types.Part(text=f"turn {index}")])
                )
                async for _ in session.receive():
                    pass
        assert await asyncio.to_thread(run.exporter.force_flush)
    (session_span,) = [s for s in fake_langfuse.spans if s.name.startswith("live_session ")]
    for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        value = session_span.attributes[key]
        assert isinstance(value, str) and len(value) <= 300
        assert json.loads(value)  # still valid JSON, cut at whole messages
    (trace,) = fake_langfuse.traces()
    assert trace.input[0] == {"role": "user", "parts": [{"type": "text", "content": "turn 0"}]}


# --- every observation: Langfuse's totals are what was used and what we priced ----------------


async def test_every_observation_totals_what_its_span_used_and_cost(
    fake_gemini_live: FakeGemini,
    gemini_live_client: genai.Client,
    fake_langfuse: FakeLangfuse,
    tmp_path: Path,
) -> None:
    import asyncio
    from decimal import Decimal

    from voice_session import run_voice_session, voice_session_script

    fake_gemini_live.add_live_session(voice_session_script())
    queue_afc(fake_gemini_live)
    fake_gemini_live.add_text("Hi", usage=ISSUE_USAGE)
    fake_gemini_live.add_text(
        "A cat.",
        usage=ScriptedUsage(
            prompt=1300,
            cached=300,
            candidates=40,
            thoughts=25,
            prompt_by_modality={"TEXT": 42, "IMAGE": 1258},
            cache_by_modality={"IMAGE": 300},
        ),
    )
    with pipeline(fake_langfuse, tmp_path, capture_content=True) as run:
        await run_voice_session(gemini_live_client)
        await asyncio.to_thread(run_afc, gemini_live_client, "models")
        for model in ("gemini-9-ultra", MODEL):
            await gemini_live_client.aio.models.generate_content(model=model, contents="Hi")
        assert await asyncio.to_thread(run.exporter.force_flush)

    spans = {span.span_id: span for span in fake_langfuse.spans}
    observations = fake_langfuse.observations()
    # Live: session, 3 turns, a tool; AFC: the root, 2 hops, a tool; 2 plain calls.
    assert len(observations) == len(spans) == 11
    generations = [o for o in observations if o.type == "GENERATION"]
    assert len(generations) == 7  # 3 Live turns, 2 AFC hops, 2 plain calls
    for observation in observations:
        attributes = spans[observation.id].attributes
        if observation.type != "GENERATION":
            # Grouping spans and tools add nothing to the trace's usage or cost.
            assert (dict(observation.usage_details), observation.total_cost) == ({}, None)
            continue
        used = attributes["gen_ai.usage.input_tokens"] + attributes["gen_ai.usage.output_tokens"]
        assert isinstance(used, int)
        assert observation.total_usage == used, observation.name
        cost = attributes.get("gen_ai.usage.cost")
        if cost is None:
            assert observation.total_cost is None
        else:
            assert isinstance(cost, float)
            assert observation.total_cost is not None
            assert abs(observation.total_cost - Decimal(repr(cost))) < Decimal("1e-12")
