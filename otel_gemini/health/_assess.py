"""The rules turning exporter numbers and a Langfuse probe into a health status.

Degraded within 2 failed attempts, 30 s of failing, or one request timeout without an
answer; healthy again after one success. Lost spans make it unhealthy for a minute; damage
found in the spool degrades it for ten.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from otel_gemini._background import LoopStatus
from otel_gemini.export import ExportStats
from otel_gemini.health._report import HealthStatus, ProbeResult

FAILURES_FOR_DEGRADED = 2
SECONDS_FOR_DEGRADED = 30.0
RECENT_LOSS_SECONDS = 60.0
RECENT_DEAD_LETTER_SECONDS = 300.0
RECENT_CORRUPT_SECONDS = 600.0
SPOOL_FILL_FOR_DEGRADED = 0.8
DEFAULT_REQUEST_TIMEOUT = 10.0


def assess(
    stats: ExportStats,
    probe: ProbeResult | None,
    now: float,
    *,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    unanswered_since: float | None = None,
    loops: Sequence[LoopStatus] = (),
    conditions: Iterable[tuple[HealthStatus, str]] = (),
    notes: Sequence[str] = (),
) -> tuple[HealthStatus, list[str]]:
    """(status, reasons) for ``stats`` and the latest ``probe`` at time ``now`` (Unix s).

    ``unanswered_since``: when the oldest attempt Langfuse has not answered at all began
    (across timed-out retries); ``loops``: the background loops (one stopped is unhealthy,
    one restarting degraded); ``conditions``: a component's own (status, reason) pairs,
    listed first; ``notes``: reasons shown whatever the status (e.g. export is off).
    """
    unhealthy: list[str] = []
    degraded: list[str] = []
    for level, reason in conditions:
        if level is HealthStatus.UNHEALTHY:
            unhealthy.append(reason)
        elif level is HealthStatus.DEGRADED:
            degraded.append(reason)
    for loop in loops:
        if loop.problem == "unhealthy":
            unhealthy.append(loop.reason())
        elif loop.problem == "degraded":
            degraded.append(loop.reason())
    # A delivery newer than the probe outranks it: the probe only fills gaps.
    probe_is_news = probe is not None and (
        stats.last_success_at is None or probe.checked_at > stats.last_success_at
    )

    if stats.shut_down:
        unhealthy.append("the exporter is shut down")
    # The probe's authenticated check, newer than the 401/403 that paused sending, says the
    # keys work: the pause reason is stale (the sender was woken to try at once).
    keys_work_again = (
        probe is not None
        and probe.credentials_valid is True
        and stats.last_error_at is not None
        and probe.checked_at > stats.last_error_at
    )
    if stats.paused == "auth" and keys_work_again:
        degraded.append(
            "Langfuse accepts the credentials again (GET /api/public/projects); sending resumes"
        )
    elif stats.paused == "auth":
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
    # A hang: each attempt ends at the request timeout, and is retried; what counts is how
    # long Langfuse has not answered at all, across those attempts.
    waiting_since = unanswered_since if unanswered_since is not None else stats.in_flight_since
    if waiting_since is not None and now - waiting_since >= request_timeout:
        degraded.append(f"Langfuse has not answered for {now - waiting_since:.0f} s")
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
        return HealthStatus.UNHEALTHY, unhealthy + degraded + list(notes)
    if degraded:
        return HealthStatus.DEGRADED, degraded + list(notes)
    return HealthStatus.HEALTHY, list(notes)
