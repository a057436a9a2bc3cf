"""A fake Gemini REST server for tests: the real google-genai client talks to it over loopback.

Example::

    from otel_gemini.testing import FakeGemini, ScriptedUsage

    with FakeGemini() as fake:
        fake.add_text("Hello!", usage=ScriptedUsage(prompt=12, candidates=3))
        response = fake.client().models.generate_content(model="gemini-2.5-flash", contents="Hi")
        assert response.text == "Hello!"
        assert fake.requests[0].rpc == "generateContent"

It serves the Gemini Developer API paths (``/v1beta/models/{model}:{rpc}``) and the Vertex AI
paths (``/v1beta1/projects/{p}/locations/{l}/publishers/google/models/{model}:{rpc}``):
``generateContent``, ``streamGenerateContent`` (SSE), ``embedContent``,
``batchEmbedContents``, ``predict`` (Vertex embeddings, Imagen), ``countTokens``,
``computeTokens``, ``predictLongRunning`` and the operation polls of ``generate_videos``; and
the Interactions API's create (``POST /{version}/interactions``, JSON or SSE events).

Scripted replies wait in one FIFO queue: each request takes the first queued reply that can
answer its rpc (a text reply answers ``generateContent`` and ``streamGenerateContent``, an
embedding reply the embedding rpcs, an error or raw reply anything) and, when the reply was
queued with ``model=...``, only a request for that model. When nothing fits, the fake answers
deterministically: ``echo: <last text of the request>`` with token counts of
``ceil(characters / 4)`` (see :func:`estimate_tokens`).
"""

from __future__ import annotations

import ssl
import weakref
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from google import genai
from google.auth.credentials import Credentials
from google.genai import types
from google.oauth2.credentials import Credentials as OAuth2Credentials
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from otel_gemini.testing._gemini_app import build_app
from otel_gemini.testing._gemini_batches import BatchListReply, BatchReply
from otel_gemini.testing._gemini_defaults import estimate_tokens
from otel_gemini.testing._gemini_handler import GeminiHandler
from otel_gemini.testing._gemini_inprocess import transports
from otel_gemini.testing._gemini_interactions import (
    CREATE_INTERACTION,
    GET_INTERACTION,
    InteractionReply,
)
from otel_gemini.testing._gemini_live_interactions import (
    LiveInteractionHandler,
    LiveInteractionScript,
)
from otel_gemini.testing._gemini_live_script import (
    ClientEvent,
    CloseConnection,
    DropConnection,
    GenerationComplete,
    InputTranscription,
    Interrupted,
    LiveRawMessage,
    LiveScript,
    LiveStep,
    LiveUsage,
    ModelAudio,
    ModelText,
    OutputTranscription,
    ToolCall,
    ToolCallCancellation,
    TurnComplete,
    WaitFor,
)
from otel_gemini.testing._gemini_live_server import LiveHandler, RecordedLiveSession
from otel_gemini.testing._gemini_live_tls import SelfSignedCertificate
from otel_gemini.testing._gemini_replies import (
    EmbedReply,
    ErrorReply,
    GenerateReply,
    JsonReply,
    MalformedKind,
    RawReply,
    ScriptedReply,
    StreamReply,
    UsageOn,
    error_reply,
    function_call_reply,
    malformed_reply,
    stream_reply,
    text_reply,
)
from otel_gemini.testing._gemini_requests import RecordedRequest
from otel_gemini.testing._gemini_usage import ScriptedUsage
from otel_gemini.testing._uvicorn_thread import UvicornThread

__all__ = [
    "BatchReply",
    "ClientEvent",
    "CloseConnection",
    "DropConnection",
    "EmbedReply",
    "ErrorReply",
    "FakeGemini",
    "GenerateReply",
    "GenerationComplete",
    "InputTranscription",
    "InteractionReply",
    "Interrupted",
    "JsonReply",
    "LiveRawMessage",
    "LiveScript",
    "LiveStep",
    "LiveUsage",
    "ModelAudio",
    "ModelText",
    "OutputTranscription",
    "RawReply",
    "RecordedLiveSession",
    "RecordedRequest",
    "ScriptedReply",
    "ScriptedUsage",
    "StreamReply",
    "ToolCall",
    "ToolCallCancellation",
    "TurnComplete",
    "WaitFor",
    "error_reply",
    "estimate_tokens",
    "fake_credentials",
    "function_call_reply",
    "live_client_takes_ssl_context",
    "malformed_reply",
    "stream_reply",
    "text_reply",
]

