"""HTTP transports that hand google-genai's requests straight to a GeminiHandler, no sockets.

The transports go in through ``HttpOptions(client_args={"transport": ...},
async_client_args={"transport": ...})``, which every supported google-genai version passes on to
its httpx client. google-genai 3.x talks through ``httpx2`` by default and picks the backend from
the transport's package, so the transport comes from ``httpx2`` when that SDK can use it and
from ``httpx`` otherwise (google-genai 1.x).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from otel_gemini.testing._gemini_handler import GeminiHandler
from otel_gemini.testing._gemini_replies import HttpReply


def httpx_module() -> ModuleType:
    """The httpx flavour google-genai's default client is built on (``httpx2`` or ``httpx``)."""
    from google.genai import _api_client

    if getattr(_api_client, "httpx2", None) is not None:
        return importlib.import_module("httpx2")
    return importlib.import_module("httpx")


def transports(handler: GeminiHandler) -> tuple[Any, Any]:
    """A (sync, async) pair of mock transports answering from ``handler``."""
    httpx: Any = httpx_module()

    class ReplyStream(httpx.SyncByteStream, httpx.AsyncByteStream):  # type: ignore[misc]
        """The reply body; a scripted abort surfaces as the protocol error httpx raises."""

        def __init__(self, reply: HttpReply) -> None:
            self._reply = reply

        def _chunks(self) -> Iterator[bytes]:
            yield from self._reply.chunks
            if self._reply.abort:
                raise httpx.RemoteProtocolError("fake Gemini dropped the connection as scripted")

        def __iter__(self) -> Iterator[bytes]:
            return self._chunks()

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in self._chunks():
                yield chunk

    def answer(request: Any) -> Any:
        reply = handler.handle(
            request.method,
            request.url.path,
            dict(request.url.params),
            dict(request.headers),
            request.content,
        )
        return httpx.Response(reply.status, headers=list(reply.headers), stream=ReplyStream(reply))

    return httpx.MockTransport(answer), httpx.MockTransport(answer)
