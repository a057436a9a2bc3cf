"""Health of the export pipeline: ``HealthReporter`` and the HTTP health endpoint.

``GET /api/observability/health`` answers healthy / degraded (HTTP 200) or unhealthy
(503) with the reasons and numbers; ``otel-gemini health`` prints the same. See
docs/operations.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_gemini._lazy import lazy_exports
from otel_gemini.health._probe import LangfuseProbe
from otel_gemini.health._report import HEALTH_ENDPOINT, HealthReport, HealthStatus, ProbeResult

# The internal interface: the gateway's own health fields use the same time format.
from otel_gemini.health._report import iso_time as iso_time
from otel_gemini.health._reporter import HealthReporter

if TYPE_CHECKING:
    from otel_gemini.health._app import health_app, health_route

__all__ = [
    "HEALTH_ENDPOINT",
    "HealthReport",
    "HealthReporter",
    "HealthStatus",
    "LangfuseProbe",
    "ProbeResult",
    "health_app",
    "health_route",
]

# The HTTP route and app need Starlette (the ``server`` extra); the reporter does not.
__getattr__ = lazy_exports(
    __name__, "otel_gemini.health._app", ("health_app", "health_route"), globals(), extra="server"
)
