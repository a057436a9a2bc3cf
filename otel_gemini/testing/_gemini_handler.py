"""The fake Gemini's request handling, independent of how requests arrive (socket or in-process).

Scripted replies wait in one FIFO queue. A request takes the first queued reply that answers its
rpc and whose model key (if any) is the request's model; with none, it gets the default reply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from otel_gemini.testing._gemini_defaults import default_reply
from otel_gemini.testing._gemini_replies import HttpReply, ScriptedReply, google_error_body
from otel_gemini.testing._gemini_requests import RecordedRequest, parse_request


@dataclass(frozen=True)
class _Queued:
    reply: ScriptedReply
    model: str | None


class GeminiHandler:
    """Records requests and answers them from the script queue. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._queue: list[_Queued] = []
        self._requests: list[RecordedRequest] = []

    def enqueue(self, reply: ScriptedReply, model: str | None = None) -> None:
        with self._lock:
            self._queue.append(_Queued(reply, _bare_model(model)))

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def pending(self) -> list[ScriptedReply]:
        with self._lock:
            return [queued.reply for queued in self._queue]

    def wait_for_requests(self, count: int, timeout: float) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"fake Gemini got {len(self._requests)} requests, expected {count}"
                    )
                self._lock.wait(remaining)
            return list(self._requests)

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> HttpReply:
        """Records the request and returns the scripted (or default) reply."""
        request = parse_request(method.upper(), path, query, headers, body)
        with self._lock:
            request = replace(request, sequence=len(self._requests) + 1)
            self._requests.append(request)
            reply = self._take(request)
            self._lock.notify_all()
        if reply is not None:
            return reply.render(request)
        if body and request.json is None and request.method == "POST":
            return HttpReply.json(
                google_error_body(400, "Invalid JSON payload received."), status=400
            )
        return default_reply(request)

    def _take(self, request: RecordedRequest) -> ScriptedReply | None:
        for index, queued in enumerate(self._queue):
            if queued.model is not None and queued.model != request.model:
                continue
            if queued.reply.answers(request):
                del self._queue[index]
                return queued.reply
        return None


def _bare_model(model: str | None) -> str | None:
    if model is None:
        return None
    return model.rsplit("/", 1)[-1]
