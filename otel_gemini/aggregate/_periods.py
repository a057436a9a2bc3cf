"""A time range as signed pieces the rollups can answer: whole 15-minute periods, whole
UTC days, and the raw rows at edges that fall inside a 15-minute period.

Every zone's offset today is a whole number of 15 minutes (+05:30 and +05:45 included),
so local midnights fall on 15-minute boundaries; a window edge that does not (``to=now``)
is read from the raw rows between it and the nearest boundary (``generations_by_start``).

Sums and counts subtract exactly, so a part of a day longer than half of it is read as
the whole day minus the rest: a local day in +05:45 is the UTC day it mostly covers, plus
23 quarters of the day before, minus the 23 last quarters of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from otel_gemini.aggregate._rollups import DAY_QUARTERS, QUARTER_NS

RAW: Final = 0
"""A piece of raw rows (``lo``/``hi`` in nanoseconds)."""


@dataclass(frozen=True)
class Piece:
    """Rows of ``[lo, hi)`` counted ``sign`` times under ``label``: raw rows (``span`` 0,
    nanoseconds) or rollup periods of ``span`` quarters (``lo``/``hi`` in quarters)."""

    label: str
    sign: int
    span: int
    lo: int
    hi: int


def pieces(
    ranges: Iterable[tuple[str, int, int]], spans: Sequence[int] = (1, DAY_QUARTERS)
) -> list[Piece]:
    """The pieces of each ``(label, start ns, end ns)``, with rollups of ``spans``."""
    result: list[Piece] = []
    for label, lo, hi in ranges:
        result.extend(_range(label, lo, hi, DAY_QUARTERS in spans))
    return result


def _range(label: str, lo: int, hi: int, days: bool) -> list[Piece]:
    first = -(-lo // QUARTER_NS)
    last = hi // QUARTER_NS
    if first >= last:
        return [Piece(label, 1, RAW, lo, hi)] if lo < hi else []
    result: list[Piece] = []
    if lo < first * QUARTER_NS:
        result.append(Piece(label, 1, RAW, lo, first * QUARTER_NS))
    if last * QUARTER_NS < hi:
        result.append(Piece(label, 1, RAW, last * QUARTER_NS, hi))
    if not days:
        result.append(Piece(label, 1, 1, first, last))
        return result
    first_day = -(-first // DAY_QUARTERS) * DAY_QUARTERS
    last_day = last // DAY_QUARTERS * DAY_QUARTERS
    if first_day < last_day:
        result.append(Piece(label, 1, DAY_QUARTERS, first_day, last_day))
        partial = [(first, first_day), (last_day, last)]
    elif first < last_day < last:  # across one midnight, no whole day
        partial = [(first, last_day), (last_day, last)]
    else:  # inside one day
        partial = [(first, last)]
    for start, end in partial:
        if start < end:
            result.extend(_part_of_day(label, start, end))
    return result


def _part_of_day(label: str, start: int, end: int) -> list[Piece]:
    day = start // DAY_QUARTERS * DAY_QUARTERS
    inside = end - start
    if DAY_QUARTERS - inside >= inside:
        return [Piece(label, 1, 1, start, end)]
    result = [Piece(label, 1, DAY_QUARTERS, day, day + DAY_QUARTERS)]
    if day < start:
        result.append(Piece(label, -1, 1, day, start))
    if end < day + DAY_QUARTERS:
        result.append(Piece(label, -1, 1, end, day + DAY_QUARTERS))
    return result
