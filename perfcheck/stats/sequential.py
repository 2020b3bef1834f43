"""Sequential rounds: measure more current rounds while a verdict is undecided.

A metric is INCONCLUSIVE when its median moved past the threshold but the rounds
overlap too much to confirm it. Instead of giving up, the harness measures more
current rounds, in batches, up to a cap, and judges again.

The multiple-looks problem
--------------------------

Judging after every batch with the same alpha inflates the false-FAIL rate: each
look is another chance for noise to cross the line. The looks are therefore
planned in advance -- after ``initial`` rounds, then every ``batch`` more, up to
``max_rounds`` -- and alpha is **spent** across them (a Bonferroni split over the
planned looks): the first look gets ``alpha / 2``, each of the ``K - 1`` later
looks ``alpha / (2 (K - 1))``. Whatever the noise, the chance that *any* look
FAILs a metric whose rounds all come from the same distribution is then at most
the sum of the looks' alphas, ``alpha`` (``tests/test_sequential.py`` checks this
by simulation). Half of alpha on the first look keeps the common case -- a clear
regression, or none -- decided after the initial rounds, with the same rounds as
without sequential testing (5 vs 5 rounds can still reach p = 1/252 < 0.005).

When ``max_rounds`` is not above ``initial`` there is a single look at the full
alpha, exactly the non-sequential verdict.

Stopping: after a look, stop when some metric FAILs (the scenario has failed), when
no metric is INCONCLUSIVE (nothing more to learn), or at the cap. The verdicts of
the last look are the result. Only the current side grows; the baseline's rounds
are what they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from perfcheck.stats.verdict import DEFAULT_ALPHA, MetricComparison, Verdict

#: Default cap on the current side's rounds (``--perfcheck-max-rounds``).
DEFAULT_MAX_ROUNDS = 30
#: Default rounds added per look.
DEFAULT_BATCH = 5


@dataclass(frozen=True)
class SequentialPlan:
    """The planned looks of one comparison and the alpha each one may spend."""

    initial: int
    max_rounds: int
    batch: int = DEFAULT_BATCH
    alpha: float = DEFAULT_ALPHA

    def __post_init__(self) -> None:
        if self.initial < 1 or self.batch < 1:
            raise ValueError(f"initial and batch rounds must be >= 1, got {self!r}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {self.alpha!r}")

    @property
    def looks(self) -> tuple[int, ...]:
        """Current-side rounds at each look: initial, initial + batch, ..., max_rounds."""
        if self.max_rounds <= self.initial:
            return (self.initial,)
        marks = list(range(self.initial, self.max_rounds, self.batch))
        return (*marks, self.max_rounds)

    def alpha_at(self, look: int) -> float:
        """Alpha spent at look ``look`` (0-based); the looks' alphas sum to ``alpha``."""
        count = len(self.looks)
        if not 0 <= look < count:
            raise IndexError(f"look {look} of a plan with {count} looks")
        if count == 1:
            return self.alpha
        if look == 0:
            return self.alpha / 2.0
        return self.alpha / (2.0 * (count - 1))


@dataclass(frozen=True)
class SequentialResult:
    """The last look's verdicts and how many looks and rounds it took."""

    comparisons: list[MetricComparison]
    looks: int
    rounds: int


def needs_more(comparisons: list[MetricComparison]) -> bool:
    """Whether another look could change the outcome: something undecided, nothing failed."""
    verdicts = {c.verdict for c in comparisons}
    return Verdict.INCONCLUSIVE in verdicts and Verdict.FAIL not in verdicts


def run_sequential(
    plan: SequentialPlan,
    judge: Callable[[float], list[MetricComparison]],
    measure_more: Callable[[int], None] | None,
) -> SequentialResult:
    """Look, and while :func:`needs_more` and the plan allows, measure more and look again.

    ``judge(alpha)`` compares the rounds measured so far at that alpha;
    ``measure_more(n)`` adds ``n`` current rounds. Without it there is one look, at the
    full alpha.
    """
    if measure_more is None:
        return SequentialResult(judge(plan.alpha), 1, plan.initial)
    looks = plan.looks
    comparisons = judge(plan.alpha_at(0))
    done = 0
    for done in range(1, len(looks)):
        if not needs_more(comparisons):
            return SequentialResult(comparisons, done, looks[done - 1])
        measure_more(looks[done] - looks[done - 1])
        comparisons = judge(plan.alpha_at(done))
    return SequentialResult(comparisons, done + 1, looks[done])
