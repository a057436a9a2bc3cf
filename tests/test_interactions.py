"""The Interactions API (``client.interactions.create``) with the real google-genai client
against the fake Gemini over loopback: a span per HTTP request, continuation hops included."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from usage_fixtures import RICH_USAGE_ATTRIBUTES, attributes_of, iso_z, rich_usage

from otel_gemini import CostSpanProcessor, GeminiInstrumentor, trace_attributes
from otel_gemini._trace_attributes import TraceAttributesSpanProcessor
from otel_gemini.testing import FakeGemini, ScriptedUsage
from tests.conftest import Recorded

# google-genai 2.9+ (``_gaos``) continues long decodes automatically; 1.55 to 2.8 have an
# earlier generated client (``_interactions``) without it; before 1.55 there is no API.
GAOS = importlib.util.find_spec("google.genai._gaos") is not None
pytestmark = [
    pytest.mark.genai,
    pytest.mark.skipif(
        not GAOS and importlib.util.find_spec("google.genai._interactions") is None,
        reason="this google-genai has no Interactions API",
    ),
]
needs_continuation = pytest.mark.skipif(
    not GAOS, reason="automatic continuation came with google-genai 2.9"
)

MODEL = "gemini-2.5-flash"
# The same counts and conventions' totals as the generateContent tests' usage_metadata.
USAGE = rich_usage()
USAGE_ATTRIBUTES = RICH_USAGE_ATTRIBUTES


def base_attributes(fake: FakeGemini, response_id: str) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.id": response_id,
        "gen_ai.response.finish_reasons": ("stop",),
        "otel_gemini.interaction.status": "completed",
        "otel_gemini.sdk.method": "interactions.create",
        "server.address": "127.0.0.1",
        "server.port": fake.port,
    }


def plain_then_instrumented(recorded: Recorded, run: Callable[[], Any]) -> tuple[Any, Any]:
    """What ``run()`` gives uninstrumented, then instrumented into ``recorded``."""
    plain = run()
    GeminiInstrumentor().instrument(
        tracer_provider=recorded.tracer_provider, meter_provider=recorded.meter_provider
    )
    try:
        return plain, run()
    finally:
        GeminiInstrumentor().uninstrument()


def test_create_is_one_span_with_the_full_attribute_set(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_interaction("Hello!", usage=USAGE, interaction_id="int-1")
    client = fake_gemini.client()
    interaction = client.interactions.create(
        model=f"models/{MODEL}",
        input="Hi",
        generation_config={"temperature": 0.3, "top_p": 0.9, "max_output_tokens": 512, "seed": 7},
        service_tier="flex",
    )

    assert interaction.output_text == "Hello!"
    [span] = instrumented.spans()
    assert span.name == f"generate_content {MODEL}"
    assert attributes_of(span) == {
        **base_attributes(fake_gemini, "int-1"),
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.request.seed": 7,
        "otel_gemini.request.service_tier": "flex",
        **USAGE_ATTRIBUTES,
    }
    tokens = {
        dict(point.attributes)["gen_ai.token.type"]: point.sum  # type: ignore[attr-defined]
        for point in instrumented.metric_points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 1240, "output": 450}


async def test_async_create_matches_sync(fake_gemini: FakeGemini, instrumented: Recorded) -> None:
    fake_gemini.add_interaction("Hello!", usage=USAGE, interaction_id="int-2")
    client = fake_gemini.client()
    interaction = await client.aio.interactions.create(model=MODEL, input="Hi")

    assert interaction.output_text == "Hello!"
    [span] = instrumented.spans()
    assert attributes_of(span) == {**base_attributes(fake_gemini, "int-2"), **USAGE_ATTRIBUTES}


def test_stream_span_ends_with_the_stream_and_takes_the_completed_usage(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_interaction(["Hel", "lo", "!"], usage=USAGE, interaction_id="int-3")
    client = fake_gemini.client()
    stream = client.interactions.create(model=MODEL, input="Hi", stream=True)
    events = []
    for event in stream:
        events.append(event.event_type)
        assert instrumented.spans() == []  # open until the stream is exhausted

    assert events == [
        "interaction.created",
        "step.start",
        "step.delta",
        "step.delta",
        "step.delta",
        "step.stop",
        "interaction.completed",
    ]
    [span] = instrumented.spans()
    attributes = attributes_of(span)
    assert attributes.pop("gen_ai.response.time_to_first_chunk") > 0
    assert attributes.pop("langfuse.observation.completion_start_time")
    assert attributes == {
        **base_attributes(fake_gemini, "int-3"),
        **USAGE_ATTRIBUTES,
        "otel_gemini.stream.completed": True,
    }


async def test_async_stream_matches_sync(fake_gemini: FakeGemini, instrumented: Recorded) -> None:
    fake_gemini.add_interaction(["Hel", "lo"], usage=USAGE, interaction_id="int-4")
    client = fake_gemini.client()
    stream = await client.aio.interactions.create(model=MODEL, input="Hi", stream=True)
    texts = [event.delta.text async for event in stream if event.event_type == "step.delta"]

    assert texts == ["Hel", "lo"]
    [span] = instrumented.spans()
    attributes = attributes_of(span)
    assert attributes["otel_gemini.stream.completed"] is True
    assert {key: attributes[key] for key in USAGE_ATTRIBUTES} == USAGE_ATTRIBUTES


def test_the_caller_gets_the_same_events_as_uninstrumented(
    fake_gemini: FakeGemini, recorded: Recorded
) -> None:
    client = fake_gemini.client()

    def events() -> list[Any]:
        fake_gemini.add_interaction(["a", "b"], usage=USAGE, interaction_id="same")
        stream = client.interactions.create(model=MODEL, input="Hi", stream=True)
        return [event.model_dump() for event in stream]

    plain, instrumented_events = plain_then_instrumented(recorded, events)
    assert instrumented_events == plain
    assert len(plain) == 6
    assert len(recorded.spans()) == 1


def test_breaking_out_of_a_stream_ends_its_span_without_error(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_interaction(["a", "b", "c"], usage=USAGE)
    client = fake_gemini.client()
    stream = client.interactions.create(model=MODEL, input="Hi", stream=True)
    for event in stream:
        if event.event_type == "step.delta":
            break
    assert instrumented.spans() == []
    stream.close()

    [span] = instrumented.spans()
    assert span.status.status_code is StatusCode.UNSET
    assert attributes_of(span)["otel_gemini.stream.completed"] is False


# --- automatic continuation: each hop is a billed request of its own ----------------------


def script_two_hops(fake: FakeGemini) -> None:
    fake.add_interaction(
        ["Part A "],
        usage=ScriptedUsage(prompt=1000, candidates=50),
        status="requires_continuation",
        continuation_token="token-1",
        interaction_id="hop-1",
    )
    fake.add_interaction(["Part B"], usage=ScriptedUsage(prompt=1100, candidates=5))


def hop_usages(recorded: Recorded) -> list[tuple[int, int, tuple[str, ...]]]:
    return [
        (
            attributes_of(span)["gen_ai.usage.input_tokens"],
            attributes_of(span)["gen_ai.usage.output_tokens"],
            attributes_of(span)["gen_ai.response.finish_reasons"],
        )
        for span in sorted(recorded.spans(), key=lambda span: span.start_time or 0)
    ]


@needs_continuation
def test_each_continuation_hop_gets_its_own_span_with_its_usage(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    script_two_hops(fake_gemini)
    client = fake_gemini.client()
    interaction = client.interactions.create(model=MODEL, input="Write a long story")

    # The SDK merges the hops for the caller; the spans keep each hop's own bill.
    assert interaction.output_text == "Part A Part B"
    assert (interaction.usage.total_input_tokens, interaction.usage.total_output_tokens) == (
        2100,
        55,
    )
    assert hop_usages(instrumented) == [(1000, 50, ("length",)), (1100, 5, ("stop",))]
    second = fake_gemini.requests[1].json
    assert (second["continuation_token"], second["previous_interaction_id"]) == (
        "token-1",
        "hop-1",
    )


@needs_continuation
def test_each_streamed_continuation_hop_gets_its_own_span(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    script_two_hops(fake_gemini)
    client = fake_gemini.client()
    stream = client.interactions.create(model=MODEL, input="Write a long story", stream=True)
    texts = [event.delta.text for event in stream if event.event_type == "step.delta"]

    assert texts == ["Part A ", "Part B"]
    assert hop_usages(instrumented) == [(1000, 50, ("length",)), (1100, 5, ("stop",))]
    spans = instrumented.spans()
    assert [attributes_of(span)["otel_gemini.stream.completed"] for span in spans] == [True, True]


# --- agents and background interactions ----------------------------------------------------


def test_background_agent_interaction_is_an_agent_span_without_usage_yet(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    agent = "deep-research-pro-preview-12-2025"
    fake_gemini.add_interaction([""], status="in_progress", interaction_id="int-bg")
    client = fake_gemini.client()
    interaction = client.interactions.create(agent=agent, input="Research this", background=True)

    assert interaction.status == "in_progress"
    [span] = instrumented.spans()
    assert span.name == f"invoke_agent {agent}"
    attributes = attributes_of(span)
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == agent
    assert attributes["otel_gemini.interaction.background"] is True
    assert attributes["otel_gemini.interaction.status"] == "in_progress"
    assert "gen_ai.request.model" not in attributes
    assert "gen_ai.response.finish_reasons" not in attributes
    assert not any(key.startswith("gen_ai.usage.") for key in attributes)


AGENT = "deep-research-pro-preview-12-2025"


def agent_and_generation(recorded: Recorded) -> tuple[Any, Any]:
    """The ``invoke_agent`` span and its one generation child."""
    [agent] = recorded.spans_named("invoke_agent")
    [generation] = recorded.spans_named("generate_content")
    assert generation.parent is not None and generation.parent.span_id == agent.context.span_id
    return agent, generation


def generation_of_agent(fake: FakeGemini, response_id: str, model: str | None) -> dict[str, Any]:
    """The attributes of an agent request's generation child (usage aside)."""
    expected: dict[str, Any] = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.agent.name": AGENT,
        "gen_ai.response.id": response_id,
        "gen_ai.response.finish_reasons": ("stop",),
        "otel_gemini.interaction.status": "completed",
        "otel_gemini.sdk.method": "interactions.create",
        "server.address": "127.0.0.1",
        "server.port": fake.port,
        **USAGE_ATTRIBUTES,
    }
    if model is not None:
        expected["gen_ai.response.model"] = model
    return expected


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("model", [MODEL, None], ids=["model", "no-model"])
def test_an_agent_interaction_bills_its_usage_on_a_generation_under_the_agent_span(
    fake_gemini: FakeGemini, instrumented: Recorded, stream: bool, model: str | None
) -> None:
    # Langfuse reads no usage or cost of an invoke_agent span: the usage goes on a child.
    fake_gemini.add_interaction(
        ["Fin", "dings."], usage=USAGE, interaction_id="int-agent", agent=AGENT, model=model
    )
    client = fake_gemini.client()
    if stream:
        events = list(client.interactions.create(agent=AGENT, input="Research this", stream=True))
        assert events[-1].event_type == "interaction.completed"
    else:
        assert client.interactions.create(agent=AGENT, input="Research this").id == "int-agent"

    agent, generation = agent_and_generation(instrumented)
    assert agent.name == f"invoke_agent {AGENT}"
    agent_attributes = attributes_of(agent)
    assert agent_attributes["gen_ai.agent.name"] == AGENT
    assert agent_attributes["langfuse.observation.type"] == "agent"
    assert agent_attributes["gen_ai.response.id"] == "int-agent"
    assert not any(
        key.startswith(("gen_ai.usage.", "otel_gemini.usage.")) for key in agent_attributes
    )
    assert generation.name == ("generate_content" if model is None else f"generate_content {model}")
    expected = generation_of_agent(fake_gemini, "int-agent", model)
    if stream:  # the generation's first chunk is the request's
        stream_keys = (
            "otel_gemini.stream.completed",
            "gen_ai.response.time_to_first_chunk",
            "langfuse.observation.completion_start_time",
        )
        expected.update((key, agent_attributes[key]) for key in stream_keys)
    assert attributes_of(generation) == expected
    # The request's time: the generation is what the agent's request did.
    assert (generation.start_time, generation.end_time) == (agent.start_time, agent.end_time)
    assert generation.links == ()
    tokens = sorted(point.sum for point in instrumented.metric_points("gen_ai.client.token.usage"))
    assert tokens == [450, 1240]  # once, by the generation


