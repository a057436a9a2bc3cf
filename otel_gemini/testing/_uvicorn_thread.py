"""Serving an ASGI app with uvicorn on a background thread, on a loopback port picked by the OS.

Start and stop wait on events set by the server itself, never on timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

import uvicorn


class _SignallingServer(uvicorn.Server):
    """A uvicorn server that sets an event once it listens and exits as soon as asked.

    (uvicorn's own main loop polls ``should_exit`` every 0.1 s; waiting on an event instead
    makes stopping immediate. Signal handlers are left alone off the main thread by uvicorn.)
    """

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit_requested: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit_requested = asyncio.Event()
        await super().startup(sockets)
        self._ready.set()

    async def main_loop(self) -> None:
        await self.on_tick(0)  # sets the default response headers
        assert self._exit_requested is not None
        await self._exit_requested.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # A fake server going away drops its connections at once. uvicorn's graceful close
        # waits for them, and an idle TLS keep-alive connection in a client's pool never
        # answers the TLS close, which would make every stop take the whole grace period.
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        await super().shutdown(sockets)

    def request_exit(self) -> None:
        """Thread-safe: makes ``serve()`` shut down and return."""
        self.should_exit = True
        loop, event = self._loop, self._exit_requested
        if loop is not None and event is not None and not loop.is_closed():
            # RuntimeError: the loop closed in between, so the server is gone already.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)


def bind_loopback(host: str, port: int = 0) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0: a free port), not yet listening: connections to
    it are refused, and no other socket can take the port while it is open."""
    # proto must be IPPROTO_TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say so; with proto 0 every keep-alive request waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class UvicornThread:
    """One uvicorn server on its own thread and event loop, bound to ``host`` on a free port."""

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        name: str = "fake-server",
        bound_socket: socket.socket | None = None,
    ) -> None:
        """``bound_socket``: serve on this socket (from :func:`bind_loopback`, e.g. a port
        held while a fake refuses connections) instead of a new one on a free port."""
        self._app = app
        self._host = host
        self._bound_socket = bound_socket
        self._ssl_certfile = ssl_certfile
        self._ssl_keyfile = ssl_keyfile
        self._name = name
        self._server: _SignallingServer | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None
        self.port = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Binds the port, starts the server thread and returns once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already started")
        sock = self._bound_socket or bind_loopback(self._host)
        self._bound_socket = None
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            ssl_certfile=self._ssl_certfile,
            ssl_keyfile=self._ssl_keyfile,
            timeout_graceful_shutdown=1,
        )
        ready = threading.Event()
        self._server = _SignallingServer(config, ready)
        self._error = None
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=self._name, daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout) or not self._server.started:
            error = self._error
            self.stop()
            raise RuntimeError(f"{self._name} did not start") from error

    def _run(self, ready: threading.Event) -> None:
        assert self._server is not None and self._socket is not None
        try:
            asyncio.run(self._server.serve(sockets=[self._socket]))
        except BaseException as error:  # reported by start(); a thread must not die loudly
            self._error = error
        finally:
            ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Asks the server to exit and waits for its thread; a no-op when not started."""
        server, thread = self._server, self._thread
        if server is not None:
            server.request_exit()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"{self._name} did not stop within {timeout} s")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
