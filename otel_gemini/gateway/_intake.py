"""What the gateway does with one export request, whatever the transport.

admit (bounded memory, room in the spool) → decode → price (``CostSpanProcessor``) → hand off
to the ``LangfuseExporter`` → wait until the spans are on disk → acknowledge.

Acknowledging only what is in the spool is what lets a sender (an OpenTelemetry Collector
with a retrying queue) lose nothing when a gateway is killed: what was acknowledged survives
the restart, what was not is sent again. Spans are never silently dropped here: a request the
gateway cannot take is refused with a "retry later" answer, and malformed ones are refused
and counted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import logging
import threading
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import SpanProcessor

from otel_gemini._limits import QUOTE_CHARS, cut
from otel_gemini.export import ExportStats, LangfuseExporter
from otel_gemini.gateway._defaults import DECODED_PER_BYTE, DECODED_PER_JSON_BYTE
from otel_gemini.gateway._otlp_decode import MalformedPayload, to_readable_spans

_logger = logging.getLogger("otel_gemini.gateway")
# A malformed request's reason is quoted this long at most (answer, health, log).
_MAX_REASON_CHARS: Final = 3 * QUOTE_CHARS


_M_MMAP_THRESHOLD: Final = -3  # glibc's mallopt parameter
_MMAP_THRESHOLD_BYTES: Final = 1024 * 1024


def _return_large_buffers_to_the_os() -> None:
    """Makes glibc allocate every buffer of 1 MiB or more with its own mmap, freed to the OS.

    By default glibc raises that threshold each time such a buffer is freed (up to 32 MiB), so
    after one large request the next ones land on the heap, which it rarely gives back: 20
    requests of 7 MiB left the gateway 80 MB larger for good. A fixed threshold keeps what a
    request borrowed for its own duration only. Elsewhere (musl, macOS) this does nothing."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    MALFORMED = "malformed"
    BUSY = "busy"
    """Retry later: memory budget or spool full (HTTP 429, gRPC RESOURCE_EXHAUSTED)."""
    UNAVAILABLE = "unavailable"
    """Retry later: the spool cannot be written, or shutting down (HTTP 503, gRPC UNAVAILABLE)."""
    TOO_LARGE = "too_large"
    """Never retried as is: the sender must split the batch (HTTP 413, gRPC INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class IntakeResult:
    verdict: Verdict
    spans: int = 0
    message: str = ""
    retry_after: float = 0.0


class ByteBudget:
    """Bytes of requests being processed at once, capped: the gateway's memory bound."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()

    def try_take(self, size: int) -> bool:
        with self._lock:
            # One request larger than the whole budget is still let through alone.
            if self._used and self._used + size > self.capacity:
                return False
            self._used += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self._used -= size

    @property
    def used(self) -> int:
        with self._lock:
            return self._used


