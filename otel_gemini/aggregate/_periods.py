"""A time range as signed pieces the rollups can answer: whole periods of the rollups
(15 minutes, and 6 hours and UTC days where a table has them), and the raw rows at edges
that fall inside a 15-minute period.

Every zone's offset today is a whole number of 15 minutes (+05:30 and +05:45 included),
so local midnights fall on 15-minute boundaries; a window edge that does not (``to=now``)
is read from the raw rows between it and the nearest boundary (``generations_by_start``).

Sums and counts subtract exactly, so a part of a period is read either as its smaller
periods or as the whole period minus the smaller periods of the rest, whichever reads
fewer periods: a local day in +05:30 (18:30 to 18:30 UTC) is the UTC day it mostly covers,
plus the six hours from 18:00 the day before, minus the two quarters from 18:00, minus the
same six hours and two quarters of its own day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from otel_gemini.aggregate._rollups import QUARTER_NS

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

    @property
    def periods(self) -> int:
        return 0 if self.span == RAW else (self.hi - self.lo) // self.span


def pieces(ranges: Iterable[tuple[str, int, int]], spans: Sequence[int] = (1,)) -> list[Piece]:
    """The pieces of each ``(label, start ns, end ns)``, with rollups of ``spans``
    (quarters; 1 among them)."""
    sizes = sorted(set(spans), reverse=True)
    result: list[Piece] = []
    for label, lo, hi in ranges:
        first = -(-lo // QUARTER_NS)
        last = hi // QUARTER_NS
        if first >= last:
            if lo < hi:
                result.append(Piece(label, 1, RAW, lo, hi))
            continue
        if lo < first * QUARTER_NS:
            result.append(Piece(label, 1, RAW, lo, first * QUARTER_NS))
        if last * QUARTER_NS < hi:
            result.append(Piece(label, 1, RAW, last * QUARTER_NS, hi))
        result.extend(_cover(label, 1, first, last, sizes))
    return result


def _cover(label: str, sign: int, start: int, end: int, sizes: Sequence[int]) -> list[Piece]:
    """``[start, end)`` (quarters) as periods of ``sizes`` (largest first, ending with 1)."""
    if start >= end:
        return []
    size, finer = sizes[0], sizes[1:]
    if size == 1:
        return [Piece(label, sign, 1, start, end)]
    first = -(-start // size) * size
    last = end // size * size
    result: list[Piece] = []
    if first < last:
        result.append(Piece(label, sign, size, first, last))
        parts = [(start, first), (last, end)]
    elif first == last:  # across one boundary of this size, no whole period
        parts = [(start, first), (first, end)]
    else:  # inside one period of this size
        parts = [(start, end)]
    for part_start, part_end in parts:
        if part_start < part_end:
            result.extend(_part(label, sign, part_start, part_end, size, finer))
    return result


def _part(
    label: str, sign: int, start: int, end: int, size: int, finer: Sequence[int]
) -> list[Piece]:
    """Part of one period of ``size``: its finer periods, or the whole period minus the
    finer periods of the rest, whichever reads fewer periods."""
    period = start // size * size
    direct = _cover(label, sign, start, end, finer)
    complement = [
        Piece(label, sign, size, period, period + size),
        *_cover(label, -sign, period, start, finer),
        *_cover(label, -sign, end, period + size, finer),
    ]
    cost = sum(piece.periods for piece in direct)
    return complement if sum(piece.periods for piece in complement) < cost else direct