FAKE_API_KEY = "fake-gemini-api-key"
DEFAULT_PROJECT = "fake-project"
DEFAULT_LOCATION = "us-central1"
_INPROCESS_BASE_URL = "http://fake-gemini.invalid"


def fake_credentials() -> Credentials:
    """Google credentials with a fixed bearer token that never refresh (no network, no ADC)."""
    return OAuth2Credentials(token="fake-gemini-token")  # type: ignore[no-untyped-call]


class FakeGemini:
    """A fake Gemini REST API on ``127.0.0.1`` (a free port), served by uvicorn on a thread.

    Use it as a context manager or call :meth:`start` / :meth:`stop`. Script replies with the
    ``add_*`` methods, read what arrived in :attr:`requests`, and get real google-genai clients
    pointed at it with :meth:`client` (over loopback) or :meth:`inprocess_client` (no sockets,
    for benchmarks). Pass ``ssl_certfile`` / ``ssl_keyfile`` to serve HTTPS, or ``tls=True``
    for HTTPS with a self-signed certificate made at runtime — which the Live API needs, as
    google-genai opens its WebSocket with ``wss://`` only (see :meth:`add_live_session`).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        tls: bool = False,
    ) -> None:
        self._handler = GeminiHandler()
        self._live = LiveHandler()
        self._live_interactions = LiveInteractionHandler()
        self._certificate: SelfSignedCertificate | None = None
        if tls and ssl_certfile is None:
            self._certificate = SelfSignedCertificate()
            weakref.finalize(self, self._certificate.remove)
            ssl_certfile, ssl_keyfile = self._certificate.certfile, self._certificate.keyfile
        self._ssl_certfile = ssl_certfile
        self.host = host
        self.app: Starlette = build_app(self._handler, self._extra_routes())
        """The ASGI app; it can also be mounted elsewhere or driven by an ASGI test client."""
        self._server = UvicornThread(
            self.app,
            host=host,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            name="fake-gemini",
        )

    def _extra_routes(self) -> list[BaseRoute]:
        """Routes served before the REST catch-all: the Live API and Live interactions
        WebSockets."""
        return [*self._live.routes(), *self._live_interactions.routes()]

    # --- lifecycle ---

    def start(self, timeout: float = 10.0) -> FakeGemini:
        """Starts serving and returns once the port accepts connections."""
        self._server.start(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stops serving (open connections are closed); a no-op when not started."""
        self._server.stop(timeout)

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port (0 before the first start)."""
        return self._server.port

    @property
    def scheme(self) -> str:
        return "https" if self._ssl_certfile else "http"

    @property
    def base_url(self) -> str:
        """``http(s)://127.0.0.1:{port}``, for ``types.HttpOptions(base_url=...)``."""
        if not self._server.running:
            raise RuntimeError("FakeGemini is not started: use start() or a with block")
        return f"{self.scheme}://{self.host}:{self.port}"

    # --- recording ---

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since the last :meth:`reset`, oldest first (a copy)."""
        return self._handler.requests

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Blocks until at least ``count`` requests arrived; raises ``TimeoutError`` if not."""
        return self._handler.wait_for_requests(count, timeout)

    @property
    def pending(self) -> list[ScriptedReply]:
        """Scripted replies not yet taken by a request."""
        return self._handler.pending

    def reset(self) -> None:
        """Forgets scripted replies and live sessions, and recorded requests and sessions."""
        self._handler.reset()
        self._live.reset()
        self._live_interactions.reset()

    # --- scripting ---

    def add(self, reply: ScriptedReply, *, model: str | None = None) -> None:
        """Queues ``reply``; with ``model``, only a request for that model takes it."""
        self._handler.enqueue(reply, model)

    def add_text(
        self,
        text: str,
        *,
        usage: ScriptedUsage | None = None,
        finish_reason: str = "STOP",
        response_id: str | None = None,
        model_version: str | None = None,
        thought: str | None = None,
        model: str | None = None,
    ) -> None:
        """Queues a text answer (see :func:`text_reply`)."""
        self.add(
            text_reply(
                text,
                usage=usage,
                finish_reason=finish_reason,
                response_id=response_id,
                model_version=model_version,
                thought=thought,
            ),
            model=model,
        )

    def add_function_call(
        self,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        usage: ScriptedUsage | None = None,
        response_id: str | None = None,
        model_version: str | None = None,
        model: str | None = None,
    ) -> None:
        """Queues an answer with one ``functionCall`` part (see :func:`function_call_reply`)."""
        self.add(
            function_call_reply(
                (name, args or {}),
                usage=usage,
                response_id=response_id,
                model_version=model_version,
            ),
            model=model,
        )

    def add_stream(
        self,
        texts: Sequence[str],
        *,
        usage: ScriptedUsage | None = None,
        usage_on: UsageOn = "every",
        chunk_usages: Sequence[ScriptedUsage | None] | None = None,
        finish_reason: str = "STOP",
        response_id: str | None = None,
        model_version: str | None = None,
        abort_after: int | None = None,
        error_after: int | None = None,
        error_code: int = 500,
        model: str | None = None,
    ) -> None:
        """Queues a ``streamGenerateContent`` answer, one chunk per text (see
        :func:`stream_reply` for how usage is spread over the chunks).

        ``abort_after=n`` drops the connection after n chunks; ``error_after=n`` sends an
        in-band ``{"error": ...}`` event with ``error_code`` after n chunks."""
        self.add(
            stream_reply(
                texts,
                usage=usage,
                usage_on=usage_on,
                chunk_usages=chunk_usages,
                finish_reason=finish_reason,
                response_id=response_id,
                model_version=model_version,
                abort_after=abort_after,
                error_after=error_after,
                error_code=error_code,
            ),
            model=model,
        )

    def add_error(
        self,
        code: int,
        message: str | None = None,
        *,
        status: str | None = None,
        retry_after: int | None = None,
        model: str | None = None,
    ) -> None:
        """Queues a Google API error (``{"error": {code, message, status}}``) for any rpc."""
        self.add(error_reply(code, message, status=status, retry_after=retry_after), model=model)

    def add_interaction(
        self,
        texts: str | Sequence[str],
        *,
        usage: ScriptedUsage | None = None,
        status: str = "completed",
        continuation_token: str | None = None,
        interaction_id: str | None = None,
        stream_error: str | None = None,
        model: str | None = None,
        updated: str | None = None,
        fetch: bool = False,
        agent: str | None = None,
    ) -> None:
        """Queues an answer to ``interactions.create`` (with ``fetch=True``: to
        ``interactions.get``) (see :class:`InteractionReply`): the ``Interaction``, or when
        the request streams, one ``step.delta`` per text. A fetched interaction's ``model``
        is the one it names (a get request names none). With ``agent``, the interaction is
        that agent's (``create(agent=...)``, which names no model): ``model``, if given, is
        the model the answer names; only a request for that agent takes it."""
        names_model = fetch or agent is not None
        self.add(
            InteractionReply(
                (texts,) if isinstance(texts, str) else tuple(texts),
                usage=usage,
                status=status,
                continuation_token=continuation_token,
                interaction_id=interaction_id,
                stream_error=stream_error,
                model=model if names_model else None,
                updated=updated,
                agent=agent,
                rpcs=frozenset({GET_INTERACTION if fetch else CREATE_INTERACTION}),
            ),
            # A request's ``model`` is the agent it names, if any (a get names none).
            model=None if fetch else agent or model,
        )

    def add_malformed(
        self, kind: MalformedKind = "invalid_json", *, status: int = 200, model: str | None = None
    ) -> None:
        """Queues a broken body for any rpc: ``invalid_json``, ``wrong_shape`` or ``empty``."""
        self.add(malformed_reply(kind, status=status), model=model)

    def add_embeddings(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        usage: ScriptedUsage | None = None,
        token_counts: Sequence[int] | None = None,
        model: str | None = None,
    ) -> None:
        """Queues embedding vectors for whichever embedding rpc the client uses."""
        self.add(EmbedReply(vectors, usage=usage, token_counts=token_counts), model=model)

    def add_afc_exchange(
        self,
        function_name: str,
        args: Mapping[str, Any],
        *,
        call_usage: ScriptedUsage,
        final_text: str,
        final_usage: ScriptedUsage,
        model: str | None = None,
    ) -> None:
        """Queues one automatic-function-calling round trip: a ``functionCall`` answer with
        ``call_usage``, then the final text with ``final_usage``.

        With a Python function named ``function_name`` in ``config.tools``, one
        ``generate_content`` call then makes two HTTP requests.
        """
        self.add_function_call(function_name, args, usage=call_usage, model=model)
        self.add_text(final_text, usage=final_usage, model=model)

    # --- Live API ---

    def add_batch(
        self,
        name: str,
        *,
        model: str,
        state: str = "BATCH_STATE_SUCCEEDED",
        responses: Sequence[tuple[str, ScriptedUsage]] = (),
        end_time: str | None = None,
    ) -> None:
        """Queues an answer to ``batches.get`` (see :class:`BatchReply`): the job ``name``
        (``batches/...``) in ``state``, with an inlined response per ``(text, usage)``."""
        self.add(BatchReply(name, model, state, tuple(responses), end_time))

    def add_batch_list(self, jobs: Sequence[BatchReply]) -> None:
        """Queues an answer to ``batches.list`` (one page): ``jobs``, each a
        :class:`BatchReply` as :meth:`add_batch` makes them."""
        self.add(BatchListReply(tuple(jobs)))

    def add_live_interaction(
        self,
        texts: str | Sequence[str] = "Hello",
        *,
        usage: ScriptedUsage | None = None,
        model: str | None = None,
    ) -> None:
        """Queues how the next Live interaction connection (``interactions.connect``) runs:
        ``interaction.connected`` (naming ``model``), each ``input`` answered with one output
        step of ``texts``, and ``interaction.complete`` with ``interaction.completed``
        reporting ``usage``."""
        self._live_interactions.enqueue(
            LiveInteractionScript(
                (texts,) if isinstance(texts, str) else tuple(texts), usage, model
            )
        )

    def add_live_session(self, script: LiveScript) -> None:
        """Queues a scripted Live API session; the next connection (for ``script.model``, if
        set) plays it. Unscripted connections answer each client turn with 0.2 s of audio.
        Needs a TLS server (``FakeGemini(tls=True)``)."""
        self._live.enqueue(script)

    @property
    def live_sessions(self) -> list[RecordedLiveSession]:
        """Live API connections since the last :meth:`reset`, oldest first (a copy)."""
        return self._live.sessions

    @property
    def pending_live_sessions(self) -> list[LiveScript]:
        """Live session scripts not yet played."""
        return self._live.pending

    def wait_for_live_sessions(self, count: int, timeout: float = 5.0) -> list[RecordedLiveSession]:
        """Blocks until at least ``count`` Live connections arrived; ``TimeoutError`` if not."""
        return self._live.wait_for_sessions(count, timeout)

    def ca_bundle(self) -> str:
        """A CA bundle file trusting this server's generated certificate (plus the usual roots),
        for ``SSL_CERT_FILE``: google-genai 1.x's Live client takes no SSL context, so that is
        how it is told to trust the fake (google-genai 3.x clients from :meth:`client` trust it
        already)."""
        if self._certificate is None:
            raise RuntimeError("ca_bundle() needs FakeGemini(tls=True)")
        return self._certificate.ca_bundle()

    # --- clients ---

    def client(
        self,
        *,
        vertexai: bool = False,
        project: str = DEFAULT_PROJECT,
        location: str = DEFAULT_LOCATION,
        http_options: Any = None,
        **kwargs: Any,
    ) -> genai.Client:
        """A real ``google.genai.Client`` pointed at this server over loopback.

        The Gemini Developer API client uses a dummy API key. With ``vertexai=True`` it is a
        Vertex AI client for ``project`` / ``location`` with :func:`fake_credentials`; with
        ``vertexai=True, api_key=...`` a Vertex AI express-mode client (no project).
        ``http_options`` (a ``types.HttpOptions`` or dict) and other keyword arguments go to
        the client; ``base_url`` is always this server.

        Keep a reference to the returned client while you use it: google-genai 3.x closes the
        HTTP client when the ``Client`` object is garbage collected, so
        ``fake.client().models.generate_content(...)`` can fail on a closed client.
        """
        options = self._http_options(http_options, self.base_url)
        if self._ssl_certfile:
            # Trust this server's certificate unless the caller configured verification.
            context = ssl.create_default_context(cafile=self._ssl_certfile)
            for key in ("client_args", "async_client_args"):
                options[key] = {"verify": context, **(options.get(key) or {})}
            if live_client_takes_ssl_context():
                # The Live API's WebSocket reads async_client_args["ssl"] (google-genai 3.x).
                options["async_client_args"] = {"ssl": context, **options["async_client_args"]}
        return _make_client(options, vertexai, project, location, kwargs)

    def inprocess_client(
        self,
        *,
        vertexai: bool = False,
        project: str = DEFAULT_PROJECT,
        location: str = DEFAULT_LOCATION,
        http_options: Any = None,
        **kwargs: Any,
    ) -> genai.Client:
        """A real ``google.genai.Client`` whose HTTP calls go to this fake without sockets.

        The server need not be started. Requests go through mock transports of the httpx
        flavour the SDK uses (``httpx2`` on google-genai 3.x, ``httpx`` on 1.x) into the same
        handler, so scripting and :attr:`requests` work as over loopback. On google-genai 1.x
        with ``aiohttp`` installed, async streaming bypasses httpx and cannot be served
        in-process.
        """
        options = self._http_options(http_options, _INPROCESS_BASE_URL)
        sync_transport, async_transport = transports(self._handler)
        options["client_args"] = {**(options.get("client_args") or {}), "transport": sync_transport}
        options["async_client_args"] = {
            **(options.get("async_client_args") or {}),
            "transport": async_transport,
        }
        return _make_client(options, vertexai, project, location, kwargs)

    @staticmethod
    def _http_options(http_options: Any, base_url: str) -> dict[str, Any]:
        if http_options is None:
            options: dict[str, Any] = {}
        elif isinstance(http_options, Mapping):
            options = dict(http_options)
        else:
            options = http_options.model_dump(exclude_none=True)
        options["base_url"] = base_url
        return options


def live_client_takes_ssl_context() -> bool:
    """Whether this google-genai passes ``async_client_args["ssl"]`` to the Live API's
    WebSocket (3.x). 1.x does not (it would pass it to httpx, which fails): its Live client
    trusts what ``SSL_CERT_FILE`` names (see :meth:`FakeGemini.ca_bundle`)."""
    from google.genai import _api_client

    return hasattr(_api_client.BaseApiClient, "_ensure_websocket_ssl_ctx")


def _make_client(
    options: dict[str, Any], vertexai: bool, project: str, location: str, kwargs: dict[str, Any]
) -> genai.Client:
    http_options = types.HttpOptions(**options)
    if vertexai and "api_key" in kwargs:  # Vertex AI express mode: no project, no credentials
        return genai.Client(vertexai=True, http_options=http_options, **kwargs)
    if vertexai:
        kwargs.setdefault("credentials", fake_credentials())
        return genai.Client(
            vertexai=True,
            project=project,
            location=location,
            http_options=http_options,
            **kwargs,
        )
    kwargs.setdefault("api_key", FAKE_API_KEY)
    return genai.Client(http_options=http_options, **kwargs)
