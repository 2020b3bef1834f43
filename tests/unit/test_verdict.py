"""Tests of the round-based regression verdict (perfcheck.stats.verdict)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from scipy import stats

from perfcheck.stats.verdict import (
    ROUNDS_NEEDED_CAP,
    Direction,
    MetricComparison,
    MetricRule,
    Verdict,
    _exact_tail_with_ties,
    can_ever_fail,
    compare_metric,
    compare_series,
    default_rule,
    estimate_rounds_needed,
    format_comparison,
    format_value,
    holm_levels,
    min_rounds_to_decide,
    worst,
)

P99 = "block.latency.read.p99"
BASE_P99 = [26_000.0, 26_100.0, 25_900.0, 26_300.0, 26_200.0]


def brute_force_p_value(worse_current: list[float], worse_baseline: list[float]) -> float:
    """P(rank sum of current >= observed) by listing every split of the pooled rounds."""
    pooled = worse_current + worse_baseline
    ranks = stats.rankdata(pooled)
    size = len(worse_current)
    observed = ranks[:size].sum()
    splits = list(combinations(range(len(pooled)), size))
    at_least = sum(1 for split in splits if ranks[list(split)].sum() >= observed - 1e-9)
    return at_least / len(splits)


# --- the examples every reader of the gate should be able to check by hand ---------------


def test_clear_regression_fails_with_the_smallest_possible_p() -> None:
    current = [v * 1.5 for v in BASE_P99]
    result = compare_metric(P99, BASE_P99, current)
    assert result.verdict is Verdict.FAIL
    # Fully separated 5 vs 5: only 1 of C(10, 5) = 252 splits is this extreme.
    assert result.p_value == pytest.approx(1 / 252)
    assert result.change == pytest.approx(0.5)
    assert result.worse_by == pytest.approx(0.5)
    assert result.baseline_median == 26_100.0
    assert result.current_median == pytest.approx(39_150.0)
    assert result.rounds_needed is None
    assert "confirm" in result.reason


def test_significant_change_under_the_threshold_passes() -> None:
    current = [v * 1.5 for v in BASE_P99]
    loose = MetricRule(Direction.HIGHER_IS_WORSE, 0.60)
    result = compare_metric(P99, BASE_P99, current, rule=loose)
    assert result.p_value < result.alpha
    assert result.verdict is Verdict.PASS
    assert "within the 60% threshold" in result.reason


def test_small_significant_change_passes_with_default_threshold() -> None:
    current = [v * 1.05 for v in BASE_P99]
    result = compare_metric(P99, BASE_P99, current)
    assert result.p_value < result.alpha
    assert result.verdict is Verdict.PASS


def test_noisy_overlap_past_threshold_is_inconclusive_with_rounds_needed() -> None:
    baseline = [100.0, 120.0, 140.0, 160.0, 180.0]
    current = [110.0, 150.0, 182.0, 190.0, 230.0]
    result = compare_metric(P99, baseline, current)
    assert result.change == pytest.approx(0.30)
    assert result.p_value >= result.alpha
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.rounds_needed is not None
    assert result.rounds_needed > 5
    assert f"about {result.rounds_needed} rounds per side" in result.reason


def test_improvement_passes() -> None:
    current = [v * 0.5 for v in BASE_P99]
    result = compare_metric(P99, BASE_P99, current)
    assert result.verdict is Verdict.PASS
    assert result.change == pytest.approx(-0.5)
    assert result.worse_by == pytest.approx(-0.5)
    assert result.p_value == 1.0
    assert "better" in result.reason


def test_iops_drop_fails_and_iops_rise_passes() -> None:
    baseline = [80_000.0, 81_000.0, 79_000.0, 80_500.0, 79_500.0]
    dropped = [60_000.0, 61_000.0, 59_000.0, 62_000.0, 58_000.0]
    drop = compare_metric("fio.iops.read", baseline, dropped)
    assert drop.rule.direction is Direction.LOWER_IS_WORSE
    assert drop.verdict is Verdict.FAIL
    assert drop.change == pytest.approx(-0.25)
    assert drop.worse_by == pytest.approx(0.25)
    assert drop.p_value == pytest.approx(1 / 252)

    rise = compare_metric("fio.iops.read", dropped, baseline)
    assert rise.verdict is Verdict.PASS
    assert rise.worse_by < 0


def test_all_equal_rounds_pass_with_p_one() -> None:
    # SciPy's exact test alone would say p=0.65 here; identical samples must give exactly 1.
    result = compare_metric(P99, [5_000.0] * 5, [5_000.0] * 5)
    assert result.p_value == 1.0
    assert result.change == 0.0
    assert result.verdict is Verdict.PASS
    assert not math.isnan(result.p_value)


def test_tied_rounds_get_the_exact_permutation_p_value() -> None:
    baseline = [10.0, 10.0, 12.0, 12.0, 14.0]
    current = [12.0, 14.0, 14.0, 16.0, 16.0]
    result = compare_metric(P99, baseline, current)
    assert result.p_value == pytest.approx(brute_force_p_value(current, baseline))


def test_three_rounds_each_can_never_fail_even_when_fully_separated() -> None:
    result = compare_metric(P99, [100.0, 101.0, 102.0], [1_000.0, 1_001.0, 1_002.0])
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "3 vs 3 rounds can never reach" in result.reason
    assert result.rounds_needed is not None
    assert result.rounds_needed >= min_rounds_to_decide(0.01) == 5


def test_fewer_than_min_rounds_never_fails_even_with_many_on_the_other_side() -> None:
    # 1/C(22, 2) < 0.01, but 2 rounds are below the floor of 3.
    result = compare_metric(P99, [100.0, 101.0], [float(v) for v in range(1_000, 1_020)])
    assert result.verdict is Verdict.INCONCLUSIVE


# --- helpers with known values ----------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "rounds"), [(0.01, 5), (0.05, 4), (0.001, 7), (0.2, 3), (0.9, 3)]
)
def test_min_rounds_to_decide(alpha: float, rounds: int) -> None:
    assert min_rounds_to_decide(alpha) == rounds


@pytest.mark.parametrize(
    ("baseline_rounds", "current_rounds", "expected"),
    [(5, 5, True), (4, 4, False), (4, 5, True), (3, 3, False), (3, 20, True), (2, 50, False)],
)
def test_can_ever_fail(baseline_rounds: int, current_rounds: int, expected: bool) -> None:
    assert can_ever_fail(baseline_rounds, current_rounds, 0.01) is expected


def test_rounds_needed_follows_noether() -> None:
    # (z_0.99 + z_0.80)^2 / (3 * 0.25^2) = 10.036 / 0.1875 = 53.5 in total, 27 per side.
    assert estimate_rounds_needed(0.75, 0.01) == 27
    assert estimate_rounds_needed(0.9, 0.01) == 11
    assert estimate_rounds_needed(1.0, 0.01) >= 5
    assert estimate_rounds_needed(0.5, 0.01) == ROUNDS_NEEDED_CAP
    assert estimate_rounds_needed(0.2, 0.01) == ROUNDS_NEEDED_CAP
    assert estimate_rounds_needed(0.55, 0.01) == ROUNDS_NEEDED_CAP


def test_rounds_needed_shrinks_as_the_rounds_separate() -> None:
    needed = [estimate_rounds_needed(auc, 0.01) for auc in (0.6, 0.7, 0.8, 0.9, 0.99)]
    assert needed == sorted(needed, reverse=True)
    assert needed[0] > needed[-1]


def test_inconclusive_with_rounds_leaning_better_reports_the_cap() -> None:
    # The median moves 50% worse, but most current rounds beat most baseline rounds.
    baseline = [100.0, 100.0, 100.0, 300.0, 300.0]
    current = [10.0, 10.0, 150.0, 400.0, 400.0]
    result = compare_metric(P99, baseline, current)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.rounds_needed == ROUNDS_NEEDED_CAP
    assert "100+" in format_comparison(result)


# --- zero and negative baselines ------------------------------------------------------------


def test_zero_baseline_and_zero_current_is_no_change() -> None:
    result = compare_metric("probe.errors", [0.0] * 5, [0.0] * 5)
    assert result.change == 0.0
    assert result.verdict is Verdict.PASS


def test_move_off_a_zero_baseline_is_infinitely_worse() -> None:
    result = compare_metric("probe.errors", [0.0] * 5, [1.0, 2.0, 3.0, 4.0, 5.0])
    assert result.change == math.inf
    assert result.worse_by == math.inf
    assert result.verdict is Verdict.FAIL
    assert "+inf%" in format_comparison(result)


def test_negative_baseline_median_keeps_the_sign_of_the_move() -> None:
    result = compare_metric("clock.skew", [-100.0] * 5, [-50.0] * 5)
    assert result.change == pytest.approx(0.5)
    result = compare_metric("clock.skew", [-100.0] * 5, [-150.0] * 5)
    assert result.change == pytest.approx(-0.5)


# --- input checks ------------------------------------------------------------------------


def test_empty_side_is_rejected() -> None:
    with pytest.raises(ValueError, match="no rounds"):
        compare_metric(P99, [], [1.0])


def test_non_finite_rounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        compare_metric(P99, [1.0, math.nan, 2.0], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, math.nan])
def test_alpha_outside_zero_one_is_rejected(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        compare_metric(P99, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0], alpha=alpha)


@pytest.mark.parametrize("threshold", [-0.1, math.inf, math.nan])
def test_bad_threshold_is_rejected(threshold: float) -> None:
    with pytest.raises(ValueError, match="threshold"):
        MetricRule(Direction.HIGHER_IS_WORSE, threshold)


# --- rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "direction", "threshold"),
    [
        ("block.latency.read.p50", Direction.HIGHER_IS_WORSE, 0.10),
        ("block.latency.read.p90", Direction.HIGHER_IS_WORSE, 0.15),
        ("block.latency.read.p99", Direction.HIGHER_IS_WORSE, 0.20),
        ("block.latency.read.p99_9", Direction.HIGHER_IS_WORSE, 0.20),
        ("fio.iops.read", Direction.LOWER_IS_WORSE, 0.10),
        ("fio.bw.write", Direction.LOWER_IS_WORSE, 0.10),
        ("fio.read.iops", Direction.LOWER_IS_WORSE, 0.10),
        ("fio.read.bw_bytes", Direction.LOWER_IS_WORSE, 0.10),
        ("sched.runqueue.depth", Direction.HIGHER_IS_WORSE, 0.20),
        # Network: throughput down is worse, latency up is worse.
        ("iperf3.bits_per_second", Direction.LOWER_IS_WORSE, 0.10),
        ("sockperf.round_trips_per_second", Direction.LOWER_IS_WORSE, 0.10),
        ("sockperf.rtt.p50", Direction.HIGHER_IS_WORSE, 0.10),
        ("sockperf.rtt.p99", Direction.HIGHER_IS_WORSE, 0.20),
        ("tcp.srtt.p90", Direction.HIGHER_IS_WORSE, 0.15),
        ("iperf3.retransmits", Direction.HIGHER_IS_WORSE, 0.20),
        ("iperf3.mean_rtt_ns", Direction.HIGHER_IS_WORSE, 0.20),
        # Only a name that ends in the rate is a rate.
        ("x.per_second_total", Direction.HIGHER_IS_WORSE, 0.20),
    ],
)
def test_default_rule(metric: str, direction: Direction, threshold: float) -> None:
    assert default_rule(metric) == MetricRule(direction, threshold)


def test_compare_series_takes_common_metrics_sorted_with_overrides() -> None:
    fast = [1_000.0, 1_010.0, 990.0, 1_005.0, 995.0]
    slow = [v * 1.3 for v in fast]
    baseline = {"b.p99": fast, "a.p50": fast, "only.baseline.p99": fast}
    current = {"b.p99": slow, "a.p50": slow, "only.current.p99": slow}
    loose = {"b.p99": MetricRule(Direction.HIGHER_IS_WORSE, 0.5)}
    results = compare_series(baseline, current, rules=loose)
    assert [r.metric for r in results] == ["a.p50", "b.p99"]
    assert [r.verdict for r in results] == [Verdict.FAIL, Verdict.PASS]
    assert results[1].rule.threshold == 0.5


def _comparison(metric: str, worse_by: float, verdict: Verdict) -> MetricComparison:
    return MetricComparison(
        metric=metric,
        rule=MetricRule(Direction.HIGHER_IS_WORSE, 0.1),
        baseline=(1.0,),
        current=(1.0 + worse_by,),
        baseline_median=1.0,
        current_median=1.0 + worse_by,
        change=worse_by,
        worse_by=worse_by,
        p_value=0.5,
        alpha=0.01,
        verdict=verdict,
        rounds_needed=None,
        reason="",
    )


def test_worst_prefers_fail_then_inconclusive_then_largest_change() -> None:
    small_fail = _comparison("small.fail", 0.2, Verdict.FAIL)
    big_fail = _comparison("big.fail", 0.9, Verdict.FAIL)
    huge_inconclusive = _comparison("huge.inconclusive", 5.0, Verdict.INCONCLUSIVE)
    big_inconclusive = _comparison("big.inconclusive", 0.5, Verdict.INCONCLUSIVE)
    huge_pass = _comparison("huge.pass", 9.0, Verdict.PASS)
    everything = [small_fail, huge_pass, huge_inconclusive, big_fail, big_inconclusive]
    assert worst(everything) is big_fail
    assert worst([big_inconclusive, huge_pass, huge_inconclusive]) is huge_inconclusive
    assert worst([huge_pass]) is None
    assert worst([]) is None


# --- formatting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        (P99, 0.0, "0 ns"),
        (P99, 850.0, "850 ns"),
        (P99, 999.9, "1.00 us"),
        (P99, 8_700.0, "8.70 us"),
        (P99, 26_100.0, "26.1 us"),
        (P99, 210_000.0, "210 us"),
        (P99, 1_234_000.0, "1.23 ms"),
        (P99, 2.5e9, "2.50 s"),
        ("block.latency.read.p99_9", 26_100.0, "26.1 us"),
        ("fio.iops.read", 12_345.0, "12.3k IOPS"),
        ("fio.iops.read", 850.0, "850 IOPS"),
        ("fio.read.iops", 1_500_000.0, "1.50M IOPS"),
        ("fio.read.bw_bytes", 1_073_741_824.0, "1.00 GiB/s"),
        ("sched.runqueue.depth", 3.14159, "3.142"),
        ("sched.runqueue.depth", 123_456.0, "1.235e+05"),
    ],
)
def test_format_value(metric: str, value: float, text: str) -> None:
    assert format_value(metric, value) == text


def test_format_comparison_fail_line() -> None:
    baseline = [26_000.0, 26_050.0, 26_100.0, 26_150.0, 26_200.0]
    current = [52_200.0, 52_250.0, 52_300.0, 52_350.0, 52_400.0]
    line = format_comparison(compare_metric(P99, baseline, current))
    assert (
        line == "block.latency.read.p99: 26.1 us -> 52.3 us (+100.4%, threshold +20%, p=0.004) FAIL"
    )


def test_format_comparison_lower_is_worse_and_inconclusive_lines() -> None:
    drop = compare_metric("fio.iops.read", [80e3] * 4 + [81e3], [60e3] * 4 + [59e3])
    assert format_comparison(drop).startswith(
        "fio.iops.read: 80.0k IOPS -> 60.0k IOPS (-25.0%, threshold -10%, p="
    )
    noisy = compare_metric(
        P99, [100.0, 120.0, 140.0, 160.0, 180.0], [110.0, 150.0, 182.0, 190.0, 230.0]
    )
    assert format_comparison(noisy).endswith(
        f"INCONCLUSIVE (needs about {noisy.rounds_needed} rounds per side)"
    )


def test_to_dict_is_plain_data() -> None:
    data = compare_metric(P99, BASE_P99, [v * 1.5 for v in BASE_P99]).to_dict()
    assert data["verdict"] == "FAIL"
    assert data["direction"] == "higher_is_worse"
    assert data["threshold"] == 0.2
    assert data["baseline"] == BASE_P99
    assert data["rounds_needed"] is None


# --- properties -------------------------------------------------------------------------

# Whole numbers far apart relative to float precision, so scaling keeps every order strict.
round_values = st.integers(min_value=1, max_value=1_000_000).map(float)
rounds = st.lists(round_values, min_size=3, max_size=8)
any_rounds = st.lists(
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=9,
)
directions = st.sampled_from(list(Direction))
thresholds = st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.5])


@given(
    baseline=rounds,
    current=rounds,
    factor=st.floats(min_value=1e-3, max_value=1e3),
    direction=directions,
    threshold=thresholds,
)
def test_verdict_is_invariant_under_scaling_both_sides(
    baseline: list[float],
    current: list[float],
    factor: float,
    direction: Direction,
    threshold: float,
) -> None:
    rule = MetricRule(direction, threshold)
    plain = compare_metric("m", baseline, current, rule)
    # A change sitting exactly on the threshold may round either way once scaled.
    assume(abs(plain.worse_by - threshold) > 1e-9)
    scaled = compare_metric(
        "m", [v * factor for v in baseline], [v * factor for v in current], rule
    )
    assert scaled.verdict is plain.verdict
    assert scaled.p_value == pytest.approx(plain.p_value)
    assert scaled.rounds_needed == plain.rounds_needed


@given(baseline=any_rounds, current=any_rounds, direction=directions, threshold=thresholds)
@example(baseline=[7.0] * 5, current=[7.0] * 5, direction=Direction.HIGHER_IS_WORSE, threshold=0.1)
def test_p_value_is_in_zero_one_and_verdict_follows_the_rule(
    baseline: list[float], current: list[float], direction: Direction, threshold: float
) -> None:
    result = compare_metric("m", baseline, current, MetricRule(direction, threshold))
    assert 0.0 < result.p_value <= 1.0
    if result.verdict is Verdict.FAIL:
        assert result.p_value < result.alpha
        assert result.worse_by > threshold
        assert can_ever_fail(len(baseline), len(current), result.alpha)
    elif result.verdict is Verdict.INCONCLUSIVE:
        assert result.worse_by > threshold
        assert result.rounds_needed is not None
        assert min_rounds_to_decide(result.alpha) <= result.rounds_needed <= ROUNDS_NEEDED_CAP
    else:
        assert result.worse_by <= threshold
        assert result.rounds_needed is None


@given(
    baseline=st.lists(st.integers(min_value=0, max_value=6).map(float), min_size=1, max_size=6),
    current=st.lists(st.integers(min_value=0, max_value=6).map(float), min_size=1, max_size=6),
    direction=directions,
)
def test_p_value_matches_brute_force_enumeration(
    baseline: list[float], current: list[float], direction: Direction
) -> None:
    result = compare_metric("m", baseline, current, MetricRule(direction, 0.1))
    sign = 1.0 if direction is Direction.HIGHER_IS_WORSE else -1.0
    expected = brute_force_p_value([sign * v for v in current], [sign * v for v in baseline])
    assert result.p_value == pytest.approx(expected, rel=1e-12)


@given(baseline=any_rounds, current=any_rounds)
def test_the_two_one_sided_p_values_cover_everything(
    baseline: list[float], current: list[float]
) -> None:
    # P(R >= r) + P(R <= r) = 1 + P(R = r) >= 1 for the same observation.
    worse_up = compare_metric("m", baseline, current, MetricRule(Direction.HIGHER_IS_WORSE, 0.1))
    worse_down = compare_metric("m", baseline, current, MetricRule(Direction.LOWER_IS_WORSE, 0.1))
    assert worse_up.p_value + worse_down.p_value >= 1.0 - 1e-9


shifted_pairs = st.tuples(
    st.lists(st.integers(min_value=1_000, max_value=2_000).map(float), min_size=3, max_size=8),
    st.lists(st.integers(min_value=1_000, max_value=2_000).map(float), min_size=3, max_size=8),
    st.floats(min_value=0.0, max_value=3.0),
)


@given(pair=shifted_pairs, direction=directions, threshold=thresholds)
@example(
    pair=(BASE_P99, [v * 1.01 for v in BASE_P99], 1.0),
    direction=Direction.HIGHER_IS_WORSE,
    threshold=0.2,
)
def test_swapping_the_sides_of_a_fail_never_fails(
    pair: tuple[list[float], list[float], float], direction: Direction, threshold: float
) -> None:
    baseline, unshifted, effect = pair
    # Move the current rounds in the worse direction so that many examples FAIL.
    if direction is Direction.HIGHER_IS_WORSE:
        current = [v * (1.0 + effect) for v in unshifted]
    else:
        current = [v / (1.0 + effect) for v in unshifted]
    rule = MetricRule(direction, threshold)
    forward = compare_metric("m", baseline, current, rule)
    backward = compare_metric("m", current, baseline, rule)
    if forward.verdict is Verdict.FAIL:
        assert backward.verdict is not Verdict.FAIL
        assert backward.p_value > 0.5


@settings(max_examples=60)
@given(
    baseline=st.lists(round_values, min_size=1, max_size=3),
    current=st.lists(round_values, min_size=1, max_size=3),
    direction=directions,
)
def test_three_rounds_or_fewer_never_fail(
    baseline: list[float], current: list[float], direction: Direction
) -> None:
    rule = MetricRule(direction, 0.0)
    assert compare_metric("m", baseline, current, rule).verdict is not Verdict.FAIL


def test_float_counting_path_agrees_with_scipy_exact() -> None:
    # 35 vs 35 rounds: C(70, 35) is too big for exact integer counts.
    rng = np.random.default_rng(7)
    baseline = rng.permutation(np.arange(70.0))[:35]
    current = np.setdiff1d(np.arange(70.0), baseline) + 0.5
    expected = stats.mannwhitneyu(current, baseline, alternative="greater", method="exact").pvalue
    assert _exact_tail_with_ties(current, baseline) == pytest.approx(float(expected), rel=1e-9)


def test_many_tied_rounds_use_the_normal_approximation() -> None:
    baseline = [float(v % 10) for v in range(120)]
    current = [float(v % 10) + 3.0 for v in range(120)]
    result = compare_metric("m", baseline, current)
    assert 0.0 < result.p_value < 1e-6
    assert result.verdict is Verdict.FAIL


# --- the gate's false-alarm rate on effect-free data -------------------------------------


@pytest.mark.parametrize(("baseline_rounds", "current_rounds"), [(5, 5), (5, 6), (4, 6), (6, 6)])
def test_exact_false_fail_rate_of_the_bare_test_is_within_alpha(
    baseline_rounds: int, current_rounds: int
) -> None:
    # Without an effect every assignment of the pooled ranks to the two sides is
    # equally likely, so the share of assignments that FAIL is the gate's exact size.
    alpha = 0.01
    bare = MetricRule(Direction.HIGHER_IS_WORSE, 0.0)
    pooled = range(1, baseline_rounds + current_rounds + 1)
    splits = list(combinations(pooled, current_rounds))
    fails = 0
    for split in splits:
        current = [float(v) for v in split]
        baseline = [float(v) for v in pooled if v not in split]
        fails += compare_metric("m", baseline, current, bare, alpha).verdict is Verdict.FAIL
    assert 0 < fails / len(splits) <= alpha


def _false_fail_rates(seed: int, trials: int, bucketed: bool) -> tuple[float, float]:
    """False-FAIL rates of 5 vs 5 effect-free rounds: with the p99 rule, and with no threshold."""
    rng = np.random.default_rng(seed)
    p99_rule = default_rule("m.p99")
    bare = MetricRule(Direction.HIGHER_IS_WORSE, 0.0)
    p99_fails = bare_fails = 0
    for _ in range(trials):
        # Same distribution on both sides: 5% lognormal round-to-round noise around 26 us.
        baseline = 26_000.0 * rng.lognormal(0.0, 0.05, 5)
        current = 26_000.0 * rng.lognormal(0.0, 0.05, 5)
        if bucketed:
            # Histogram percentiles land on ~1.6% wide buckets, which makes ties common.
            step = math.log(1.016)
            baseline = np.exp(np.round(np.log(baseline) / step) * step)
            current = np.exp(np.round(np.log(current) / step) * step)
        p99 = compare_metric("m.p99", list(baseline), list(current), p99_rule)
        p99_fails += p99.verdict is Verdict.FAIL
        unthresholded = compare_metric("m.p99", list(baseline), list(current), bare)
        bare_fails += unthresholded.verdict is Verdict.FAIL
    return p99_fails / trials, bare_fails / trials


@pytest.mark.parametrize("bucketed", [False, True], ids=["continuous", "bucketed"])
def test_effect_free_rounds_rarely_fail(bucketed: bool) -> None:
    alpha = 0.01
    p99_rate, bare_rate = _false_fail_rates(seed=20_261, trials=2_000, bucketed=bucketed)
    # With the real p99 rule, a 5% noise almost never moves the median 20%.
    assert p99_rate <= alpha
    # Without a threshold the gate is the bare test (exact size 2/252 = 0.0079 on
    # continuous data, less with ties): it must fire sometimes but within alpha.
    assert 0.0 < bare_rate <= alpha


# -- Holm's correction over a scenario's metrics ------------------------------------------------


def test_holm_levels_step_down_and_stop_at_the_first_miss() -> None:
    # Sorted p: 0.001 (< 0.01/4), 0.003 (< 0.01/3), 0.006 (not < 0.01/2): stop there.
    assert holm_levels([0.006, 0.001, 0.5, 0.003], 0.01) == pytest.approx(
        [0.005, 0.0025, 0.005, 0.01 / 3]
    )
    assert holm_levels([0.2], 0.01) == [0.01]
    assert holm_levels([], 0.01) == []


@given(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=12))
def test_holm_levels_lie_between_bonferroni_and_alpha(p_values: list[float]) -> None:
    levels = holm_levels(p_values, 0.01)
    k = len(p_values)
    assert all(0.01 / k - 1e-15 <= level <= 0.01 for level in levels)
    rejected = [p < level for p, level in zip(p_values, levels, strict=True)]
    # Whatever Bonferroni rejects, Holm rejects; a rejected p is never above a kept one.
    assert all(r for p, r in zip(p_values, rejected, strict=True) if p < 0.01 / k)
    kept = [p for p, r in zip(p_values, rejected, strict=True) if not r]
    assert not kept or all(p <= min(kept) for p, r in zip(p_values, rejected, strict=True) if r)


def test_holm_keeps_the_family_wise_error_at_alpha_under_the_null() -> None:
    rng = np.random.default_rng(7)
    trials, k = 20_000, 7
    any_rejected = 0
    for p_values in rng.uniform(size=(trials, k)):
        levels = holm_levels(list(p_values), 0.01)
        any_rejected += any(p < level for p, level in zip(p_values, levels, strict=True))
    # At most alpha (0.01) for independent metrics; 3 standard errors of slack.
    assert any_rejected / trials <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / trials)
    uncorrected = sum(any(p < 0.01 for p in row) for row in rng.uniform(size=(trials, k)))
    assert uncorrected / trials > 0.05  # what one scenario of 7 metrics would see without it


def test_holm_turns_a_lone_marginal_fail_inconclusive_and_keeps_a_clear_one() -> None:
    base = [100.0 + i for i in range(10)]
    clear = [200.0 + i for i in range(10)]  # every round worse: p = 1/C(20,10)
    marginal = [102.0, 104.0, 106.0, 108.0, 112.0, 113.0, 114.0, 116.0, 117.0, 119.0]  # p=0.007
    rules = {m: MetricRule(Direction.HIGHER_IS_WORSE, 0.05) for m in ("a.p50", "b.p50")}
    flat = {f"m{i}.p50": base for i in range(5)}
    baseline = {"a.p50": base, "b.p50": base, **flat}
    current = {"a.p50": clear, "b.p50": marginal, **flat}
    alone = {c.metric: c for c in compare_series(baseline, current, rules)}
    assert alone["b.p50"].verdict is Verdict.FAIL and alone["b.p50"].p_value > 0.01 / 7
    held = {c.metric: c for c in compare_series(baseline, current, rules, holm=True)}
    assert held["a.p50"].verdict is Verdict.FAIL
    assert held["b.p50"].verdict is Verdict.INCONCLUSIVE
    assert "Holm's correction over the scenario's 7 metrics" in held["b.p50"].reason
