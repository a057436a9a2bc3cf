"""Connection limits for the HTTP ports of ``serve`` and ``gateway`` (uvicorn, h11).

uvicorn alone lets a connection that never sends a byte stay open forever (its only timer,
``timeout_keep_alive``, starts after a first response), and its ``limit_concurrency``
counts *connections*: 255 silent sockets made every request answer 503, with no
``Retry-After``. So the servers run uvicorn with:

- :func:`guarded_protocol`: uvicorn's h11 protocol plus a header deadline (the whole request
  head within ``header_timeout`` of the connection or of the request's first byte, so
  slow-drip headers do not help), a body stall timeout (no body bytes for ``body_timeout``
  while the app waits for them) and a cap on open connections that closes the connection
  idle the longest (no request in progress) to make room; keep-alive idleness stays
  uvicorn's ``timeout_keep_alive`` (``idle_timeout``);
- :class:`RequestLimit`: at most ``max_requests`` requests in progress; beyond, ``503`` with
  ``Retry-After`` (idle connections no longer count);
- :class:`GuardedServer`: a TLS handshake must finish within ``header_timeout`` too (asyncio's
  default is 60 s, and the protocol above only sees a connection once it has).

The limits themselves (:class:`~otel_gemini._listen_security.ConnectionLimits`, validated
there) live with the listeners' other settings, which load no uvicorn. See docs/security.md
("Connections").
"""

from __future__ import annotations

import asyncio
import functools
import math
import socket
from typing import Any, Final

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from otel_gemini._listen_security import ConnectionLimits

_HEAD: Final = "head"
_BODY: Final = "body"
_APP: Final = "app"


class _GuardedH11Protocol(H11Protocol):
    limits: ConnectionLimits = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._phase = _HEAD
        self._last_active = 0.0

    # --- the protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._last_active = self.loop.time()
        self._make_room()
        if not self.transport.is_closing():
            self._arm(self.limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        self._last_active = self.loop.time()
        super().data_received(data)
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._last_active = self.loop.time()
        self._follow()

    # --- timers -------------------------------------------------------------------------------

    def _follow(self) -> None:
        """Arms the timer that fits where the request stands (h11's view of the client)."""
        if self.transport is None or self.transport.is_closing():
            self._cancel()
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            busy = self.cycle is not None and not self.cycle.response_complete
            if busy or self.conn.our_state is not h11.IDLE:
                return
            if self._phase != _HEAD and self._incomplete_head():
                # The first bytes of the next request: its head has header_timeout in all
                # (not per byte, so dripping a byte a second does not keep it open).
                self._phase = _HEAD
                self._arm(self.limits.header_timeout)
            elif self._phase != _HEAD:
                # Between requests: uvicorn's keep-alive timer (idle_timeout) is running.
                self._cancel()
                self._phase = _APP
        elif state is h11.SEND_BODY:
            self._phase = _BODY
            self._arm(self.limits.body_timeout)  # re-armed at every chunk: a stall timeout
        else:
            self._phase = _APP
            self._cancel()

    def _incomplete_head(self) -> bool:
        # h11 keeps a partial request head in its receive buffer.
        trailing = self.conn.trailing_data[0]
        return bool(trailing)

    def _arm(self, seconds: float) -> None:
        self._cancel()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self._phase == _BODY and self.flow.read_paused:
            # We stopped reading (the app is behind), not the client: not a stall.
            self._arm(self.limits.body_timeout)
            return
        if self._phase in (_HEAD, _BODY):
            self.transport.close()

    # --- connection cap -----------------------------------------------------------------------

    def _idle(self) -> bool:
        return (self.cycle is None or self.cycle.response_complete) and self._phase != _BODY

    def _make_room(self) -> None:
        if len(self.connections) <= self.limits.max_connections:
            return
        candidates = [
            connection
            for connection in self.connections
            if isinstance(connection, _GuardedH11Protocol)
            and connection is not self
            and connection._idle()
            and not connection.transport.is_closing()
        ]
        if candidates:
            # The one silent the longest: an attacker's idle sockets go before a client's.
            oldest = min(candidates, key=lambda connection: connection._last_active)
            oldest.transport.close()
            return
        retry = max(1, math.ceil(self.limits.retry_after))
        self.transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n"
            b"retry-after: %d\r\ncontent-length: 21\r\nconnection: close\r\n\r\n"
            b"too many connections\n" % retry
        )
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with ``limits``' header and body timeouts and connection cap
    (pass it as ``uvicorn.Config(http=...)``)."""
    return type("GuardedH11Protocol", (_GuardedH11Protocol,), {"limits": limits})


class RequestLimit:
    """ASGI middleware: at most ``limits.max_requests`` HTTP requests in progress; the
    next ones get ``503`` with ``Retry-After`` at once."""

    def __init__(self, app: Any, limits: ConnectionLimits) -> None:
        self.app = app
        self.limits = limits
        self.in_progress = 0
        retry = str(max(1, math.ceil(limits.retry_after))).encode()
        self._headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", retry),
            (b"connection", b"close"),
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limits.max_requests:
            body = b'{"error":"busy","message":"too many requests in progress; retry later"}'
            await send({"type": "http.response.start", "status": 503, "headers": self._headers})
            await send({"type": "http.response.body", "body": body})
            return
        self.in_progress += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1


def uvicorn_options(limits: ConnectionLimits) -> dict[str, Any]:
    """``uvicorn.Config`` keyword arguments enforcing ``limits`` (wrap the app in
    :class:`RequestLimit` too)."""
    return {
        "http": guarded_protocol(limits),
        "timeout_keep_alive": max(1, math.ceil(limits.idle_timeout)),
        # Connections are capped by the protocol, requests by RequestLimit: uvicorn's own
        # limit counts idle connections, which is what let silent sockets lock everyone out.
        "limit_concurrency": None,
    }


class GuardedServer(uvicorn.Server):
    """uvicorn's server, with TLS handshakes bounded by ``handshake_timeout`` seconds."""

    def __init__(self, config: uvicorn.Config, *, handshake_timeout: float | None = None) -> None:
        super().__init__(config)
        self.handshake_timeout = handshake_timeout

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        if self.config.ssl is None or self.handshake_timeout is None:
            await super().startup(sockets)
            return
        # uvicorn offers no setting for it: its listeners are created with this loop's
        # create_server, so that call gets the timeout for as long as startup runs.
        loop.create_server = functools.partial(  # type: ignore[method-assign]
            loop.create_server, ssl_handshake_timeout=self.handshake_timeout
        )
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server  # back to the class's method
