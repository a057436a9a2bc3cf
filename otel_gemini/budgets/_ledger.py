"""Budget totals read from the cost store's ``generations`` table (the one ledger), and the
record of alerts already sent (``budget_alerts``, in the same file).

Every process sharing a store file reads the same rows, so they see one total; the alert
record is keyed by rule, scope value, period and threshold, so each alert goes out once
whichever process (or restart) notices it first.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, NamedTuple

from otel_gemini._attributes import COST_STATUS_IMPLAUSIBLE_USAGE, COST_STATUS_UNKNOWN_MODEL
from otel_gemini._suppress import suppress_instrumentation, untraced
from otel_gemini.aggregate import joined, split_sum_sql, window_spend
from otel_gemini.budgets import _guard
from otel_gemini.budgets._periods import Period
from otel_gemini.budgets._rules import (
    SCOPE_MODEL,
    SCOPE_SERVICE,
    SCOPE_SESSION,
    SCOPE_TAG,
    SCOPE_TOTAL,
    SCOPE_USER,
    AnomalyRule,
    BudgetRule,
)
from otel_gemini.pricing import model_family_name

COLUMNS: Final = {
    SCOPE_USER: "user_id",
    SCOPE_SESSION: "session_id",
    SCOPE_MODEL: "model",
    SCOPE_SERVICE: "service_name",
}
"""The ``generations`` column each per-value scope groups by (``model``: see
:func:`model_values`, which reads ``request_model`` as well)."""


@lru_cache(maxsize=1024)
def model_values(model: str | None, request_model: str | None) -> tuple[str, ...]:
    """The ``model`` scope values a row counts under: the model that answered (``model``)
    and the one the request named (``request_model``, stored only when it differs), each
    spelled as pricing reads it (:func:`~otel_gemini.pricing.model_family_name`). A request
    to ``gemini-flash-latest`` answered by ``gemini-2.5-flash-001`` counts once under
    ``gemini-flash-latest`` and once under ``gemini-2.5-flash``; never twice under one."""
    served = model_family_name(model) if model else None
    requested = model_family_name(request_model) if request_model else None
    if requested is None or requested == served:
        return (served,) if served else ()
    return (served, requested) if served else (requested,)


TOTAL_VALUE: Final = _guard.TOTAL_VALUE
_ROLLED_UP: Final = {SCOPE_TOTAL: None, SCOPE_USER: "user", SCOPE_SESSION: "session"}
"""Scopes whose whole-period spend the store's rollups answer (:func:`window_spend` key).
``model`` too, apart (:func:`_model_spend_rolled_up`): a row counts under the model that
answered and the one the request named (:func:`model_values`), and the rollups keep only
the first."""

_BUSY_TIMEOUT_S: Final = 5.0

_CREATE_ALERTS: Final = """
CREATE TABLE IF NOT EXISTS budget_alerts (
    rule TEXT NOT NULL,
    scope_value TEXT NOT NULL,
    period_start TEXT NOT NULL,
    threshold TEXT NOT NULL,
    fired_ns INTEGER NOT NULL,
    PRIMARY KEY (rule, scope_value, period_start, threshold)
)
"""


class Spend(NamedTuple):
    """One scope value's spend in a period."""

    femto: int
    """Priced spend, exact, in 1e-15 USD."""
    requests: int
    unpriced: int
    """Requests whose price is unknown: not in :attr:`femto` (never counted as $0)."""


NO_SPEND: Final = Spend(0, 0, 0)


@contextmanager
def snapshot(connection: sqlite3.Connection) -> Iterator[tuple[sqlite3.Connection, int]]:
    """One read transaction (a consistent snapshot of the store, WAL), and the highest
    ``rowid`` in it: commits reported with a ``last_rowid`` up to it are in what is read."""
    with suppress_instrumentation():
        connection.execute("BEGIN")
        try:
            row = connection.execute("SELECT max(rowid) FROM generations").fetchone()
            yield connection, int(row[0] or 0)
        finally:
            connection.rollback()


