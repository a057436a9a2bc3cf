"""Budget periods: the hour, day or month holding an instant, in a rule's time zone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

from otel_gemini.aggregate import unix_ns

_UTC = timezone.utc


class Period(NamedTuple):
    """``[start, end)``, as aware datetimes in the rule's zone and as Unix nanoseconds."""

    start: datetime
    end: datetime

    @property
    def start_ns(self) -> int:
        return unix_ns(self.start)

    @property
    def end_ns(self) -> int:
        return unix_ns(self.end)

    @property
    def key(self) -> str:
        """The period's start as ISO text: what alerts are deduplicated by."""
        return self.start.isoformat()


def _local(year: int, month: int, day: int, hour: int, zone: ZoneInfo) -> datetime:
    """The first instant of that wall-clock hour (a skipped hour, DST, starts at its end)."""
    naive = datetime(year, month, day, hour)
    moment = naive.replace(tzinfo=zone)
    # Round-trip through UTC: a wall time that does not exist becomes the real instant after.
    return moment.astimezone(_UTC).astimezone(zone)


def period_of(period: str, zone: ZoneInfo, at_ns: int) -> Period:
    """The ``period`` (hour, day, month) holding the instant ``at_ns`` (Unix ns) in ``zone``."""
    moment = datetime.fromtimestamp(at_ns // 10**9, _UTC).astimezone(zone)
    if period == "hour":
        # Hours are fixed lengths in UTC even across DST changes (offsets are whole hours in
        # almost every zone; a half-hour zone's hour still starts on its own clock's hour).
        start = moment.replace(minute=0, second=0, microsecond=0)
        start = start.astimezone(_UTC).astimezone(zone)
        end = (start.astimezone(_UTC) + timedelta(hours=1)).astimezone(zone)
        return Period(start, end)
    if period == "day":
        start = _local(moment.year, moment.month, moment.day, 0, zone)
        following = moment.date() + timedelta(days=1)
        end = _local(following.year, following.month, following.day, 0, zone)
        return Period(start, end)
    if period == "month":
        start = _local(moment.year, moment.month, 1, 0, zone)
        year, month = (
            (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        )
        return Period(start, _local(year, month, 1, 0, zone))
    raise ValueError(f"unknown period {period!r}")
