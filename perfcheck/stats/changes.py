"""Change points in a series of session medians: where a scenario's metric stepped.

Two parts, chosen on the recorded sessions against E-Divisive means (as Apache Otava
does it), Otava's default windowed pipeline and a penalised segmentation (PELT) with
rank tests of adjacent segments (``bench/changes_methods.py``, bench/RESULTS.md):

- **Inside the series: binary segmentation with a rank test.** In a segment of ``m``
  sessions, every split ``t`` (at least :data:`MIN_SEGMENT` sessions on each side) gets
  the Mann-Whitney U of the sessions before it against those after, standardised,
  ``z(t) = (U(t) - t(m-t)/2) / sqrt(t(m-t)(m+1)/12)``; the split with the largest
  ``|z|`` is the candidate. Its significance is a permutation test of that maximum: the
  same statistic on the segment's sessions in random orders (999 by default), so the
  p-value already pays for having looked at every split. A significant split divides
  the segment and both halves are searched again. Ranks make one outlying session (a
  few in twenty run 1.5-2x off on a shared machine) count no more than any other.
- **At the end of the series: the tail rule** (:func:`tail_change`). A step 3 sessions
  before the newest one is what CI needs to see, and there a split statistic has
  almost no power (3 sessions against 20 give a permutation p of 0.03 at best, before
  paying for every split). The last ``k`` (3-8) sessions are a step when each of them
  lies beyond ``c_k`` robust standard deviations from the median of the 20 sessions
  before them, all on the same side, where ``2 * sf(c_k) ** k`` is :data:`TAIL_LEVEL`
  (``c_3`` = 2.68, ``c_8`` = 1.16: a longer tail needs each session less far out).
  Median and MAD ignore the reference's outlying sessions, and asking it of every
  tail session keeps one or two outlying new sessions from making a step.

Each change point's magnitude is the relative change between the medians of the
segments on either side of it. The permutations are drawn from a fixed seed, so the
same series always gives the same answer.
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
#: The tail rule: sessions a step must have lasted at least, and at most looked back.
TAIL_MIN: Final[int] = 3
TAIL_MAX: Final[int] = 8
#: Sessions before the tail its reference takes, at most, and at least.
TAIL_WINDOW: Final[int] = 20
TAIL_REFERENCE_MIN: Final[int] = 8
#: How unlikely ``k`` tail sessions all that far out on one side must be under normal
#: noise: every one lies beyond 2.68 robust standard deviations for k = 3, 2.17 for 4,
#: 1.82 for 5 ... 1.16 for 8 (chosen on bench/changes_methods.py: a 15% step is then
#: found within 8 sessions in 81% of simulated series, at 0.73 false points per 100).
TAIL_LEVEL: Final[float] = 1e-7
#: 1 / the normal's 0.75 quantile: MAD -> standard deviation for normal noise.
_MAD_TO_SD: Final[float] = 1.4826
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


def _abs_z(
    ranks: npt.NDArray[np.float64], min_size: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per row of ``ranks`` (one ordering each): the standardised |U| of every allowed
    split, and the splits (sessions before each)."""
    m = ranks.shape[1]
    splits = np.arange(min_size, m - min_size + 1)
    cumulative = np.cumsum(ranks, axis=1)[:, splits - 1]
    u = cumulative - splits * (splits + 1) / 2.0
    mean = splits * (m - splits) / 2.0
    sd = np.sqrt(splits * (m - splits) * (m + 1) / 12.0)
    return np.abs((u - mean) / sd), splits


#: The splits next to the best whose |z| is within this fraction of it are told apart
#: by the values.
_NEAR_BEST: Final[float] = 0.05


