"""Answers from the local cost store (SQL over the ``generations`` table)."""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from otel_gemini._money import femto_decimal
from otel_gemini._suppress import untraced
from otel_gemini.aggregate._drops import dropped_between
from otel_gemini.aggregate._money import SPLIT, joined, split_sum_sql
from otel_gemini.aggregate._percentiles import EXACT_PERCENTILE_ROWS, PERCENTILES, interpolate
from otel_gemini.aggregate._query import CostQuery, Filters, LatencyQuery, TimeWindow
from otel_gemini.aggregate._reports import (
    CostGroup,
    CostReport,
    LatencyGroup,
    LatencyReport,
    Origin,
    Percentiles,
)
from otel_gemini.aggregate._rollup_answers import (
    Statement,
    costs_statement,
    histogram_statement,
    latency_summary_statement,
    rollup_filters,
)
from otel_gemini.aggregate._rollups import (
    LATENCY,
    TIME_TO_FIRST_TOKEN,
    UNPRICED_STATUSES,
    Rollups,
    watermark,
)
from otel_gemini.aggregate._schema import CostStoreError, open_for_reading, path_from
from otel_gemini.aggregate._sketch import ordered_percentiles

LOCAL: Final = "local"
_KEY_COLUMNS: Final = {
    "user": "g.user_id",
    "session": "g.session_id",
    "model": "g.model",
    "provider": "g.provider",
    "day": "d.day",
}
_FILTER_COLUMNS: Final = {
    "user": "g.user_id",
    "session": "g.session_id",
    "model": "g.model",
    "provider": "g.provider",
}


