"""The history gate's statistics (perfcheck.stats.history_gate): what a series' history
predicts, suspects, their confirmation by further sessions, and where a step starts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfcheck.stats.history_gate import (
    MIN_HISTORY,
    MetricHistory,
    first_outside,
    is_suspect,
    judge_confirmed,
    judge_sessions,
    metric_histories,
    sessions_to_confirm,
    step_start,
)
from perfcheck.stats.verdict import Direction, MetricRule, Verdict, can_ever_fail, default_rule

P50 = "block.latency.read.p50"
IOPS = "fio.iops.read"
ALPHA = 0.01


def series(rng: np.random.Generator, median: float, n: int, spread: float) -> list[float]:
    return [float(v) for v in rng.lognormal(math.log(median), spread, n)]


def history_of(values: list[float], metric: str = P50) -> dict[str, MetricHistory]:
    return metric_histories([{metric: v} for v in values], {metric: default_rule(metric)})


def confirmed(history: list[float], new: list[float], metric: str = P50) -> Verdict:
    """The verdict after ``new`` sessions, the first of which was suspect."""
    histories = history_of(history, metric)
    comparisons, _ = judge_confirmed(histories, {metric: new}, ALPHA)
    return comparisons[0].verdict


def suspect(history: list[float], session: float, metric: str = P50) -> bool:
    return is_suspect(judge_sessions(history_of(history, metric), {metric: [session]}, ALPHA))


def test_same_setting_sessions_are_rarely_suspect_and_almost_never_fail() -> None:
    """Stationary series of 20 sessions (lognormal, 5% and 15% spread, the range of the
    recorded sessions): a new session from the same distribution."""
    rng = np.random.default_rng(7)
    trials = 1500
    suspects = fails = 0
    for trial in range(trials):
        spread = 0.05 if trial % 2 else 0.15
        history = series(rng, 10_000.0, 20, spread)
        new = series(rng, 10_000.0, 3, spread)
        if suspect(history, new[0]):
            suspects += 1
            fails += confirmed(history, new) is Verdict.FAIL
    assert suspects / trials <= 0.03
    assert fails / trials <= ALPHA


def test_a_step_is_suspect_confirmed_and_placed_at_this_run() -> None:
    rng = np.random.default_rng(1)
    history = series(rng, 10_000.0, 20, 0.05)
    new = series(rng, 13_000.0, 3, 0.05)
    assert suspect(history, new[0])
    histories = history_of(history)
    comparisons, steps = judge_confirmed(histories, {P50: new}, ALPHA)
    assert comparisons[0].verdict is Verdict.FAIL
    assert "the sessions confirm it" in comparisons[0].reason
    assert steps[P50] in (None, 20)


def test_a_step_already_in_the_history_is_placed_at_its_first_session() -> None:
    rng = np.random.default_rng(2)
    history = series(rng, 10_000.0, 12, 0.05) + series(rng, 15_000.0, 2, 0.05)
    new = series(rng, 15_000.0, 3, 0.05)
    comparisons, steps = judge_confirmed(history_of(history), {P50: new}, ALPHA)
    assert comparisons[0].verdict is Verdict.FAIL
    assert steps[P50] == 12
    # Tested: the 5 sessions after the step against the 12 before it.
    assert (len(comparisons[0].baseline), len(comparisons[0].current)) == (12, 5)


def test_a_single_outlying_session_is_suspect_but_not_confirmed() -> None:
    rng = np.random.default_rng(3)
    history = series(rng, 10_000.0, 20, 0.05)
    new = [20_000.0, *series(rng, 10_000.0, 2, 0.05)]
    assert suspect(history, new[0])
    assert confirmed(history, new) is Verdict.PASS


def test_a_step_the_sessions_cannot_confirm_is_inconclusive() -> None:
    # Only five history sessions and three new ones: 1/C(8, 3) = 1/56 never reaches 0.01.
    history = [10_000.0, 10_100.0, 9_900.0, 10_050.0, 9_950.0]
    assert confirmed(history, [13_000.0, 13_100.0, 12_900.0]) is Verdict.INCONCLUSIVE


def test_a_lower_is_worse_metric_is_suspect_when_it_drops() -> None:
    rng = np.random.default_rng(4)
    history = series(rng, 50_000.0, 20, 0.05)
    assert suspect(history, 30_000.0, IOPS)
    assert not suspect(history, 80_000.0, IOPS)
    assert confirmed(history, [30_000.0, 31_000.0, 29_000.0], IOPS) is Verdict.FAIL


def test_metrics_with_too_few_sessions_are_left_to_the_baseline() -> None:
    sessions = [{P50: 1.0, IOPS: 2.0}] * MIN_HISTORY + [{P50: 1.0}]
    rules = {P50: default_rule(P50), IOPS: default_rule(IOPS)}
    histories = metric_histories(sessions[:-2] + sessions[-1:], rules)
    assert list(histories) == [P50]
    assert histories[P50].sessions == (0, 1, 2, 3, 4)


@given(st.integers(min_value=MIN_HISTORY, max_value=500), st.sampled_from([0.001, 0.01, 0.05]))
def test_the_sessions_to_confirm_are_the_fewest_that_can_fail(n: int, alpha: float) -> None:
    k = sessions_to_confirm(n, alpha)
    assert can_ever_fail(n, k, alpha) or k == 6
    assert k == 3 or not can_ever_fail(n, k - 1, alpha)


sessions_strategy = st.lists(
    st.floats(min_value=1_000.0, max_value=100_000.0), min_size=MIN_HISTORY, max_size=30
)


@settings(max_examples=60, deadline=None)
@given(sessions_strategy, st.floats(min_value=0.01, max_value=100.0))
def test_the_verdict_does_not_depend_on_the_unit(history: list[float], scale: float) -> None:
    new = [history[0] * 1.5, history[-1] * 1.4, history[len(history) // 2] * 1.6]
    scaled_history = [v * scale for v in history]
    scaled_new = [v * scale for v in new]
    assert confirmed(history, new) is confirmed(scaled_history, scaled_new)


@settings(max_examples=60, deadline=None)
@given(sessions_strategy, st.floats(min_value=0.0, max_value=1.0))
def test_a_session_no_worse_than_the_history_is_never_suspect(
    history: list[float], fraction: float
) -> None:
    assert not suspect(history, min(history) * fraction)


@given(sessions_strategy, st.floats(min_value=0.0, max_value=1.0))
def test_the_limit_is_never_below_the_threshold(history: list[float], threshold: float) -> None:
    rule = MetricRule(Direction.HIGHER_IS_WORSE, threshold)
    assert MetricHistory(P50, tuple(history), rule).limit >= threshold


def test_an_improving_step_is_not_named_as_the_step() -> None:
    rng = np.random.default_rng(5)
    values = series(rng, 10_000.0, 12, 0.05) + series(rng, 6_000.0, 8, 0.05)
    assert step_start(values, 17, Direction.HIGHER_IS_WORSE) is None
    assert step_start(values, 17, Direction.LOWER_IS_WORSE) == 12


@pytest.mark.parametrize("spread", [0.0, 0.2])
def test_the_limit_widens_with_the_sessions_spread(spread: float) -> None:
    values = tuple(10_000.0 * (1 + spread * ((i % 3) - 1)) for i in range(20))
    limit = MetricHistory(P50, values, default_rule(P50)).limit
    assert limit == pytest.approx(0.10) if spread == 0.0 else limit > 0.5


def test_a_step_is_named_at_the_first_session_that_shows_it() -> None:
    """The last session before the step is the slowest of its segment: a rank change point
    may put the step there; the session named must itself be outside the history."""
    history = [10_000.0, 10_200.0, 9_800.0, 10_100.0, 9_900.0, 10_300.0, 15_000.0]
    new = [15_200.0, 14_900.0, 15_100.0]
    values = [*history, *new]
    histories = history_of(history)
    assert first_outside(values, 5, len(history), histories[P50]) == 6
    assert first_outside(values, 4, len(history), histories[P50]) == 6
    assert first_outside(values, 7, len(history), histories[P50]) == 7
    _, steps = judge_confirmed(histories, {P50: new}, ALPHA)
    assert steps[P50] == 6
