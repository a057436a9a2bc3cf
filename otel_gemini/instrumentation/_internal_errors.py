"""Errors inside the instrumentation: logged once per place, counted, never raised."""

from __future__ import annotations

import logging
import threading

_logger = logging.getLogger("otel_gemini.instrumentation")
_lock = threading.Lock()
_seen: set[str] = set()
_counts: dict[str, int] = {}


def report_internal_error(where: str, error: BaseException) -> None:
    """Record that instrumentation code failed at ``where``; the caller's call goes on."""
    with _lock:
        _counts[where] = _counts.get(where, 0) + 1
        first = where not in _seen
        _seen.add(where)
    if first:
        _logger.warning(
            "otel-gemini instrumentation error in %s (logged once; the call is unaffected): %r",
            where,
            error,
            exc_info=error,
        )


def internal_error_counts() -> dict[str, int]:
    """How many instrumentation errors happened, by place (for health and tests)."""
    with _lock:
        return dict(_counts)
