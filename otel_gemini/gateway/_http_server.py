"""The gateway's HTTP listener: uvicorn on its own thread, stopped gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

import uvicorn

from otel_gemini._background import BackgroundLoop
from otel_gemini._http_limits import GuardedServer, uvicorn_options
from otel_gemini._listen_security import ConnectionLimits


class _Server(GuardedServer):
    """Sets ``ready`` once listening; exits on :meth:`request_exit` (no polling delay)."""

    def __init__(
        self, config: uvicorn.Config, ready: threading.Event, handshake_timeout: float
    ) -> None:
        super().__init__(config, handshake_timeout=handshake_timeout)
        self._ready = ready
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        await super().startup(sockets)
        self._ready.set()

    async def main_loop(self) -> None:
        await self.on_tick(0)
        assert self._exit is not None
        await self._exit.wait()

    def request_exit(self) -> None:
        self.should_exit = True
        loop, event = self._loop, self._exit
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed: already gone
                loop.call_soon_threadsafe(event.set)


class HttpListener:
    """Serves an ASGI app on ``host:port`` (0: a free port) from a supervised background
    thread: if uvicorn ever stops on its own, it is started again on the same port."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        limits: ConnectionLimits,
        grace: float,
        ssl_options: dict[str, Any] | None = None,
    ) -> None:
        self._host = host
        self._socket = self._bind(port)
        self.port: int = self._socket.getsockname()[1]
        self._config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            # Header, body and idle timeouts and the connection cap (_http_limits.py);
            # the app is wrapped in RequestLimit by the caller.
            **uvicorn_options(limits),
            **(ssl_options or {}),
            timeout_graceful_shutdown=max(1, int(grace)),
        )
        self._ready = threading.Event()
        self._handshake_timeout = limits.header_timeout
        self._server = _Server(self._config, self._ready, self._handshake_timeout)
        self._served = False
        self._error: BaseException | None = None
        self.loop = BackgroundLoop("gateway-http", self._run, last_run=False)

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, port))
        sock.listen(512)
        sock.setblocking(False)
        return sock

    def start(self, timeout: float = 10.0) -> None:
        self.loop.start()
        if not self._ready.wait(timeout) or not self._server.started:
            self.stop(1.0)
            raise RuntimeError(f"HTTP listener did not start: {self._error!r}")

    def _run(self) -> None:
        if self._served:
            # uvicorn stopped on its own (the supervisor restarts this body): serve anew on
            # the same port; the old server closed its socket.
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = self._bind(self.port)
            self._server = _Server(self._config, self._ready, self._handshake_timeout)
        self._served = True
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as error:  # reported by start(), and by the supervisor
            self._error = error
            raise
        finally:
            self._ready.set()

    def stop(self, timeout: float) -> None:
        """Stops accepting, lets requests in progress finish (up to the grace), returns."""
        self.loop.stop()
        self._server.request_exit()
        self.loop.join(timeout)
        self._socket.close()
