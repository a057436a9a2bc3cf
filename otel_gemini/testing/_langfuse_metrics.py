"""The fake Langfuse's Metrics API: ``GET /api/public/v2/metrics?query=<json>``.

Answers from the spans the fake has accepted, mapped to observations the way Langfuse maps
OTLP spans (type, model, user, session, level, cost and usage details), and enforces the
v2 query rules Langfuse enforces: known view, dimensions, measures and aggregations;
``userId`` / ``sessionId`` (and the other high-cardinality dimensions) only with
``config.row_limit`` and an ``orderBy`` descending on a metric, and never with a
``timeDimension``. Every query received is recorded (parsed JSON).

Differences from Langfuse, kept on purpose: percentiles are exact (linear interpolation,
where ClickHouse's ``quantile`` samples above 8192 values); a time series is not filled
with zero rows for empty buckets; only the observations view exists.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from otel_gemini.testing._langfuse_app import LangfuseRoutes
from otel_gemini.testing._langfuse_mapping import (
    MappedObservation,
    latest_copies,
    map_observation,
)
from otel_gemini.testing._langfuse_otlp import ReceivedSpan
from otel_gemini.testing._langfuse_state import LangfuseState

METRICS_PATH: Final = "/api/public/v2/metrics"
DIMENSIONS: Final = (
    "id",
    "traceId",
    "environment",
    "parentObservationId",
    "type",
    "name",
    "level",
    "providedModelName",
    "userId",
    "sessionId",
    "startTimeMonth",
)
HIGH_CARDINALITY: Final = frozenset(("id", "traceId", "userId", "sessionId", "parentObservationId"))
MEASURES: Final = (
    "count",
    "latency",
    "timeToFirstToken",
    "inputTokens",
    "outputTokens",
    "totalTokens",
    "inputCost",
    "outputCost",
    "totalCost",
)
AGGREGATIONS: Final = ("sum", "avg", "count", "max", "min", "p50", "p75", "p90", "p95", "p99")
GRANULARITIES: Final = ("minute", "hour", "day", "month")


class _Invalid(ValueError):
    """A query Langfuse would refuse with 400."""


def _ms(unix_nano: int) -> int:
    """Milliseconds, as ClickHouse stores the times."""
    return unix_nano // 1_000_000


def dimension(observation: MappedObservation, name: str) -> str | None:
    """The value of dimension ``name`` of ``observation``."""
    return {
        "id": observation.id,
        "traceId": observation.trace_id,
        "environment": observation.environment,
        "parentObservationId": observation.parent_id,
        "type": observation.type,
        "name": observation.name,
        "level": observation.level,
        "providedModelName": observation.model,
        "userId": observation.user_id,
        "sessionId": observation.session_id,
        "startTimeMonth": _utc(_ms(observation.start_time_unix_nano)).strftime("%Y-%m"),
    }[name]


def measure(observation: MappedObservation, name: str) -> Decimal | None:
    """The value of measure ``name`` of ``observation`` (None: it has none)."""
    start_ms = _ms(observation.start_time_unix_nano)
    if name == "count":
        return Decimal(1)
    if name == "latency":
        return Decimal(_ms(observation.end_time_unix_nano) - start_ms)
    if name == "timeToFirstToken":
        completion_start_ms = _iso_ms(observation.completion_start_time)
        if completion_start_ms is None:
            return None
        return Decimal(completion_start_ms - start_ms)
    usage = {key: Decimal(value) for key, value in observation.usage_details.items()}
    if name == "totalCost":
        return observation.cost_details.get("total", Decimal(0))
    if name == "totalTokens":
        return usage.get("total", Decimal(0))
    details = observation.cost_details if name.endswith("Cost") else usage
    side = "input" if name.startswith("input") else "output"
    return sum((value for key, value in details.items() if side in key), Decimal(0))


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _iso_ms(value: Any) -> int | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


# --- query evaluation ------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _Invalid(message)


def validate(query: Mapping[str, Any]) -> None:
    """Langfuse's checks (400 on failure), high-cardinality rules included."""
    _require(query.get("view") == "observations", "view must be observations (fake)")
    dimensions = query.get("dimensions") or []
    _require(isinstance(dimensions, list), "dimensions must be a list")
    for dimension in dimensions:
        field_name = dimension.get("field") if isinstance(dimension, dict) else None
        _require(
            field_name in DIMENSIONS,
            f"Invalid dimension {field_name}. Must be one of {','.join(DIMENSIONS)}",
        )
    metrics = query.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        raise _Invalid("at least one metric is required")
    for item in metrics:
        _require(isinstance(item, dict), "a metric must be an object")
        _require(
            item.get("measure") in MEASURES,
            f"Invalid metric {item.get('measure')}. Must be one of {','.join(MEASURES)}",
        )
        _require(
            item.get("aggregation") in AGGREGATIONS,
            f"Invalid aggregation {item.get('aggregation')}",
        )
    time_dimension = query.get("timeDimension")
    if time_dimension is not None:
        _require(
            isinstance(time_dimension, dict) and time_dimension.get("granularity") in GRANULARITIES,
            "timeDimension.granularity must be one of " + ", ".join(GRANULARITIES),
        )
    for key in ("fromTimestamp", "toTimestamp"):
        _require(_iso_ms(query.get(key)) is not None, f"{key} must be an ISO date-time")
    _require(
        _iso_ms(query["fromTimestamp"]) < _iso_ms(query["toTimestamp"]),  # type: ignore[operator]
        "toTimestamp must be after fromTimestamp",
    )
    config = query.get("config") or {}
    row_limit = config.get("row_limit")
    if row_limit is not None:
        _require(
            isinstance(row_limit, int) and 1 <= row_limit <= 1000,
            "config.row_limit must be 1 to 1000",
        )
    high = [d["field"] for d in dimensions if d["field"] in HIGH_CARDINALITY]
    if not high:
        return
    names = ", ".join(high)
    _require(
        time_dimension is None,
        f"High cardinality dimension(s) '{names}' cannot be used with timeDimension. Time "
        "series queries with high cardinality dimensions produce unbounded result sets.",
    )
    descending = [o for o in query.get("orderBy") or [] if o.get("direction") == "desc"]
    _require(
        row_limit is not None and bool(descending),
        f"High cardinality dimension(s) '{names}' require both 'config.row_limit' and "
        "'orderBy' with direction 'desc' on a measure field.",
    )
    measures = [item["measure"] for item in metrics]
    for order in descending:
        field_name = str(order.get("field"))
        _require(
            any(field_name == m or field_name.endswith(f"_{m}") for m in measures),
            f"High cardinality dimension(s) '{names}' require 'orderBy' with direction "
            f"'desc' on a measure field. '{field_name}' is not a measure in this query.",
        )


