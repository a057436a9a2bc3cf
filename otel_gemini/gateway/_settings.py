"""``GatewaySettings``: where the gateway listens and how much it takes at once.

Light on purpose (no grpc, no uvicorn, no server): checking a configuration (``otel-gemini
gateway --check``, a bad option, the docs) loads this, and only starting a ``Gateway``
loads the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from otel_gemini._listen_security import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_RETRY_AFTER,
    LOOPBACK_HOST,
    ConnectionLimits,
    ListenSecurity,
)
from otel_gemini.gateway import _defaults as defaults

_OPEN = ListenSecurity()  # no token, no TLS: for loopback (the CLI refuses it elsewhere)


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway listens and how much it takes at once.

    Ports: 0 picks a free one; ``None`` turns that protocol off.
    """

    host: str = LOOPBACK_HOST
    grpc_port: int | None = defaults.GRPC_PORT
    http_port: int | None = defaults.HTTP_PORT
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES
    """Largest request body, after decompression (the Collector's batches are far smaller)."""
    max_inflight_bytes: int = 0
    """Memory for requests being received, decoded and priced at once, each reserving what
    decoding makes of it (6 bytes per protobuf byte, 12 per JSON byte); more waits (429 /
    RESOURCE_EXHAUSTED). At least 12 × ``max_request_bytes``, so that the largest request
    is ever taken; 0 (the default): 12 × ``max_request_bytes`` + 16 MiB (208 MiB)."""
    spool_high_water: float = defaults.SPOOL_HIGH_WATER
    """Refuse requests once the spool holds this fraction of its byte cap."""
    persist_timeout: float = 10.0
    """Seconds a request may wait for its spans to reach the spool before it is refused."""
    retry_after: float = DEFAULT_RETRY_AFTER
    """Seconds suggested to senders that are refused for lack of room."""
    grpc_workers: int = defaults.GRPC_WORKERS
    max_concurrent_rpcs: int = defaults.MAX_CONCURRENT_RPCS
    http_limit_concurrency: int = DEFAULT_MAX_REQUESTS
    """HTTP requests in progress at once; past it, 503 with ``Retry-After``."""
    shutdown_grace: float = 5.0
    """Seconds requests in progress get to finish when the gateway stops."""
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    """Seconds a connection has to send a whole request head (HTTP) or finish its
    handshake (gRPC) before it is closed."""
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    """Seconds a request body may stall before the connection is closed."""
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    """Seconds an HTTP keep-alive connection may sit without a request (gRPC channels are
    long-lived by design: closed after 5 idle minutes)."""
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Open HTTP connections; past it, the one idle the longest is closed."""
    security: ListenSecurity = _OPEN
    """Bearer tokens and TLS on both ports (docs/security.md)."""

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "grpc_workers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"gateway setting {name} must be positive")
        largest = self.max_request_bytes * defaults.DECODED_PER_JSON_BYTE
        if self.max_inflight_bytes == 0:
            object.__setattr__(self, "max_inflight_bytes", largest + defaults.INFLIGHT_HEADROOM)
        elif self.max_inflight_bytes < largest:
            # Else a request near the limit is refused (429) whenever anything else is in
            # flight: under steady traffic, for ever.
            raise ValueError(
                f"gateway setting max_inflight_bytes (--max-inflight-bytes, "
                f"{self.max_inflight_bytes}) must be at least {defaults.DECODED_PER_JSON_BYTE} x "
                f"max_request_bytes (--max-request-bytes, {self.max_request_bytes}) = {largest}, "
                "what decoding the largest JSON request takes; raise it, lower "
                "max_request_bytes, or leave it out"
            )
        if not 0 < self.spool_high_water <= 1:
            raise ValueError("gateway setting spool_high_water must be in (0, 1]")
        if self.grpc_port is None and self.http_port is None:
            raise ValueError("the gateway needs at least one of grpc_port and http_port")
        self.connection_limits()  # raises ValueError for a bad timeout

    def connection_limits(self) -> ConnectionLimits:
        """The HTTP listener's timeouts and caps."""
        return ConnectionLimits(
            header_timeout=self.header_timeout,
            body_timeout=self.body_timeout,
            idle_timeout=self.idle_timeout,
            max_connections=self.max_connections,
            max_requests=self.http_limit_concurrency,
            retry_after=self.retry_after,
        )
