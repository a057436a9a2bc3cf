"""How many generations a cost store dropped in a window: the one lookup every local answer
makes, so that none answers low without saying so."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from otel_gemini.aggregate._schema import HOUR_NS, CostStoreError, open_for_reading
from otel_gemini.aggregate._store import DROP_SHUTDOWN

RECENT_HOURS: Final = 24
"""How far back health looks for drops recorded in a store file (any process's)."""


def dropped_between(connection: sqlite3.Connection, start_ns: int, end_ns: int) -> int:
    """Generations dropped in the hours that overlap ``[start_ns, end_ns)`` (drops are kept
    by the hour their span started, so a window cutting an hour counts all of its drops: the
    answer errs towards warning). 0 for a store written before drops were recorded."""
    try:
        row = connection.execute(
            "SELECT sum(count) FROM dropped_generations WHERE hour_ns < ? AND hour_ns > ?",
            (end_ns, start_ns - HOUR_NS),
        ).fetchone()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return 0
        raise
    return int(row[0] or 0)


def recent_drops(connection: sqlite3.Connection, now_ns: int) -> dict[str, int]:
    """Generations dropped by reason over the last :data:`RECENT_HOURS` (for health)."""
    try:
        rows = connection.execute(
            "SELECT reason, sum(count) FROM dropped_generations WHERE hour_ns > ? "
            "GROUP BY reason ORDER BY reason",
            (now_ns - (RECENT_HOURS + 1) * HOUR_NS,),
        ).fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return {}
        raise
    return {str(reason): int(count) for reason, count in rows if count}


def store_drops(path: Path, now: float) -> tuple[dict[str, object], list[str]] | None:
    """What health says of the drops recorded in the store file at ``path`` (written by any
    process) over the last :data:`RECENT_HOURS`: a section for the report and the reasons
    that degrade it (none without drops). ``None`` when there is no store there."""
    try:
        connection = open_for_reading(path)
    except CostStoreError:
        return None
    try:
        drops = recent_drops(connection, int(now * 1e9))
    except sqlite3.Error as error:
        return {"path": str(path), "error": str(error)}, [
            f"cost store {path}: cannot read its drops: {error}"
        ]
    finally:
        connection.close()
    section: dict[str, object] = {"path": str(path), f"dropped_last_{RECENT_HOURS}h": drops}
    # Spans handed over after shutdown() are counted and shown, but an ordinary shutdown is
    # no fault of the pipeline (in-process health treats it the same way).
    faults = {reason: count for reason, count in drops.items() if reason != DROP_SHUTDOWN}
    total = sum(faults.values())
    if not total:
        return section, []
    by_reason = ", ".join(f"{reason}={count}" for reason, count in faults.items())
    return section, [
        f"cost store {path}: {total} generation(s) dropped in the last {RECENT_HOURS} h "
        f"({by_reason}); local cost answers over those hours miss them and say so ('dropped')"
    ]
