"""Spend in a time window by one key, from the rollups when they are built: what the
budgets' status and anomaly rules read (a month of a busy store is a million rows; its
rollups are a few thousand).

The caller's connection and snapshot are used as they are: nothing is folded or built
here (an answer or the writer does that); rows above the watermark are read raw in the same
statement, so the sums are exact either way.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

from otel_gemini.aggregate._money import joined, split_sum_sql
from otel_gemini.aggregate._query import Filters
from otel_gemini.aggregate._rollup_answers import costs_statement
from otel_gemini.aggregate._rollups import UNPRICED_STATUSES, watermark

KEYS: Final = {"user": "user_id", "session": "session_id", "model": "model"}
"""The keys :func:`window_spend` groups by, and their ``generations`` columns."""
_SUMS: Final = ("requests", "cost_hi", "cost_lo", "cost_n", "unpriced")


@dataclass(frozen=True)
class WindowSpend:
    """One group's generations in a window."""

    requests: int
    cost_femto: int
    """The sum of the known costs (femto-USD; 0 when none is known)."""
    priced: int
    """Generations with a known cost."""
    unpriced: int
    """Generations of a model without a price (or usage no request can bill)."""


def window_spend(
    connection: sqlite3.Connection, start_ns: int, end_ns: int, key: str | None
) -> dict[str | None, WindowSpend]:
    """Spend in ``[start_ns, end_ns)`` by ``key`` (one of :data:`KEYS`; ``None``: one group,
    keyed ``None``). A generation without that key is under ``None``."""
    if start_ns >= end_ns:
        return {}
    group_by = (key,) if key else ()
    folded = watermark(connection)
    if folded is not None:
        window = _Bounds(start_ns, end_ns)
        statement = costs_statement(window, group_by, Filters(), folded, values=_SUMS)
        rows = connection.execute(statement.sql, statement.parameters).fetchall()
    else:
        column = f"{KEYS[key]}, " if key else ""
        group = f" GROUP BY {KEYS[key]}" if key else ""
        rows = connection.execute(
            f"SELECT {column}count(*), {split_sum_sql('cost_femto')}, "
            f"sum(cost_status IN {UNPRICED_STATUSES}) FROM generations "
            f"WHERE start_ns >= ? AND start_ns < ?{group}",
            (start_ns, end_ns),
        ).fetchall()
    width = len(group_by)
    result: dict[str | None, WindowSpend] = {}
    for row in rows:
        requests, high, low, priced, unpriced = (int(value or 0) for value in row[width:])
        if requests:
            value = None if not width or row[0] is None else str(row[0])
            result[value] = WindowSpend(requests, joined(high, low, priced) or 0, priced, unpriced)
    return result


@dataclass(frozen=True)
class _Bounds:
    start_ns: int
    end_ns: int

    def days(self) -> list[tuple[str, int, int]]:
        raise NotImplementedError("spend is never grouped by day")
