"""The fake Gemini's Live API endpoint: a WebSocket route playing :class:`LiveScript` sessions.

Serves the paths google-genai connects to —
``/ws/google.ai.generativelanguage.{v1,v1beta,v1alpha}.GenerativeService.BidiGenerateContent``
(and ``...Constrained`` for ephemeral tokens) and the Vertex AI
``/ws/google.cloud.aiplatform.{version}.LlmBidiService/BidiGenerateContent`` — and records
every session: the setup message and each client message, as JSON.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from otel_gemini.testing._gemini_live_script import (
    CloseConnection,
    DropConnection,
    LiveScript,
    ModelAudio,
    TurnComplete,
    WaitFor,
    client_audio_bytes,
    client_events,
)
from otel_gemini.testing._gemini_usage import ScriptedUsage

_logger = logging.getLogger("otel_gemini.testing")

LIVE_PATHS = (
    "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent",
    "/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContentConstrained",
    "/ws/google.cloud.aiplatform.{version}.LlmBidiService/BidiGenerateContent",
)

# What an unscripted session answers to each client turn (see docs/testing-fake-gemini.md).
DEFAULT_REPLY_AUDIO_SECONDS = 0.2
DEFAULT_REPLY_USAGE = ScriptedUsage(
    prompt=10,
    candidates=5,
    prompt_by_modality={"TEXT": 10},
    candidates_by_modality={"AUDIO": 5},
)


@dataclass
class RecordedLiveSession:
    """One Live API WebSocket connection as the fake saw it. Fields fill in as it runs."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case header names."""
    setup: dict[str, Any] = field(default_factory=dict)
    """The client's first message (``{"setup": {"model": ..., ...}}``)."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Every later client message, parsed, in arrival order."""
    scripted: bool = False
    vertex: bool = False
    """A Vertex AI connection (``LlmBidiService``): usage is rendered the Vertex way."""
    ended: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set when the connection is over (either side closed it, or the fake dropped it)."""

    @property
    def model(self) -> str:
        """The ``setup.model`` without its ``models/`` (or Vertex resource) prefix."""
        setup = self.setup.get("setup", {})
        model = str(setup.get("model", "")) if isinstance(setup, Mapping) else ""
        return model.rsplit("/", 1)[-1]

    @property
    def audio_bytes_received(self) -> int:
        """Decoded bytes of realtime audio the client sent."""
        return sum(client_audio_bytes(message) for message in list(self.messages))

    def events(self) -> list[set[str]]:
        """The client event names (see ``ClientEvent``) of each message."""
        return [client_events(message) for message in list(self.messages)]

    def wait_ended(self, timeout: float = 5.0) -> None:
        """Blocks until the connection is over; raises ``TimeoutError`` if not in time."""
        if not self.ended.wait(timeout):
            raise TimeoutError(f"live session on {self.path} still open after {timeout} s")


class LiveHandler:
    """Live session scripts (a FIFO queue) and recordings. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queue: list[LiveScript] = []
        self._sessions: list[RecordedLiveSession] = []

    def enqueue(self, script: LiveScript) -> None:
        with self._lock:
            self._queue.append(script)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._sessions.clear()

    @property
    def pending(self) -> list[LiveScript]:
        with self._lock:
            return list(self._queue)

    @property
    def sessions(self) -> list[RecordedLiveSession]:
        with self._lock:
            return list(self._sessions)

    def wait_for_sessions(self, count: int, timeout: float) -> list[RecordedLiveSession]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._sessions) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"fake Gemini got {len(self._sessions)} live sessions, expected {count}"
                    )
                self._lock.wait(remaining)
            return list(self._sessions)

    def _take(self, model: str) -> LiveScript | None:
        with self._lock:
            for index, script in enumerate(self._queue):
                if script.model is None or script.model.rsplit("/", 1)[-1] == model:
                    return self._queue.pop(index)
        return None

    def _record(self, session: RecordedLiveSession) -> None:
        with self._lock:
            self._sessions.append(session)
            self._lock.notify_all()

    # --- the WebSocket endpoint ---

    async def serve(self, websocket: WebSocket) -> None:
        recorded = RecordedLiveSession(
            path=websocket.url.path,
            query=dict(websocket.query_params),
            headers={key.lower(): value for key, value in websocket.headers.items()},
            vertex="LlmBidiService" in websocket.url.path,
        )
        send = _vertex_sender(websocket) if recorded.vertex else _sender(websocket)
        try:
            await websocket.accept()
            recorded.setup = await receive_json(websocket)
            script = self._take(recorded.model)
            recorded.scripted = script is not None
            self._record(recorded)
            setup_complete: dict[str, Any] = {}
            if script is not None and script.session_id is not None:
                setup_complete["sessionId"] = script.session_id
            await send({"setupComplete": setup_complete})
            if script is None:
                await _play_default(websocket, recorded, send)
                return
            for step in script.steps:
                if isinstance(step, WaitFor):
                    await _wait_for(websocket, recorded, step)
                elif isinstance(step, DropConnection):
                    _abort(websocket)
                    return
                elif isinstance(step, CloseConnection):
                    await websocket.close(step.code, step.reason)
                    return
                else:
                    for message in step.messages():
                        await send(message)
            while True:  # the script is over: record until the client closes
                recorded.messages.append(await receive_json(websocket))
        except WebSocketDisconnect:
            pass
        except RuntimeError as error:  # sending after the client went away
            _logger.debug("fake live session ended: %r", error)
        finally:
            recorded.ended.set()

    def routes(self) -> list[BaseRoute]:
        return [WebSocketRoute(path, self.serve) for path in LIVE_PATHS]