def test_a_background_agent_interaction_is_billed_on_a_generation_when_fetched_finished(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    fake_gemini.add_interaction("", status="in_progress", interaction_id="int-bg", agent=AGENT)
    created = client.interactions.create(agent=AGENT, input="Research this", background=True)
    updated = time.time_ns() // 1000 * 1000  # google-genai before 2.9 reads microseconds
    for _ in range(2):  # polled again after it finished: billed once
        fake_gemini.add_interaction(
            "Findings.",
            usage=USAGE,
            interaction_id="int-bg",
            fetch=True,
            model=MODEL,
            agent=AGENT,
            updated=iso_z(updated),
        )
    assert [client.interactions.get(created.id).status for _ in range(2)] == ["completed"] * 2

    agent, generation = agent_and_generation(instrumented)
    assert not any(key.startswith("gen_ai.usage.") for key in attributes_of(agent))
    assert generation.name == f"generate_content {MODEL}"
    assert attributes_of(generation) == {
        **generation_of_agent(fake_gemini, "int-bg", MODEL),
        "otel_gemini.interaction.background": True,
    }
    fetches = instrumented.spans_named("fetch_response")
    assert [link.context.span_id for link in generation.links] == [fetches[0].context.span_id]
    assert (generation.start_time, generation.end_time) == (agent.start_time, updated)
    tokens = sorted(point.sum for point in instrumented.metric_points("gen_ai.client.token.usage"))
    assert tokens == [450, 1240]


# --- fetches and background interactions -----------------------------------------------------


def fetch_attributes(fake: FakeGemini, status: str, finish: str | None) -> dict[str, Any]:
    expected: dict[str, Any] = {
        "gen_ai.operation.name": "fetch_response",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.response.id": "int-bg",
        "gen_ai.response.model": MODEL,
        "gen_ai.response.status": status,
        "langfuse.observation.type": "span",
        "otel_gemini.interaction.status": status,
        "otel_gemini.sdk.method": "interactions.get",
        "server.address": "127.0.0.1",
        "server.port": fake.port,
    }
    if finish is not None:
        expected["gen_ai.response.finish_reasons"] = (finish,)
    return expected


def test_a_background_interaction_is_billed_once_by_the_fetch_that_returns_it_finished(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    # As configure() installs it: stamps the current trace_attributes() on every span.
    instrumented.tracer_provider.add_span_processor(TraceAttributesSpanProcessor())
    client = fake_gemini.client()
    fake_gemini.add_interaction("", status="in_progress", interaction_id="int-bg")
    with trace_attributes(user_id="creator", session_id="s-1"):
        created = client.interactions.create(model=MODEL, input="Hi", background=True)
    fake_gemini.add_interaction(
        "", status="in_progress", interaction_id="int-bg", fetch=True, model=MODEL
    )
    updated = time.time_ns() // 1000 * 1000  # google-genai before 2.9 reads microseconds
    for _ in range(2):  # polled again after it finished
        fake_gemini.add_interaction(
            "Done.",
            usage=USAGE,
            interaction_id="int-bg",
            fetch=True,
            model=MODEL,
            updated=iso_z(updated),
        )
    with trace_attributes(user_id="poller"):
        statuses = [client.interactions.get(created.id).status for _ in range(3)]

    assert statuses == ["in_progress", "completed", "completed"]
    create, generation = instrumented.spans_named("generate_content")
    fetches = instrumented.spans_named("fetch_response")
    # Fetches carry no usage (the conventions forbid it: the generation spent those tokens).
    assert [attributes_of(fetch) for fetch in fetches] == [
        {**fetch_attributes(fake_gemini, "in_progress", None), "user.id": "poller"},
        {**fetch_attributes(fake_gemini, "completed", "stop"), "user.id": "poller"},
        {**fetch_attributes(fake_gemini, "completed", "stop"), "user.id": "poller"},
    ]
    assert all(fetch.name == "fetch_response" for fetch in fetches)
    # The generation: the create's child, from its start to the interaction's last update,
    # linked to the fetch that returned it, with the creator's user and the usage.
    request = {
        key: value
        for key, value in attributes_of(create).items()
        if not key.startswith("gen_ai.response.") and key != "otel_gemini.interaction.status"
    }
    assert attributes_of(generation) == {
        **request,
        **base_attributes(fake_gemini, "int-bg"),
        **USAGE_ATTRIBUTES,
        "user.id": "creator",
        "session.id": "s-1",
        "otel_gemini.interaction.background": True,
    }
    assert generation.name == create.name == f"generate_content {MODEL}"
    assert generation.context.trace_id == create.context.trace_id
    assert generation.parent is not None and generation.parent.span_id == create.context.span_id
    assert [link.context.span_id for link in generation.links] == [fetches[1].context.span_id]
    assert generation.start_time == create.start_time
    assert generation.end_time == updated
    tokens = sorted(point.sum for point in instrumented.metric_points("gen_ai.client.token.usage"))
    assert tokens == [450, 1240]  # the generation's output and input, once


async def test_a_streamed_fetch_bills_a_background_interaction_when_the_stream_ends(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    fake_gemini.add_interaction("", status="in_progress", interaction_id="int-bg")
    await client.aio.interactions.create(model=MODEL, input="Hi", background=True)
    fake_gemini.add_interaction(
        ["Do", "ne."], usage=USAGE, interaction_id="int-bg", fetch=True, model=MODEL
    )
    stream = await client.aio.interactions.get("int-bg", stream=True, last_event_id="evt-7")
    texts = [event.delta.text async for event in stream if event.event_type == "step.delta"]

    assert texts == ["Do", "ne."]
    [fetch] = instrumented.spans_named("fetch_response")
    attributes = attributes_of(fetch)
    assert attributes["gen_ai.request.stream_cursor"] == "evt-7"
    assert attributes["otel_gemini.stream.completed"] is True
    assert not any(key.startswith("gen_ai.usage.") for key in attributes)
    create, generation = instrumented.spans_named("generate_content")
    assert generation.parent is not None and generation.parent.span_id == create.context.span_id
    usage = {
        key: value for key, value in attributes_of(generation).items() if key in USAGE_ATTRIBUTES
    }
    assert usage == USAGE_ATTRIBUTES


@pytest.mark.parametrize("status", ["queued", "idle"])
def test_any_interaction_created_before_it_ran_is_billed_by_its_first_finished_fetch(
    fake_gemini: FakeGemini, instrumented: Recorded, status: str
) -> None:
    # "idle": a Live interaction, whose result is read with a fetch (not on its connection).
    client = fake_gemini.client()
    fake_gemini.add_interaction("", status=status, interaction_id="int-bg")
    client.interactions.create(model=MODEL, input="Hi")
    fake_gemini.add_interaction(
        "Done.", usage=USAGE, interaction_id="int-bg", fetch=True, model=MODEL
    )
    client.interactions.get("int-bg")

    create, generation = instrumented.spans_named("generate_content")
    assert attributes_of(create)["otel_gemini.interaction.status"] == status
    assert generation.parent is not None and generation.parent.span_id == create.context.span_id
    usage = {
        key: value for key, value in attributes_of(generation).items() if key in USAGE_ATTRIBUTES
    }
    assert usage == USAGE_ATTRIBUTES


LIVE_INTERACTIONS = importlib.util.find_spec("google.genai._interactions_websocket") is not None


async def run_live_interaction(client: Any) -> list[str]:
    """Connects to ``int-live``, sends one input, completes it; the events' types."""
    events: list[str] = []
    async with client.aio.interactions.connect("int-live") as connection:
        await connection.send({"event_type": "input", "content": [{"type": "text", "text": "Hi"}]})
        async for event in connection.receive():
            events.append(event.event_type)
            if event.event_type == "step.stop":
                break
        await connection.complete()
        events.extend([event.event_type async for event in connection.receive()])
    return events


@pytest.mark.skipif(not LIVE_INTERACTIONS, reason="Live interactions came with google-genai 3")
@pytest.mark.filterwarnings("ignore:Live Interactions usage")
async def test_a_live_interaction_is_billed_when_its_connection_completes_it(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    fake_gemini.add_interaction("", status="idle", interaction_id="int-live")
    await client.aio.interactions.create(model=MODEL, input="Hi")
    fake_gemini.add_live_interaction(["Hel", "lo"], usage=USAGE, model=MODEL)
    events = await run_live_interaction(client)
    assert len(instrumented.spans_named("generate_content")) == 2  # the create, the generation
    # A fetch afterwards finds it billed already.
    fake_gemini.add_interaction(
        "Hello", usage=USAGE, interaction_id="int-live", fetch=True, model=MODEL
    )
    await client.aio.interactions.get("int-live")

    assert events == [
        "interaction.connected",
        "step.start",
        "step.delta",
        "step.delta",
        "step.stop",
        "interaction.completed",
    ]
    create, generation = instrumented.spans_named("generate_content")
    assert generation.parent is not None and generation.parent.span_id == create.context.span_id
    attributes = attributes_of(generation)
    assert {key: attributes[key] for key in USAGE_ATTRIBUTES} == USAGE_ATTRIBUTES
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["otel_gemini.interaction.status"] == "completed"
    # The connection's span: what it ran, how long to the first output, why it ended.
    [session] = instrumented.spans_named("live_session")
    session_attributes = attributes_of(session)
    assert session_attributes.pop("otel_gemini.live_interaction.time_to_first_output") > 0
    assert session_attributes == {
        "gen_ai.operation.name": "live_session",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.response.id": "int-live",
        "gen_ai.response.model": MODEL,
        "langfuse.observation.type": "span",
        "otel_gemini.sdk.method": "interactions.connect",
        "otel_gemini.live_interaction.steps": 1,
        "otel_gemini.live.end_reason": "completed",
    }
    assert session.name == f"live_session {MODEL}"
    assert [link.context.span_id for link in generation.links] == [session.context.span_id]


@pytest.mark.skipif(not LIVE_INTERACTIONS, reason="Live interactions came with google-genai 3")
@pytest.mark.filterwarnings("ignore:Live Interactions usage")
@pytest.mark.parametrize("ending", ["detach", "cancel"])
async def test_a_live_interaction_left_unfinished_ends_its_span_and_bills_nothing(
    fake_gemini: FakeGemini, instrumented: Recorded, ending: str
) -> None:
    client = fake_gemini.client()
    fake_gemini.add_interaction("", status="idle", interaction_id="int-live")
    await client.aio.interactions.create(model=MODEL, input="Hi")
    fake_gemini.add_live_interaction(["Hel", "lo"], usage=USAGE)
    async with client.aio.interactions.connect("int-live") as connection:
        await connection.send({"event_type": "input", "content": [{"type": "text", "text": "Hi"}]})
        async for event in connection.receive():
            if event.event_type == "step.stop":
                break
        if ending == "cancel":
            await connection.cancel()
    # Leaving the block detaches: the interaction lives on, resumable, and is not over.

    [session] = instrumented.spans_named("live_session")
    attributes = attributes_of(session)
    assert (
        attributes["otel_gemini.live.end_reason"]
        == {"detach": "detached", "cancel": "cancelled"}[ending]
    )
    assert attributes["otel_gemini.live_interaction.steps"] == 1
    assert len(instrumented.spans_named("generate_content")) == 1  # the create only


@pytest.mark.skipif(not LIVE_INTERACTIONS, reason="Live interactions came with google-genai 3")
@pytest.mark.filterwarnings("ignore:Live Interactions usage")
def test_a_live_interaction_runs_as_uninstrumented(
    fake_gemini: FakeGemini, recorded: Recorded
) -> None:
    client = fake_gemini.client()

    def run() -> list[str]:
        fake_gemini.add_live_interaction(["Hel", "lo"], usage=USAGE)
        return asyncio.run(run_live_interaction(client))

    plain, instrumented = plain_then_instrumented(recorded, run)
    assert instrumented == plain


def test_fetching_an_interaction_billed_at_its_create_bills_nothing_more(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    # Finished at once (usage on the create span), then fetched; and one from elsewhere.
    fake_gemini.add_interaction("Hi!", usage=USAGE, interaction_id="int-bg")
    client.interactions.create(model=MODEL, input="Hi", background=True)
    fake_gemini.add_interaction(
        "Hi!", usage=USAGE, interaction_id="int-bg", fetch=True, model=MODEL
    )
    client.interactions.get("int-bg")
    fake_gemini.add_interaction(
        "Hi!", usage=USAGE, interaction_id="int-other", fetch=True, model=MODEL
    )
    client.interactions.get("int-other")

    generations = instrumented.spans_named("generate_content")
    assert len(generations) == 1
    assert attributes_of(generations[0])["gen_ai.usage.input_tokens"] == 1240
    assert len(instrumented.spans_named("fetch_response")) == 2


def test_a_failed_fetch_is_an_error_span_and_a_later_one_still_bills_the_generation(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    fake_gemini.add_interaction("", status="in_progress", interaction_id="int-bg")
    client.interactions.create(model=MODEL, input="Hi", background=True)
    fake_gemini.add_error(403, "denied")  # not retried by the SDK
    with pytest.raises(Exception, match="denied") as raised:
        client.interactions.get("int-bg")
    assert getattr(raised.value, "status_code", None) == 403
    fake_gemini.add_interaction(
        "Done.", usage=USAGE, interaction_id="int-bg", fetch=True, model=MODEL
    )
    client.interactions.get("int-bg")

    failed, fetched = instrumented.spans_named("fetch_response")
    assert failed.status.status_code is StatusCode.ERROR
    assert attributes_of(failed)["error.type"] == "403"
    assert fetched.status.status_code is StatusCode.UNSET
    _, generation = instrumented.spans_named("generate_content")
    assert attributes_of(generation)["gen_ai.usage.input_tokens"] == 1240


def test_the_caller_gets_the_same_fetched_interaction_as_uninstrumented(
    fake_gemini: FakeGemini, recorded: Recorded
) -> None:
    client = fake_gemini.client()

    def fetch() -> tuple[str, Any]:
        fake_gemini.add_interaction(
            "Done.", usage=USAGE, interaction_id="int-bg", fetch=True, model=MODEL
        )
        return outcome(lambda: client.interactions.get("int-bg"))

    plain, instrumented = plain_then_instrumented(recorded, fetch)
    assert instrumented == plain
    assert plain[0] == "returned"


# --- errors ---------------------------------------------------------------------------------


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        result = call()
    except Exception as error:  # what the caller sees: type and message
        return ("raised", (type(error), str(error)))
    return ("returned", result.model_dump())


def test_api_errors_are_recorded_and_reach_the_caller_unchanged(
    fake_gemini: FakeGemini, recorded: Recorded
) -> None:
    client = fake_gemini.client()

    def run() -> tuple[str, Any]:
        fake_gemini.add_error(400, "scripted failure")
        return outcome(lambda: client.interactions.create(model=MODEL, input="Hi"))

    plain, instrumented_outcome = plain_then_instrumented(recorded, run)
    assert instrumented_outcome == plain
    assert plain[0] == "raised"
    [span] = recorded.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert attributes_of(span)["error.type"] == "400"
    [event] = span.events
    assert event.name == "exception"
    [duration] = recorded.metric_points("gen_ai.client.operation.duration")
    assert dict(duration.attributes)["error.type"] == "400"  # type: ignore[attr-defined]


def test_an_in_band_stream_error_marks_the_span_failed(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_interaction(["a", "b"], usage=USAGE, stream_error="RESOURCE_EXHAUSTED")
    client = fake_gemini.client()
    stream = client.interactions.create(model=MODEL, input="Hi", stream=True)
    events = [event.event_type for event in stream]

    assert events[-1] == "error"
    [span] = instrumented.spans()
    assert span.status.status_code is StatusCode.ERROR
    attributes = attributes_of(span)
    assert attributes["error.type"] == "RESOURCE_EXHAUSTED"
    assert attributes["gen_ai.response.finish_reasons"] == ("error",)


def test_a_malformed_interaction_reaches_the_caller_exactly_as_uninstrumented(
    fake_gemini: FakeGemini, recorded: Recorded
) -> None:
    client = fake_gemini.client()

    def run() -> tuple[str, Any]:
        fake_gemini.add_malformed("wrong_shape")
        return outcome(lambda: client.interactions.create(model=MODEL, input="Hi"))

    plain, instrumented_outcome = plain_then_instrumented(recorded, run)
    assert instrumented_outcome == plain
    assert len(recorded.spans()) == 1


def test_a_failure_inside_extraction_never_reaches_the_caller(
    fake_gemini: FakeGemini,
    instrumented: Recorded,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from otel_gemini.instrumentation import _interactions

    def broken(usage: Any) -> dict[str, Any]:
        raise RuntimeError("extraction bug")

    monkeypatch.setattr(_interactions, "interaction_usage_attributes", broken)
    fake_gemini.add_interaction("Hello!", usage=USAGE)
    fake_gemini.add_interaction(["Hel", "lo!"], usage=USAGE)
    client = fake_gemini.client()
    with caplog.at_level(logging.WARNING, logger="otel_gemini.instrumentation"):
        first = client.interactions.create(model=MODEL, input="Hi")
        stream = client.interactions.create(model=MODEL, input="Hi", stream=True)
        texts = [event.delta.text for event in stream if event.event_type == "step.delta"]

    assert (first.output_text, texts) == ("Hello!", ["Hel", "lo!"])
    assert len(instrumented.spans()) == 2  # the spans still end


# --- switches -------------------------------------------------------------------------------


def test_suppress_instrumentation_and_uninstrument(
    fake_gemini: FakeGemini, recorded: Recorded
) -> None:
    if GAOS:
        from google.genai._gaos import interactions

        classes = (interactions.Interactions, interactions.AsyncInteractions)
    else:
        from google.genai._interactions.resources import interactions

        classes = (interactions.InteractionsResource, interactions.AsyncInteractionsResource)
    methods: list[tuple[Any, str]] = [(cls, name) for cls in classes for name in ("create", "get")]
    if LIVE_INTERACTIONS:
        from google.genai import _interactions_websocket

        connection = _interactions_websocket.InteractionWebSocketConnection
        methods += [(connection, name) for name in ("__init__", "receive", "_close_socket_only")]
    before = [cls.__dict__[name] for cls, name in methods]
    GeminiInstrumentor().instrument(tracer_provider=recorded.tracer_provider)
    try:
        # wrapt's wrappers compare equal to what they wrap: compare identities.
        assert not any(
            cls.__dict__[name] is was for (cls, name), was in zip(methods, before, strict=True)
        )
        client = fake_gemini.client()
        with suppress_instrumentation():
            client.interactions.create(model=MODEL, input="Hi")
        assert recorded.spans() == []
    finally:
        GeminiInstrumentor().uninstrument()

    assert all(cls.__dict__[name] is was for (cls, name), was in zip(methods, before, strict=True))
    client.interactions.create(model=MODEL, input="Hi")
    assert recorded.spans() == []


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_content_capture_records_input_instructions_and_output(
    fake_gemini: FakeGemini, recorded: Recorded
) -> None:
    GeminiInstrumentor().instrument(tracer_provider=recorded.tracer_provider, capture_content=True)
    try:
        client = fake_gemini.client()
        fake_gemini.add_interaction("Bonjour", usage=USAGE)
        client.interactions.create(
            model=MODEL,
            input="Say hello in French",
            system_instruction="Be brief.",
            tools=[WEATHER_TOOL, {"type": "google_search"}],
        )
        fake_gemini.add_interaction(["Bon", "jour"], usage=USAGE)
        for _ in client.interactions.create(
            model=MODEL,
            input=[
                {"type": "text", "text": "Describe it"},
                {"type": "image", "data": "AAAA", "mime_type": "image/png"},
            ],
            stream=True,
        ):
            pass
        fake_gemini.add_interaction("Sure", usage=USAGE)
        client.interactions.create(
            model=MODEL,
            input=[
                {"type": "user_input", "content": [{"type": "text", "text": "Hi"}]},
                {"type": "model_output", "content": [{"type": "text", "text": "Hello"}]},
                {"type": "user_input", "content": [{"type": "text", "text": "Again"}]},
            ],
        )
    finally:
        GeminiInstrumentor().uninstrument()

    plain, streamed, turns = (attributes_of(span) for span in recorded.spans())
    assert json.loads(plain["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Say hello in French"}]}
    ]
    assert json.loads(plain["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Be brief."}
    ]
    assert json.loads(plain["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Bonjour"}],
            "finish_reason": "stop",
        }
    ]
    # The tools offered, as GenAI tool definitions (each named: Langfuse requires it).
    assert json.loads(plain["gen_ai.tool.definitions"]) == [
        WEATHER_TOOL,
        {"type": "google_search", "name": "google_search"},
    ]
    assert "gen_ai.tool.definitions" not in streamed
    assert json.loads(streamed["gen_ai.input.messages"]) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Describe it"},
                {"type": "blob", "mime_type": "image/png", "size": 3},
            ],
        }
    ]
    assert json.loads(streamed["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": "Bonjour"}
    ]
    assert [
        (message["role"], message["parts"][0]["content"])
        for message in json.loads(turns["gen_ai.input.messages"])
    ] == [("user", "Hi"), ("assistant", "Hello"), ("user", "Again")]


# --- pricing ----------------------------------------------------------------------------------


def interaction_then_generate_content(fake: FakeGemini) -> None:
    """The same exchange (1,200 in, 1,000 cached, 300 out, 150 thoughts) both ways."""
    usage = ScriptedUsage(prompt=1200, cached=1000, candidates=300, thoughts=150)
    client = fake.client()
    fake.add_interaction("Hello!", usage=usage)
    client.interactions.create(model=MODEL, input="Hi")
    fake.add_text("Hello!", usage=usage)
    client.models.generate_content(model=MODEL, contents="Hi")


def test_an_interaction_costs_what_the_same_generate_content_costs(
    fake_gemini: FakeGemini, priced: InMemorySpanExporter
) -> None:
    interaction_then_generate_content(fake_gemini)

    interaction, generation = (dict(span.attributes or {}) for span in priced.get_finished_spans())
    # gemini-2.5-flash: 200 fresh input x $0.30/M + 1,000 cached x $0.03/M + 450 output x $2.50/M
    assert interaction["gen_ai.usage.cost"] == pytest.approx(0.001215, abs=1e-12)
    assert interaction["otel_gemini.cost.status"] == "priced"
    assert (
        interaction["langfuse.observation.cost_details"]
        == (generation["langfuse.observation.cost_details"])
    )


def test_the_official_instrumentations_interaction_spans_are_priced_with_their_thoughts(
    fake_gemini: FakeGemini,
) -> None:
    # Its interactions spans leave thoughts out of output_tokens (its generate_content spans
    # count them); pricing must bill them all the same, as for our spans.
    official = pytest.importorskip("opentelemetry.instrumentation.google_genai")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(SimpleSpanProcessor(exporter)))
    instrumentor = official.GoogleGenAiSdkInstrumentor()
    instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    try:
        interaction_then_generate_content(fake_gemini)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()

    interaction, generation = (
        dict(span.attributes or {}) for span in exporter.get_finished_spans()
    )
    assert interaction["gen_ai.operation.name"] == "interactions.create"
    assert (
        interaction["gen_ai.usage.output_tokens"],
        generation["gen_ai.usage.output_tokens"],
    ) == (
        300,
        450,
    )
    assert interaction["gen_ai.usage.cost"] == pytest.approx(0.001215, abs=1e-12)
    assert interaction["gen_ai.usage.cost"] == generation["gen_ai.usage.cost"]


def test_a_background_interaction_is_priced_once_on_its_generation_span(
    fake_gemini: FakeGemini, priced: InMemorySpanExporter
) -> None:
    usage = ScriptedUsage(prompt=1200, cached=1000, candidates=300, thoughts=150)
    client = fake_gemini.client()
    fake_gemini.add_interaction("", status="in_progress", interaction_id="int-bg")
    client.interactions.create(model=MODEL, input="Hi", background=True)
    for _ in range(2):
        fake_gemini.add_interaction(
            "Done.", usage=usage, interaction_id="int-bg", fetch=True, model=MODEL, updated="soon"
        )
        client.interactions.get("int-bg")

    costs = [
        (span.name, (span.attributes or {}).get("gen_ai.usage.cost"))
        for span in priced.get_finished_spans()
    ]
    # gemini-2.5-flash: 200 fresh input x $0.30/M + 1,000 cached x $0.03/M + 450 output x $2.50/M
    assert costs == [
        (f"generate_content {MODEL}", None),  # the create: nothing run yet
        ("fetch_response", None),
        (f"generate_content {MODEL}", pytest.approx(0.001215, abs=1e-12)),
        ("fetch_response", None),
    ]
