"""The fake Gemini's Live interactions WebSocket (``/{version}/interactions/live``).

The client connects to an interaction created earlier (``interaction.connect``) and the fake
answers ``interaction.connected``; then each ``input`` event gets one model output step
(``step.start``, a ``step.delta`` per scripted text, ``step.stop``), and
``interaction.complete`` gets ``interaction.completed`` with the scripted usage, after which
the fake closes. ``interaction.cancel`` and ``interaction.disconnect`` end it at once.
google-genai connects with ``ws://`` to an ``http://`` base URL, so no TLS is needed.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from otel_gemini.testing._gemini_live_server import receive_json
from otel_gemini.testing._gemini_usage import ScriptedUsage

LIVE_INTERACTIONS_PATH = "/{version}/interactions/live"


@dataclass(frozen=True)
class LiveInteractionScript:
    """How the fake runs one Live interaction connection: the text of each output step, the
    usage its ``interaction.completed`` reports and the model ``interaction.connected``
    names (none: left out)."""

    texts: Sequence[str] = ("Hello",)
    usage: ScriptedUsage | None = None
    model: str | None = None


class LiveInteractionHandler:
    """Plays queued scripts to Live interaction connections, one per connection in order;
    an unscripted connection gets ``LiveInteractionScript()``."""

    def __init__(self) -> None:
        self._scripts: deque[LiveInteractionScript] = deque()
        self._lock = threading.Lock()

    def enqueue(self, script: LiveInteractionScript) -> None:
        with self._lock:
            self._scripts.append(script)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()

    def _take(self) -> LiveInteractionScript:
        with self._lock:
            return self._scripts.popleft() if self._scripts else LiveInteractionScript()

    async def serve(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            connect = await receive_json(websocket)
            script = self._take()
            interaction = {"id": connect.get("id"), "status": "in_progress"}
            if script.model is not None:
                interaction["model"] = script.model
            await _send(
                websocket, {"event_type": "interaction.connected", "interaction": interaction}
            )
            index = 0
            while True:
                event_type = (await receive_json(websocket)).get("event_type")
                if event_type == "input":
                    await _send_step(websocket, index, script.texts)
                    index += 1
                elif event_type == "interaction.complete":
                    completed: dict[str, Any] = {
                        "event_type": "interaction.completed",
                        "status": {"code": 0},
                    }
                    if script.usage is not None:
                        completed["usage"] = script.usage.to_interaction_json()
                    await _send(websocket, completed)
                    await websocket.close()
                    return
                elif event_type in ("interaction.cancel", "interaction.disconnect"):
                    await websocket.close()
                    return
        except WebSocketDisconnect:
            return

    def routes(self) -> list[BaseRoute]:
        return [WebSocketRoute(LIVE_INTERACTIONS_PATH, self.serve)]


async def _send(websocket: WebSocket, event: dict[str, Any]) -> None:
    await websocket.send_text(json.dumps(event))


async def _send_step(websocket: WebSocket, index: int, texts: Sequence[str]) -> None:
    await _send(
        websocket, {"event_type": "step.start", "index": index, "step": {"type": "model_output"}}
    )
    for text in texts:
        delta = {"type": "text", "text": text}
        await _send(websocket, {"event_type": "step.delta", "index": index, "delta": delta})
    await _send(websocket, {"event_type": "step.stop", "index": index})
