"""GeminiInstrumentor with the real google-genai client against the fake Gemini over loopback.

No ``from __future__ import annotations`` here: google-genai 1.x cannot call AFC tools whose
annotations are strings.
"""

import asyncio
import gc
import json
import logging
from typing import Any

import pytest
from afc_exchange import queue_afc
from google.genai import errors, types
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import SpanKind, StatusCode
from usage_fixtures import RICH_USAGE_ATTRIBUTES, attributes_of, rich_usage

from otel_gemini import trace_attributes
from otel_gemini.testing import FakeGemini, ScriptedUsage
from tests.conftest import Recorded

pytestmark = pytest.mark.genai

MODEL = "gemini-2.5-flash"


def test_generate_content_span_has_the_full_attribute_set(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_text("Hello!", usage=rich_usage(), response_id="resp-1", model_version=MODEL)
    client = fake_gemini.client()
    config = types.GenerateContentConfig(
        temperature=0.3,
        top_p=0.9,
        top_k=40,
        max_output_tokens=512,
        stop_sequences=["END"],
        seed=7,
        candidate_count=1,
        response_mime_type="application/json",
    )
    response = client.models.generate_content(model=f"models/{MODEL}", contents="Hi", config=config)

    assert response.text == "Hello!"
    # google-genai 1.x drops responseId on the Gemini API: the span can only have what the SDK has.
    response_id = {"gen_ai.response.id": "resp-1"} if response.response_id else {}
    [span] = instrumented.spans()
    assert span.name == f"generate_content {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attributes_of(span) == {
        **response_id,
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.top_k": 40,
        "gen_ai.request.max_tokens": 512,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.seed": 7,
        "gen_ai.request.choice.count": 1,
        "gen_ai.output.type": "json",
        "server.address": "127.0.0.1",
        "server.port": fake_gemini.port,
        **RICH_USAGE_ATTRIBUTES,
    }


USAGE_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.text.input_tokens",
    "gen_ai.usage.text.output_tokens",
)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            # What the Gemini API sends for text: no candidatesTokensDetails. A text output
            # count of the 12 thoughts alone would understate the 42 tokens of text.
            ScriptedUsage(prompt=100, candidates=30, thoughts=12, prompt_by_modality={"TEXT": 100}),
            {
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 42,
                "gen_ai.usage.reasoning.output_tokens": 12,
                "gen_ai.usage.text.input_tokens": 100,
            },
            id="candidates-split-unknown",
        ),
        pytest.param(
            # Stopped while thinking: all the output is thoughts, so all of it is text.
            ScriptedUsage(prompt=100, thoughts=12, prompt_by_modality={"TEXT": 100}),
            {
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 12,
                "gen_ai.usage.reasoning.output_tokens": 12,
                "gen_ai.usage.text.input_tokens": 100,
                "gen_ai.usage.text.output_tokens": 12,
            },
            id="thoughts-only",
        ),
    ],
)
def test_text_output_count_is_written_only_when_the_split_is_known(
    fake_gemini: FakeGemini, instrumented: Recorded, usage: ScriptedUsage, expected: dict[str, int]
) -> None:
    fake_gemini.add_text("Hi", usage=usage)
    client = fake_gemini.client()
    client.models.generate_content(model=MODEL, contents="Hi")

    [span] = instrumented.spans()
    attributes = attributes_of(span)
    assert {key: attributes[key] for key in USAGE_KEYS if key in attributes} == expected


