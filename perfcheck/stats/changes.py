"""Change points in a series of session medians: where a scenario's metric stepped.

The method, chosen to match the gate's statistics (ranks, never means): binary
segmentation with a rank test. In a segment of ``m`` sessions, every split ``t`` (at
least :data:`MIN_SEGMENT` sessions on each side) gets the Mann-Whitney U of the
sessions before it against those after, standardised,
``z(t) = (U(t) - t(m-t)/2) / sqrt(t(m-t)(m+1)/12)``; the split with the largest
``|z|`` is the candidate. Its significance is a permutation test of that maximum: the
same statistic on the segment's sessions in random orders (999 by default), so the
p-value already pays for having looked at every split. A significant split divides the
segment and both halves are searched again. Ranks make one outlying session (a few in
twenty run 1.5-2x off on a shared machine, bench/RESULTS.md) count no more than any
other. Each change point's magnitude is the relative change between the medians of the
segments on either side of it.

The permutations are drawn from a fixed seed, so the same series always gives the same
answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

#: Sessions on each side of a change point, at least.
MIN_SEGMENT: Final[int] = 3
DEFAULT_ALPHA: Final[float] = 0.01
DEFAULT_PERMUTATIONS: Final[int] = 999
_SEED: Final[int] = 20261204


@dataclass(frozen=True)
class ChangePoint:
    """A step in a series: ``index`` is the first session after it."""

    index: int
    p_value: float
    before_median: float
    after_median: float
    before_sessions: int
    after_sessions: int

    @property
    def change(self) -> float:
        """Relative change of the median, after against before (``+0.3``: 30% higher)."""
        if self.before_median == 0:
            return 0.0 if self.after_median == 0 else math.copysign(math.inf, self.after_median)
        return (self.after_median - self.before_median) / abs(self.before_median)


def _max_abs_z(
    ranks: npt.NDArray[np.float64], min_size: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per row of ``ranks`` (one ordering each): the largest standardised |U| over the
    allowed splits, and the split it is at (sessions before it)."""
    m = ranks.shape[1]
    splits = np.arange(min_size, m - min_size + 1)
    cumulative = np.cumsum(ranks, axis=1)[:, splits - 1]
    u = cumulative - splits * (splits + 1) / 2.0
    mean = splits * (m - splits) / 2.0
    sd = np.sqrt(splits * (m - splits) * (m + 1) / 12.0)
    z = np.abs((u - mean) / sd)
    best = np.argmax(z, axis=1)
    return z[np.arange(z.shape[0]), best], splits[best]


def _ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    from scipy.stats import rankdata

    ranked: npt.NDArray[np.float64] = np.asarray(rankdata(values), dtype=np.float64)
    return ranked


def best_split(
    values: Sequence[float],
    min_size: int = MIN_SEGMENT,
    permutations: int = DEFAULT_PERMUTATIONS,
    rng: np.random.Generator | None = None,
) -> tuple[int, float] | None:
    """The most likely change point of ``values`` and its permutation p-value, or None
    when the series is too short to split."""
    m = len(values)
    if m < 2 * min_size:
        return None
    ranks = _ranks(np.asarray(values, dtype=np.float64))
    observed, split = _max_abs_z(ranks[np.newaxis, :], min_size)
    generator = rng if rng is not None else np.random.default_rng(_SEED)
    shuffled = generator.permuted(np.tile(ranks, (permutations, 1)), axis=1)
    null, _ = _max_abs_z(shuffled, min_size)
    # A tie with the observed maximum counts against it (exact for the permutation test).
    p_value = (1.0 + float(np.sum(null >= observed[0] - 1e-12))) / (1.0 + permutations)
    return int(split[0]), p_value


def change_points(
    values: Sequence[float],
    alpha: float = DEFAULT_ALPHA,
    min_size: int = MIN_SEGMENT,
    permutations: int = DEFAULT_PERMUTATIONS,
) -> list[ChangePoint]:
    """The significant change points of ``values`` (oldest first), in order."""
    rng = np.random.default_rng(_SEED)
    found: dict[int, float] = {}
    segments = [(0, len(values))]
    while segments:
        start, end = segments.pop()
        result = best_split(values[start:end], min_size, permutations, rng)
        if result is None:
            continue
        split, p_value = result
        if p_value > alpha:
            continue
        at = start + split
        found[at] = p_value
        segments.extend([(start, at), (at, end)])
    bounds = [0, *sorted(found), len(values)]
    points = []
    for i, at in enumerate(bounds[1:-1], start=1):
        before = values[bounds[i - 1] : at]
        after = values[at : bounds[i + 1]]
        points.append(
            ChangePoint(
                index=at,
                p_value=found[at],
                before_median=float(np.median(before)),
                after_median=float(np.median(after)),
                before_sessions=len(before),
                after_sessions=len(after),
            )
        )
    return points