def _matches(observation_: MappedObservation, item: Mapping[str, Any]) -> bool:
    column, operator, value = item.get("column"), item.get("operator"), item.get("value")
    _require(column in DIMENSIONS, f"Invalid filter column {column}")
    actual = dimension(observation_, str(column))
    if operator == "=":
        return actual == value
    if operator in ("any of", "none of"):
        if not isinstance(value, list):
            raise _Invalid(f"{operator} needs a list value")
        found = actual in value
        return found if operator == "any of" else not found
    if operator == "contains":
        return actual is not None and str(value) in actual
    if operator == "is null":
        return actual is None
    if operator == "is not null":
        return actual is not None
    raise _Invalid(f"unsupported filter operator {operator!r} (fake)")


def _bucket(ms: int, granularity: str) -> str:
    moment = _utc(ms)
    if granularity == "day":
        return moment.strftime("%Y-%m-%d")
    if granularity == "month":
        return moment.strftime("%Y-%m-01")
    if granularity == "hour":
        return moment.strftime("%Y-%m-%d %H:00:00")
    return moment.strftime("%Y-%m-%d %H:%M:00")


def _aggregate(values: list[Decimal], aggregation: str) -> Decimal | int | None:
    if aggregation == "count":  # count(x) counts the non-null values
        return len(values)
    if not values:
        return Decimal(0) if aggregation == "sum" else None
    if aggregation == "sum":
        return sum(values, Decimal(0))
    if aggregation == "avg":
        return sum(values, Decimal(0)) / len(values)
    if aggregation == "min":
        return min(values)
    if aggregation == "max":
        return max(values)
    fraction = Decimal(aggregation[1:]) / 100
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    lower = int(rank)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (rank - lower) * (ordered[upper] - ordered[lower])


