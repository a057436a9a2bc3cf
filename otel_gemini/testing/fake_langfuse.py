"""A fake Langfuse for tests: the real exporter talks to it over loopback HTTP.

Example::

    from otel_gemini.export import LangfuseExporter
    from otel_gemini.testing import FakeLangfuse

    with FakeLangfuse() as langfuse:
        exporter = LangfuseExporter(spool_dir=tmp_path, **langfuse.exporter_settings())
        ...  # produce spans
        langfuse.refuse_connections()  # Langfuse goes away: connection refused
        langfuse.up()  # back, on the same port
        spans = langfuse.wait_for_spans(100)
        assert spans[0].attributes["gen_ai.request.model"] == "gemini-2.5-flash"

It enforces Langfuse's OTLP ingestion contract (``POST /api/public/otel/v1/traces``):
Basic auth with the configured keys (wrong keys 401, organization keys or suspended
ingestion 403), ``application/x-protobuf`` or ``application/json`` bodies (anything else
400), ``Content-Encoding: gzip`` (other encodings 400), ``x-langfuse-ingestion-version``
at most 4 (above: 400), and valid trace and span ids (one bad span rejects the whole
request with 400). It serves ``GET /api/public/health`` (no auth),
``GET /api/public/projects`` (auth) and the Metrics API ``GET /api/public/v2/metrics``
(auth; answers from the spans received, records the queries in :attr:`FakeLangfuse.metrics`).

What Langfuse would make of the spans: :meth:`FakeLangfuse.observations` maps each one as
Langfuse's own OTel ingestion code does (observation type, model, usage, cost, user,
session, input/output, tool definitions) and :meth:`FakeLangfuse.traces` groups them, a
trace's input and output taken from its root observation. The rules, and the Langfuse
files and commit they were read from, are in :mod:`otel_gemini.testing._langfuse_mapping`.

Its behaviour can be switched at any time: :meth:`up`, :meth:`refuse_connections` (the
listening socket is closed, so clients get "connection refused"), :meth:`respond_with`
(e.g. 500 or 503), :meth:`rate_limit` (429 with ``Retry-After``), :meth:`hang` (requests
never answered) and :meth:`slow`; :meth:`reject_spans_with_attribute` answers 400 to any
request holding a span with a given attribute.
"""

from __future__ import annotations

import socket
from types import TracebackType

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from otel_gemini.testing._langfuse_app import build_app
from otel_gemini.testing._langfuse_mapping import (
    MappedObservation,
    MappedTrace,
    latest_copies,
    map_observation,
    map_traces,
)
from otel_gemini.testing._langfuse_metrics import MetricsApi
from otel_gemini.testing._langfuse_otlp import AttributeValue, ReceivedSpan
from otel_gemini.testing._langfuse_state import UP, LangfuseState, Mode, ReceivedRequest
from otel_gemini.testing._uvicorn_thread import UvicornThread, bind_loopback

__all__ = [
    "DEFAULT_PUBLIC_KEY",
    "DEFAULT_SECRET_KEY",
    "AttributeValue",
    "FakeLangfuse",
    "MappedObservation",
    "MappedTrace",
    "ReceivedRequest",
    "ReceivedSpan",
]

DEFAULT_PUBLIC_KEY = "pk-lf-fake-public"
DEFAULT_SECRET_KEY = "sk-lf-fake-secret"


