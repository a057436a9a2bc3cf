"""Metrics API queries for our questions, and their rows back as our groups.

Langfuse's rules (v2 ``/api/public/v2/metrics``, observations view):

- ``userId`` and ``sessionId`` are high-cardinality dimensions: allowed only with
  ``config.row_limit`` and an ``orderBy`` with direction ``desc`` on a metric, and never
  with a ``timeDimension``. Per user per day is therefore a ``userId`` filter with a day
  time dimension, or (to group every user by day) one query per day with ``userId`` as a
  dimension: we do the latter, whose number of queries is bounded by the days asked for,
  not by the number of users.
- The day time dimension buckets by UTC date. Days in another time zone are asked for as
  one query per local day (its UTC bounds, no time dimension).
- ``toTimestamp`` is inclusive (``<=``); ours is exclusive, so we send it minus 1 ms.
- There is no provider dimension.
- A metric comes back under ``{aggregation}_{measure}`` (``sum_totalCost``), the day under
  ``time_dimension``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from otel_gemini.aggregate._query import Filters, QueryError, TimeWindow

VIEW: Final = "observations"
TIME_DIMENSION: Final = "time_dimension"
_DIMENSIONS: Final = {"model": "providedModelName", "user": "userId", "session": "sessionId"}
_HIGH_CARDINALITY: Final = frozenset(("user", "session"))
_FILTER_COLUMNS: Final = {"model": "providedModelName", "user": "userId", "session": "sessionId"}
# Observations that bill: our generate_content/Live turns (GENERATION) and embeddings.
BILLED_TYPES_FILTER: Final = {
    "column": "type",
    "operator": "any of",
    "value": ["GENERATION", "EMBEDDING"],
    "type": "stringOptions",
}
ERROR_FILTER: Final = {"column": "level", "operator": "=", "value": "ERROR", "type": "string"}
COST_METRICS: Final = (
    ("count", "count"),
    ("totalCost", "sum"),
    ("inputCost", "sum"),
    ("outputCost", "sum"),
    ("inputTokens", "sum"),
    ("outputTokens", "sum"),
    ("totalTokens", "sum"),
)
LATENCY_METRICS: Final = (
    ("count", "count"),
    *(("latency", aggregation) for aggregation in ("p50", "p95", "p99", "avg", "max")),
    *(
        ("timeToFirstToken", aggregation)
        for aggregation in ("count", "p50", "p95", "p99", "avg", "max")
    ),
)
ERROR_METRICS: Final = (("count", "count"),)


@dataclass(frozen=True)
class Window:
    """One Metrics API time range: the whole window, or one local day of it."""

    start: datetime
    end: datetime
    day: str | None
    """The local day this range is (when the plan asks day by day)."""
    by_utc_day: bool
    """Whether the query groups by Langfuse's (UTC) day time dimension."""


def plan_windows(window: TimeWindow, group_by: Sequence[str], max_day_queries: int) -> list[Window]:
    """The time ranges to ask for (see the module doc for why)."""
    if "day" not in group_by:
        return [Window(window.start, window.end, None, False)]
    high = _HIGH_CARDINALITY.intersection(group_by)
    if not high and window.is_utc_days():
        return [Window(window.start, window.end, None, True)]
    days = window.days()
    if len(days) > max_day_queries:
        reason = (
            f"grouping by {' and '.join(sorted(high))} and day"
            if high
            else f"days in {window.zone_name}"
        )
        raise QueryError(
            "from",
            f"with source=langfuse, {reason} takes one Metrics API query per day; "
            f"ask for at most {max_day_queries} days (this window has {len(days)})",
        )
    return [Window(_from_ns(lo), _from_ns(hi), day, False) for day, lo, hi in days]


def _from_ns(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ns // 1000)


def _timestamp(moment: datetime) -> str:
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def check_supported(group_by: Sequence[str], filters: Filters) -> None:
    """Raises :class:`QueryError` for what Langfuse cannot answer (provider)."""
    if "provider" in group_by:
        raise QueryError(
            "group_by",
            "Langfuse's Metrics API has no provider dimension; use source=local to group "
            "by provider",
        )
    if filters.provider is not None:
        raise QueryError(
            "provider",
            "Langfuse's Metrics API cannot filter by provider; use source=local",
        )


def build_query(
    window: Window,
    group_by: Sequence[str],
    filters: Filters,
    metrics: Sequence[tuple[str, str]],
    row_limit: int,
    extra_filters: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The Metrics API query (a JSON-ready dict, keys in a fixed order)."""
    dimensions = [{"field": _DIMENSIONS[key]} for key in group_by if key in _DIMENSIONS]
    query_filters: list[dict[str, Any]] = [dict(BILLED_TYPES_FILTER)]
    for key, value in filters.items():
        query_filters.append(
            {"column": _FILTER_COLUMNS[key], "operator": "=", "value": value, "type": "string"}
        )
    query_filters.extend(dict(extra) for extra in extra_filters)
    body: dict[str, Any] = {
        "view": VIEW,
        "dimensions": dimensions,
        "metrics": [{"measure": measure, "aggregation": agg} for measure, agg in metrics],
        "filters": query_filters,
    }
    if window.by_utc_day:
        body["timeDimension"] = {"granularity": "day"}
    body["fromTimestamp"] = _timestamp(window.start)
    body["toTimestamp"] = _timestamp(window.end - timedelta(milliseconds=1))
    if _HIGH_CARDINALITY.intersection(group_by):
        # Top N by the first metric that is not the count (the cost): Langfuse requires a
        # descending order on a metric with a row limit for these dimensions.
        measure, aggregation = next(
            (pair for pair in metrics if pair[0] != "count"), ("count", "count")
        )
        body["orderBy"] = [{"field": f"{aggregation}_{measure}", "direction": "desc"}]
    body["config"] = {"row_limit": row_limit}
    return body


def row_key(
    row: Mapping[str, Any], group_by: Sequence[str], window: Window
) -> tuple[str | None, ...]:
    """The group-by values of one returned row, in ``group_by`` order."""
    values: list[str | None] = []
    for key in group_by:
        if key == "day":
            if window.day is not None:
                values.append(window.day)
            else:
                values.append(_day(row.get(TIME_DIMENSION)))
        else:
            value = row.get(_DIMENSIONS[key])
            values.append(str(value) if value not in (None, "") else None)
    return tuple(values)


def _day(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    return text[:10]


def metric(row: Mapping[str, Any], measure: str, aggregation: str) -> Any:
    return row.get(f"{aggregation}_{measure}")


def as_decimal(value: Any) -> Decimal:
    """A Metrics API number (JSON number or string) as an exact decimal (``None``: 0)."""
    if value is None or value == "":
        return Decimal(0)
    try:
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
    return amount if amount.is_finite() else Decimal(0)


def as_int(value: Any) -> int:
    return int(as_decimal(value))


def as_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None
