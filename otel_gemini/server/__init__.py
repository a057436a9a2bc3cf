"""The observability HTTP API: ``GET /api/observability/{costs,latency,health}``.

An ASGI app (Starlette) to serve with ``otel-gemini serve`` or to mount into a FastAPI or
Starlette app. ``BearerAuth`` and ``TokenFile`` guard it (or ``Telemetry.asgi_app()``) with
bearer tokens. See docs/api.md and docs/security.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_gemini._lazy import lazy_exports
from otel_gemini._listen_security import LIVENESS_PATH, BearerAuth, TokenFile

if TYPE_CHECKING:
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

# The app's names load on first use, and say which extra to install when Starlette is
# missing: the CLI imports this package's command module for every command's parser.
__getattr__ = lazy_exports(
    __name__,
    "otel_gemini.server._app",
    ("COSTS_ENDPOINT", "LATENCY_ENDPOINT", "observability_app", "observability_routes"),
    globals(),
    extra="server",
)