class FakeLangfuse:
    """A fake Langfuse on ``127.0.0.1`` (a free port), served by uvicorn on a thread.

    Use it as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        *,
        public_key: str = DEFAULT_PUBLIC_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        organization_keys: dict[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """``organization_keys`` (public -> secret) authenticate but are refused with 403."""
        self.public_key = public_key
        self.secret_key = secret_key
        self.host = host
        self._state = LangfuseState(public_key, secret_key, dict(organization_keys or {}))
        self.app: Starlette = build_app(self._state, self._extra_routes())
        """The ASGI app (mountable elsewhere, or drivable by an ASGI test client)."""
        self._server = UvicornThread(self.app, host=host, name="fake-langfuse")
        self._port = 0
        # While refusing connections: the port, bound but not listening, so that nothing else
        # (another test's server, a Collector given a "free" port) takes it before up().
        self._held_port: socket.socket | None = None

    def _extra_routes(self) -> list[BaseRoute]:
        """Routes beyond ingestion: the Metrics API (subclasses may add more)."""
        self.metrics = MetricsApi(self._state, self._state.spans)
        """The Metrics API: ``queries`` received, ``wait_for_queries(n)``, ``observations()``."""
        return self.metrics.routes()

    # --- lifecycle ---

    def start(self, timeout: float = 10.0) -> FakeLangfuse:
        """Starts serving and returns once the port accepts connections."""
        self._server.start(timeout)
        self._port = self._server.port
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stops serving; hung requests are released first. A no-op when not started."""
        self._state.release_hung()
        self._server.stop(timeout)
        if self._held_port is not None:
            self._held_port.close()
            self._held_port = None

    def __enter__(self) -> FakeLangfuse:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:{port}``: the value for ``LANGFUSE_BASE_URL``."""
        if not self._port:
            raise RuntimeError("FakeLangfuse is not started: use start() or a with block")
        return f"http://{self.host}:{self._port}"

    def exporter_settings(self) -> dict[str, str]:
        """``base_url``, ``public_key`` and ``secret_key`` keyword arguments for the exporter."""
        return {
            "base_url": self.base_url,
            "public_key": self.public_key,
            "secret_key": self.secret_key,
        }

    def environment(self) -> dict[str, str]:
        """The ``LANGFUSE_*`` environment variables pointing at this fake."""
        return {
            "LANGFUSE_BASE_URL": self.base_url,
            "LANGFUSE_PUBLIC_KEY": self.public_key,
            "LANGFUSE_SECRET_KEY": self.secret_key,
        }

    # --- behaviour ---

    def up(self) -> None:
        """Answers normally (restarting on the same port after :meth:`refuse_connections`)."""
        self._set(UP)

    def refuse_connections(self) -> None:
        """Closes the listening socket: connections are refused until another mode is set
        (the port stays reserved for the fake meanwhile)."""
        if self._held_port is not None:
            return
        self._state.release_hung()
        self._server.stop()
        self._held_port = bind_loopback(self.host, self._port)

    def respond_with(self, status: int, *, retry_after: float | str | None = None) -> None:
        """Answers every ingestion request with ``status`` (e.g. 500, 503, 429)."""
        header = None if retry_after is None else _header_value(retry_after)
        self._set(Mode("status", status=status, retry_after=header))

    def rate_limit(self, retry_after: float | str = 1) -> None:
        """429 with ``Retry-After`` (seconds, or an HTTP date string)."""
        self.respond_with(429, retry_after=retry_after)

    def hang(self) -> None:
        """Never answers ingestion requests (until the mode changes; then they get 503)."""
        self._set(Mode("hang"))

    def slow(self, seconds: float) -> None:
        """Answers ingestion requests normally, after ``seconds``."""
        self._set(Mode("slow", delay=seconds))

    def suspend_ingestion(self, suspended: bool = True) -> None:
        """403 for the configured keys, as when a project's ingestion is suspended."""
        with self._state.lock:
            self._state.suspended = suspended

    def reject_spans_with_attribute(self, key: str, value: object = ...) -> None:
        """400 for any request holding a span with attribute ``key`` (equal to ``value``)."""
        with self._state.lock:
            self._state.reject_rules.append((key, value))

    def _set(self, mode: Mode) -> None:
        self._state.set_mode(mode)
        held, self._held_port = self._held_port, None
        if held is not None:
            self._server = UvicornThread(
                self.app, host=self.host, name="fake-langfuse", bound_socket=held
            )
            self.start()

    # --- recording ---

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every ingestion request since the last :meth:`reset` (any outcome), oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span accepted (HTTP 200) since the last :meth:`reset`, duplicates included."""
        return self._state.spans()

    @property
    def span_count(self) -> int:
        """How many spans were accepted, duplicates included (cheap: nothing is decoded)."""
        with self._state.lock:
            return self._state.accepted_spans

    def span_keys(self) -> set[tuple[str, str]]:
        """The distinct (trace id, span id) pairs accepted."""
        return {span.key for span in self.spans}

    @property
    def duplicate_span_ids(self) -> dict[tuple[str, str], int]:
        """Each (trace id, span id) accepted more than once since the last :meth:`reset`, with
        how many times. Langfuse merges such copies eventually, but its aggregates count them
        until then: a pipeline that exports a span twice shows here. The ``fake_langfuse``
        fixture fails a test that leaves any (unless marked ``allow_duplicate_spans``)."""
        return {key: n for key, n in self._state.span_key_counts().items() if n > 1}

    def observations(self) -> list[MappedObservation]:
        """The observations Langfuse would store: one per (trace id, span id), the last copy
        received, mapped by Langfuse's rules (see :mod:`~otel_gemini.testing._langfuse_mapping`)."""
        return [map_observation(span) for span in latest_copies(self.spans)]

    def traces(self) -> list[MappedTrace]:
        """The traces Langfuse would show: their observations, user, session, total cost, and
        input and output from the root observation."""
        return map_traces(self.observations())

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Blocks until ``count`` spans were accepted; raises ``TimeoutError`` if not in time."""
        if not self._state.wait_for_span_count(count, timeout):
            raise TimeoutError(
                f"FakeLangfuse accepted {self.span_count} of {count} spans within {timeout} s"
            )
        return self.spans

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Blocks until ``count`` ingestion requests arrived (any outcome)."""
        if not self._state.wait_for_requests(count, timeout):
            raise TimeoutError(f"FakeLangfuse got {len(self.requests)} of {count} requests")
        return self.requests

    def reset(self) -> None:
        """Forgets requests, spans and rejection rules, and answers normally again."""
        self._state.reset()
        self.metrics.reset()
        if self._held_port is not None:
            self.up()


def _header_value(retry_after: float | str) -> str:
    if isinstance(retry_after, str):
        return retry_after
    seconds = float(retry_after)
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
