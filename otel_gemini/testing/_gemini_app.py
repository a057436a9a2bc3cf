"""The fake Gemini's ASGI app: Starlette routes in front of the GeminiHandler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from otel_gemini.testing._gemini_handler import GeminiHandler
from otel_gemini.testing._gemini_replies import HttpReply

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class ConnectionAborted(Exception):
    """Raised inside a response to make the server drop the connection mid-body."""


def _is_not_a_scripted_abort(record: logging.LogRecord) -> bool:
    """uvicorn logs an app exception with a traceback; a scripted abort is not an error."""
    return not (record.exc_info and isinstance(record.exc_info[1], ConnectionAborted))


def _quiet_scripted_aborts() -> None:
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if _is_not_a_scripted_abort not in uvicorn_errors.filters:
        uvicorn_errors.addFilter(_is_not_a_scripted_abort)


def build_app(handler: GeminiHandler, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """A Starlette app serving the Gemini REST API; ``extra_routes`` (e.g. a WebSocket route
    for the Live API) take precedence over the REST catch-all."""
    _quiet_scripted_aborts()

    async def rest(request: Request) -> Response:
        body = await request.body()
        reply = handler.handle(
            request.method,
            request.url.path,
            dict(request.query_params),
            dict(request.headers),
            body,
        )
        return _to_response(reply)

    routes: list[BaseRoute] = [*extra_routes, Route("/{path:path}", rest, methods=_METHODS)]
    return Starlette(routes=routes)


def _to_response(reply: HttpReply) -> Response:
    headers = dict(reply.headers)
    media_type = headers.pop("content-type", None)
    if len(reply.chunks) == 1 and not reply.abort and media_type != "text/event-stream":
        return Response(reply.chunks[0], reply.status, headers, media_type)

    async def body() -> AsyncIterator[bytes]:
        for chunk in reply.chunks:
            yield chunk
        if reply.abort:
            raise ConnectionAborted("fake Gemini dropped the connection as scripted")

    return StreamingResponse(body(), reply.status, headers, media_type)
