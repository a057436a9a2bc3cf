"""The fake Gemini server, driven by the real google-genai client over loopback (and in-process)."""

# No `from __future__ import annotations` here: google-genai 1.20 cannot call an automatic
# function calling tool whose annotations are strings (it answers the model with an error).

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import httpx
import pytest
from google import genai
from google.genai import errors, types

from otel_gemini.testing import FakeGemini, ScriptedUsage
from otel_gemini.testing._gemini_live_tls import SelfSignedCertificate

pytestmark = pytest.mark.genai

MODEL = "gemini-2.5-flash"
SDK_MAJOR = int(genai.__version__.split(".")[0])
SDK_MINOR = int(genai.__version__.split(".")[1])
# google-genai 1.50 and later raise a stream's in-band error event; 1.20 to 1.49 yield it.
SDK_RAISES_IN_BAND_ERRORS = (SDK_MAJOR, SDK_MINOR) >= (1, 50)
# google-genai 1.20 drops `responseId` of Gemini Developer API responses (Vertex AI keeps it).
SDK_READS_MLDEV_RESPONSE_ID = SDK_MAJOR >= 2

FULL_USAGE = ScriptedUsage(
    prompt=120,
    candidates=30,
    cached=100,
    thoughts=12,
    tool_use_prompt=7,
    prompt_by_modality={"TEXT": 80, "IMAGE": 40},
    candidates_by_modality={"TEXT": 30},
    cache_by_modality={"TEXT": 100},
    tool_use_prompt_by_modality={"TEXT": 7},
)


def _assert_full_usage(usage: types.GenerateContentResponseUsageMetadata | None) -> None:
    assert usage is not None
    assert usage.prompt_token_count == 120
    assert usage.candidates_token_count == 30
    assert usage.cached_content_token_count == 100
    assert usage.thoughts_token_count == 12
    assert usage.tool_use_prompt_token_count == 7
    assert usage.total_token_count == 120 + 30 + 12 + 7
    assert [(d.modality, d.token_count) for d in usage.prompt_tokens_details or []] == [
        (types.MediaModality.TEXT, 80),
        (types.MediaModality.IMAGE, 40),
    ]
    assert [(d.modality, d.token_count) for d in usage.candidates_tokens_details or []] == [
        (types.MediaModality.TEXT, 30)
    ]
    assert [(d.modality, d.token_count) for d in usage.cache_tokens_details or []] == [
        (types.MediaModality.TEXT, 100)
    ]
    assert [(d.modality, d.token_count) for d in usage.tool_use_prompt_tokens_details or []] == [
        (types.MediaModality.TEXT, 7)
    ]


