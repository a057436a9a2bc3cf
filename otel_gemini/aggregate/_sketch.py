"""Log-bucket histograms of durations: percentiles within 1 % from bucket counts.

The DDSketch idea with a fixed, shared bucket layout: bucket ``i`` holds the values in
``(BOUNDS[i-1], BOUNDS[i]]`` where ``BOUNDS[i] = SMALLEST_MS * GAMMA**i`` and
``GAMMA = (1 + ALPHA) / (1 - ALPHA)``; bucket 0 holds everything up to ``SMALLEST_MS``, and
the last bucket everything above the largest bound. Any value of bucket ``i`` is within
``ALPHA`` (relative) of the bucket's representative ``2 * BOUNDS[i] / (1 + GAMMA)``, so a
percentile read from bucket counts is within ``ALPHA`` of the exact one (interpolating
between two such values keeps the bound). Counts add and subtract exactly, so histograms
of 15-minute and day periods combine into any window.

The bounds are data, not a formula evaluated in two places: the store keeps them in a
table (``rollup_bins``) that SQL looks values up in, and Python uses this same list, so a
value falls in the same bucket whichever side bins it (no ``ln()`` needed in SQLite).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Final

from otel_gemini.aggregate._percentiles import PERCENTILES, rank_bounds

ALPHA: Final = 0.0099
"""Relative accuracy of a value read back from its bucket (just under 1 %)."""
GAMMA: Final = (1 + ALPHA) / (1 - ALPHA)
SMALLEST_MS: Final = 0.001
"""Values up to 1 µs share bucket 0 (read back as 0)."""
LARGEST_MS: Final = 1e9
"""About 11.6 days; longer durations share the last bucket (read back as its bound)."""


def _bounds() -> tuple[float, ...]:
    bounds = [SMALLEST_MS]
    while bounds[-1] < LARGEST_MS:
        bounds.append(SMALLEST_MS * GAMMA ** len(bounds))
    return tuple(bounds)


BOUNDS: Final = _bounds()
"""Upper bound of bucket ``i`` (inclusive); ``len(BOUNDS)`` is the overflow bucket."""


def bucket(value: float) -> int:
    """The bucket of a duration in milliseconds (the same answer as the SQL lookup)."""
    return bisect.bisect_left(BOUNDS, value)


def representative(index: int) -> float:
    """The value read back for bucket ``index`` (within :data:`ALPHA` of its members)."""
    if index <= 0:
        return 0.0
    if index >= len(BOUNDS):
        return BOUNDS[-1]
    return 2 * BOUNDS[index] / (1 + GAMMA)


def ordered_percentiles(
    counts: Iterable[tuple[int, int]], percentiles: tuple[int, ...] = PERCENTILES
) -> tuple[int, tuple[float | None, ...]]:
    """(number of values, the percentiles) from ``(bucket, count)`` pairs in bucket order,
    each bucket once (as SQL grouped and ordered them), by the same rank arithmetic as the
    exact answers (:mod:`._percentiles`); counts of zero or less (a subtraction's leftovers)
    are ignored."""
    ordered = [(index, count) for index, count in counts if count > 0]
    total = sum(count for _, count in ordered)
    if not total:
        return 0, tuple(None for _ in percentiles)
    wanted = sorted({rank for p in percentiles for rank in rank_bounds(total, p)[:2]})
    values_at: dict[int, float] = {}
    seen = 0
    position = 0
    for index, count in ordered:
        seen += count
        while position < len(wanted) and wanted[position] < seen:
            values_at[wanted[position]] = representative(index)
            position += 1
        if position == len(wanted):
            break
    results: list[float | None] = []
    for p in percentiles:
        lower, upper, weight = rank_bounds(total, p)
        low = values_at[lower]
        results.append(low if upper == lower else low + weight * (values_at[upper] - low))
    return total, tuple(results)
