"""Percentiles by linear interpolation between the two nearest ranks.

For ``n`` sorted values ``v[0..n-1]`` the p-th percentile sits at rank
``h = (n - 1) * p / 100``: ``v[floor(h)] + (h - floor(h)) * (v[floor(h) + 1] - v[floor(h)])``.
This is numpy's default ("linear"), Excel's PERCENTILE.INC and
``statistics.quantiles(values, n=100, method="inclusive")``; p50 is the median. Ranks are
worked out in integers, so the positions are exact for any ``n``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

PERCENTILES: Final = (50, 95, 99)
EXACT_PERCENTILE_ROWS: Final = 20_000
"""Up to this many generations in a local latency answer's window, percentiles are exact
(the values at the ranks, read from the raw rows); above, they come from the rollups'
log-bucket histograms (:mod:`._sketch`), within 1 %."""


def rank_bounds(count: int, percentile: int) -> tuple[int, int, float]:
    """(lower index, upper index, weight of the upper value) for ``percentile`` of ``count``."""
    scaled = (count - 1) * percentile
    lower, remainder = divmod(scaled, 100)
    upper = lower + 1 if remainder else lower
    return lower, upper, remainder / 100


def interpolate(count: int, percentile: int, values_at: Mapping[int, float]) -> float | None:
    """The percentile from the values at the needed ranks (``None`` for no values)."""
    if count <= 0:
        return None
    lower, upper, weight = rank_bounds(count, percentile)
    low = values_at[lower]
    if upper == lower:
        return low
    return low + weight * (values_at[upper] - low)


def percentile(values: Sequence[float], percentile: int) -> float | None:
    """The percentile of unsorted ``values`` (for small in-memory lists)."""
    ordered = sorted(values)
    return interpolate(len(ordered), percentile, dict(enumerate(ordered)))