def test_generate_content_returns_scripted_text_and_usage(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    fake_gemini.add_text(
        "Bonjour", usage=FULL_USAGE, response_id="resp-1", model_version="gemini-2.5-flash-001"
    )

    response = gemini_client.models.generate_content(model=MODEL, contents="Say hello")

    assert response.text == "Bonjour"
    if SDK_READS_MLDEV_RESPONSE_ID:
        assert response.response_id == "resp-1"
    assert response.model_version == "gemini-2.5-flash-001"
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    _assert_full_usage(response.usage_metadata)
    (request,) = fake_gemini.requests
    # google-genai 3.x calls /v1, 1.x /v1beta
    assert request.path.split("/", 2)[2] == f"models/{MODEL}:generateContent"
    assert (request.method, request.rpc, request.model, request.vertex) == (
        "POST",
        "generateContent",
        MODEL,
        False,
    )
    assert request.headers["x-goog-api-key"] == "fake-gemini-api-key"
    assert request.json["contents"] == [{"parts": [{"text": "Say hello"}], "role": "user"}]


def test_unscripted_request_gets_a_deterministic_echo(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    response = gemini_client.models.generate_content(model=MODEL, contents="twelve chars")

    assert response.text == "echo: twelve chars"
    if SDK_READS_MLDEV_RESPONSE_ID:
        assert response.response_id == "fake-response-1"
    assert response.model_version == MODEL
    usage = response.usage_metadata
    assert usage is not None
    # ceil(12 / 4) prompt tokens, ceil(18 / 4) answer tokens
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (
        3,
        5,
        8,
    )


async def test_async_generate_content(fake_gemini: FakeGemini, gemini_client: genai.Client) -> None:
    fake_gemini.add_text("async answer", usage=ScriptedUsage(prompt=4, candidates=2))

    response = await gemini_client.aio.models.generate_content(model=MODEL, contents="hi")

    assert response.text == "async answer"
    assert response.usage_metadata is not None
    assert response.usage_metadata.total_token_count == 6
    assert [request.rpc for request in fake_gemini.requests] == ["generateContent"]


def test_stream_reports_running_usage_on_every_chunk(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    fake_gemini.add_stream(
        ["The ", "quick ", "fox"],
        usage=ScriptedUsage(prompt=10, candidates=9, thoughts=3),
        response_id="stream-1",
    )

    chunks = list(gemini_client.models.generate_content_stream(model=MODEL, contents="go"))

    assert [chunk.text for chunk in chunks] == ["The ", "quick ", "fox"]
    usages = [chunk.usage_metadata for chunk in chunks]
    assert [
        (u.prompt_token_count, u.candidates_token_count, u.thoughts_token_count)
        for u in usages
        if u
    ] == [
        (10, 3, 3),
        (10, 6, 3),
        (10, 9, 3),
    ]
    assert [u.total_token_count for u in usages if u] == [16, 19, 22]
    finish = [chunk.candidates[0].finish_reason if chunk.candidates else None for chunk in chunks]
    assert finish == [None, None, types.FinishReason.STOP]
    if SDK_READS_MLDEV_RESPONSE_ID:
        assert {chunk.response_id for chunk in chunks} == {"stream-1"}
    (request,) = fake_gemini.requests
    assert (request.rpc, request.query) == ("streamGenerateContent", {"alt": "sse"})


async def test_async_stream_with_usage_on_last_chunk_only(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    fake_gemini.add_stream(["a", "b"], usage=ScriptedUsage(prompt=5, candidates=2), usage_on="last")

    stream = await gemini_client.aio.models.generate_content_stream(model=MODEL, contents="go")
    chunks = [chunk async for chunk in stream]

    assert [chunk.text for chunk in chunks] == ["a", "b"]
    assert chunks[0].usage_metadata is None
    assert chunks[1].usage_metadata is not None
    assert chunks[1].usage_metadata.total_token_count == 7


def test_stream_cut_off_mid_way_raises_in_the_client(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    fake_gemini.add_stream(["one", "two", "three"], abort_after=1)

    received = []
    with pytest.raises(Exception) as caught:
        for chunk in gemini_client.models.generate_content_stream(model=MODEL, contents="go"):
            received.append(chunk.text)

    assert received == ["one"]
    assert "RemoteProtocolError" in type(caught.value).__name__


@pytest.mark.parametrize(
    ("code", "status", "error_type"),
    [
        (400, "INVALID_ARGUMENT", errors.ClientError),
        (429, "RESOURCE_EXHAUSTED", errors.ClientError),
        (500, "INTERNAL", errors.ServerError),
        (503, "UNAVAILABLE", errors.ServerError),
    ],
)
def test_scripted_error_raises_api_error(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    code: int,
    status: str,
    error_type: type[errors.APIError],
) -> None:
    fake_gemini.add_error(code, "scripted failure", retry_after=7)

    with pytest.raises(error_type) as caught:
        gemini_client.models.generate_content(model=MODEL, contents="hi")

    assert (caught.value.code, caught.value.status, caught.value.message) == (
        code,
        status,
        "scripted failure",
    )
    assert len(fake_gemini.requests) == 1


async def test_scripted_error_in_async_stream(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    fake_gemini.add_error(429)

    with pytest.raises(errors.ClientError) as caught:
        stream = await gemini_client.aio.models.generate_content_stream(model=MODEL, contents="x")
        async for _ in stream:
            pass

    assert caught.value.code == 429


@pytest.mark.parametrize("kind", ["invalid_json", "wrong_shape"])
def test_malformed_body_makes_the_client_fail(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    kind: Literal["invalid_json", "wrong_shape"],
) -> None:
    fake_gemini.add_malformed(kind)

    with pytest.raises(ValueError):  # JSON decode or pydantic validation, per SDK version
        gemini_client.models.generate_content(model=MODEL, contents="hi")


def test_automatic_function_calling_makes_two_recorded_requests(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    calls: list[str] = []

    def get_weather(city: str) -> str:
        """Returns the weather in a city."""
        calls.append(city)
        return "sunny"

    fake_gemini.add_afc_exchange(
        "get_weather",
        {"city": "Paris"},
        call_usage=ScriptedUsage(prompt=20, candidates=5),
        final_text="It is sunny in Paris.",
        final_usage=ScriptedUsage(prompt=40, candidates=8),
    )

    response = gemini_client.models.generate_content(
        model=MODEL,
        contents="Weather in Paris?",
        config=types.GenerateContentConfig(tools=[get_weather]),
    )

    assert response.text == "It is sunny in Paris."
    assert response.usage_metadata is not None
    assert response.usage_metadata.total_token_count == 48
    assert calls == ["Paris"]
    first, second = fake_gemini.requests
    assert (first.rpc, second.rpc) == ("generateContent", "generateContent")
    function_response = second.json["contents"][-1]["parts"][0]["functionResponse"]
    assert function_response["name"] == "get_weather"
    assert function_response["response"] == {"result": "sunny"}
    assert fake_gemini.pending == []


def test_embed_content_scripted_and_default(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    fake_gemini.add_embeddings([[0.5, -0.5], [0.25, 0.75]])

    scripted = gemini_client.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    default = gemini_client.models.embed_content(
        model="gemini-embedding-001",
        contents="hello",
        config=types.EmbedContentConfig(output_dimensionality=4),
    )

    assert [e.values for e in scripted.embeddings or []] == [[0.5, -0.5], [0.25, 0.75]]
    assert [len(e.values or []) for e in default.embeddings or []] == [4]
    assert [request.rpc for request in fake_gemini.requests] == [
        "batchEmbedContents",
        "batchEmbedContents",
    ]


def test_count_tokens(fake_gemini: FakeGemini, gemini_client: genai.Client) -> None:
    response = gemini_client.models.count_tokens(model=MODEL, contents="sixteen chars!!!")

    assert response.total_tokens == 4
    assert fake_gemini.requests[0].rpc == "countTokens"


def test_queue_keyed_by_model_and_rpc(fake_gemini: FakeGemini, gemini_client: genai.Client) -> None:
    fake_gemini.add_text("for pro", model="gemini-2.5-pro")
    fake_gemini.add_embeddings([[1.0]])
    fake_gemini.add_text("for anyone")

    embedded = gemini_client.models.embed_content(model="gemini-embedding-001", contents="x")
    flash = gemini_client.models.generate_content(model=MODEL, contents="x")
    pro = gemini_client.models.generate_content(model="models/gemini-2.5-pro", contents="x")

    assert [e.values for e in embedded.embeddings or []] == [[1.0]]
    assert (flash.text, pro.text) == ("for anyone", "for pro")
    assert fake_gemini.pending == []


def test_reset_forgets_script_and_requests(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    gemini_client.models.generate_content(model=MODEL, contents="x")
    fake_gemini.add_text("never served")

    fake_gemini.reset()

    assert (fake_gemini.requests, fake_gemini.pending) == ([], [])


def test_vertex_ai_paths_and_credentials(
    fake_gemini: FakeGemini, gemini_vertex_client: genai.Client
) -> None:
    fake_gemini.add_text("from vertex", usage=FULL_USAGE)

    response = gemini_vertex_client.models.generate_content(model=MODEL, contents="hi")
    chunks = list(gemini_vertex_client.models.generate_content_stream(model=MODEL, contents="hi"))
    counted = gemini_vertex_client.models.count_tokens(model=MODEL, contents="abcdefgh")
    computed = gemini_vertex_client.models.compute_tokens(model=MODEL, contents="two words")
    embedded = gemini_vertex_client.models.embed_content(
        model="text-embedding-004", contents=["a", "b"]
    )

    assert response.text == "from vertex"
    _assert_full_usage(response.usage_metadata)
    assert "".join(chunk.text or "" for chunk in chunks) == "echo: hi"
    assert counted.total_tokens == 2
    assert [info.tokens for info in computed.tokens_info or []] == [[b"two", b"words"]]
    assert len(embedded.embeddings or []) == 2
    scope = "projects/fake-project/locations/us-central1/publishers/google/models"
    assert [request.path.split("/", 2)[2] for request in fake_gemini.requests] == [
        f"{scope}/{MODEL}:generateContent",
        f"{scope}/{MODEL}:streamGenerateContent",
        f"{scope}/{MODEL}:countTokens",
        f"{scope}/{MODEL}:computeTokens",
        f"{scope}/text-embedding-004:predict",
    ]
    assert {request.path.split("/")[1] for request in fake_gemini.requests} <= {"v1", "v1beta1"}
    first = fake_gemini.requests[0]
    assert (first.vertex, first.project, first.location, first.model) == (
        True,
        "fake-project",
        "us-central1",
        MODEL,
    )
    assert first.headers["authorization"] == "Bearer fake-gemini-token"


async def test_vertex_ai_async_generate(
    fake_gemini: FakeGemini, gemini_vertex_client: genai.Client
) -> None:
    fake_gemini.add_text("async vertex")

    response = await gemini_vertex_client.aio.models.generate_content(model=MODEL, contents="x")

    assert response.text == "async vertex"
    assert fake_gemini.requests[0].vertex


def test_inprocess_client_serves_without_sockets() -> None:
    fake = FakeGemini()  # never started
    client = fake.inprocess_client()
    fake.add_text("in process", usage=ScriptedUsage(prompt=3, candidates=2))
    fake.add_stream(["x", "y"], usage=ScriptedUsage(prompt=1, candidates=2))

    response = client.models.generate_content(model=MODEL, contents="hi")
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="hi"))

    assert response.text == "in process"
    assert response.usage_metadata is not None
    assert response.usage_metadata.total_token_count == 5
    assert [chunk.text for chunk in chunks] == ["x", "y"]
    assert [request.rpc for request in fake.requests] == [
        "generateContent",
        "streamGenerateContent",
    ]


async def test_inprocess_async_client() -> None:
    fake = FakeGemini()
    client = fake.inprocess_client()
    fake.add_error(503)

    with pytest.raises(errors.ServerError):
        await client.aio.models.generate_content(model=MODEL, contents="hi")
    response = await client.aio.models.generate_content(model=MODEL, contents="hi")

    assert response.text == "echo: hi"


def test_start_stop_and_base_url() -> None:
    fake = FakeGemini()
    with pytest.raises(RuntimeError):
        _ = fake.base_url

    with fake:
        assert fake.base_url == f"http://127.0.0.1:{fake.port}"
        client = fake.client()
        assert client.models.generate_content(model=MODEL, contents="a").text == "echo: a"

    with pytest.raises(RuntimeError):
        _ = fake.base_url


def test_scripted_usage_renders_gemini_json() -> None:
    usage = ScriptedUsage(
        prompt=10, candidates=0, cached=4, prompt_by_modality={"audio": 6, "text": 4}
    )

    assert usage.to_json() == {
        "promptTokenCount": 10,
        "cachedContentTokenCount": 4,
        "totalTokenCount": 10,
        "promptTokensDetails": [
            {"modality": "AUDIO", "tokenCount": 6},
            {"modality": "TEXT", "tokenCount": 4},
        ],
    }


def test_request_with_invalid_json_gets_a_400(fake_gemini: FakeGemini) -> None:
    response = httpx.post(
        f"{fake_gemini.base_url}/v1beta/models/{MODEL}:generateContent", content=b"{not json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    (request,) = fake_gemini.requests
    assert (request.body, request.json, request.rpc) == (b"{not json", None, "generateContent")


def test_vertex_ai_express_mode_uses_the_publisher_path(fake_gemini: FakeGemini) -> None:
    client = fake_gemini.client(vertexai=True, api_key="express-key")

    client.models.generate_content(model=MODEL, contents="x")

    (request,) = fake_gemini.requests
    assert request.path == f"/v1beta1/publishers/google/models/{MODEL}:generateContent"
    assert (request.vertex, request.project, request.headers["x-goog-api-key"]) == (
        True,
        None,
        "express-key",
    )


@pytest.mark.filterwarnings("ignore:The generate_images method is deprecated")
def test_vertex_ai_generate_images(
    fake_gemini: FakeGemini, gemini_vertex_client: genai.Client
) -> None:
    response = gemini_vertex_client.models.generate_images(
        model="imagen-4.0-generate-001",
        prompt="a cat",
        config=types.GenerateImagesConfig(number_of_images=2),
    )

    images = response.generated_images or []
    assert [image.image.mime_type if image.image else None for image in images] == [
        "image/png",
        "image/png",
    ]
    assert fake_gemini.requests[0].rpc == "predict"


@pytest.mark.parametrize(
    "vertexai",
    [
        pytest.param(
            False,
            marks=pytest.mark.skipif(
                SDK_MAJOR >= 3, reason="google-genai 3.x generates videos on Vertex AI only"
            ),
        ),
        True,
    ],
)
@pytest.mark.filterwarnings("ignore:The generate_videos method with prompt")
def test_generate_videos_operation_finishes_on_first_poll(
    fake_gemini: FakeGemini, vertexai: bool
) -> None:
    client = fake_gemini.client(vertexai=vertexai)

    operation = client.models.generate_videos(model="veo-3.0-generate-001", prompt="a cat")
    assert not operation.done
    operation = client.operations.get(operation)

    assert operation.done
    assert operation.response is not None
    assert len(operation.response.generated_videos or []) == 1
    poll = "fetchPredictOperation" if vertexai else "getOperation"
    assert [request.rpc for request in fake_gemini.requests] == ["predictLongRunning", poll]
    assert {request.model for request in fake_gemini.requests} == {"veo-3.0-generate-001"}


def test_wait_for_requests_from_other_threads(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(gemini_client.models.generate_content, model=MODEL, contents=f"n{i}")
            for i in range(8)
        ]
        requests = fake_gemini.wait_for_requests(8, timeout=10)
        texts = sorted(future.result().text or "" for future in futures)

    assert texts == sorted(f"echo: n{i}" for i in range(8))
    assert sorted(request.sequence for request in requests) == list(range(1, 9))
    with pytest.raises(TimeoutError):
        fake_gemini.wait_for_requests(9, timeout=0.01)


async def test_https_with_a_self_signed_certificate() -> None:
    certificate = SelfSignedCertificate()
    try:
        with FakeGemini(ssl_certfile=certificate.certfile, ssl_keyfile=certificate.keyfile) as fake:
            client = fake.client()
            sync_response = client.models.generate_content(model=MODEL, contents="tls")
            stream = await client.aio.models.generate_content_stream(model=MODEL, contents="a b")
            streamed = "".join([chunk.text or "" async for chunk in stream])
            base_url = fake.base_url
    finally:
        certificate.remove()

    assert base_url == f"https://127.0.0.1:{fake.port}"
    assert (sync_response.text, streamed) == ("echo: tls", "echo: a b")


def test_keep_alive_requests_are_not_held_by_delayed_acks(
    fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    # With Nagle on, each request after the first on a connection waits ~40 ms for an ACK.
    gemini_client.models.generate_content(model=MODEL, contents="warm up")
    durations = []
    for _ in range(10):
        started = time.perf_counter()
        gemini_client.models.generate_content(model=MODEL, contents="x")
        durations.append(time.perf_counter() - started)

    assert min(durations) < 0.03


async def test_inprocess_async_stream() -> None:
    fake = FakeGemini()
    client = fake.inprocess_client()
    fake.add_stream(["p", "q"], usage=ScriptedUsage(prompt=2, candidates=2), usage_on="last")

    stream = await client.aio.models.generate_content_stream(model=MODEL, contents="hi")
    chunks = [chunk async for chunk in stream]

    assert [chunk.text for chunk in chunks] == ["p", "q"]
    assert chunks[-1].usage_metadata is not None
    assert chunks[-1].usage_metadata.total_token_count == 4


def test_restart_serves_on_a_new_port() -> None:
    fake = FakeGemini()
    with fake:
        first_port = fake.port
    with fake:
        client = fake.client()
        assert client.models.generate_content(model=MODEL, contents="b").text == "echo: b"
        assert fake.port != 0
    assert first_port != 0


def test_in_band_stream_error(fake_gemini: FakeGemini, gemini_client: genai.Client) -> None:
    fake_gemini.add_stream(["a", "b"], error_after=1, error_code=503)

    received = []
    if SDK_RAISES_IN_BAND_ERRORS:
        with pytest.raises(errors.ServerError) as caught:
            for chunk in gemini_client.models.generate_content_stream(model=MODEL, contents="x"):
                received.append(chunk.text)
        assert caught.value.code == 503
        assert received == ["a"]
    else:  # google-genai 1.20 to 1.49 yield the error event as an empty chunk
        for chunk in gemini_client.models.generate_content_stream(model=MODEL, contents="x"):
            received.append(chunk.text)
        assert received == ["a", None]
