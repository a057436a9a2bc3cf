"""Exact sums of femto-dollar columns in SQLite (money itself: otel_gemini/_money.py).

SQLite has no decimal type and its ``sum()`` of integers stops at 2**63 (about $9,223 in
femto-dollars), so amounts are stored per row as femto-dollars and summed as two parts
(whole micro-dollars and the remainder), put back together exactly in Python.
"""

from __future__ import annotations

from typing import Final

SPLIT: Final = 10**9
"""Femto-dollars per micro-dollar: the unit of the high part of a split sum."""


def split_sum_sql(column: str) -> str:
    """SQL for the two parts of an exact sum of a femto-dollar column (see the module doc)."""
    return f"sum({column} / {SPLIT}), sum({column} % {SPLIT}), count({column})"


def joined(high: int | None, low: int | None, count: int) -> int | None:
    """The exact femto-dollar sum from :func:`split_sum_sql`'s parts (``None``: no values)."""
    if not count:
        return None
    return int(high or 0) * SPLIT + int(low or 0)
