"""The rules turning exporter numbers and a Langfuse probe into a health status.

Degraded within 2 failed attempts or 30 s of failing; healthy again after one success.
Lost spans make it unhealthy for a minute; damage found in the spool degrades it for ten.
"""

from __future__ import annotations

from otel_gemini.export import ExportStats
from otel_gemini.health._report import HealthStatus, ProbeResult

FAILURES_FOR_DEGRADED = 2
SECONDS_FOR_DEGRADED = 30.0
RECENT_LOSS_SECONDS = 60.0
RECENT_DEAD_LETTER_SECONDS = 300.0
RECENT_CORRUPT_SECONDS = 600.0
SPOOL_FILL_FOR_DEGRADED = 0.8


def assess(
    stats: ExportStats, probe: ProbeResult | None, now: float
) -> tuple[HealthStatus, list[str]]:
    """(status, reasons) for ``stats`` and the latest ``probe`` at time ``now`` (Unix s)."""
    unhealthy: list[str] = []
    degraded: list[str] = []
    # A delivery newer than the probe outranks it: the probe only fills gaps.
    probe_is_news = probe is not None and (
        stats.last_success_at is None or probe.checked_at > stats.last_success_at
    )

    if stats.shut_down:
        unhealthy.append("the exporter is shut down")
    if stats.paused == "auth":
        unhealthy.append(
            f"Langfuse refused the credentials ({stats.last_error}); sending is paused, "
            "spans are kept: check LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY"
        )
    elif stats.paused == "rejected":
        unhealthy.append(
            f"Langfuse refused the endpoint ({stats.last_error}); sending is paused, "
            "spans are kept: check LANGFUSE_BASE_URL"
        )
    elif probe_is_news and probe is not None and probe.credentials_valid is False:
        unhealthy.append("Langfuse rejects the credentials (GET /api/public/projects)")
    if stats.spool_error:
        unhealthy.append(f"spool: {stats.spool_error}")
    if stats.last_drop_at is not None and now - stats.last_drop_at < RECENT_LOSS_SECONDS:
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(stats.dropped.items()))
        unhealthy.append(f"spans are being dropped ({reasons})")

    if stats.consecutive_failures >= FAILURES_FOR_DEGRADED:
        degraded.append(
            f"{stats.consecutive_failures} consecutive failed send attempts "
            f"(last: {stats.last_error})"
        )
    elif stats.failing_since is not None and now - stats.failing_since >= SECONDS_FOR_DEGRADED:
        degraded.append(
            f"sending has failed for {now - stats.failing_since:.0f} s (last: {stats.last_error})"
        )
    if stats.in_flight_since is not None and now - stats.in_flight_since >= SECONDS_FOR_DEGRADED:
        degraded.append(
            f"a request to Langfuse has been waiting {now - stats.in_flight_since:.0f} s"
        )
    if probe_is_news and probe is not None and probe.reachable is False:
        degraded.append(f"Langfuse is unreachable ({probe.error or 'health check failed'})")
    if (
        stats.last_dead_letter_at is not None
        and now - stats.last_dead_letter_at < RECENT_DEAD_LETTER_SECONDS
    ):
        degraded.append(
            f"Langfuse rejected {stats.dead_lettered} span(s) with HTTP 400; they are in "
            "the spool's dead-letter directory"
        )
    if stats.last_corrupt_at is not None and now - stats.last_corrupt_at < RECENT_CORRUPT_SECONDS:
        degraded.append(
            f"the spool was found damaged {now - stats.last_corrupt_at:.0f} s ago; "
            f"{stats.dropped.get('corrupt', 0)} span(s) lost to corruption (corrupt) so far"
        )
    capacity = stats.spool_capacity_bytes
    if capacity and stats.queued_disk_bytes >= SPOOL_FILL_FOR_DEGRADED * capacity:
        degraded.append(f"the spool is {100 * stats.queued_disk_bytes / capacity:.0f}% full")

    if unhealthy:
        return HealthStatus.UNHEALTHY, unhealthy + degraded
    if degraded:
        return HealthStatus.DEGRADED, degraded
    return HealthStatus.HEALTHY, []
