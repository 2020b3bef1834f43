"""Per-metric regression verdicts: PASS, FAIL or INCONCLUSIVE, decided on rounds.

The statistical unit is the round, never the single I/O. Every metric (for
example ``block.latency.read.p99`` in nanoseconds, or ``fio.iops.read``) has one
value per measured round; the baseline has n rounds and the current run m rounds
(typically 5 each; the two may differ). The rules as users meet them, with sequential
rounds, session history and the drift control, are in ``docs/statistics.md``; here are
their exact definitions.

Definitions
-----------

- **Direction and threshold.** Each metric has a rule: which direction is worse
  and a relative threshold. Defaults (:func:`default_rule`): names ending
  ``.p50`` +10%, ``.p90`` +15%, ``.p99`` +20% (higher is worse); names containing
  ``.iops.`` or ``.bw.`` or ending in ``iops``, ``bw_bytes`` or ``_per_second``
  (rates such as ``iperf3.bits_per_second``) are lower-is-worse with a 10%
  threshold; anything else is higher-is-worse with 20%. A name that says its
  direction (a part ``higher_is_better`` or ``lower_is_better``, as a command's
  own metrics have) gets that direction, with 20%.
- **Effect size.** ``change`` is the signed relative change of the medians,
  ``(current - baseline) / |baseline|``; ``worse_by`` is the same number signed
  so that positive means worse whatever the direction. A baseline median of 0
  makes the relative change undefined: it is 0 when the current median is also
  0, and +inf or -inf otherwise (so any move away from a zero baseline counts as
  past every threshold). A negative baseline median divides by its magnitude, so
  the sign of ``change`` is always the sign of the move.
- **Significance.** A one-sided exact Mann-Whitney U test on the rounds, with the
  alternative "current is worse". Without ties this is SciPy's exact test. SciPy's
  exact null distribution assumes no ties and gives e.g. p=0.65 for two identical
  samples, so when the pooled rounds contain ties the p-value is the exact
  permutation probability computed here over mid-ranks (all splits of the pooled
  rounds into the two sides, counted by rank sum). Identical samples give p=1.
  Past 200 pooled rounds with ties, SciPy's tie-corrected normal approximation is
  used instead. The p-value is always in (0, 1].
- **FAIL** iff p < alpha **and** ``worse_by`` > threshold: the change is both real
  and large enough to matter.
- **INCONCLUSIVE** iff ``worse_by`` > threshold but the rounds cannot confirm it:
  either p >= alpha, or there are too few rounds for the exact test ever to reach
  alpha. Too few means fewer than :data:`MIN_ROUNDS` rounds on a side, or a
  smallest achievable one-sided p, ``1 / C(n + m, n)``, that is not below alpha
  (3 vs 3 rounds: 1/20 = 0.05). Such a comparison is never a FAIL.
- **PASS** otherwise: no move past the threshold, which includes improvements and
  significant changes smaller than the threshold.

Rounds needed
-------------

An INCONCLUSIVE verdict carries ``rounds_needed``, the rounds per side that would
likely decide it. It comes from the observed probability that a current round is
worse than a baseline round, ``AUC = U / (n * m)`` (ties count one half), put
into Noether's sample-size formula for the Mann-Whitney test with equal sides,
one-sided alpha and 80% power::

    N_total = (z[1 - alpha] + z[0.80])^2 / (3 * (AUC - 0.5)^2),  per side = ceil(N_total / 2)

The same estimate is given when there were too few rounds to decide. It is at
least the smallest equal number of rounds per side whose exact test can reach
alpha at all (``1 / C(2k, k) < alpha``: 5 for alpha 0.01) and at most
:data:`ROUNDS_NEEDED_CAP`. The cap also stands for "no number of rounds will
decide this": it is what an AUC <= 0.5 (the rounds do not lean worse although the
medians do) or an estimate above the cap yields, and reports show it as
"100+". ``rounds_needed`` is None for PASS and FAIL.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from perfcheck.model.names import HIGHER_IS_BETTER_PART, LOWER_IS_BETTER_PART

#: Fewer measured rounds than this on either side can never give a FAIL.
MIN_ROUNDS = 3

#: Largest ``rounds_needed`` reported; it also means "this many or more".
ROUNDS_NEEDED_CAP = 100

#: Power the rounds-needed estimate aims for.
TARGET_POWER = 0.80

#: Default significance level of the gate.
DEFAULT_ALPHA = 0.01

# Above this many pooled rounds with ties, the exact permutation count is replaced
# by the normal approximation (the count table grows with the square of the rounds).
_EXACT_TIES_MAX_ROUNDS = 200

# Percentile metrics as measurement.percentile_metric_name writes them: .p99, .p99_9.
_PERCENTILE_SUFFIX = re.compile(r"\.p\d+(?:_\d+)?$")
_WHOLE_PERCENTILE_SUFFIX = re.compile(r"\.p(\d+)$")


class Direction(StrEnum):
    """Which way a metric moves when things get worse."""

    HIGHER_IS_WORSE = "higher_is_worse"
    LOWER_IS_WORSE = "lower_is_worse"


class Verdict(StrEnum):
    """Outcome of comparing one metric's rounds against its baseline rounds."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class MetricRule:
    """How to judge one metric: which direction is worse and by how much it may move.

    ``threshold`` is relative: 0.10 means the median may get 10% worse before the
    change counts.
    """

    direction: Direction
    threshold: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold >= 0.0):
            raise ValueError(
                f"metric threshold must be a finite number >= 0, got {self.threshold!r}"
            )


