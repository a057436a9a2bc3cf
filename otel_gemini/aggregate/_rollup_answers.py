"""SQL answering from the rollups (:mod:`._rollups`): the periods of a query
(:mod:`._periods`) read from a rollup table, the raw rows at unaligned edges, and the rows
above the watermark (not folded yet), each counted with its piece's sign, in one statement.

The rows come out in the layout of the raw statements in :mod:`._local`, which turns
either into a report.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from otel_gemini.aggregate._periods import RAW, Piece, pieces
from otel_gemini.aggregate._query import Filters
from otel_gemini.aggregate._rollups import (
    DURATION_MAXIMA,
    DURATION_VALUES,
    KEYED_TABLES,
    LATENCY,
    LATENCY_TABLE,
    MODEL_TABLE,
    QUARTER_NS,
    SPANS,
    SUM_VALUES,
    TIME_TO_FIRST_TOKEN,
    bucket_sql,
)

_ROLLUP_KEYS: Final = {
    "user": "user_id",
    "session": "session_id",
    "model": "model",
    "provider": "provider",
}
_LABEL: Final = re.compile(r"^[0-9-]*$")
_MEASURES: Final = f"(SELECT {LATENCY} AS measure UNION ALL SELECT {TIME_TO_FIRST_TOKEN})"
SUM_NAMES: Final = tuple(name for name, _ in SUM_VALUES)


class Window(Protocol):
    """What a statement reads of a window: its bounds, and its local days when grouped by
    day (a query's :class:`~._query.TimeWindow`, or nanosecond bounds of another caller's)."""

    @property
    def start_ns(self) -> int: ...

    @property
    def end_ns(self) -> int: ...

    def days(self) -> list[tuple[str, int, int]]: ...


def rollup_filters(filters: Filters) -> bool:
    """Whether rollups can answer with these filters (user and session filters read the
    few raw rows of that user or session through their indexes instead)."""
    return filters.user is None and filters.session is None


def cost_table(group_by: Sequence[str], filters: Filters) -> str:
    """The smallest rollup holding the keys asked for and filtered on."""
    needed = {_ROLLUP_KEYS[key] for key in group_by if key != "day"}
    needed.update(_ROLLUP_KEYS[key] for key, _ in filters.items())
    if needed <= {"model", "provider"}:
        return MODEL_TABLE
    for table, keys in KEYED_TABLES.items():
        if needed <= set(keys):
            return table
    raise ValueError(f"no rollup holds {sorted(needed)}")


@dataclass(frozen=True)
class Statement:
    sql: str
    parameters: dict[str, Any]


class _Plan:
    """The pieces of a window (by local day when grouped by day) and the SQL around them."""

    def __init__(
        self,
        window: Window,
        group_by: Sequence[str],
        filters: Filters,
        spans: Sequence[int],
        folded: int,
    ) -> None:
        ranges = window.days() if "day" in group_by else [("", window.start_ns, window.end_ns)]
        for label, _, _ in ranges:
            if not _LABEL.match(label):  # labels are inlined below: dates only
                raise ValueError(f"unexpected day label {label!r}")
        chosen = pieces(ranges, spans)
        self.raw = [piece for piece in chosen if piece.span == RAW]
        self.rolled = [piece for piece in chosen if piece.span != RAW]
        self.group_by = tuple(group_by)
        self.parameters: dict[str, Any] = {"folded": folded}
        self.filters = filters.items()
        for key, value in self.filters:
            self.parameters[f"f_{key}"] = value
        self.only: Sequence[tuple[Any, ...]] = ()

    def only_keys(self, keys: Sequence[tuple[Any, ...]]) -> None:
        """Reads only the groups of ``keys`` (group key tuples, ``None`` for a missing
        key, which is ``X''`` where stored): each branch tests its own key columns, so the
        other groups are never summed."""
        self.only = keys
        for j, key in enumerate(keys):
            for i, value in enumerate(key):
                self.parameters[f"t{j}_{i}"] = b"" if value is None else value

    def prefix(self) -> str:
        ctes = []
        if self.raw:
            values = ", ".join(_values(p, raw=True) for p in self.raw)
            ctes.append(f"pr(label, sign, lo, hi) AS (VALUES {values})")
        if self.rolled:
            values = ", ".join(_values(p, raw=False) for p in self.rolled)
            ctes.append(f"pc(label, sign, span, lo, hi) AS (VALUES {values})")
            # Rows not folded yet: few (the catch-up runs before each answer), read once.
            ctes.append("tail AS MATERIALIZED (SELECT * FROM generations WHERE rowid > :folded)")
        return f"WITH {', '.join(ctes)} " if ctes else ""

    def keys(self, rollup: bool) -> list[str]:
        columns = []
        for i, key in enumerate(self.group_by):
            if key == "day":
                columns.append(f"p.label AS k{i}")
            elif rollup:
                columns.append(f"nullif(r.{_ROLLUP_KEYS[key]}, X'') AS k{i}")
            else:
                columns.append(f"g.{_ROLLUP_KEYS[key]} AS k{i}")
        return columns

    def stored_keys(self, rollup: bool) -> list[str]:
        """The group keys as stored in a rollup (a missing one is ``X''``)."""
        return [
            "p.label"
            if key == "day"
            else f"r.{_ROLLUP_KEYS[key]}"
            if rollup
            else f"ifnull(g.{_ROLLUP_KEYS[key]}, X'')"
            for key in self.group_by
        ]

    def where(self, alias: str, extra: str = "") -> str:
        column = "r" if alias == "r" else "g"
        conditions = [f"{column}.{_ROLLUP_KEYS[key]} = :f_{key}" for key, _ in self.filters]
        if self.only:
            tested = self.stored_keys(alias == "r")
            wanted = [
                f"({', '.join(f':t{j}_{i}' for i in range(len(tested)))})"
                for j in range(len(self.only))
            ]
            conditions.append(f"({', '.join(tested)}) IN (VALUES {', '.join(wanted)})")
        if extra:
            conditions.append(extra)
        return f" WHERE {' AND '.join(conditions)}" if conditions else ""

    def branches(
        self,
        rollup_select: str,
        table: str,
        raw_select: str,
        raw_join: str = "",
        raw_where: str = "",
    ) -> list[str]:
        """The rollup rows, raw edge rows and unfolded rows, as UNION ALL branches."""
        parts = []
        if self.rolled:
            parts.append(
                f"SELECT {rollup_select} FROM pc p JOIN {table} r ON r.span = p.span "
                f"AND r.q >= p.lo AND r.q < p.hi{self.where('r')}"
            )
            parts.append(
                f"SELECT {raw_select} FROM pc p JOIN tail g ON g.start_ns >= p.lo * "
                f"{QUARTER_NS} AND g.start_ns < p.hi * {QUARTER_NS}{raw_join}"
                f"{self.where('g', raw_where)}"
            )
        if self.raw:
            parts.append(
                f"SELECT {raw_select} FROM pr p JOIN generations g ON g.start_ns >= p.lo "
                f"AND g.start_ns < p.hi{raw_join}{self.where('g', raw_where)}"
            )
        return parts

    def finish(self, branches: list[str], outer: str, extra_keys: Sequence[str] = ()) -> Statement:
        keys = [f"k{i}" for i in range(len(self.group_by))] + list(extra_keys)
        group = f" GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}" if keys else ""
        selected = ", ".join([*keys, outer])
        sql = f"{self.prefix()}SELECT {selected} FROM ({' UNION ALL '.join(branches)}){group}"
        return Statement(sql, self.parameters)


def _values(piece: Piece, raw: bool) -> str:
    if raw:
        return f"('{piece.label}', {piece.sign}, {piece.lo}, {piece.hi})"
    return f"('{piece.label}', {piece.sign}, {piece.span}, {piece.lo}, {piece.hi})"


def costs_statement(
    window: Window,
    group_by: Sequence[str],
    filters: Filters,
    folded: int,
    *,
    values: Sequence[str] = SUM_NAMES,
    only: Sequence[tuple[Any, ...]] = (),
) -> Statement:
    """``values`` (of :data:`SUM_NAMES`; by default requests, money as split sums and
    counts, tokens, unpriced and errors, in the raw cost statement's column order) by
    group; with ``only``, of those groups alone."""
    table = cost_table(group_by, filters)
    spans = (1,) if table == MODEL_TABLE else SPANS
    plan = _Plan(window, group_by, filters, spans, folded)
    plan.only_keys(only)
    expressions = dict(SUM_VALUES)
    rollup = ", ".join([*plan.keys(True), "p.sign AS sign", *(f"r.{n} AS {n}" for n in values)])
    raw = ", ".join(
        [*plan.keys(False), "p.sign AS sign", *(f"{expressions[n]} AS {n}" for n in values)]
    )
    outer = ", ".join(f"sum(sign * {name})" for name in values)
    return plan.finish(plan.branches(rollup, table, raw), outer)


def latency_summary_statement(
    window: Window, group_by: Sequence[str], filters: Filters, folded: int
) -> Statement:
    """Requests, errors, latency sum and maximum, time-to-first-token count, sum and
    maximum by group (15-minute rollups only: maxima cannot be subtracted)."""
    plan = _Plan(window, group_by, filters, (1,), folded)
    sums = [("requests", "1"), ("errors", "g.is_error"), *DURATION_VALUES]
    rollup = ", ".join(
        [
            *plan.keys(True),
            "p.sign AS sign",
            *(f"r.{n} AS {n}" for n, _ in sums),
            *(f"r.{n} AS {n}" for n, _ in DURATION_MAXIMA),
        ]
    )
    raw = ", ".join(
        [
            *plan.keys(False),
            "p.sign AS sign",
            *(f"{e} AS {n}" for n, e in sums),
            *(f"{e} AS {n}" for n, e in DURATION_MAXIMA),
        ]
    )
    outer = ", ".join(
        [*(f"sum(sign * {n})" for n, _ in sums), *(f"max({n})" for n, _ in DURATION_MAXIMA)]
    )
    return plan.finish(plan.branches(rollup, MODEL_TABLE, raw), outer)


def histogram_statement(
    window: Window, group_by: Sequence[str], filters: Filters, folded: int
) -> Statement:
    """Duration counts by group, measure and log bucket (:mod:`._sketch`)."""
    plan = _Plan(window, group_by, filters, SPANS, folded)
    rollup = ", ".join(
        [
            *plan.keys(True),
            "p.sign AS sign",
            "r.measure AS measure",
            "r.bucket AS bucket",
            "r.n AS n",
        ]
    )
    value = f"CASE m.measure WHEN {LATENCY} THEN g.latency_ms ELSE g.ttft_ms END"
    raw = ", ".join(
        [
            *plan.keys(False),
            "p.sign AS sign",
            "m.measure AS measure",
            f"{bucket_sql(value)} AS bucket",
            "1 AS n",
        ]
    )
    branches = plan.branches(
        rollup,
        LATENCY_TABLE,
        raw,
        raw_join=f" CROSS JOIN {_MEASURES} m",
        raw_where=f"{value} IS NOT NULL",
    )
    return plan.finish(branches, "sum(sign * n)", extra_keys=("measure", "bucket"))
