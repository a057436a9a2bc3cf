"""The questions: cost and latency queries, their time window and time zone, and parsing
them from text (HTTP query parameters, command-line options) with errors naming the
parameter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from otel_gemini._limits import quote

COST_GROUP_KEYS: Final = ("user", "day", "model", "provider", "session")
LATENCY_GROUP_KEYS: Final = ("model", "provider", "day")
FILTER_KEYS: Final = ("user", "session", "model", "provider")
SOURCES: Final = ("local", "langfuse")
DEFAULT_WINDOW: Final = timedelta(days=30)
MAX_TOP: Final = 1000
"""The largest ``top``: a page shows tens of groups, never thousands."""
MAX_DAYS: Final = 3660
_UTC_NAMES: Final = frozenset(("utc", "z", "etc/utc", "gmt", "etc/gmt"))
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""The first moment a query may name: span times count nanoseconds from here."""
LATEST: Final = datetime(2262, 1, 1, tzinfo=timezone.utc)
"""The last: nanoseconds since 1970 overflow a 64-bit integer (the store's) in April 2262.
Moments outside [EARLIEST, LATEST] are a 400 naming the parameter, never an overflow (500)."""


class QueryError(ValueError):
    """A bad query parameter (HTTP 400); ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class TimeWindow:
    """``[start, end)`` in UTC, and the zone whose midnights separate days."""

    start: datetime
    end: datetime
    zone: tzinfo
    zone_name: str

    @property
    def start_ns(self) -> int:
        return unix_ns(self.start)

    @property
    def end_ns(self) -> int:
        return unix_ns(self.end)

    def days(self) -> list[tuple[str, int, int]]:
        """The local days overlapping the window: (``YYYY-MM-DD``, start ns, end ns), each
        clipped to the window. A day is midnight to midnight in the zone (23 or 25 hours
        across a DST change)."""
        local = self.start.astimezone(self.zone)
        day = local.date()
        result: list[tuple[str, int, int]] = []
        while True:
            lo = _midnight(day, self.zone)
            hi = _midnight(day + timedelta(days=1), self.zone)
            if lo >= self.end:
                break
            result.append(
                (day.isoformat(), unix_ns(max(lo, self.start)), unix_ns(min(hi, self.end)))
            )
            day += timedelta(days=1)
        return result

    def is_utc_days(self) -> bool:
        """Whether local midnights are UTC midnights throughout the window."""
        probe = self.start
        while probe < self.end:
            offset = probe.astimezone(self.zone).utcoffset()
            if offset is None or offset != timedelta(0):
                return False
            probe += timedelta(hours=12)
        offset = self.end.astimezone(self.zone).utcoffset()
        return offset == timedelta(0)

    def to_dict(self) -> dict[str, str]:
        return {"from": iso_utc(self.start), "to": iso_utc(self.end), "tz": self.zone_name}


@dataclass(frozen=True)
class Filters:
    """Equality filters (``None``: any)."""

    user: str | None = None
    session: str | None = None
    model: str | None = None
    provider: str | None = None

    def items(self) -> list[tuple[str, str]]:
        return [(key, value) for key in FILTER_KEYS if (value := getattr(self, key)) is not None]


@dataclass(frozen=True)
class CostQuery:
    """Cost and tokens in ``window``, grouped by ``group_by`` (in that order).

    ``top``: only the ``top`` most costly groups, costliest first (a group of unknown cost
    after every known one, ties in key order); the report's total and ``group_count``
    still cover every group. A month of sessions is tens of thousands of groups, which
    no page needs: the local source stops at ``top`` in SQL."""

    window: TimeWindow
    group_by: tuple[str, ...] = ()
    filters: Filters = field(default_factory=Filters)
    top: int | None = None


@dataclass(frozen=True)
class LatencyQuery:
    """Latency and time-to-first-token percentiles and error rates, grouped."""

    window: TimeWindow
    group_by: tuple[str, ...] = ("model",)
    filters: Filters = field(default_factory=Filters)


# --- parsing ------------------------------------------------------------------------------


def unix_ns(moment: datetime) -> int:
    """Nanoseconds since 1970 of an aware ``moment``, exactly (a float timestamp would round)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _midnight(day: date, zone: tzinfo) -> datetime:
    # fold=0 and zoneinfo's gap handling give the first instant of the day even when a DST
    # change happens at midnight (then local midnight does not exist: 00:00 maps forward).
    local = datetime(day.year, day.month, day.day, tzinfo=zone)
    return local.astimezone(timezone.utc)


def iso_utc(moment: datetime) -> str:
    """``2026-11-24T13:00:00Z`` (milliseconds shown only when present)."""
    moment = moment.astimezone(timezone.utc)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_zone(text: str | None) -> tuple[tzinfo, str]:
    """An IANA zone name (``Europe/Paris``), ``UTC`` or a fixed offset (``+02:00``)."""
    if text is None or not text.strip():
        return timezone.utc, "UTC"
    name = text.strip()
    if name.lower() in _UTC_NAMES:
        return timezone.utc, "UTC"
    if name[0] in "+-":
        try:
            offset = datetime.strptime(name.replace(":", ""), "%z").utcoffset()
        except ValueError:
            offset = None
        if offset is None:
            raise QueryError("tz", f"not a UTC offset: {name!r} (use e.g. +02:00)")
        return timezone(offset), name
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(
            "tz", f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
        ) from None


