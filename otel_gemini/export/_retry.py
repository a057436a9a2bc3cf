"""When to try again: exponential backoff with full jitter, and ``Retry-After``."""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How the sender waits between failed attempts. There is no attempt limit: spans stay
    in the spool until they are delivered or the spool's byte cap pushes them out.

    After the n-th consecutive retryable failure (429, 5xx, timeout, connection error) the
    sender waits a random time in ``[0, min(max_backoff, initial_backoff * 2**(n-1))]``
    ("full jitter", so many processes recovering together do not retry in lockstep), or
    exactly what the server's ``Retry-After`` asked for (capped by ``max_retry_after``).
    After 401/403 (or 404/405) it pauses and retries one request every ``pause_interval``.
    """

    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_after: float = 300.0
    pause_interval: float = 60.0

    def __post_init__(self) -> None:
        for name in ("initial_backoff", "max_backoff", "max_retry_after", "pause_interval"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"RetryPolicy.{name} must be a positive number of seconds")

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after ``failures`` consecutive failures (``failures >= 1``)."""
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** min(max(failures - 1, 0), 62))
        return rng.uniform(0.0, ceiling)

    def retry_after(self, seconds: float) -> float:
        return min(max(seconds, 0.0), self.max_retry_after)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    ``now`` is the current Unix time; a date in the past means "now" (0). Unparseable
    values give None (the caller falls back to its own backoff).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