async def test_async_generate_content_matches_sync(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_text("Hello!", usage=rich_usage(), response_id="resp-2")
    client = fake_gemini.client()
    response = await client.aio.models.generate_content(model=MODEL, contents="Hi")

    [span] = instrumented.spans()
    assert span.name == f"generate_content {MODEL}"
    attributes = attributes_of(span)
    assert {key: attributes[key] for key in RICH_USAGE_ATTRIBUTES} == RICH_USAGE_ATTRIBUTES
    assert attributes.get("gen_ai.response.id") == response.response_id


def test_vertex_ai_client_reports_the_vertex_provider(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_text("Hi", usage=ScriptedUsage(prompt=10, candidates=2))
    client = fake_gemini.client(vertexai=True)
    client.models.generate_content(model=MODEL, contents="Hi")

    [span] = instrumented.spans()
    attributes = attributes_of(span)
    assert attributes["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.usage.input_tokens"] == 10


def test_service_tier_is_recorded_for_pricing(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    if "service_tier" not in types.GenerateContentConfig.model_fields:
        pytest.skip("this google-genai has no service_tier")
    fake_gemini.add_text("Hi", usage=ScriptedUsage(prompt=10, candidates=2))
    client = fake_gemini.client()
    client.models.generate_content(model=MODEL, contents="Hi", config={"service_tier": "flex"})
    [span] = instrumented.spans()
    assert attributes_of(span)["otel_gemini.request.service_tier"] == "flex"


# --- streams ------------------------------------------------------------------------------


def stream_usage() -> ScriptedUsage:
    return ScriptedUsage(prompt=100, candidates=20, thoughts=5)


def test_stream_takes_usage_from_the_last_chunk_and_times_the_first(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_stream([f"part{i} " for i in range(4)], usage=stream_usage(), usage_on="every")
    client = fake_gemini.client()
    text = "".join(
        chunk.text or ""
        for chunk in client.models.generate_content_stream(model=MODEL, contents="Hi")
    )

    assert text == "part0 part1 part2 part3 "
    [span] = instrumented.spans()
    attributes = attributes_of(span)
    assert attributes["gen_ai.usage.input_tokens"] == 100
    assert attributes["gen_ai.usage.output_tokens"] == 25  # last chunk: 20 + 5, never summed
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attributes["otel_gemini.stream.completed"] is True
    # A monotonic-clock interval; the span's times are wall-clock, so only a sanity bound here.
    assert 0 < attributes["gen_ai.response.time_to_first_chunk"] < 5
    assert attributes["langfuse.observation.completion_start_time"].endswith("+00:00")
    assert span.status.status_code is StatusCode.UNSET
    [ttfc_point] = instrumented.metric_points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc_point.count == 1  # type: ignore[attr-defined]


async def test_async_stream_matches_sync(fake_gemini: FakeGemini, instrumented: Recorded) -> None:
    fake_gemini.add_stream(["a", "b", "c"], usage=stream_usage())
    client = fake_gemini.client()
    chunks = [
        c async for c in await client.aio.models.generate_content_stream(model=MODEL, contents="Hi")
    ]

    assert len(chunks) == 3
    [span] = instrumented.spans()
    attributes = attributes_of(span)
    assert attributes["gen_ai.usage.output_tokens"] == 25
    assert attributes["otel_gemini.stream.completed"] is True


def test_breaking_out_of_a_stream_ends_the_span_without_error(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_stream(["a", "b", "c", "d"], usage=stream_usage())
    client = fake_gemini.client()
    stream = client.models.generate_content_stream(model=MODEL, contents="Hi")
    for _chunk in stream:
        break
    del stream
    gc.collect()

    [span] = instrumented.spans()
    assert span.status.status_code is StatusCode.UNSET
    assert attributes_of(span)["otel_gemini.stream.completed"] is False
    assert attributes_of(span)["gen_ai.usage.input_tokens"] == 100


async def test_async_stream_closed_early_ends_the_span(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_stream(["a", "b", "c", "d"], usage=stream_usage())
    client = fake_gemini.client()
    stream = await client.aio.models.generate_content_stream(model=MODEL, contents="Hi")
    async for _chunk in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    del stream
    # The SDK's inner async generator holds our wrapper until it is collected and asyncio
    # finalises it on the loop: poll with a deadline.
    deadline = asyncio.get_running_loop().time() + 5
    while not instrumented.spans() and asyncio.get_running_loop().time() < deadline:
        gc.collect()
        await asyncio.sleep(0.01)

    [span] = instrumented.spans()
    assert span.status.status_code is StatusCode.UNSET
    assert attributes_of(span)["otel_gemini.stream.completed"] is False


def test_stream_failing_mid_way_records_the_error_and_reraises(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_stream(["a", "b", "c", "d"], usage=stream_usage(), abort_after=2)
    client = fake_gemini.client()
    received = []
    with pytest.raises(Exception) as raised:
        for chunk in client.models.generate_content_stream(model=MODEL, contents="Hi"):
            received.append(chunk)

    assert len(received) == 2
    [span] = instrumented.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert attributes_of(span)["error.type"] == (
        f"{type(raised.value).__module__}.{type(raised.value).__qualname__}"
    )
    assert [event.name for event in span.events] == ["exception"]


def test_stream_parent_context_is_the_callers_between_chunks(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_stream(["a", "b"], usage=stream_usage())
    client = fake_gemini.client()
    tracer = instrumented.tracer_provider.get_tracer("test")
    seen_in_loop = []
    with tracer.start_as_current_span("request handler") as parent:
        for _chunk in client.models.generate_content_stream(model=MODEL, contents="Hi"):
            seen_in_loop.append(trace.get_current_span())

    assert seen_in_loop == [parent, parent]
    generation = instrumented.spans_named("generate_content")[0]
    assert generation.parent is not None
    assert generation.parent.span_id == parent.get_span_context().span_id


# --- automatic function calling -----------------------------------------------------------


def get_weather(city: str) -> str:
    """Returns the weather in a city."""
    return f"sunny in {city}"


def assert_afc_trace(recorded: Recorded) -> None:
    spans = recorded.spans()
    [parent] = [s for s in spans if s.name == f"invoke_agent {MODEL}"]
    generations = sorted(recorded.spans_named("generate_content"), key=lambda s: s.start_time or 0)
    [tool] = recorded.spans_named("execute_tool")
    assert len(spans) == 4
    assert [attributes_of(g)["gen_ai.usage.input_tokens"] for g in generations] == [1000, 1100]
    assert [attributes_of(g)["gen_ai.usage.output_tokens"] for g in generations] == [50, 5]
    for child in (*generations, tool):
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id
    assert tool.name == "execute_tool get_weather"
    assert attributes_of(tool) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.type": "function",
    }
    assert tool.kind is SpanKind.INTERNAL
    # The tool ran between the two requests.
    assert generations[0].end_time <= tool.start_time  # type: ignore[operator]
    assert tool.end_time <= generations[1].start_time  # type: ignore[operator]
    assert "gen_ai.usage.input_tokens" not in attributes_of(parent)
    assert attributes_of(parent)["langfuse.observation.type"] == "agent"


def test_afc_gives_each_http_request_its_own_generation_span(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    queue_afc(fake_gemini)
    client = fake_gemini.client()
    response = client.models.generate_content(
        model=MODEL,
        contents="Weather in Paris?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert response.text == "It is sunny in Paris."
    assert len(fake_gemini.requests) == 2
    assert_afc_trace(instrumented)


async def test_async_afc_gives_each_http_request_its_own_generation_span(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    queue_afc(fake_gemini)
    client = fake_gemini.client()
    response = await client.aio.models.generate_content(
        model=MODEL,
        contents="Weather in Paris?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert response.text == "It is sunny in Paris."
    assert_afc_trace(instrumented)


def test_chat_afc_and_chat_messages_are_not_double_counted(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    queue_afc(fake_gemini)
    fake_gemini.add_text("Bye", usage=ScriptedUsage(prompt=1200, candidates=2))
    client = fake_gemini.client()
    chat = client.chats.create(model=MODEL, config=types.GenerateContentConfig(tools=[get_weather]))
    chat.send_message("Weather in Paris?")
    assert_afc_trace(instrumented)
    instrumented.exporter.clear()

    chat.send_message("Thanks")
    # The chat still has AFC tools configured: a parent and one generation, nothing doubled.
    generations = instrumented.spans_named("generate_content")
    assert [attributes_of(g)["gen_ai.usage.input_tokens"] for g in generations] == [1200]


def test_chat_stream_has_one_span_per_request(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_stream(["a", "b"], usage=ScriptedUsage(prompt=10, candidates=4))
    client = fake_gemini.client()
    chat = client.chats.create(model=MODEL)
    assert "".join(c.text or "" for c in chat.send_message_stream("Hi")) == "ab"
    [span] = instrumented.spans()
    assert attributes_of(span)["gen_ai.usage.output_tokens"] == 4


# --- other operations ---------------------------------------------------------------------


def test_embed_content(fake_gemini: FakeGemini, instrumented: Recorded) -> None:
    fake_gemini.add_embeddings([[0.1, 0.2, 0.3]])
    client = fake_gemini.client()
    client.models.embed_content(model="gemini-embedding-001", contents="hello")
    [span] = instrumented.spans()
    assert span.name == "embeddings gemini-embedding-001"
    attributes = attributes_of(span)
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert attributes["gen_ai.embeddings.dimension.count"] == 3


def test_count_tokens_is_a_plain_span_without_usage(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    result = client.models.count_tokens(model=MODEL, contents="hello world, how are you")
    [span] = instrumented.spans()
    attributes = attributes_of(span)
    assert span.name == f"count_tokens {MODEL}"
    assert attributes["langfuse.observation.type"] == "span"
    assert attributes["otel_gemini.count_tokens.total_tokens"] == result.total_tokens
    assert "gen_ai.usage.input_tokens" not in attributes


def test_compute_tokens_on_vertex(fake_gemini: FakeGemini, instrumented: Recorded) -> None:
    client = fake_gemini.client(vertexai=True)
    client.models.compute_tokens(model=MODEL, contents="hello")
    [span] = instrumented.spans()
    assert span.name == f"compute_tokens {MODEL}"


def test_generate_images_counts_images(fake_gemini: FakeGemini, instrumented: Recorded) -> None:
    client = fake_gemini.client(vertexai=True)
    response = client.models.generate_images(
        model="imagen-4.0-generate-001", prompt="a cat", config={"number_of_images": 2}
    )
    [span] = instrumented.spans()
    attributes = attributes_of(span)
    assert span.name == "generate_images imagen-4.0-generate-001"
    assert attributes["otel_gemini.usage.image.output_count"] == len(
        response.generated_images or []
    )


def test_generate_videos_records_requested_seconds(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client(vertexai=True)
    client.models.generate_videos(
        model="veo-3.0-generate-001",
        prompt="a cat",
        config={"duration_seconds": 8, "number_of_videos": 2},
    )
    [span] = instrumented.spans()
    assert span.name == "generate_videos veo-3.0-generate-001"
    assert attributes_of(span)["otel_gemini.usage.video.output_seconds"] == 16.0


# --- errors and robustness ----------------------------------------------------------------


@pytest.mark.parametrize("code", [400, 429, 500, 503])
def test_api_errors_are_recorded_and_reraised_unchanged(
    fake_gemini: FakeGemini, instrumented: Recorded, code: int
) -> None:
    fake_gemini.add_error(code, "scripted failure")
    client = fake_gemini.client()
    with pytest.raises(errors.APIError) as raised:
        client.models.generate_content(model=MODEL, contents="Hi")

    assert raised.value.code == code
    [span] = instrumented.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert "scripted failure" in (span.status.description or "")
    assert attributes_of(span)["error.type"] == str(code)
    [event] = span.events
    assert event.name == "exception"
    [duration] = instrumented.metric_points("gen_ai.client.operation.duration")
    assert dict(duration.attributes)["error.type"] == str(code)  # type: ignore[attr-defined]


def outcome(call: Any) -> tuple[str, Any]:
    try:
        result = call()
    except Exception as error:  # compare what the caller sees, type and message
        return ("raised", (type(error), str(error)))
    return ("returned", result.model_dump(exclude={"sdk_http_response"}))


@pytest.mark.parametrize("kind", ["invalid_json", "wrong_shape", "empty"])
def test_malformed_responses_reach_the_caller_exactly_as_uninstrumented(
    fake_gemini: FakeGemini, recorded: Recorded, kind: str
) -> None:
    from otel_gemini import GeminiInstrumentor

    client = fake_gemini.client()

    def call() -> Any:
        return client.models.generate_content(model=MODEL, contents="Hi")

    fake_gemini.add_malformed(kind)
    plain = outcome(call)
    GeminiInstrumentor().instrument(tracer_provider=recorded.tracer_provider)
    try:
        fake_gemini.add_malformed(kind)
        instrumented_outcome = outcome(call)
    finally:
        GeminiInstrumentor().uninstrument()
    assert instrumented_outcome == plain
    assert len(recorded.spans()) == 1


def test_a_failure_inside_attribute_extraction_never_reaches_the_caller(
    fake_gemini: FakeGemini, instrumented: Recorded, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from otel_gemini.instrumentation import _generate_content

    def broken(usage: Any) -> dict[str, Any]:
        raise RuntimeError("extraction bug")

    monkeypatch.setattr(_generate_content, "usage_attributes", broken)
    fake_gemini.add_text("Hello!", usage=ScriptedUsage(prompt=5, candidates=1))
    fake_gemini.add_text("Again!", usage=ScriptedUsage(prompt=5, candidates=1))
    client = fake_gemini.client()
    with caplog.at_level(logging.WARNING, logger="otel_gemini.instrumentation"):
        first = client.models.generate_content(model=MODEL, contents="Hi")
        second = client.models.generate_content(model=MODEL, contents="Hi")

    assert (first.text, second.text) == ("Hello!", "Again!")
    assert len(instrumented.spans()) == 2  # spans still end
    assert (
        sum("extraction bug" in r.getMessage() or r.exc_info is not None for r in caplog.records)
        == 1
    )


def test_suppress_instrumentation_makes_no_spans(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    with suppress_instrumentation():
        client.models.generate_content(model=MODEL, contents="Hi")
    assert instrumented.spans() == []


def test_uninstrument_restores_every_original(fake_gemini: FakeGemini, recorded: Recorded) -> None:
    from google.genai import _extra_utils, models

    from otel_gemini import GeminiInstrumentor

    names = ["_generate_content", "_generate_content_stream", "generate_content", "embed_content"]
    before = {name: models.Models.__dict__[name] for name in names}
    before_tool = _extra_utils.invoke_function_from_dict_args
    GeminiInstrumentor().instrument(tracer_provider=recorded.tracer_provider)
    assert models.Models.__dict__["_generate_content"] is not before["_generate_content"]
    GeminiInstrumentor().uninstrument()

    assert {name: models.Models.__dict__[name] for name in names} == before
    assert _extra_utils.invoke_function_from_dict_args is before_tool
    client = fake_gemini.client()
    client.models.generate_content(model=MODEL, contents="Hi")
    assert recorded.spans() == []


def test_newer_google_genai_is_instrumented_with_one_warning(
    fake_gemini: FakeGemini, recorded: Recorded, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from otel_gemini import GeminiInstrumentor
    from otel_gemini.instrumentation import _instrumentor

    monkeypatch.setattr(_instrumentor, "TESTED_MAX", (1, 0))
    with caplog.at_level(logging.WARNING, logger="otel_gemini.instrumentation"):
        GeminiInstrumentor().instrument(tracer_provider=recorded.tracer_provider)
    client = fake_gemini.client()
    try:
        client.models.generate_content(model=MODEL, contents="Hi")
    finally:
        GeminiInstrumentor().uninstrument()
    assert [r.getMessage() for r in caplog.records if "newer than" in r.getMessage()] != []
    assert len([r for r in caplog.records if "newer than" in r.getMessage()]) == 1
    assert len(recorded.spans()) == 1


# --- trace attributes, content capture, metrics -------------------------------------------


def test_trace_attributes_reach_every_span_including_async_tasks(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()

    async def two_calls() -> None:
        await asyncio.gather(
            client.aio.models.generate_content(model=MODEL, contents="a"),
            client.aio.models.generate_content(model=MODEL, contents="b"),
        )

    with trace_attributes(
        user_id="u-1", session_id="s-1", tags=["voice"], metadata={"tenant": "acme"}
    ):
        client.models.generate_content(model=MODEL, contents="Hi")
        asyncio.run(two_calls())

    spans = instrumented.spans()
    assert len(spans) == 3
    for span in spans:
        attributes = attributes_of(span)
        assert attributes["user.id"] == "u-1"
        assert attributes["session.id"] == "s-1"
        assert attributes["langfuse.trace.tags"] == ("voice",)
        assert attributes["langfuse.trace.metadata.tenant"] == "acme"


def test_content_is_not_captured_by_default(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    client.models.generate_content(
        model=MODEL, contents="secret prompt", config={"system_instruction": "be brief"}
    )
    [span] = instrumented.spans()
    assert not any(
        key.startswith(("gen_ai.input", "gen_ai.output.m", "gen_ai.system_i"))
        for key in attributes_of(span)
    )
    assert "secret prompt" not in json.dumps(attributes_of(span), default=str)


def test_content_capture_records_messages_as_semconv_json(
    fake_gemini: FakeGemini, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_gemini import GeminiInstrumentor

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    fake_gemini.add_text("Bonjour", usage=ScriptedUsage(prompt=5, candidates=1))
    GeminiInstrumentor().instrument(tracer_provider=recorded.tracer_provider)
    client = fake_gemini.client()
    try:
        client.models.generate_content(
            model=MODEL,
            contents=[
                types.Content(
                    role="user",
                    parts=[
                        types.Part.from_text(text="Translate: hello"),
                        types.Part.from_bytes(data=b"\x00" * 320, mime_type="audio/pcm;rate=16000"),
                    ],
                )
            ],
            config={"system_instruction": "You translate to French."},
        )
    finally:
        GeminiInstrumentor().uninstrument()
    [span] = recorded.spans()
    attributes = attributes_of(span)
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "Translate: hello"},
                {"type": "blob", "mime_type": "audio/pcm;rate=16000", "size": 320},
            ],
        }
    ]
    assert json.loads(attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You translate to French."}
    ]
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Bonjour"}],
            "finish_reason": "stop",
        }
    ]


def test_invalid_capture_setting_fails_at_start_naming_the_variable(
    recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_gemini import GeminiInstrumentor

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "maybe")
    with pytest.raises(ValueError, match="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"):
        GeminiInstrumentor().instrument(tracer_provider=recorded.tracer_provider)
    GeminiInstrumentor().uninstrument()


def test_metrics_record_duration_and_tokens_by_type(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_text("a", usage=ScriptedUsage(prompt=100, candidates=10))
    fake_gemini.add_text("b", usage=ScriptedUsage(prompt=200, candidates=20, thoughts=5))
    client = fake_gemini.client()
    client.models.generate_content(model=MODEL, contents="Hi")
    client.models.generate_content(model=MODEL, contents="Hi")

    [duration] = instrumented.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 2  # type: ignore[attr-defined]
    assert dict(duration.attributes) == {  # type: ignore[attr-defined]
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": fake_gemini.port,
    }
    tokens = {
        dict(p.attributes)["gen_ai.token.type"]: p.sum  # type: ignore[attr-defined]
        for p in instrumented.metric_points("gen_ai.client.token.usage")
    }
    assert tokens == {"input": 300, "output": 35}


def test_requests_to_other_models_and_endpoints_keep_their_own_attributes(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    # Span names, request attributes and metric point sets are built once per model and
    # endpoint and reused: each request must still get its own.
    for _ in range(5):
        fake_gemini.add_text("a", usage=ScriptedUsage(prompt=10, candidates=1))
    fake_gemini.add_error(500, "scripted failure")
    over_http = fake_gemini.client()
    vertex = fake_gemini.client(vertexai=True)
    in_process = fake_gemini.inprocess_client()
    over_http.models.generate_content(model=MODEL, contents="Hi")
    in_process.models.generate_content(model=MODEL, contents="Hi")
    over_http.models.generate_content(model="models/gemini-2.5-pro", contents="Hi")
    vertex.models.generate_content(model=MODEL, contents="Hi")
    over_http.models.generate_content(model=MODEL, contents="Hi")
    with pytest.raises(errors.APIError):
        over_http.models.generate_content(model=MODEL, contents="Hi")

    keys = ("gen_ai.provider.name", "server.address", "gen_ai.request.model")
    loopback = ("gcp.gemini", "127.0.0.1", MODEL)
    assert [
        (span.name, *(attributes_of(span)[key] for key in keys)) for span in instrumented.spans()
    ] == [
        (f"generate_content {MODEL}", *loopback),
        (f"generate_content {MODEL}", "gcp.gemini", "fake-gemini.invalid", MODEL),
        ("generate_content gemini-2.5-pro", "gcp.gemini", "127.0.0.1", "gemini-2.5-pro"),
        (f"generate_content {MODEL}", "gcp.vertex_ai", "127.0.0.1", MODEL),
        (f"generate_content {MODEL}", *loopback),
        (f"generate_content {MODEL}", *loopback),
    ]
    durations = {
        (
            *(dict(p.attributes)[key] for key in keys),  # type: ignore[attr-defined]
            dict(p.attributes).get("error.type"),  # type: ignore[attr-defined]
        ): p.count  # type: ignore[attr-defined]
        for p in instrumented.metric_points("gen_ai.client.operation.duration")
    }
    assert durations == {
        (*loopback, None): 2,
        (*loopback, "500"): 1,
        ("gcp.gemini", "fake-gemini.invalid", MODEL, None): 1,
        ("gcp.gemini", "127.0.0.1", "gemini-2.5-pro", None): 1,
        ("gcp.vertex_ai", "127.0.0.1", MODEL, None): 1,
    }
    input_tokens = sum(
        p.sum  # type: ignore[attr-defined]
        for p in instrumented.metric_points("gen_ai.client.token.usage")
        if dict(p.attributes)["gen_ai.token.type"] == "input"  # type: ignore[attr-defined]
    )
    assert input_tokens == 50