class _Sql:
    """The FROM/WHERE part shared by the queries of one request, and its parameters."""

    def __init__(self, window: TimeWindow, group_by: Sequence[str], filters: Filters) -> None:
        self.keys = [_KEY_COLUMNS[key] for key in group_by]
        parameters: list[Any] = []
        if "day" in group_by:
            days = window.days()
            values = ", ".join("(?, ?, ?)" for _ in days)
            self.prefix = f"WITH d(day, lo, hi) AS (VALUES {values}) "
            for day in days:
                parameters.extend(day)
            source = "d JOIN generations g ON g.start_ns >= d.lo AND g.start_ns < d.hi"
            conditions: list[str] = []
        else:
            self.prefix = ""
            source = "generations g"
            conditions = ["g.start_ns >= ?", "g.start_ns < ?"]
            parameters.extend((window.start_ns, window.end_ns))
        for key, value in filters.items():
            conditions.append(f"{_FILTER_COLUMNS[key]} = ?")
            parameters.append(value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        self.source = f"{source}{where}"
        self.parameters = parameters

    def select(self, columns: str, extra_where: str = "") -> str:
        keys = ", ".join(self.keys)
        group = f" GROUP BY {keys} ORDER BY {keys}" if keys else ""
        where = self.source
        if extra_where:
            where += (" AND " if " WHERE " in where else " WHERE ") + extra_where
        selected = f"{keys}, {columns}" if keys else columns
        return f"{self.prefix}SELECT {selected} FROM {where}{group}"


class LocalCostSource:
    """Cost and latency answers from a :class:`CostStore` database (any process's).

    Each query opens its own short-lived connection, so one instance serves many threads.
    A path holding no store raises :class:`CostStoreError` (never an answer of $0).

    Answers read the store's rollups (:mod:`._rollups`: 15-minute and daily sums and
    duration histograms), built by the first query and brought up to date before each
    one, plus the raw rows at window edges and those not folded yet: money and counts
    are exact, and latency percentiles exact up to ``exact_percentile_rows`` generations
    in the window, within 1 % above. Answers filtered by user or session, any answer
    while the rollups cannot be used, and every answer with ``rollups=False`` (which
    leaves the file as it is), read the raw rows (exact).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        exact_percentile_rows: int = EXACT_PERCENTILE_ROWS,
        rollups: bool = True,
    ) -> None:
        self.path: Path = path_from(path, os.environ)
        self.exact_percentile_rows = exact_percentile_rows
        self.rollups: Rollups | None = Rollups(self.path) if rollups else None

    @untraced  # our SQL is no span of the app's
    def costs(self, query: CostQuery, origin: Origin | None = None) -> CostReport:
        """Cost and tokens by ``query.group_by`` from the store."""
        connection = self._open()
        try:
            connection.execute("BEGIN")  # one snapshot: the watermark and what it covers
            folded = self._watermark(connection, query.filters)
            width = len(query.group_by)
            top = query.top if width else None  # one group at most: nothing to rank
            if top is not None and folded is not None:
                ranked = self._top_from_rollups(connection, query, top, folded)
                dropped = self._dropped(connection, query.window)
                return CostReport(
                    query,
                    origin or Origin(LOCAL, LOCAL),
                    ranked.groups,
                    dropped,
                    group_count=ranked.group_count,
                    total_of_all=ranked.total,
                )
            parameters: Sequence[Any] | Mapping[str, Any]
            if folded is not None:
                rollup = costs_statement(query.window, query.group_by, query.filters, folded)
                statement, parameters = rollup.sql, rollup.parameters
            else:
                statement, parameters = self._raw_costs(query)
            if top is not None:
                statement = _top_sql(statement, width, top)
            rows = self._run(connection, statement, parameters)
            dropped = self._dropped(connection, query.window)
        finally:
            connection.close()
        groups = [group for row in rows if (group := _cost_group(query, row)) is not None]
        report_origin = origin or Origin(LOCAL, LOCAL)
        if top is None:
            return CostReport(query, report_origin, tuple(groups), dropped)
        if not rows:
            return CostReport(query, report_origin, (), dropped, group_count=0)
        count, total = _top_total(rows[0][width + _COST_COLUMNS :])
        return CostReport(
            query, report_origin, tuple(groups), dropped, group_count=count, total_of_all=total
        )

    def _top_from_rollups(
        self, connection: sqlite3.Connection, query: CostQuery, top: int, folded: int
    ) -> _Ranked:
        """The ``top`` costliest groups, in three statements of the same snapshot: the
        groups ranked on the five sums the order needs (summing all fifteen for tens of
        thousands of sessions cost most of the answer), every sum of the few chosen ones,
        and the total of all from the smallest rollup (the window's total: each group's
        rows are the window's, once)."""
        window, group_by, filters = query.window, query.group_by, query.filters
        width = len(group_by)
        keys = [f"k{i}" for i in range(width)]
        rank = costs_statement(window, group_by, filters, folded, values=_RANK_SUMS)
        order = _rank_order("c0", "c1", "c2", "c3", "c4", keys)
        columns = ", ".join([*keys, *(f"c{i}" for i in range(len(_RANK_SUMS)))])
        chosen = self._run(
            connection,
            f"WITH grouped({columns}) AS ({rank.sql}) "
            f"SELECT {', '.join(keys)}, count(*) OVER () FROM grouped WHERE c0 > 0 "
            f"ORDER BY {order} LIMIT {int(top)}",
            rank.parameters,
        )
        if not chosen:
            return _Ranked((), 0, None)
        wanted = [tuple(row[:width]) for row in chosen]
        by_key: dict[tuple[Any, ...], CostGroup] = {}
        step = _KEYS_PER_STATEMENT // width  # bound parameters: 999 before SQLite 3.32
        for start in range(0, len(wanted), step):
            only = wanted[start : start + step]
            summed = costs_statement(window, group_by, filters, folded, only=only)
            for row in self._run(connection, summed.sql, summed.parameters):
                if (group := _cost_group(query, row)) is not None:
                    by_key[tuple(row[:width])] = group
        everything = costs_statement(window, (), filters, folded)
        (total_row,) = self._run(connection, everything.sql, everything.parameters)
        return _Ranked(
            tuple(by_key[key] for key in wanted),
            int(chosen[0][width]),
            _group_of({}, total_row),
        )

    def _open(self) -> sqlite3.Connection:
        connection = open_for_reading(self.path)  # raises for a path holding no store
        if self.rollups is not None:
            self.rollups.refresh()
        return connection

    def _watermark(self, connection: sqlite3.Connection, filters: Filters) -> int | None:
        """Up to which rowid the rollups answer (``None``: read the raw rows)."""
        if self.rollups is None or self.rollups.building or not rollup_filters(filters):
            return None
        return watermark(connection)

    @staticmethod
    def _raw_costs(query: CostQuery) -> tuple[str, list[Any]]:
        sql = _Sql(query.window, query.group_by, query.filters)
        statement = sql.select(
            "count(*), "
            + ", ".join(
                split_sum_sql(f"g.{column}")
                for column in ("cost_femto", "input_cost_femto", "output_cost_femto")
            )
            + ", sum(g.input_tokens), sum(g.output_tokens), sum(g.total_tokens), "
            # Spans with usage and no cost: no price, or counts no request can bill.
            f"sum(g.cost_status IN {UNPRICED_STATUSES}), sum(g.is_error)"
        )
        return statement, sql.parameters

    @untraced
    def latency(self, query: LatencyQuery, origin: Origin | None = None) -> LatencyReport:
        """Latency and time-to-first-token percentiles and error rates by group."""
        sql = _Sql(query.window, query.group_by, query.filters)
        width = len(sql.keys)
        connection = self._open()
        try:
            connection.execute("BEGIN")  # one snapshot for the statements (WAL)
            folded = self._watermark(connection, query.filters)
            if folded is None:
                summary = sql.select(
                    "count(*), sum(g.is_error), avg(g.latency_ms), max(g.latency_ms), "
                    "count(g.ttft_ms), avg(g.ttft_ms), max(g.ttft_ms)"
                )
                rows = self._run(connection, summary, sql.parameters)
                measured = self._exact(connection, sql)
            else:
                rollup = latency_summary_statement(
                    query.window, query.group_by, query.filters, folded
                )
                rows = [
                    _summary_from_sums(row, width)
                    for row in self._run(connection, rollup.sql, rollup.parameters)
                ]
                if sum(int(row[width] or 0) for row in rows) <= self.exact_percentile_rows:
                    measured = self._exact(connection, sql)
                else:
                    measured = self._sketched(
                        connection,
                        histogram_statement(query.window, query.group_by, query.filters, folded),
                        width,
                    )
            dropped = self._dropped(connection, query.window)
        finally:
            connection.close()
        groups: list[LatencyGroup] = []
        for row in rows:
            key_values = tuple(row[:width])
            values = row[width:]
            if not values[0]:
                continue  # as in costs(): no generations, no group
            groups.append(
                LatencyGroup(
                    key=dict(zip(query.group_by, key_values, strict=True)),
                    requests=int(values[0]),
                    errors=int(values[1] or 0),
                    latency_ms=_percentiles(
                        measured.get((LATENCY, key_values)), values[2], values[3]
                    ),
                    time_to_first_token_ms=_percentiles(
                        measured.get((TIME_TO_FIRST_TOKEN, key_values)), values[5], values[6]
                    ),
                )
            )
        return LatencyReport(query, origin or Origin(LOCAL, LOCAL), tuple(groups), dropped)

    def _dropped(self, connection: sqlite3.Connection, window: TimeWindow) -> int:
        try:
            return dropped_between(connection, window.start_ns, window.end_ns)
        except sqlite3.Error as error:
            raise CostStoreError(
                f"cannot query the cost store {str(self.path)!r}: {error}"
            ) from error

    def _exact(self, connection: sqlite3.Connection, sql: _Sql) -> dict[_Measured, _Values]:
        """Exact percentiles from the values at the ranks, by measure and group."""
        measured: dict[_Measured, _Values] = {}
        for measure, column in ((LATENCY, "latency_ms"), (TIME_TO_FIRST_TOKEN, "ttft_ms")):
            for key, (count, values_at) in self._ranked(connection, sql, column).items():
                measured[(measure, key)] = (
                    count,
                    tuple(interpolate(count, p, values_at) for p in PERCENTILES),
                )
        return measured

    def _sketched(
        self, connection: sqlite3.Connection, statement: Statement, width: int
    ) -> dict[_Measured, _Values]:
        """Percentiles within 1 % from the duration histograms, by measure and group.

        The statement groups and orders its rows by group, measure and bucket, so each
        group's buckets come together, in order, once each: read in one pass (a month of
        days x models is tens of thousands of buckets)."""
        measured: dict[_Measured, _Values] = {}
        rows = self._run(connection, statement.sql, statement.parameters)
        for key, bucket_rows in itertools.groupby(rows, lambda row: (row[:width], row[width])):
            counts = ((row[width + 1], row[width + 2] or 0) for row in bucket_rows)
            count, values = ordered_percentiles(counts)
            if count:
                measured[(int(key[1]), tuple(key[0]))] = (count, values)
        return measured

    def _ranked(
        self, connection: sqlite3.Connection, sql: _Sql, column: str
    ) -> dict[tuple[Any, ...], tuple[int, dict[int, float]]]:
        """The values at the ranks the percentiles need, by group: key tuple → (count,
        rank → value).

        Only those few rows leave SQLite: the ranks are numbered by a window function and
        filtered with the same integer arithmetic as :func:`rank_bounds`."""
        keys = ", ".join(sql.keys)
        partition = f"PARTITION BY {keys} " if keys else ""
        width = len(sql.keys)
        aliases = ", ".join(f"k{i}" for i in range(width))
        rank_tests = " OR ".join(
            f"r = (n - 1) * {p} / 100 OR r = (n - 1) * {p} / 100 + 1" for p in PERCENTILES
        )
        where = sql.source + (" AND " if " WHERE " in sql.source else " WHERE ")
        where += f"g.{column} IS NOT NULL"
        inner_keys = ", ".join(f"{column_sql} AS k{i}" for i, column_sql in enumerate(sql.keys))
        statement = (
            f"{sql.prefix}SELECT {aliases + ', ' if width else ''}n, r, v FROM ("
            f"SELECT {inner_keys + ', ' if width else ''}g.{column} AS v, "
            f"row_number() OVER ({partition}ORDER BY g.{column}) - 1 AS r, "
            f"count(*) OVER ({partition.strip()}) AS n "
            f"FROM {where}) WHERE {rank_tests}"
        )
        ranked: dict[tuple[Any, ...], tuple[int, dict[int, float]]] = {}
        for row in self._run(connection, statement, sql.parameters):
            _, values = ranked.setdefault(tuple(row[:width]), (int(row[width]), {}))
            values[int(row[width + 1])] = float(row[width + 2])
        return ranked

    def _run(
        self,
        connection: sqlite3.Connection,
        statement: str,
        parameters: Sequence[Any] | Mapping[str, Any],
    ) -> list[tuple[Any, ...]]:
        try:
            return connection.execute(statement, parameters).fetchall()
        except sqlite3.Error as error:
            raise CostStoreError(
                f"cannot query the cost store {str(self.path)!r}: {error}"
            ) from error


_COST_COLUMNS: Final = 15
"""After the group keys, a cost row has: requests; cost, input cost and output cost each
as split high and low sums and count of known values; input, output and total tokens;
unpriced requests; errors."""


_KEYS_PER_STATEMENT: Final = 900
"""Group key values bound in one statement (with a few filters, under SQLite's old limit
of 999 parameters)."""
_RANK_SUMS: Final = ("requests", "cost_hi", "cost_lo", "cost_n", "unpriced")
"""What ranking groups by cost needs: whether a group has generations, its exact cost as
split sums, and whether that cost is unknown."""


@dataclass(frozen=True)
class _Ranked:
    groups: tuple[CostGroup, ...]
    group_count: int
    total: CostGroup | None


def _cost_group(query: CostQuery, row: Sequence[Any]) -> CostGroup | None:
    width = len(query.group_by)
    return _group_of(dict(zip(query.group_by, row[:width], strict=True)), row[width:])


def _group_of(key: dict[str, Any], row: Sequence[Any]) -> CostGroup | None:
    """The group of ``key`` from a cost row's values (:data:`_COST_COLUMNS` of them)."""
    values = row[:_COST_COLUMNS]
    requests = int(values[0] or 0)
    if not requests:
        return None  # no group keys: SQL's one row over no generations is no group
    unpriced = int(values[13] or 0)
    # Unknown only when every generation is of a model without a price; a failed request
    # that reported no usage costs nothing.
    cost, input_cost, output_cost = (
        _amount(values[1 + 3 * i], values[2 + 3 * i], values[3 + 3 * i], unpriced < requests)
        for i in range(3)
    )
    return CostGroup(
        key=key,
        requests=requests,
        cost=cost,
        input_cost=input_cost,
        output_cost=output_cost,
        input_tokens=int(values[10] or 0),
        output_tokens=int(values[11] or 0),
        total_tokens=int(values[12] or 0),
        unpriced_requests=unpriced,
        errors=int(values[14] or 0),
    )


def _top_sql(grouped: str, width: int, top: int) -> str:
    """``grouped`` (a cost statement, one row per group) cut to its ``top`` costliest groups
    in :func:`~._reports.costliest_first`'s order, each row followed by the number of groups
    and the sums over all of them (window functions: one pass, no second grouping).

    The cost is ranked exactly from its split sums: with ``m = lo mod 10**9`` (0 ≤ m < 10**9)
    and ``h = hi + (lo - m) / 10**9``, the amount is ``h * 10**9 + m``, so ``(h, m)`` sorts as
    the amount does (SQLite's ``%`` keeps the sign of ``lo``, which may be negative)."""
    keys = [f"k{i}" for i in range(width)]
    values = [f"c{i}" for i in range(_COST_COLUMNS)]
    totals = ["count(*) OVER ()", "sum(c0) OVER ()"]
    for i in range(3):  # cost, input cost, output cost: high, low, groups where known
        hi, lo, n = (f"c{1 + 3 * i + j}" for j in range(3))
        totals += [
            f"sum(ifnull({hi}, 0)) OVER ()",
            f"sum(ifnull({lo}, 0)) OVER ()",
            f"sum(ifnull({n}, 0) > 0 OR ifnull(c13, 0) < c0) OVER ()",
        ]
    totals += [f"sum(ifnull(c{i}, 0)) OVER ()" for i in range(10, _COST_COLUMNS)]
    order = _rank_order("c0", "c1", "c2", "c3", "c13", keys)
    return (
        f"WITH grouped({', '.join([*keys, *values])}) AS ({grouped}) "
        f"SELECT {', '.join([*keys, *values, *totals])} FROM grouped WHERE c0 > 0 "
        f"ORDER BY {order} LIMIT {int(top)}"
    )


def _rank_order(
    requests: str, high: str, low: str, known: str, unpriced: str, keys: Sequence[str]
) -> str:
    """An ``ORDER BY`` of grouped rows costliest first, from their columns."""
    unknown = f"(ifnull({known}, 0) = 0 AND ifnull({unpriced}, 0) >= {requests})"
    m = f"((ifnull({low}, 0) % {SPLIT} + {SPLIT}) % {SPLIT})"
    h = f"(ifnull({high}, 0) + (ifnull({low}, 0) - {m}) / {SPLIT})"
    return ", ".join([unknown, f"{h} DESC", f"{m} DESC", *keys])


def _top_total(values: Sequence[Any]) -> tuple[int, CostGroup]:
    """The number of groups and their total, from :func:`_top_sql`'s last columns."""
    count, requests = int(values[0]), int(values[1])

    def amount(i: int) -> Decimal | None:
        high, low, known = values[2 + 3 * i : 5 + 3 * i]
        return femto_decimal(int(high) * SPLIT + int(low)) if known else None

    tokens_in, tokens_out, tokens, unpriced, errors = (int(v) for v in values[11:16])
    return count, CostGroup(
        key={},
        requests=requests,
        cost=amount(0),
        input_cost=amount(1),
        output_cost=amount(2),
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        total_tokens=tokens,
        unpriced_requests=unpriced,
        errors=errors,
    )


def _amount(high: Any, low: Any, count: Any, known: bool) -> Decimal | None:
    femto = joined(high, low, int(count or 0))
    if femto is None:
        return Decimal(0) if known else None
    return femto_decimal(femto)


_Measured = tuple[int, tuple[Any, ...]]
"""(measure, group key values)"""
_Values = tuple[int, tuple[float | None, ...]]
"""(number of values, p50 / p95 / p99)"""


def _summary_from_sums(row: Sequence[Any], width: int) -> tuple[Any, ...]:
    """A rollup summary row (requests, errors, latency sum, time-to-first-token count and
    sum, the two maxima) in the raw summary's layout (averages instead of sums)."""
    requests, errors, latency_sum, ttft_count, ttft_sum, latency_max, ttft_max = row[width:]
    requests = int(requests or 0)
    ttft_count = int(ttft_count or 0)
    return (
        *row[:width],
        requests,
        errors,
        latency_sum / requests if requests else None,
        latency_max,
        ttft_count,
        ttft_sum / ttft_count if ttft_count else None,
        ttft_max,
    )


def _percentiles(
    measured: _Values | None, mean: float | None, maximum: float | None
) -> Percentiles:
    if measured is None:
        return Percentiles(0)
    count, (p50, p95, p99) = measured
    return Percentiles(
        count,
        p50,
        p95,
        p99,
        None if mean is None else float(mean),
        None if maximum is None else float(maximum),
    )