def _separating(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Per split ``t`` (index ``t - 1``): do the sessions before it all lie above, or
    all below, every session after it?"""
    head_max = np.maximum.accumulate(values)[:-1]
    head_min = np.minimum.accumulate(values)[:-1]
    tail_max = np.maximum.accumulate(values[::-1])[::-1][1:]
    tail_min = np.minimum.accumulate(values[::-1])[::-1][1:]
    return np.asarray((head_max < tail_min) | (head_min > tail_max))


def _tied_split(values: npt.NDArray[np.float64], candidates: npt.NDArray[np.int64]) -> int:
    """Of splits the ranks barely tell apart, the one whose segments lie closest to their
    own medians. Near a segment's end a session on either side of a clean step leaves
    both splits fully separated in ranks; the values say which side it is on."""
    costs = [
        float(np.sum(np.abs(values[:t] - np.median(values[:t]))))
        + float(np.sum(np.abs(values[t:] - np.median(values[t:]))))
        for t in candidates
    ]
    return int(candidates[int(np.argmin(costs))])


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
    x = np.asarray(values, dtype=np.float64)
    ranks = _ranks(x)
    z, splits = _abs_z(ranks[np.newaxis, :], min_size)
    observed = float(np.max(z))
    best = int(np.argmax(z[0]))
    # A split that leaves every session on one side above every one on the other is
    # where a clean step is; the statistic's lean towards the middle would miss it.
    clean = splits[_separating(x)[splits - 1]]
    if len(clean):
        split = _tied_split(x, clean)
    else:
        near = splits[max(0, best - 1) : best + 2]
        split = _tied_split(x, near[z[0][near - min_size] >= observed * (1.0 - _NEAR_BEST)])
    generator = rng if rng is not None else np.random.default_rng(_SEED)
    shuffled = generator.permuted(np.tile(ranks, (permutations, 1)), axis=1)
    null = np.max(_abs_z(shuffled, min_size)[0], axis=1)
    # A tie with the observed maximum counts against it (exact for the permutation test).
    p_value = (1.0 + float(np.sum(null >= observed - 1e-12))) / (1.0 + permutations)
    return split, p_value


def _tail_limit(k: int, level: float, threshold: float | None) -> float:
    """How many robust standard deviations out each of ``k`` tail sessions must be."""
    from scipy.stats import norm

    return threshold if threshold is not None else float(norm.isf((level / 2) ** (1 / k)))


def tail_change(
    values: Sequence[float] | npt.NDArray[np.float64],
    level: float = TAIL_LEVEL,
    window: int = TAIL_WINDOW,
    alpha: float = DEFAULT_ALPHA,
    threshold: float | None = None,
) -> ChangePoint | None:
    """A step in the last :data:`TAIL_MIN`-:data:`TAIL_MAX` sessions, or None.

    The last ``k`` sessions are a step when every one of them lies more than
    ``c_k`` robust standard deviations (1.4826 MAD) from the median of the
    ``window`` sessions before them, all on the same side. Of the ``k`` that qualify,
    the split that leaves both sides closest to their medians places the step; when
    the longest tail's previous session lies nearer the tail than the reference, the step
    is older and left to the split search. Its p-value is what normal noise of the
    reference's spread would give for ``k`` sessions all at least that far out on one side,
    ``2 * sf(z_min) ** k``; ``c_k`` is where that equals ``level`` (or ``threshold`` for
    every ``k``, when given). The level, not alpha, is what keeps real noise (heavier
    tailed than normal) from making steps.
    """
    from scipy.stats import norm

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    found: dict[int, ChangePoint] = {}
    for k in range(TAIL_MIN, TAIL_MAX + 1):
        reference = x[max(0, n - k - window) : n - k]
        if len(reference) < TAIL_REFERENCE_MIN:
            break
        centre = float(np.median(reference))
        spread = _MAD_TO_SD * float(np.median(np.abs(reference - centre)))
        tail = x[n - k :]
        if spread > 0:
            z = (tail - centre) / spread
        else:
            z = np.where(tail == centre, 0.0, np.copysign(np.inf, tail - centre))
        nearest = float(max(np.min(z), -np.max(z)))
        limit = _tail_limit(k, level, threshold)
        if nearest <= limit:
            continue
        # A step older than the tail is the split search's: the session before the
        # longest tail lies nearer the tail's median than the reference's.
        if k == TAIL_MAX and n > k:
            previous = x[n - k - 1]
            if abs(previous - np.median(tail)) < abs(previous - centre):
                return None
        p_value = min(1.0, 2.0 * float(norm.sf(nearest)) ** k)
        if p_value <= alpha:
            found[n - k] = ChangePoint(
                index=n - k,
                p_value=p_value,
                before_median=centre,
                after_median=float(np.median(tail)),
                before_sessions=len(reference),
                after_sessions=k,
            )
    if not found:
        return None
    # Where the step starts: an outlying session just before it can qualify a longer
    # tail too; the values decide, as for near-equal splits.
    start = max(0, n - TAIL_MAX - window)
    at = start + _tied_split(x[start:], np.array(sorted(found), dtype=np.int64) - start)
    return found[at]


def change_points(
    values: Sequence[float],
    alpha: float = DEFAULT_ALPHA,
    min_size: int = MIN_SEGMENT,
    permutations: int = DEFAULT_PERMUTATIONS,
    tail: bool = True,
    tail_level: float = TAIL_LEVEL,
    tail_threshold: float | None = None,
) -> list[ChangePoint]:
    """The significant change points of ``values`` (oldest first), in order.

    With ``tail`` a step in the last sessions found by :func:`tail_change` is one of
    them, and the split search covers only the sessions before it (near the end of a
    segment the split statistic places a step poorly as well as weakly).
    """
    rng = np.random.default_rng(_SEED)
    found: dict[int, float] = {}
    searched = len(values)
    if tail:
        step = tail_change(
            np.asarray(values, dtype=np.float64),
            tail_level,
            alpha=alpha,
            threshold=tail_threshold,
        )
        if step is not None:
            searched = step.index
            found[step.index] = step.p_value
    segments = [(0, searched)]
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