class SpanIntake:
    """Admits, prices and spools OTLP trace requests (thread-safe; transports call it)."""

    def __init__(
        self,
        exporter: LangfuseExporter,
        processor: SpanProcessor,
        *,
        max_request_bytes: int,
        max_inflight_bytes: int,
        spool_high_water: float,
        persist_timeout: float,
        retry_after: float,
    ) -> None:
        """``processor`` is the ``CostSpanProcessor`` whose downstream hands off to
        ``exporter``; ``spool_high_water`` is the fraction of the spool's byte cap above which
        requests are refused rather than letting the spool drop its oldest spans."""
        self.exporter = exporter
        self.processor = processor
        self.max_request_bytes = max_request_bytes
        self.budget = ByteBudget(max_inflight_bytes)
        self._spool_high_water = spool_high_water
        self._persist_timeout_millis = persist_timeout * 1000
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {
            "requests": 0,
            "spans_accepted": 0,
            "requests_malformed": 0,
            "requests_busy": 0,
            "requests_unavailable": 0,
            "requests_too_large": 0,
            "requests_aborted": 0,
        }
        self._last_malformed: str | None = None
        # The size of the last request refused because the spool was past its high-water mark.
        self._refused_for_spool: int | None = None
        self._closed = False
        _return_large_buffers_to_the_os()

    # --- the request path ----------------------------------------------------------------------

    @staticmethod
    def reservation(size: int, *, json: bool = False) -> int:
        """The budget a request of ``size`` bytes takes: what it may become once decoded."""
        return size * (DECODED_PER_JSON_BYTE if json else DECODED_PER_BYTE)

    def admit(self, size: int, *, json: bool = False) -> IntakeResult | None:
        """Reserves the decoded size of a ``size``-byte request (OTLP/JSON when ``json``); an
        ``IntakeResult`` to answer at once if it cannot be taken now. Call :meth:`release` with
        the same arguments after a ``None``."""
        if self._closed:
            return self._count(IntakeResult(Verdict.UNAVAILABLE, message="gateway shutting down"))
        if size > self.max_request_bytes:
            return self.too_large()
        stats = self.exporter.stats()
        if stats.shut_down:
            return self._count(IntakeResult(Verdict.UNAVAILABLE, message="exporter shut down"))
        if self._past_high_water(stats, size):
            self._refused_for_spool = size
            return self._count(
                IntakeResult(
                    Verdict.BUSY,
                    message="spool full (Langfuse is not keeping up); retry later",
                    retry_after=self.retry_after,
                )
            )
        if not self.budget.try_take(self.reservation(size, json=json)):
            return self.busy("too many requests in progress; retry later")
        return None

    def release(self, size: int, *, json: bool = False) -> None:
        self.budget.give_back(self.reservation(size, json=json))

    def process(self, request: ExportTraceServiceRequest) -> IntakeResult:
        """Prices and spools every span of an admitted request; answers once they are on disk."""
        try:
            spans = to_readable_spans(request)
        except MalformedPayload as error:
            return self.malformed(str(error))
        except RecursionError:  # a depth limit missed: still the sender's fault, not a 500
            return self.malformed("a value nested too deeply")
        for span in spans:
            self.processor.on_end(span)
        if spans and not self.exporter.wait_persisted(self._persist_timeout_millis):
            return self._count(
                IntakeResult(
                    Verdict.UNAVAILABLE,
                    message="spool write did not complete in time; retry later",
                    retry_after=self.retry_after,
                )
            )
        if self.exporter.stats().spool_error is not None:
            return self._count(
                IntakeResult(
                    Verdict.UNAVAILABLE,
                    message="the gateway's spool cannot be written; retry later",
                    retry_after=self.retry_after,
                )
            )
        return self._count(IntakeResult(Verdict.ACCEPTED, spans=len(spans)))

    def too_large(self) -> IntakeResult:
        """Counts a request over ``max_request_bytes`` (compressed or not)."""
        return self._count(
            IntakeResult(
                Verdict.TOO_LARGE,
                message=f"request exceeds the gateway's limit of {self.max_request_bytes} "
                "bytes (--max-request-bytes); send smaller batches",
            )
        )

    def busy(self, message: str) -> IntakeResult:
        """Counts a request refused for the in-flight budget: retry later (HTTP 429)."""
        return self._count(
            IntakeResult(Verdict.BUSY, message=message, retry_after=self.retry_after)
        )

    def aborted(self) -> None:
        """Counts a request whose sender went away (or was timed out) before the end of its
        body: nothing of it was taken, the sender sends it again or loses it."""
        with self._lock:
            self._counts["requests"] += 1
            self._counts["requests_aborted"] += 1

    def malformed(self, message: str) -> IntakeResult:
        """Counts a malformed payload; logs the first one and every 1000th after it.

        The reason is cut: it may quote the bad input (a 10 MiB trace id), and it is answered,
        kept for health and logged."""
        message = cut(message, _MAX_REASON_CHARS)
        with self._lock:
            self._last_malformed = message
            log = self._counts["requests_malformed"] % 1000 == 0
        if log:
            _logger.warning("otel-gemini gateway: malformed OTLP request refused: %s", message)
        return self._count(IntakeResult(Verdict.MALFORMED, message=message))

    # --- state ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Refuses further requests (they get "unavailable": the sender retries elsewhere)."""
        self._closed = True

    def _past_high_water(self, stats: ExportStats, size: int) -> bool:
        queued = stats.queued_disk_bytes + stats.queued_memory_bytes
        return queued + size > stats.spool_capacity_bytes * self._spool_high_water

    def refusing_for_spool(self, stats: ExportStats) -> bool:
        """Whether the spool is still too full to take the last request it refused (what
        waits in memory and on disk, as :meth:`admit` counts it)."""
        size = self._refused_for_spool
        return size is not None and self._past_high_water(stats, size)

    def stats(self) -> dict[str, Any]:
        """Request and span counters, the in-flight byte budget, the last malformed reason."""
        with self._lock:
            counts: dict[str, Any] = dict(self._counts)
            counts["last_malformed"] = self._last_malformed
        counts["inflight_bytes"] = self.budget.used
        counts["inflight_capacity_bytes"] = self.budget.capacity
        return counts

    def _count(self, outcome: IntakeResult) -> IntakeResult:
        key = {
            Verdict.ACCEPTED: "spans_accepted",
            Verdict.MALFORMED: "requests_malformed",
            Verdict.BUSY: "requests_busy",
            Verdict.UNAVAILABLE: "requests_unavailable",
            Verdict.TOO_LARGE: "requests_too_large",
        }[outcome.verdict]
        with self._lock:
            self._counts["requests"] += 1
            self._counts[key] += outcome.spans if outcome.verdict is Verdict.ACCEPTED else 1
        return outcome