_PERCENTILE_THRESHOLDS = {"50": 0.10, "90": 0.15, "99": 0.20}
_THROUGHPUT_THRESHOLD = 0.10
_OTHER_THRESHOLD = 0.20


def _is_throughput(metric: str) -> bool:
    return (
        ".iops." in metric
        or ".bw." in metric
        or metric.endswith("iops")
        or metric.endswith("bw_bytes")
        # Rates: work done per second (iperf3.bits_per_second, round trips per second).
        or metric.endswith("_per_second")
    )


def default_rule(metric: str) -> MetricRule:
    """The rule a metric gets unless a scenario overrides it (see the module docstring)."""
    parts = metric.split(".")
    if HIGHER_IS_BETTER_PART in parts:
        return MetricRule(Direction.LOWER_IS_WORSE, _OTHER_THRESHOLD)
    if LOWER_IS_BETTER_PART in parts:
        return MetricRule(Direction.HIGHER_IS_WORSE, _OTHER_THRESHOLD)
    match = _WHOLE_PERCENTILE_SUFFIX.search(metric)
    if match is not None:
        threshold = _PERCENTILE_THRESHOLDS.get(match.group(1))
        if threshold is not None:
            return MetricRule(Direction.HIGHER_IS_WORSE, threshold)
    if _is_throughput(metric):
        return MetricRule(Direction.LOWER_IS_WORSE, _THROUGHPUT_THRESHOLD)
    return MetricRule(Direction.HIGHER_IS_WORSE, _OTHER_THRESHOLD)