def identity(path: Path) -> tuple[int, int] | None:
    """The file's (device, inode), or ``None`` when it is gone."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


@untraced
def connect(path: Path) -> sqlite3.Connection:
    """A connection to the store file for the evaluator (reads, and the alert record).

    Never creates the file: the cost store does. A missing store raises
    ``sqlite3.OperationalError`` (budgets then fail open)."""
    if path.is_symlink() or not path.is_file():  # never follow a link planted in its place
        raise sqlite3.OperationalError(f"no cost store at {str(path)!r}")
    # Quoted: a path with '#', '?' or '%' would otherwise name (and create) another file.
    connection = sqlite3.connect(
        f"file:{urllib.parse.quote(str(path))}?mode=rw",
        uri=True,
        timeout=_BUSY_TIMEOUT_S,
        check_same_thread=False,
    )
    try:
        connection.execute(_CREATE_ALERTS)
        connection.commit()
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _scope_filter(rule: BudgetRule) -> tuple[str, list[object], str]:
    """The WHERE clause beyond the period, its parameters, and the grouping expression."""
    column = COLUMNS.get(rule.scope)
    if column is not None:
        return f" AND {column} IS NOT NULL", [], column
    if rule.scope == SCOPE_TAG:
        clause = " AND tags IS NOT NULL AND EXISTS (SELECT 1 FROM json_each(tags) WHERE value = ?)"
        return clause, [rule.tag], "?"
    return "", [], "?"


def _scope_value(rule: BudgetRule) -> str:
    return rule.tag if rule.scope == SCOPE_TAG and rule.tag else TOTAL_VALUE


UNPRICED_STATUSES: Final = frozenset({COST_STATUS_UNKNOWN_MODEL, COST_STATUS_IMPLAUSIBLE_USAGE})
"""Cost statuses of a request that billed an unknown amount. A failed request that reported
no usage has no cost either, but costs nothing: it is not unpriced (as in the costs answer)."""
_UNPRICED_SQL: Final = (
    f"sum(cost_status IN ('{COST_STATUS_UNKNOWN_MODEL}', '{COST_STATUS_IMPLAUSIBLE_USAGE}'))"
)

_VALUES_PER_QUERY: Final = 500
"""Scope values per ``IN (...)`` list: well under SQLite's bound-parameter limit."""


@untraced
def period_spend(
    connection: sqlite3.Connection,
    rule: BudgetRule,
    period: Period,
    values: Collection[str] | None = None,
) -> dict[str, Spend]:
    """Spend by scope value in ``period`` (``values``: only those; ``None``: all, from the
    store's rollups where a scope has them)."""
    if rule.scope == SCOPE_MODEL:
        return _model_spend(connection, period, values)
    if values is None and rule.scope in _ROLLED_UP:
        key = _ROLLED_UP[rule.scope]
        found: dict[str, Spend] = {}
        for value, spent in window_spend(connection, period.start_ns, period.end_ns, key).items():
            if key is None or value is not None:  # a row without the scope's key is no one's
                name = _scope_value(rule) if value is None else value
                found[name] = Spend(spent.cost_femto, spent.requests, spent.unpriced)
        return found
    clause, parameters, group = _scope_filter(rule)
    grouped = group != "?"
    select_value = group if grouped else "?"
    head: list[object] = [] if grouped else [_scope_value(rule)]
    sql = (
        f"SELECT {select_value}, {split_sum_sql('cost_femto')}, count(*), {_UNPRICED_SQL} "
        f"FROM generations WHERE start_ns >= ? AND start_ns < ?{clause}"
    )
    where: list[object] = [period.start_ns, period.end_ns, *parameters]
    if not grouped:
        return _spend(connection.execute(sql, [*head, *where]))
    if values is None:
        return _spend(connection.execute(f"{sql} GROUP BY {group}", where))
    chosen = sorted(values)
    result: dict[str, Spend] = {}
    for index in range(0, len(chosen), _VALUES_PER_QUERY):
        part = chosen[index : index + _VALUES_PER_QUERY]
        marks = ", ".join("?" for _ in part)
        rows = connection.execute(
            f"{sql} AND {group} IN ({marks}) GROUP BY {group}", [*where, *part]
        )
        result.update(_spend(rows))
    return result


def _model_spend(
    connection: sqlite3.Connection, period: Period, values: Collection[str] | None
) -> dict[str, Spend]:
    # A model's spend folds several spellings (and a row counts under two names when the
    # request named an alias): summed in SQL by what the rows hold (a few groups), folded here.
    if values is None:
        return _model_spend_rolled_up(connection, period)
    request_model = _request_model_column(connection)
    rows = connection.execute(
        f"SELECT model, {request_model}, {split_sum_sql('cost_femto')}, count(*), "
        f"{_UNPRICED_SQL} FROM generations WHERE start_ns >= ? AND start_ns < ? "
        "GROUP BY 1, 2",
        (period.start_ns, period.end_ns),
    )
    wanted = None if values is None else set(values)
    result: dict[str, Spend] = {}
    for model, request_model, high, low, priced, requests, unpriced in rows:
        femto = joined(high, low, priced) or 0
        for value in model_values(model, request_model):
            if wanted is not None and value not in wanted:
                continue
            found = result.get(value, NO_SPEND)
            result[value] = Spend(
                found.femto + femto, found.requests + requests, found.unpriced + int(unpriced or 0)
            )
    return result


def _model_spend_rolled_up(connection: sqlite3.Connection, period: Period) -> dict[str, Spend]:
    """Every model's spend in ``period``: under the answering model from the store's
    rollups, plus, for the few rows whose request named another model (an alias), under
    that name too, read apart through their partial index. The same sums as the rows."""
    result: dict[str, Spend] = {}

    def add(name: str, femto: int, requests: int, unpriced: int) -> None:
        found = result.get(name, NO_SPEND)
        result[name] = Spend(
            found.femto + femto, found.requests + requests, found.unpriced + unpriced
        )

    for model, spent in window_spend(connection, period.start_ns, period.end_ns, "model").items():
        for name in model_values(model, None):
            add(name, spent.cost_femto, spent.requests, spent.unpriced)
    if _request_model_column(connection) == "NULL":
        return result
    rows = connection.execute(
        f"SELECT model, request_model, {split_sum_sql('cost_femto')}, count(*), "
        f"{_UNPRICED_SQL} FROM generations WHERE start_ns >= ? AND start_ns < ? "
        "AND request_model IS NOT NULL GROUP BY 1, 2",
        (period.start_ns, period.end_ns),
    )
    for model, request_model, high, low, priced, requests, unpriced in rows:
        answering = model_values(model, None)
        for name in model_values(model, request_model):
            if name not in answering:
                add(name, joined(high, low, priced) or 0, requests, int(unpriced or 0))
    return result


