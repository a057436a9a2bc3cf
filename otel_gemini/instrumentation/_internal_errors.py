"""Errors inside the instrumentation: logged once per place, counted, never raised."""

from __future__ import annotations

import logging

from otel_gemini._incidents import IncidentLog

INCIDENTS = IncidentLog(logging.getLogger("otel_gemini.instrumentation"))


def report_internal_error(where: str, error: BaseException) -> None:
    """Record that instrumentation code failed at ``where``; the caller's call goes on."""
    INCIDENTS.error(
        where,
        error,
        "otel-gemini instrumentation error in %s (logged once; the call is unaffected): %r",
        where,
        error,
    )


def internal_error_counts() -> dict[str, int]:
    """How many instrumentation errors happened, by place (for health and tests)."""
    return INCIDENTS.counts()