@dataclass(frozen=True)
class MetricComparison:
    """The verdict on one metric, with every number that led to it."""

    metric: str
    rule: MetricRule
    baseline: tuple[float, ...]
    current: tuple[float, ...]
    baseline_median: float
    current_median: float
    #: Signed relative change of the medians, (current - baseline) / |baseline|.
    change: float
    #: ``change`` signed so that positive means worse, for either direction.
    worse_by: float
    #: One-sided Mann-Whitney U p-value, alternative "current is worse".
    p_value: float
    alpha: float
    verdict: Verdict
    #: For INCONCLUSIVE: rounds per side that would likely decide; None otherwise.
    rounds_needed: int | None
    #: One short sentence saying why this verdict.
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (``change``/``worse_by`` may be +-inf for a zero baseline)."""
        return {
            "metric": self.metric,
            "direction": self.rule.direction.value,
            "threshold": self.rule.threshold,
            "baseline": list(self.baseline),
            "current": list(self.current),
            "baseline_median": self.baseline_median,
            "current_median": self.current_median,
            "change": self.change,
            "worse_by": self.worse_by,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "verdict": self.verdict.value,
            "rounds_needed": self.rounds_needed,
            "reason": self.reason,
        }


def min_rounds_to_decide(alpha: float) -> int:
    """Smallest equal rounds per side k whose exact test can reach alpha: 1/C(2k, k) < alpha."""
    rounds = MIN_ROUNDS
    while 1.0 / math.comb(2 * rounds, rounds) >= alpha:
        rounds += 1
    return rounds


def can_ever_fail(baseline_rounds: int, current_rounds: int, alpha: float) -> bool:
    """Whether n vs m rounds are enough for the exact one-sided test ever to give p < alpha."""
    if baseline_rounds < MIN_ROUNDS or current_rounds < MIN_ROUNDS:
        return False
    return 1.0 / math.comb(baseline_rounds + current_rounds, baseline_rounds) < alpha


def _relative_change(baseline_median: float, current_median: float) -> float:
    if baseline_median == 0.0:
        if current_median == 0.0:
            return 0.0
        return math.copysign(math.inf, current_median)
    return (current_median - baseline_median) / abs(baseline_median)


def _exact_tail_with_ties(
    worse_current: npt.NDArray[np.float64], worse_baseline: npt.NDArray[np.float64]
) -> float:
    """P(rank sum of current >= observed) over all splits of the pooled rounds, ties mid-ranked.

    Mid-ranks are multiples of one half, so doubled ranks are integers and the number
    of splits reaching each doubled rank sum can be counted by dynamic programming.
    """
    pooled = np.concatenate([worse_current, worse_baseline])
    doubled = np.rint(2.0 * stats.rankdata(pooled)).astype(np.int64)
    size = len(worse_current)
    observed = int(doubled[:size].sum())
    max_sum = int(np.sort(doubled)[-size:].sum())
    # Exact integer counts while they fit; beyond that float counts are precise enough.
    exact = math.comb(len(pooled), size) < 2**62
    counts: npt.NDArray[Any] = np.zeros(
        (size + 1, max_sum + 1), dtype=np.int64 if exact else np.float64
    )
    counts[0, 0] = 1
    for rank in doubled:
        # Choosing this round adds one member and `rank` to the sum; copy before adding.
        shifted = counts[:-1, : max_sum + 1 - rank].copy()
        counts[1:, rank:] += shifted
    by_sum = counts[size]
    tail = by_sum[observed:].sum()
    total = by_sum.sum()
    if exact:
        return int(tail) / int(total)
    return float(tail) / float(total)


def _one_sided_p_value(
    worse_current: npt.NDArray[np.float64], worse_baseline: npt.NDArray[np.float64]
) -> float:
    """p-value that the current rounds are stochastically larger (i.e. worse)."""
    pooled = np.concatenate([worse_current, worse_baseline])
    has_ties = len(np.unique(pooled)) < len(pooled)
    if not has_ties:
        result = stats.mannwhitneyu(
            worse_current, worse_baseline, alternative="greater", method="exact"
        )
        p_value = float(result.pvalue)
    elif len(pooled) <= _EXACT_TIES_MAX_ROUNDS:
        p_value = _exact_tail_with_ties(worse_current, worse_baseline)
    else:
        result = stats.mannwhitneyu(
            worse_current, worse_baseline, alternative="greater", method="asymptotic"
        )
        p_value = float(result.pvalue)
    return min(1.0, max(p_value, sys.float_info.min))


def _probability_current_worse(
    worse_current: npt.NDArray[np.float64], worse_baseline: npt.NDArray[np.float64]
) -> float:
    """AUC = U / (n * m): share of (current, baseline) round pairs where current is worse."""
    diff = worse_current[:, None] - worse_baseline[None, :]
    wins = float(np.count_nonzero(diff > 0)) + 0.5 * float(np.count_nonzero(diff == 0))
    return wins / float(len(worse_current) * len(worse_baseline))


def estimate_rounds_needed(auc: float, alpha: float, power: float = TARGET_POWER) -> int:
    """Rounds per side for a one-sided Mann-Whitney test to detect ``auc`` (Noether's formula).

    Clamped to ``[min_rounds_to_decide(alpha), ROUNDS_NEEDED_CAP]``; the cap also
    stands for "no number of rounds will do", which is what ``auc <= 0.5`` gives.
    """
    floor = min_rounds_to_decide(alpha)
    if not auc > 0.5:
        return ROUNDS_NEEDED_CAP
    z_sum = float(stats.norm.ppf(1.0 - alpha)) + float(stats.norm.ppf(power))
    total = z_sum**2 / (3.0 * (auc - 0.5) ** 2)
    per_side = math.ceil(total / 2.0)
    return max(floor, min(ROUNDS_NEEDED_CAP, per_side))


def _checked_rounds(metric: str, side: str, values: Sequence[float]) -> tuple[float, ...]:
    rounds = tuple(float(v) for v in values)
    if not rounds:
        raise ValueError(f"{metric}: the {side} has no rounds to compare")
    if not all(math.isfinite(v) for v in rounds):
        raise ValueError(f"{metric}: the {side} rounds contain NaN or infinity: {rounds}")
    return rounds


def _percent(fraction: float) -> str:
    if math.isinf(fraction):
        return "+inf%" if fraction > 0 else "-inf%"
    return f"{fraction * 100.0:+.1f}%"


def _threshold_text(rule: MetricRule) -> str:
    sign = "+" if rule.direction is Direction.HIGHER_IS_WORSE else "-"
    return f"{sign}{rule.threshold * 100.0:g}%"


def _rounds_text(rounds: int) -> str:
    return f"{rounds}+" if rounds >= ROUNDS_NEEDED_CAP else str(rounds)


def compare_metric(
    metric: str,
    baseline: Sequence[float],
    current: Sequence[float],
    rule: MetricRule | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> MetricComparison:
    """Judge one metric's current rounds against its baseline rounds (see the module docstring).

    Raises ValueError for an empty side, non-finite values or alpha outside (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    rule = rule if rule is not None else default_rule(metric)
    base = _checked_rounds(metric, "baseline", baseline)
    cur = _checked_rounds(metric, "current run", current)

    base_median = float(np.median(base))
    cur_median = float(np.median(cur))
    change = _relative_change(base_median, cur_median)
    worse_by = change if rule.direction is Direction.HIGHER_IS_WORSE else -change

    # Orient both samples so that larger always means worse; ranks make this exact.
    sign = 1.0 if rule.direction is Direction.HIGHER_IS_WORSE else -1.0
    worse_cur = sign * np.asarray(cur)
    worse_base = sign * np.asarray(base)
    p_value = _one_sided_p_value(worse_cur, worse_base)

    if base_median == 0.0 and cur_median != 0.0:
        moved = f"median moved off a zero baseline ({'worse' if worse_by > 0 else 'better'})"
    else:
        moved = f"median {abs(worse_by) * 100.0:.1f}% {'worse' if worse_by > 0 else 'better'}"
    rounds_needed: int | None = None
    if worse_by > rule.threshold:
        decidable = can_ever_fail(len(base), len(cur), alpha)
        if decidable and p_value < alpha:
            verdict = Verdict.FAIL
            reason = (
                f"{moved}, past the {rule.threshold * 100:g}% threshold, and the rounds"
                f" confirm it (p={p_value:.2g} < {alpha:g})"
            )
        else:
            verdict = Verdict.INCONCLUSIVE
            auc = _probability_current_worse(worse_cur, worse_base)
            rounds_needed = estimate_rounds_needed(auc, alpha)
            if not decidable:
                why = f"{len(base)} vs {len(cur)} rounds can never reach p < {alpha:g}"
            else:
                why = f"the rounds overlap too much to confirm it (p={p_value:.2g})"
            reason = (
                f"{moved}, past the {rule.threshold * 100:g}% threshold, but {why};"
                f" about {_rounds_text(rounds_needed)} rounds per side would decide"
            )
    else:
        verdict = Verdict.PASS
        if worse_by < 0:
            reason = moved
        elif worse_by > 0:
            reason = f"{moved}, within the {rule.threshold * 100:g}% threshold"
        else:
            reason = "median unchanged"

    return MetricComparison(
        metric=metric,
        rule=rule,
        baseline=base,
        current=cur,
        baseline_median=base_median,
        current_median=cur_median,
        change=change,
        worse_by=worse_by,
        p_value=p_value,
        alpha=alpha,
        verdict=verdict,
        rounds_needed=rounds_needed,
        reason=reason,
    )


def compare_series(
    baseline: Mapping[str, Sequence[float]],
    current: Mapping[str, Sequence[float]],
    rules: Mapping[str, MetricRule] | None = None,
    alpha: float = DEFAULT_ALPHA,
    holm: bool = False,
) -> list[MetricComparison]:
    """Compare every metric present on both sides, sorted by name.

    ``rules[metric]`` overrides :func:`default_rule` for that metric. Metrics present
    on only one side are not compared. With ``holm``, ``alpha`` holds for the scenario
    as a whole instead of each metric: Holm's step-down correction over the k metrics
    compared (the smallest p-value is tested at alpha/k, the next at alpha/(k-1), ...,
    stopping at the first that is not below its level; every later metric keeps that
    level). A FAIL that does not survive it is INCONCLUSIVE, saying so.
    """
    rules = rules or {}
    names = sorted(baseline.keys() & current.keys())
    first = [compare_metric(n, baseline[n], current[n], rules.get(n), alpha) for n in names]
    if not holm or len(first) < 2:
        return first
    levels = holm_levels([c.p_value for c in first], alpha)
    out = []
    for c, level in zip(first, levels, strict=True):
        if level == alpha:
            out.append(c)
            continue
        again = compare_metric(c.metric, c.baseline, c.current, c.rule, level)
        if c.verdict is Verdict.FAIL and again.verdict is not Verdict.FAIL:
            again = replace(
                again,
                reason=f"{again.reason} (Holm's correction over the scenario's {len(first)}"
                f" metrics holds this one to p < {level:.2g})",
            )
        out.append(again)
    return out


def holm_levels(p_values: Sequence[float], alpha: float) -> list[float]:
    """The significance level each p-value is held to under Holm's step-down procedure."""
    k = len(p_values)
    order = sorted(range(k), key=lambda i: p_values[i])
    levels = [alpha] * k
    for rank, i in enumerate(order):
        level = alpha / (k - rank)
        if p_values[i] >= level:
            for rest in order[rank:]:
                levels[rest] = level
            break
        levels[i] = level
    return levels


_VERDICT_SEVERITY = {Verdict.FAIL: 0, Verdict.INCONCLUSIVE: 1}


def worst(comparisons: Iterable[MetricComparison]) -> MetricComparison | None:
    """The comparison most in need of attention, or None when every one is a PASS.

    FAILs come before INCONCLUSIVEs; within a verdict, the largest ``worse_by`` wins.
    """
    troubled = [c for c in comparisons if c.verdict in _VERDICT_SEVERITY]
    if not troubled:
        return None
    return min(troubled, key=lambda c: (_VERDICT_SEVERITY[c.verdict], -c.worse_by))


def _scaled(value: float, steps: Sequence[tuple[float, str]]) -> str:
    """Three significant digits in the largest unit that keeps the number below 1000.

    In the base unit (ns, IOPS, B/s) values are shown as whole numbers.
    """
    magnitude = abs(value)
    scale, unit = steps[0]
    for step_scale, step_unit in steps:
        if magnitude >= step_scale * 0.9995:
            scale, unit = step_scale, step_unit
    number = value / scale
    if scale == 1.0 or abs(number) >= 99.95:
        text = f"{number:.0f}"
    elif abs(number) >= 9.995:
        text = f"{number:.1f}"
    else:
        text = f"{number:.2f}"
    return f"{text}{unit}"


_NANOSECOND_UNITS = ((1.0, " ns"), (1e3, " us"), (1e6, " ms"), (1e9, " s"))
_IOPS_UNITS = ((1.0, " IOPS"), (1e3, "k IOPS"), (1e6, "M IOPS"))
_BYTES_PER_SECOND_UNITS = (
    (1.0, " B/s"),
    (1024.0, " KiB/s"),
    (1024.0**2, " MiB/s"),
    (1024.0**3, " GiB/s"),
)
_BITS_PER_SECOND_UNITS = ((1.0, " bit/s"), (1e3, " kbit/s"), (1e6, " Mbit/s"), (1e9, " Gbit/s"))


def format_value(metric: str, value: float) -> str:
    """A metric value for people: percentiles (``.pNN``) are nanoseconds, shown in ns/us/ms/s;
    IOPS as ``12.3k IOPS``; fio's ``bw_bytes`` in bytes per second; ``bits_per_second`` as
    ``9.41 Gbit/s``; anything else ``%.4g``."""
    if not math.isfinite(value):
        return str(value)
    if _PERCENTILE_SUFFIX.search(metric):
        return _scaled(value, _NANOSECOND_UNITS)
    if metric.endswith("_seconds"):
        return _scaled(value * 1e9, _NANOSECOND_UNITS)
    if metric.endswith("bw_bytes"):
        return _scaled(value, _BYTES_PER_SECOND_UNITS)
    if metric.endswith("bits_per_second"):
        return _scaled(value, _BITS_PER_SECOND_UNITS)
    if ".iops." in metric or metric.endswith("iops"):
        return _scaled(value, _IOPS_UNITS)
    return f"{value:.4g}"


def format_comparison(c: MetricComparison) -> str:
    """One line, e.g. ``m.p99: 26.1 us -> 52.3 us (+100.4%, threshold +20%, p=0.004) FAIL``."""
    line = (
        f"{c.metric}: {format_value(c.metric, c.baseline_median)} ->"
        f" {format_value(c.metric, c.current_median)} ({_percent(c.change)},"
        f" threshold {_threshold_text(c.rule)}, p={c.p_value:.2g}) {c.verdict.value}"
    )
    if c.rounds_needed is not None:
        line += f" (needs about {_rounds_text(c.rounds_needed)} rounds per side)"
    return line