def _request_model_column(connection: sqlite3.Connection) -> str:
    """``request_model``, or ``NULL`` in a store an earlier version wrote (schema 2, read
    before a writer of this version migrated it; its rows name one model)."""
    columns = connection.execute("PRAGMA table_info(generations)").fetchall()
    return "request_model" if any(column[1] == "request_model" for column in columns) else "NULL"


@untraced
def model_aliases(connection: sqlite3.Connection, start_ns: int) -> dict[str, tuple[int, str]]:
    """Model names requests named since ``start_ns`` that another model answered: name →
    (the latest such request's ``start_ns``, the model that answered it), in
    :func:`model_values`' spelling. Enforcement closes an alias with the model it points to."""
    aliases: dict[str, tuple[int, str]] = {}
    if _request_model_column(connection) == "NULL":
        return aliases
    rows = connection.execute(
        "SELECT model, request_model, max(start_ns) FROM generations "
        "WHERE start_ns >= ? AND request_model IS NOT NULL GROUP BY model, request_model",
        (start_ns,),
    )
    for model, request_model, latest in rows:
        note_alias(aliases, model, request_model, int(latest))
    return aliases


def note_alias(
    aliases: dict[str, tuple[int, str]], model: str | None, request_model: str | None, at_ns: int
) -> bool:
    """Records that a request naming ``request_model`` at ``at_ns`` was answered by
    ``model``, unless a later one is known; True when that changed what the name points to."""
    names = model_values(model, request_model)
    if len(names) != 2:
        return False
    served, requested = names
    known = aliases.get(requested)
    if known is not None and known[0] >= at_ns:
        return False
    aliases[requested] = (at_ns, served)
    return known is None or known[1] != served


def _spend(rows: Iterable[tuple[Any, ...]]) -> dict[str, Spend]:
    result: dict[str, Spend] = {}
    for value, high, low, priced, requests, unpriced in rows:
        if requests:
            result[str(value)] = Spend(joined(high, low, priced) or 0, requests, int(unpriced or 0))
    return result


HOUR_NS: Final = 3600 * 10**9
_WEEK_NS: Final = 7 * 24 * HOUR_NS


def anomaly_windows(now_ns: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """What an anomaly rule compares: the last hour, and the 7 days before it."""
    hour_ago = now_ns - HOUR_NS
    return (hour_ago, now_ns), (hour_ago - _WEEK_NS, hour_ago)


def anomaly_costs(
    connection: sqlite3.Connection, rule: AnomalyRule, now_ns: int
) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """Priced spend and requests by the rule's ``by`` in each of :func:`anomaly_windows`."""
    column = COLUMNS[rule.by]
    recent, baseline = anomaly_windows(now_ns)
    return (
        cost_per_request(connection, column, *recent),
        cost_per_request(connection, column, *baseline),
    )


@untraced
def cost_per_request(
    connection: sqlite3.Connection, column: str, start_ns: int, end_ns: int
) -> dict[str, tuple[int, int]]:
    """Priced spend (femto) and priced requests by ``column`` (``model``, ``service_name``)
    in ``[start_ns, end_ns)``."""
    if column == COLUMNS[SCOPE_MODEL]:  # by the stored model, as the rule groups: rolled up
        spent = window_spend(connection, start_ns, end_ns, SCOPE_MODEL)
        return {
            value: (s.cost_femto, s.priced)
            for value, s in spent.items()
            if value is not None and s.priced
        }
    sql = (
        f"SELECT {column}, {split_sum_sql('cost_femto')} FROM generations "
        f"WHERE start_ns >= ? AND start_ns < ? AND {column} IS NOT NULL "
        f"AND cost_femto IS NOT NULL GROUP BY {column}"
    )
    return {
        str(value): (joined(high, low, count) or 0, count)
        for value, high, low, count in connection.execute(sql, (start_ns, end_ns))
    }


@untraced
def first_alert(
    connection: sqlite3.Connection,
    rule: str,
    scope_value: str,
    period_key: str,
    threshold: str,
    now_ns: int,
) -> bool:
    """Records the alert; True only for the first process (or run) to record it."""
    with connection:
        cursor = connection.execute(
            "INSERT OR IGNORE INTO budget_alerts VALUES (?, ?, ?, ?, ?)",
            (rule, scope_value, period_key, threshold, now_ns),
        )
    return cursor.rowcount == 1
