"""A small WSGI app for the gunicorn tests (tests/test_prefork.py): ``gunicorn _prefork_wsgi:app``,
and the same as an ASGI app for ``uvicorn _prefork_wsgi:asgi_app --workers N``.

``configure()`` runs at import: in the master with ``--preload`` (workers inherit the
pipeline through ``fork()``), else in each worker. The fake Gemini is ``FAKE_GEMINI_URL``.

- ``GET /call?n=N``: one ``generate_content`` under
  ``trace_attributes(user_id="server-<worker pid>", session_id="server-N")``; answers
  the worker's pid.
- ``GET /health[?flush=1]``: this worker's own health (JSON, after a flush if asked): its
  pid, status, loops, exporter counters, cost store counters and spool slot.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from google import genai

import otel_gemini
from otel_gemini import trace_attributes

telemetry = otel_gemini.configure(health_probe=False)
_clients: dict[int, genai.Client] = {}
_clients_lock = threading.Lock()  # gthread workers: one client each (a replaced one is closed)


def _client() -> genai.Client:
    # One per worker process: a client made in the master shares connections across fork().
    pid = os.getpid()
    with _clients_lock:
        if pid not in _clients:
            _clients[pid] = genai.Client(
                api_key="test-key", http_options={"base_url": os.environ["FAKE_GEMINI_URL"]}
            )
        return _clients[pid]


def _health() -> dict[str, Any]:
    report = telemetry.health()
    exporter = telemetry.exporter
    return {
        "pid": os.getpid(),
        "status": report.status.value,
        "reasons": list(report.reasons),
        "loops": [(loop.name, loop.state) for loop in report.loops],
        "sent": report.stats.sent,
        "cost_store": report.extra.get("cost_store"),
        "spool": str(exporter.spool_directory) if exporter is not None else None,
    }


def _meet_another_worker() -> None:
    """Holds a call until a second worker has taken one too (``PREFORK_RENDEZVOUS``: a
    directory), so concurrent calls are spread over the workers whatever the kernel's accept
    order: a sync worker held here cannot take the next connection, another one must. Bounded
    (10 s): a server with one worker goes on."""
    directory = os.environ.get("PREFORK_RENDEZVOUS")
    if not directory:
        return
    with open(os.path.join(directory, str(os.getpid())), "w"):
        pass
    deadline = time.monotonic() + 10
    while len(os.listdir(directory)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling another process's file, with a deadline


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/call":
        _meet_another_worker()
        number = parse_qs(environ.get("QUERY_STRING", "")).get("n", ["0"])[0]
        with trace_attributes(user_id=f"server-{os.getpid()}", session_id=f"server-{number}"):
            _client().models.generate_content(
                model="gemini-2.5-flash", contents=f"Question {number}?"
            )
        body = str(os.getpid()).encode()
    elif path == "/health":
        if parse_qs(environ.get("QUERY_STRING", "")).get("flush"):
            telemetry.force_flush(timeout=10)
        body = json.dumps(_health()).encode()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


async def asgi_app(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    """The same routes over ASGI (the work runs on a thread: the client is synchronous)."""
    if scope["type"] != "http":
        return
    environ = {"PATH_INFO": scope["path"], "QUERY_STRING": scope["query_string"].decode()}
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = int(status.split()[0])

    body = b"".join(await asyncio.to_thread(lambda: list(app(environ, start_response))))
    await send({"type": "http.response.start", "status": answer["status"], "headers": []})
    await send({"type": "http.response.body", "body": body})
