"""The observability HTTP API: ``GET /api/observability/{costs,latency,health}``.

An ASGI app (Starlette) to serve with ``otel-gemini serve`` or to mount into a FastAPI or
Starlette app. See docs/api.md.
"""

from otel_gemini.server._app import (
    COSTS_ENDPOINT,
    LATENCY_ENDPOINT,
    observability_app,
    observability_routes,
)

__all__ = ["COSTS_ENDPOINT", "LATENCY_ENDPOINT", "observability_app", "observability_routes"]
