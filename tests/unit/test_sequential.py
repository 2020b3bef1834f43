"""Sequential rounds: planned looks, alpha spending, stopping, and the A/A false-FAIL rate.

The simulation tests are the proof the module docstring promises: re-testing after each
batch of rounds at the full alpha inflates the false-FAIL rate past alpha; spending alpha
over the planned looks keeps it at or below alpha.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfcheck.stats.sequential import SequentialPlan, needs_more, run_sequential
from perfcheck.stats.verdict import (
    Direction,
    MetricComparison,
    MetricRule,
    Verdict,
    compare_metric,
)
from tests.fakeproject import make_project, record_then_slow_down, run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ALPHA = 0.01


# -- the plan --------------------------------------------------------------------------------


def test_looks_run_from_the_initial_rounds_to_the_cap_in_batches() -> None:
    assert SequentialPlan(10, 30, 5).looks == (10, 15, 20, 25, 30)
    assert SequentialPlan(10, 28, 5).looks == (10, 15, 20, 25, 28)
    assert SequentialPlan(5, 30, 10).looks == (5, 15, 25, 30)


def test_no_room_above_the_initial_rounds_is_one_look_at_the_full_alpha() -> None:
    for cap in (5, 10):
        plan = SequentialPlan(10, cap, 5, ALPHA)
        assert plan.looks == (10,)
        assert plan.alpha_at(0) == ALPHA


@given(
    initial=st.integers(1, 60),
    extra=st.integers(0, 60),
    batch=st.integers(1, 20),
    alpha=st.floats(1e-4, 0.2),
)
def test_the_looks_spend_exactly_alpha_half_of_it_on_the_first(
    initial: int, extra: int, batch: int, alpha: float
) -> None:
    plan = SequentialPlan(initial, initial + extra, batch, alpha)
    spent = [plan.alpha_at(i) for i in range(len(plan.looks))]
    assert sum(spent) == pytest.approx(alpha)
    assert all(a > 0 for a in spent)
    if len(spent) > 1:
        assert spent[0] == pytest.approx(alpha / 2)
    assert list(plan.looks) == sorted(set(plan.looks))
    assert plan.looks[0] == initial and plan.looks[-1] == max(initial, initial + extra)


def test_first_look_can_still_fail_five_rounds_against_five() -> None:
    plan = SequentialPlan(5, 30, 5, ALPHA)
    result = compare_metric("m.p50", [1, 2, 3, 4, 5], [11, 12, 13, 14, 15], alpha=plan.alpha_at(0))
    assert result.verdict is Verdict.FAIL  # p = 1/252 = 0.004 < 0.005


# -- stopping --------------------------------------------------------------------------------

RULE = MetricRule(Direction.HIGHER_IS_WORSE, 0.10)


def comparison(verdict: Verdict) -> MetricComparison:
    worse = {Verdict.PASS: [10.0] * 5, Verdict.FAIL: [20.0] * 5, Verdict.INCONCLUSIVE: [20.0]}
    result = compare_metric("m.p50", [10.0] * 5, worse[verdict], RULE, ALPHA)
    assert result.verdict is verdict
    return result


def scripted_judge(
    verdicts: list[Verdict], seen: list[float]
) -> Callable[[float], list[MetricComparison]]:
    def judge(alpha: float) -> list[MetricComparison]:
        seen.append(alpha)
        return [comparison(verdicts[len(seen) - 1])]

    return judge


def test_decided_on_the_first_look_measures_nothing_more() -> None:
    for verdict in (Verdict.PASS, Verdict.FAIL):
        added: list[int] = []
        alphas: list[float] = []
        result = run_sequential(
            SequentialPlan(10, 30, 5, ALPHA), scripted_judge([verdict], alphas), added.append
        )
        assert (result.looks, result.rounds, added) == (1, 10, [])
        assert alphas == [ALPHA / 2]


def test_inconclusive_adds_batches_until_decided_with_the_looks_alphas() -> None:
    added: list[int] = []
    alphas: list[float] = []
    plan = SequentialPlan(10, 30, 5, ALPHA)
    verdicts = [Verdict.INCONCLUSIVE, Verdict.INCONCLUSIVE, Verdict.FAIL]
    result = run_sequential(plan, scripted_judge(verdicts, alphas), added.append)
    assert added == [5, 5]
    assert (result.looks, result.rounds) == (3, 20)
    assert alphas == [ALPHA / 2, ALPHA / 8, ALPHA / 8]
    assert result.comparisons[0].verdict is Verdict.FAIL


def test_stays_inconclusive_at_the_cap() -> None:
    added: list[int] = []
    plan = SequentialPlan(10, 28, 5, ALPHA)
    result = run_sequential(plan, scripted_judge([Verdict.INCONCLUSIVE] * 5, []), added.append)
    assert added == [5, 5, 5, 3]
    assert (result.looks, result.rounds) == (5, 28)
    assert result.comparisons[0].verdict is Verdict.INCONCLUSIVE


def test_without_a_way_to_measure_more_one_look_at_the_full_alpha() -> None:
    alphas: list[float] = []
    plan = SequentialPlan(10, 30, 5, ALPHA)
    result = run_sequential(plan, scripted_judge([Verdict.INCONCLUSIVE], alphas), None)
    assert alphas == [ALPHA]
    assert (result.looks, result.rounds) == (1, 10)


def test_a_fail_anywhere_stops_even_with_other_metrics_undecided() -> None:
    assert not needs_more([comparison(Verdict.FAIL), comparison(Verdict.INCONCLUSIVE)])
    assert needs_more([comparison(Verdict.PASS), comparison(Verdict.INCONCLUSIVE)])
    assert not needs_more([comparison(Verdict.PASS)])


# -- the multiple-looks problem, by simulation -----------------------------------------------

Draw = Callable[[np.random.Generator, int], list[float]]


def lognormal(rng: np.random.Generator, k: int) -> list[float]:
    return [float(v) for v in rng.lognormal(0.0, 0.3, k)]


def bucketed(rng: np.random.Generator, k: int) -> list[float]:
    # Percentiles of bucketed histograms tie often: the exact tie-aware test is used.
    return [float(v) for v in np.round(rng.lognormal(0.0, 0.3, k) * 8.0) / 8.0]


def aa_false_fail_rate(draw: Draw, comparisons: int, seed: int, spend: bool) -> float:
    """Share of A/A comparisons (both sides from one distribution) that end in FAIL.

    Threshold 0, so that every look where the median moves the wrong way is a chance to
    FAIL: only the statistics stand between noise and a FAIL.
    """
    rng = np.random.default_rng(seed)
    rule = MetricRule(Direction.HIGHER_IS_WORSE, 0.0)
    plan = SequentialPlan(10, 30, 5, ALPHA)
    fails = 0
    for _ in range(comparisons):
        base = draw(rng, 10)
        cur = draw(rng, 10)

        def judge(
            alpha: float, base: list[float] = base, cur: list[float] = cur
        ) -> list[MetricComparison]:
            return [compare_metric("m.p50", base, cur, rule, alpha if spend else ALPHA)]

        def more(rounds: int, cur: list[float] = cur) -> None:
            cur.extend(draw(rng, rounds))

        result = run_sequential(plan, judge, more)
        fails += result.comparisons[0].verdict is Verdict.FAIL
    return fails / comparisons


@pytest.mark.parametrize("draw", [lognormal, bucketed], ids=["continuous", "ties"])
def test_alpha_spending_keeps_the_aa_false_fail_rate_at_most_alpha(draw: Draw) -> None:
    assert aa_false_fail_rate(draw, 2000, seed=7, spend=True) <= ALPHA


def test_retesting_at_the_full_alpha_after_each_batch_would_exceed_alpha() -> None:
    # The problem the spending solves (and proof the simulation can see it).
    assert aa_false_fail_rate(lognormal, 2000, seed=7, spend=False) > 1.3 * ALPHA


# -- through the plugin, with the fake backend -----------------------------------------------

NOISY_CONFTEST = textwrap.dedent(
    """
    import math
    import os
    import random
    from pathlib import Path

    from perfcheck.run.fake import FakeProbeBackend, use_fakes


    def pytest_perfcheck_harness(config, harness):
        backend = FakeProbeBackend()
        slowdown = float(os.environ.get("FAKE_SLOWDOWN", "1.0"))
        rng = random.Random(int(os.environ.get("FAKE_SEED", "1")))
        scale = {}

        def latency(round_no, i):
            # Whole rounds wander by ~15%: the medians move, the rounds overlap.
            if round_no not in scale:
                scale[round_no] = rng.lognormvariate(0.0, 0.15)
            return int(10_000 * slowdown * scale[round_no] * rng.lognormvariate(0.0, 0.02))

        use_fakes(harness, latency, backend)
    """
)


@pytest.fixture
def noisy_project(pytester: pytest.Pytester) -> pytest.Pytester:
    return make_project(pytester, NOISY_CONFTEST)


def saved_scenario(path: Path) -> dict[str, object]:
    data = json.loads(path.read_text())
    scenario: dict[str, object] = data["scenarios"]["fake-reads"]
    return scenario


def test_undecided_scenario_gets_more_rounds_and_reports_them(
    noisy_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = record_then_slow_down(noisy_project, monkeypatch, 1.25)
    seen_more = False
    for seed in range(2, 12):
        monkeypatch.setenv("FAKE_SEED", str(seed))
        result = run(noisy_project, "--perfcheck", "--perfcheck-save", str(saved), "scenarios/")
        decision = saved_scenario(saved)["decision"]
        assert isinstance(decision, dict)
        looks, rounds = decision["looks"], decision["current_rounds"]
        assert rounds == 5 + 5 * (looks - 1) or rounds == 30
        if looks > 1:
            seen_more = True
            result.stdout.fnmatch_lines(
                [
                    f"perfcheck: sequential rounds (undecided at first): fake-reads {looks} looks,"
                    f" {rounds} rounds"
                ]
            )
            if saved_scenario(saved)["status"] != "PASS":
                out = result.stdout.str()
                assert f"5 rounds vs {rounds} now after {looks} looks (sequential rounds)" in out
            break
    assert seen_more, "no seed gave an undecided first look"


def test_max_rounds_at_the_initial_rounds_turns_sequential_rounds_off(
    noisy_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = record_then_slow_down(noisy_project, monkeypatch, 1.25)
    for seed in range(2, 6):
        monkeypatch.setenv("FAKE_SEED", str(seed))
        args = ("--perfcheck-max-rounds", "5", "--perfcheck-save", str(saved))
        run(noisy_project, "--perfcheck", *args, "scenarios/")
        decision = saved_scenario(saved)["decision"]
        assert isinstance(decision, dict)
        assert (decision["looks"], decision["current_rounds"]) == (1, 5)


def test_max_rounds_out_of_range_is_a_usage_error(noisy_project: pytest.Pytester) -> None:
    result = run(noisy_project, "--perfcheck", "--perfcheck-max-rounds", "500", "scenarios/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perfcheck-max-rounds: 500: give 3 to 100*"])
