"""A health verdict and its JSON form."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from otel_gemini._background import LoopStatus
from otel_gemini.export import ExportStats

# Where the health report is served (the health route, ``otel-gemini serve``, the gateway).
HEALTH_ENDPOINT = "/api/observability/health"


class HealthStatus(str, enum.Enum):
    """``healthy``: spans flow. ``degraded``: delivery is failing or slow but spans are safe
    in the spool. ``unhealthy``: spans are being lost, or cannot be delivered without an
    operator (credentials, endpoint, disk)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    def __str__(self) -> str:
        # The value, as print() and f-strings show it ("healthy", not "HealthStatus.HEALTHY":
        # Python 3.11+ changed str() of mixed-in enums to the member name).
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def http_status(self) -> int:
        """200 for healthy and degraded, 503 for unhealthy."""
        return 503 if self is HealthStatus.UNHEALTHY else 200

    @property
    def exit_code(self) -> int:
        """0 / 1 / 2, as monitoring plugins expect (OK / WARNING / CRITICAL)."""
        return {HealthStatus.HEALTHY: 0, HealthStatus.DEGRADED: 1}.get(self, 2)


@dataclass(frozen=True)
class ProbeResult:
    """What a check of Langfuse itself found (None fields: not known)."""

    checked_at: float
    reachable: bool | None = None
    """``GET /api/public/health`` answered 200."""
    version: str | None = None
    credentials_valid: bool | None = None
    """``GET /api/public/projects`` with the keys: 200 True, 401/403 False."""
    error: str | None = None

    def raw(self) -> dict[str, object]:
        """The fields as they are (for a status file; :meth:`from_raw` reads them back)."""
        return asdict(self)

    @classmethod
    def from_raw(cls, data: Mapping[str, Any]) -> ProbeResult:
        return cls(
            checked_at=float(data.get("checked_at") or 0.0),
            reachable=data.get("reachable"),
            version=data.get("version"),
            credentials_valid=data.get("credentials_valid"),
            error=data.get("error"),
        )

    def to_dict(self) -> dict[str, object]:
        credentials = "unknown"
        if self.credentials_valid is not None:
            credentials = "valid" if self.credentials_valid else "invalid"
        return {
            "reachable": self.reachable,
            "version": self.version,
            "credentials": credentials,
            "checked_at": iso_time(self.checked_at),
            "error": self.error,
        }


def iso_time(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


_TIME_FIELDS = (
    "failing_since",
    "last_success_at",
    "last_error_at",
    "last_dead_letter_at",
    "last_drop_at",
    "in_flight_since",
)


@dataclass(frozen=True)
class HealthReport:
    """The exporter's health: a status, the reasons for it, and the numbers behind it."""

    status: HealthStatus
    reasons: tuple[str, ...]
    checked_at: float
    stats: ExportStats
    langfuse: ProbeResult | None = None
    base_url: str | None = None
    extra: dict[str, object] = field(default_factory=dict)
    loops: tuple[LoopStatus, ...] = ()
    """The background loops behind this report (spool writer, sender, cost store ...)."""

    @property
    def http_status(self) -> int:
        return self.status.http_status

    def to_dict(self) -> dict[str, object]:
        """The JSON served at ``GET /api/observability/health``."""
        stats = self.stats
        exporter = stats.to_dict()
        for key in _TIME_FIELDS:
            exporter[key] = iso_time(getattr(stats, key))
        langfuse: dict[str, object] = {"base_url": self.base_url}
        if self.langfuse is not None:
            langfuse.update(self.langfuse.to_dict())
        return {
            "status": self.status.value,
            "reasons": list(self.reasons),
            "checked_at": iso_time(self.checked_at),
            "last_success": iso_time(stats.last_success_at),
            "last_error": {"time": iso_time(stats.last_error_at), "message": stats.last_error},
            "consecutive_failures": stats.consecutive_failures,
            "queue": {
                "spans": stats.queued,
                "bytes": stats.queued_memory_bytes + stats.queued_disk_bytes,
                "capacity_bytes": stats.spool_capacity_bytes,
            },
            "counts": {
                "accepted": stats.accepted,
                "sent": stats.sent,
                "send_failed": stats.send_failed,
                "dropped": stats.dropped_total,
                "dead_lettered": stats.dead_lettered,
            },
            "langfuse": langfuse,
            "exporter": exporter,
            "loops": {
                loop.name: {**loop.to_dict(), "last_error_at": iso_time(loop.last_error_at)}
                for loop in self.loops
            },
            **self.extra,
        }
