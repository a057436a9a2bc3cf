"""What the fake Langfuse is doing (its mode and rules) and what it has received."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_gemini.testing._langfuse_otlp import ReceivedSpan, received_spans


@dataclass(frozen=True)
class Mode:
    """How ingestion requests are answered (the connection-refusing mode is the server's)."""

    name: str
    """``up``, ``status``, ``hang`` or ``slow``."""
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0


UP = Mode("up")


@dataclass(frozen=True)
class ReceivedRequest:
    """One ingestion request (any outcome), headers lower-cased, authorization withheld."""

    path: str
    status: int
    """What the fake answered."""
    content_type: str
    content_encoding: str
    ingestion_version: str | None
    body_bytes: int
    span_count: int
    headers: dict[str, str]
    received_at: float
    error: str | None = None


@dataclass
class _Accepted:
    request: ExportTraceServiceRequest
    decoded: list[ReceivedSpan] | None = None


@dataclass
class LangfuseState:
    """Shared between the server's event loop and test threads (guarded by ``lock``)."""

    public_key: str
    secret_key: str
    forbidden_keys: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    mode: Mode = UP
    suspended: bool = False
    reject_rules: list[tuple[str, object]] = field(default_factory=list)
    requests: list[ReceivedRequest] = field(default_factory=list)
    accepted: list[_Accepted] = field(default_factory=list)
    accepted_spans: int = 0
    arrived: threading.Condition = field(init=False)
    _hung: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    # --- modes ---

    def set_mode(self, mode: Mode) -> None:
        with self.lock:
            self.mode = mode
            hung, self._hung = self._hung, []
        for loop, event in hung:
            with contextlib.suppress(RuntimeError):  # that server's loop is gone
                loop.call_soon_threadsafe(event.set)

    def release_hung(self) -> None:
        self.set_mode(self.current_mode())

    def current_mode(self) -> Mode:
        with self.lock:
            return self.mode

    async def hang(self) -> None:
        event = asyncio.Event()
        with self.lock:
            self._hung.append((asyncio.get_running_loop(), event))
        await event.wait()

    # --- recording ---

    def record(self, request: ReceivedRequest, accepted: ExportTraceServiceRequest | None) -> None:
        with self.lock:
            self.requests.append(request)
            if accepted is not None:
                self.accepted.append(_Accepted(accepted))
                self.accepted_spans += request.span_count
            self.arrived.notify_all()

    def spans(self) -> list[ReceivedSpan]:
        with self.lock:
            batches = list(self.accepted)
        spans: list[ReceivedSpan] = []
        for batch in batches:
            if batch.decoded is None:
                batch.decoded = received_spans(batch.request)
            spans.extend(batch.decoded)
        return spans

    def span_key_counts(self) -> dict[tuple[str, str], int]:
        """How many times each (trace id, span id) was accepted (ids only: nothing else is
        decoded, so it stays cheap after large runs)."""
        with self.lock:
            batches = list(self.accepted)
        counts: dict[tuple[str, str], int] = {}
        for batch in batches:
            for resource_spans in batch.request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        key = (span.trace_id.hex(), span.span_id.hex())
                        counts[key] = counts.get(key, 0) + 1
        return counts

    def wait_for_span_count(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.accepted_spans < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.arrived.wait(remaining)
            return True

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        with self.lock:
            return self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.accepted.clear()
            self.accepted_spans = 0
            self.reject_rules.clear()
            self.suspended = False
        self.set_mode(UP)