def parse_moment(text: str, parameter: str, zone: tzinfo) -> datetime:
    """An ISO 8601 date (local midnight in ``zone``) or date-time (without an offset:
    local time in ``zone``), as an aware UTC datetime."""
    value = text.strip()
    if not value:
        raise QueryError(parameter, "empty; use an ISO 8601 date or date-time")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day)  # local midnight in ``zone``
        else:
            if value[-1] in "zZ":
                value = value[:-1] + "+00:00"
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            parameter,
            f"not an ISO 8601 date or date-time: {text[:100]!r} "
            "(e.g. 2026-11-01 or 2026-11-01T00:00:00Z)",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    aware = moment
    return _in_range(lambda: aware.astimezone(timezone.utc), text, parameter)


def _in_range(convert: Callable[[], datetime], text: str, parameter: str) -> datetime:
    # Moving 0001-01-01 or 9999-12-31T23:59:59 by a zone's offset leaves datetime's range
    # (OverflowError); either end is outside what the store can hold anyway.
    try:
        moment = convert()
    except (OverflowError, ValueError):
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise QueryError(
            parameter,
            f"{text[:100]!r} is out of range (from {EARLIEST.date()} to {LATEST.date()}, UTC)",
        )
    return moment


def parse_window(start: str | None, end: str | None, tz: str | None, now: datetime) -> TimeWindow:
    """From ``start`` (default: ``end`` minus 30 days) to ``end`` (default: ``now``)."""
    zone, zone_name = parse_zone(tz)
    end_at = parse_moment(end, "to", zone) if end else now.astimezone(timezone.utc)
    start_at = parse_moment(start, "from", zone) if start else end_at - DEFAULT_WINDOW
    if start_at >= end_at:
        raise QueryError("from", f"must be before to ({iso_utc(start_at)} >= {iso_utc(end_at)})")
    if end_at - start_at > timedelta(days=MAX_DAYS):
        raise QueryError("from", f"the window is longer than {MAX_DAYS} days")
    return TimeWindow(start_at, end_at, zone, zone_name)


def parse_group_by(
    text: str | None, allowed: tuple[str, ...], default: tuple[str, ...]
) -> tuple[str, ...]:
    """``user,day,model`` → ``("user", "day", "model")`` (each of ``allowed``, once)."""
    if text is None:
        return default
    keys: list[str] = []
    for part in text.split(","):
        key = part.strip().lower()
        if not key:
            continue
        if key not in allowed:
            raise QueryError(
                "group_by", f"cannot group by {part.strip()!r}; use any of {', '.join(allowed)}"
            )
        if key in keys:
            raise QueryError("group_by", f"{key!r} is listed twice")
        keys.append(key)
    return tuple(keys)


def parse_source(text: str | None, default: str = "local") -> str:
    if text is None or not text.strip():
        return default
    source = text.strip().lower()
    if source not in SOURCES:
        raise QueryError("source", f"unknown source {text!r}; use local or langfuse")
    return source


def parse_filters(params: Mapping[str, str]) -> Filters:
    values: dict[str, str] = {}
    for key in FILTER_KEYS:
        value = params.get(key)
        if value is not None:
            if not value.strip():
                raise QueryError(key, "empty; leave the parameter out to include every value")
            values[key] = value
    return Filters(**values)


def parse_top(text: str | None) -> int | None:
    """``top``: a whole number from 1 to :data:`MAX_TOP` (``None``: every group)."""
    if text is None:
        return None
    value = text.strip()
    # ASCII digits, a few of them: int() refuses digit strings of over 4,300 characters.
    if (
        not (value.isascii() and value.isdigit() and len(value) <= 4)
        or not 1 <= int(value) <= MAX_TOP
    ):
        raise QueryError("top", f"must be a whole number from 1 to {MAX_TOP} (got {quote(text)})")
    return int(value)


def parse_cost_query(params: Mapping[str, str], now: datetime) -> CostQuery:
    """A :class:`CostQuery` from ``group_by``, ``from``, ``to``, ``tz``, filters and
    ``top``."""
    group_by = parse_group_by(params.get("group_by"), COST_GROUP_KEYS, ())
    window = parse_window(params.get("from"), params.get("to"), params.get("tz"), now)
    return CostQuery(window, group_by, parse_filters(params), parse_top(params.get("top")))


def parse_latency_query(params: Mapping[str, str], now: datetime) -> LatencyQuery:
    """A :class:`LatencyQuery` from ``group_by`` (default ``model``), ``from``, ``to``,
    ``tz`` and filters."""
    group_by = parse_group_by(params.get("group_by"), LATENCY_GROUP_KEYS, ("model",))
    window = parse_window(params.get("from"), params.get("to"), params.get("tz"), now)
    return LatencyQuery(window, group_by, parse_filters(params))
