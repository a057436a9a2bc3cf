"""One HTTP POST of an OTLP request to Langfuse, and what its answer means for the sender."""

from __future__ import annotations

import base64
import enum
import time
import zlib
from dataclasses import dataclass

import httpx

from otel_gemini._suppress import untraced
from otel_gemini._version import __version__
from otel_gemini.export._retry import parse_retry_after

TRACES_PATH = "/api/public/otel/v1/traces"
INGESTION_VERSION = "4"


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    """429, 5xx, 408, timeouts, connection errors: Langfuse may take it later."""
    REJECTED = "rejected"
    """400 (or 413): something in this batch is unacceptable; bisect to find it."""
    AUTH = "auth"
    """401/403: the keys are wrong or ingestion is suspended."""
    REFUSED = "refused"
    """404, 405 and other 4xx: the endpoint is wrong; nothing we resend will change that."""


@dataclass(frozen=True)
class Response:
    outcome: Outcome
    status: int | None
    message: str
    """For logs and health: status and reason, never request headers."""
    retry_after: float | None = None


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in (400, 413):
        return Outcome.REJECTED
    if status in (401, 403):
        return Outcome.AUTH
    if status in (408, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.REFUSED


def basic_auth(public_key: str, secret_key: str) -> str:
    token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
    return f"Basic {token}"


def gzip_bytes(data: bytes, level: int) -> bytes:
    # zlib with wbits=31 writes the gzip container; compressobj works on Python 3.10 too.
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


class LangfuseTransport:
    """Posts serialized ``ExportTraceServiceRequest`` bodies (one thread uses it at a time)."""

    def __init__(
        self,
        base_url: str,
        public_key: str,
        secret_key: str,
        *,
        timeout: float,
        gzip_level: int = 1,
    ) -> None:
        self.url = base_url.rstrip("/") + TRACES_PATH
        self._timeout = timeout
        self._gzip_level = gzip_level
        self._client = httpx.Client(
            headers={
                "Authorization": basic_auth(public_key, secret_key),
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": "gzip",
                "x-langfuse-ingestion-version": INGESTION_VERSION,
                "x-langfuse-sdk-name": "otel-gemini",
                "x-langfuse-sdk-version": __version__,
                "x-langfuse-public-key": public_key,
                "User-Agent": f"otel-gemini/{__version__}",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            follow_redirects=False,
        )

    @untraced  # a traced POST would be a span to export by the next POST, and so on
    def post(self, body: bytes, *, timeout: float | None = None) -> Response:
        """POSTs one request; classifies the answer (never raises for HTTP or network)."""
        payload = gzip_bytes(body, self._gzip_level)
        limit = self._timeout if timeout is None else max(0.05, min(timeout, self._timeout))
        try:
            response = self._client.post(
                self.url, content=payload, timeout=httpx.Timeout(limit, connect=min(limit, 5.0))
            )
        except httpx.TimeoutException as error:
            return Response(
                Outcome.RETRY, None, f"timed out after {limit:g} s ({type(error).__name__})"
            )
        except httpx.HTTPError as error:
            return Response(Outcome.RETRY, None, f"{type(error).__name__}: {error}")
        status = response.status_code
        outcome = classify(status)
        message = f"HTTP {status} {response.reason_phrase}".strip()
        if outcome is Outcome.REJECTED:
            detail = response.text[:300].strip()
            if detail:
                message = f"{message}: {detail}"
        retry_after = None
        if outcome is Outcome.RETRY:
            retry_after = parse_retry_after(response.headers.get("retry-after"), time.time())
        return Response(outcome, status, message, retry_after)

    def close(self) -> None:
        self._client.close()
