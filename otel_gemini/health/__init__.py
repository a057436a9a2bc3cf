"""Health of the export pipeline: ``HealthReporter`` and the HTTP health endpoint.

``GET /api/observability/health`` answers healthy / degraded (HTTP 200) or unhealthy
(503) with the reasons and numbers; ``otel-gemini health`` prints the same. See
docs/operations.md.
"""

from otel_gemini.health._app import HEALTH_ENDPOINT, health_app, health_route
from otel_gemini.health._probe import LangfuseProbe
from otel_gemini.health._report import HealthReport, HealthStatus, ProbeResult
from otel_gemini.health._reporter import HealthReporter

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
