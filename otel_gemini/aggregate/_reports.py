"""The answers: cost and latency reports, with where they came from, as JSON-ready dicts.

Money is :class:`~decimal.Decimal` here and a decimal string in JSON; a cost nobody could
price is ``None`` (``null``), never ``0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from otel_gemini._money import usd_text
from otel_gemini.aggregate._percentiles import EXACT_PERCENTILE_ROWS
from otel_gemini.aggregate._query import CostQuery, LatencyQuery

PERCENTILE_METHOD: Final = (
    "local: linear interpolation between the two nearest ranks over all values "
    "(rank = (n - 1) * p / 100, as numpy's default and statistics.quantiles(method="
    f"'inclusive')), exact up to {EXACT_PERCENTILE_ROWS:,} generations in the window or "
    "filtered by user or session, else read from log-bucket histograms within 1 %; "
    "langfuse: ClickHouse quantile() (approximate for large groups)"
)


@dataclass(frozen=True)
class Origin:
    """Where an answer came from."""

    source: str
    """``local`` (this service's cost store) or ``langfuse`` (its Metrics API)."""
    requested_source: str
    stale: bool = False
    """True when the requested source could not answer and another one did."""
    stale_reason: str | None = None
    truncated: bool = False
    """True when Langfuse returned as many rows as the row limit: groups may be missing."""

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "source": self.source,
            "requested_source": self.requested_source,
            "stale": self.stale,
        }
        if self.stale_reason is not None:
            document["stale_reason"] = self.stale_reason
        if self.truncated:
            document["truncated"] = True
        return document


@dataclass(frozen=True)
class CostGroup:
    """Totals for one group (``key``: group-by key → value; ``None`` where unknown)."""

    key: Mapping[str, str | None]
    requests: int
    cost: Decimal | None
    """USD; ``None`` when nothing in the group could be priced (unknown model)."""
    input_cost: Decimal | None
    output_cost: Decimal | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    unpriced_requests: int | None = None
    """Generations of a model without a price (their cost is missing from ``cost``);
    ``None`` when the source cannot tell (Langfuse)."""
    errors: int | None = None

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = dict(self.key)
        document.update(
            {
                "cost": usd_text(self.cost),
                "input_cost": usd_text(self.input_cost),
                "output_cost": usd_text(self.output_cost),
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "total_tokens": self.total_tokens,
                "requests": self.requests,
                "unpriced_requests": self.unpriced_requests,
                "errors": self.errors,
            }
        )
        return document


def add_groups(groups: list[CostGroup], key: Mapping[str, str | None]) -> CostGroup:
    """The sum of ``groups`` under ``key`` (for totals and for merging partial answers)."""

    def money(values: list[Decimal | None]) -> Decimal | None:
        known = [value for value in values if value is not None]
        return sum(known, Decimal(0)) if known or not values else None

    def optional(values: list[int | None]) -> int | None:
        return None if any(value is None for value in values) else sum(v or 0 for v in values)

    return CostGroup(
        key=dict(key),
        requests=sum(group.requests for group in groups),
        cost=money([group.cost for group in groups]),
        input_cost=money([group.input_cost for group in groups]),
        output_cost=money([group.output_cost for group in groups]),
        input_tokens=sum(group.input_tokens for group in groups),
        output_tokens=sum(group.output_tokens for group in groups),
        total_tokens=sum(group.total_tokens for group in groups),
        unpriced_requests=optional([group.unpriced_requests for group in groups]),
        errors=optional([group.errors for group in groups]),
    )


def costliest_first(groups: list[CostGroup]) -> list[CostGroup]:
    """``groups`` (in key order) costliest first: a group of unknown cost after every
    known one, ties in key order. The local source's SQL ranks the same way."""
    return sorted(groups, key=lambda group: (group.cost is None, -(group.cost or 0)))


@dataclass(frozen=True)
class CostReport:
    """Cost and tokens by group, their total, and where the numbers came from.

    With ``query.top``, ``groups`` are the ``top`` costliest: a source that ranked them
    itself passes ``group_count`` (how many groups there were) and ``total_of_all`` (their
    sum); otherwise ``groups`` are every group, ranked and cut here."""

    query: CostQuery
    origin: Origin
    groups: tuple[CostGroup, ...]
    dropped: int | None = None
    """Generations the local store dropped in the window (their cost is missing from these
    numbers: a lower bound then); ``None`` from a source that cannot tell (Langfuse)."""
    group_count: int | None = None
    total_of_all: CostGroup | None = field(default=None, repr=False)
    total: CostGroup = field(init=False)

    def __post_init__(self) -> None:
        top = self.query.top
        if top is not None and self.group_count is None:
            every = list(self.groups)
            object.__setattr__(self, "group_count", len(every))
            object.__setattr__(self, "groups", tuple(costliest_first(every)[:top]))
            object.__setattr__(self, "total_of_all", add_groups(every, {}))
        total = self.total_of_all
        object.__setattr__(self, "total", total or add_groups(list(self.groups), {}))

    def to_dict(self) -> dict[str, Any]:
        document = _report_head(self.origin, self.query)
        document["currency"] = "USD"
        document["groups"] = [group.to_dict() for group in self.groups]
        document["total"] = self.total.to_dict()
        if self.query.top is not None:
            document["top"] = self.query.top
            document["group_count"] = self.group_count
        _add_dropped(document, self.dropped)
        return document


@dataclass(frozen=True)
class Percentiles:
    """p50 / p95 / p99 of one measure (milliseconds), over ``count`` values."""

    count: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return {
            "count": self.count,
            "p50": rounded(self.p50),
            "p95": rounded(self.p95),
            "p99": rounded(self.p99),
            "mean": rounded(self.mean),
            "max": rounded(self.max),
        }


@dataclass(frozen=True)
class LatencyGroup:
    """Latency, time to first token and errors for one group."""

    key: Mapping[str, str | None]
    requests: int
    errors: int | None
    latency_ms: Percentiles
    time_to_first_token_ms: Percentiles

    @property
    def error_rate(self) -> float | None:
        if self.errors is None or not self.requests:
            return None
        return self.errors / self.requests

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = dict(self.key)
        rate = self.error_rate
        document.update(
            {
                "requests": self.requests,
                "errors": self.errors,
                "error_rate": None if rate is None else round(rate, 6),
                "latency_ms": self.latency_ms.to_dict(),
                "time_to_first_token_ms": self.time_to_first_token_ms.to_dict(),
            }
        )
        return document


@dataclass(frozen=True)
class LatencyReport:
    """Latency percentiles and error rates by group, and where they came from."""

    query: LatencyQuery
    origin: Origin
    groups: tuple[LatencyGroup, ...]
    dropped: int | None = None
    """As :attr:`CostReport.dropped`: these generations are missing from the figures."""

    def to_dict(self) -> dict[str, Any]:
        document = _report_head(self.origin, self.query)
        document["percentile_method"] = PERCENTILE_METHOD
        document["groups"] = [group.to_dict() for group in self.groups]
        _add_dropped(document, self.dropped)
        return document


def _add_dropped(document: dict[str, Any], dropped: int | None) -> None:
    if dropped is not None:
        document["dropped"] = dropped


def _report_head(origin: Origin, query: CostQuery | LatencyQuery) -> dict[str, Any]:
    """What every report starts with: where the answer came from and what was asked."""
    document = origin.to_dict()
    document.update(query.window.to_dict())
    document["group_by"] = list(query.group_by)
    filters = dict(query.filters.items())
    if filters:
        document["filters"] = filters
    return document