def _json_number(value: Decimal | int | None, measure: str) -> Any:
    if value is None or isinstance(value, int):
        return value
    if measure.endswith("Cost"):
        # Langfuse keeps costs as Decimal(18, 12).
        return float(value.quantize(Decimal("1e-12")))
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def evaluate(
    query: Mapping[str, Any], observations: Iterable[MappedObservation]
) -> list[dict[str, Any]]:
    """The rows Langfuse would answer ``query`` with (after :func:`validate`)."""
    from_ms = _iso_ms(query["fromTimestamp"])
    to_ms = _iso_ms(query["toTimestamp"])
    assert from_ms is not None and to_ms is not None
    dimensions = [d["field"] for d in query.get("dimensions") or []]
    metrics = [(m["measure"], m["aggregation"]) for m in query["metrics"]]
    filters = query.get("filters") or []
    granularity = (query.get("timeDimension") or {}).get("granularity")
    groups: dict[tuple[Any, ...], list[MappedObservation]] = {}
    for item in observations:
        start_ms = _ms(item.start_time_unix_nano)
        if not from_ms <= start_ms <= to_ms:
            continue
        if not all(_matches(item, f) for f in filters):
            continue
        key = tuple(dimension(item, d) for d in dimensions)
        if granularity is not None:
            key += (_bucket(start_ms, granularity),)
        groups.setdefault(key, []).append(item)
    rows: list[dict[str, Any]] = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(dimensions, key, strict=False))
        if granularity is not None:
            row["time_dimension"] = key[-1]
        for measure_name, aggregation in metrics:
            values = [v for m in members if (v := measure(m, measure_name)) is not None]
            result = _aggregate(values, aggregation)
            row[f"{aggregation}_{measure_name}"] = _json_number(result, measure_name)
        rows.append(row)
    _order(rows, query, metrics, granularity is not None, dimensions)
    limit = (query.get("config") or {}).get("row_limit")
    return rows[:limit] if limit else rows


def _order(
    rows: list[dict[str, Any]],
    query: Mapping[str, Any],
    metrics: list[tuple[str, str]],
    has_time: bool,
    dimensions: list[str],
) -> None:
    order = query.get("orderBy") or []
    if not order:
        if has_time:
            order = [{"field": "time_dimension", "direction": "asc"}]
        else:
            measure, aggregation = metrics[0]
            order = [{"field": f"{aggregation}_{measure}", "direction": "desc"}]
    allowed = {*dimensions, "time_dimension", *(f"{a}_{m}" for m, a in metrics)}
    for item in reversed(order):
        field_name = item.get("field")
        _require(field_name in allowed, f"Invalid orderBy field: {field_name}.")

        def sort_key(row: dict[str, Any], name: str = str(field_name)) -> tuple[bool, Any]:
            value = row.get(name)
            return (value is not None, value if value is not None else 0)

        rows.sort(key=sort_key, reverse=item.get("direction") == "desc")


@dataclass
class MetricsApi:
    """The Metrics API route over a fake Langfuse's state, and the queries it received."""

    state: LangfuseState
    spans: Callable[[], list[ReceivedSpan]]
    queries: list[dict[str, Any]] = field(default_factory=list)
    """Every query received (parsed JSON, invalid ones included), oldest first."""
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def routes(self) -> list[BaseRoute]:
        return [Route(METRICS_PATH, self._metrics, methods=["GET"])]

    def observations(self) -> list[MappedObservation]:
        """The stored observations: accepted spans, the last copy of each (trace, span) id."""
        return [map_observation(span) for span in latest_copies(self.spans())]

    def wait_for_queries(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Blocks until ``count`` queries arrived; raises ``TimeoutError`` if not in time."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.queries) >= count, timeout):
                raise TimeoutError(f"{len(self.queries)} of {count} Metrics API queries")
            return list(self.queries)

    def reset(self) -> None:
        with self._lock:
            self.queries.clear()

    async def _metrics(self, request: Request) -> Response:
        routes = LangfuseRoutes(self.state)
        answer = await routes._apply_mode()
        if answer is None:
            answer = routes._auth_error(request)
        text = request.query_params.get("query")
        try:
            query = json.loads(text) if text is not None else None
        except ValueError:
            query = None
        with self._lock:
            self.queries.append(query if isinstance(query, dict) else {"unparsable": text})
            self._lock.notify_all()
        if answer is not None:
            return answer
        if not isinstance(query, dict):
            return JSONResponse({"message": "query must be a JSON object"}, status_code=400)
        try:
            validate(query)
            rows = evaluate(query, self.observations())
        except (_Invalid, KeyError, TypeError) as error:
            return JSONResponse({"message": f"Invalid query: {error}"}, status_code=400)
        return JSONResponse({"data": rows})
