"""The HTTP health endpoint: ``GET /api/observability/health`` as a Starlette route or app."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from otel_gemini.health._report import HEALTH_ENDPOINT, HealthReport
from otel_gemini.health._reporter import HealthReporter


def health_route(
    reporter: HealthReporter | Callable[[], HealthReport], path: str = HEALTH_ENDPOINT
) -> Route:
    """A route serving ``reporter``'s JSON report (or the report a callable returns): HTTP
    200 healthy or degraded, 503 unhealthy. Add it to an existing Starlette/FastAPI app's
    routes."""
    current = reporter.report if isinstance(reporter, HealthReporter) else reporter

    async def health(request: Request) -> JSONResponse:
        report = current()  # in-memory only: fine on the event loop
        return JSONResponse(
            report.to_dict(),
            status_code=report.http_status,
            headers={"Cache-Control": "no-store"},
        )

    return Route(path, health, methods=["GET"], name="otel_gemini_health")


def health_app(reporter: HealthReporter) -> Starlette:
    """An ASGI app serving only the health endpoint (mount it, or serve it with uvicorn)."""
    return Starlette(routes=[health_route(reporter)])
