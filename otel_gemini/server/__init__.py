"""The observability HTTP API: ``GET /api/observability/{costs,latency,health}``.

An ASGI app (Starlette) to serve with ``otel-gemini serve`` or to mount into a FastAPI or
Starlette app. ``BearerAuth`` and ``TokenFile`` guard it (or ``Telemetry.asgi_app()``) with
bearer tokens. See docs/api.md and docs/security.md.
"""

from otel_gemini._listen_security import LIVENESS_PATH, BearerAuth, TokenFile
from otel_gemini.server._app import (
    COSTS_ENDPOINT,
    LATENCY_ENDPOINT,
    observability_app,
    observability_routes,
)

__all__ = [
    "COSTS_ENDPOINT",
    "LATENCY_ENDPOINT",
    "LIVENESS_PATH",
    "BearerAuth",
    "TokenFile",
    "observability_app",
    "observability_routes",
]
