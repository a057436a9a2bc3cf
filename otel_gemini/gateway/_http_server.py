"""The gateway's HTTP listener: uvicorn on its own thread, stopped gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    """Sets ``ready`` once listening; exits on :meth:`request_exit` (no polling delay)."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
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
    """Serves an ASGI app on ``host:port`` (0: a free port) from a background thread."""

    def __init__(
        self, app: Any, host: str, port: int, *, limit_concurrency: int, grace: float
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
        self._socket = sock
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            # Beyond this many connections uvicorn answers 503: memory stays bounded.
            limit_concurrency=limit_concurrency,
            timeout_graceful_shutdown=max(1, int(grace)),
        )
        self._ready = threading.Event()
        self._server = _Server(config, self._ready)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name="otel-gemini-gateway-http", daemon=True
        )

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout) or not self._server.started:
            self.stop(1.0)
            raise RuntimeError(f"HTTP listener did not start: {self._error!r}")

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as error:  # reported by start()
            self._error = error
        finally:
            self._ready.set()

    def stop(self, timeout: float) -> None:
        """Stops accepting, lets requests in progress finish (up to the grace), returns."""
        self._server.request_exit()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()