async def receive_json(websocket: WebSocket) -> dict[str, Any]:
    """The next client message as a JSON object; raises ``WebSocketDisconnect`` once closed."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = message.get("text")
    if raw is None:
        raw = (message.get("bytes") or b"").decode("utf-8")
    parsed = json.loads(raw) if raw else {}
    return parsed if isinstance(parsed, dict) else {"_": parsed}


Sender = Callable[[Mapping[str, Any]], Awaitable[None]]


def _sender(websocket: WebSocket) -> Sender:
    async def send(message: Mapping[str, Any]) -> None:
        # The real service sends binary frames of JSON; google-genai accepts either.
        await websocket.send_bytes(json.dumps(message).encode("utf-8"))

    return send


# Vertex AI's Live API names the output counts as generateContent does.
_VERTEX_USAGE_NAMES = {
    "responseTokenCount": "candidatesTokenCount",
    "responseTokensDetails": "candidatesTokensDetails",
}


def _vertex_sender(websocket: WebSocket) -> Sender:
    send = _sender(websocket)

    async def send_vertex(message: Mapping[str, Any]) -> None:
        usage = message.get("usageMetadata")
        if isinstance(usage, Mapping):
            renamed = {_VERTEX_USAGE_NAMES.get(key, key): value for key, value in usage.items()}
            message = {**message, "usageMetadata": renamed}
        await send(message)

    return send_vertex


async def _wait_for(websocket: WebSocket, recorded: RecordedLiveSession, step: WaitFor) -> None:
    seen = 0
    while seen < step.count:
        message = await receive_json(websocket)
        recorded.messages.append(message)
        if step.event in client_events(message):
            seen += 1


async def _play_default(websocket: WebSocket, recorded: RecordedLiveSession, send: Sender) -> None:
    """Unscripted: answer each end of a client turn with a little audio and usage."""
    ends = {"turn_complete", "audio_stream_end", "activity_end"}
    reply = (
        ModelAudio(DEFAULT_REPLY_AUDIO_SECONDS, chunks=2),
        TurnComplete(usage=DEFAULT_REPLY_USAGE),
    )
    while True:
        message = await receive_json(websocket)
        recorded.messages.append(message)
        if ends & client_events(message):
            for step in reply:
                for server_message in step.messages():
                    await send(server_message)


def _abort(websocket: WebSocket) -> None:
    """Drops the connection under the WebSocket (no close frame): what a network failure does."""
    # Starlette keeps the server's ASGI send callable, a bound method of uvicorn's protocol.
    protocol = getattr(getattr(websocket, "_send", None), "__self__", None)
    transport = getattr(protocol, "transport", None)
    if transport is None:
        raise RuntimeError("cannot reach the connection's transport to drop it")
    transport.abort()
