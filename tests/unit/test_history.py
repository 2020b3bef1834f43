"""Baseline history: session summaries, the widening rule, schema v2 and the v1 migration,
and the refresh / --perfcheck-record workflow through the plugin (fake backend)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfcheck.errors import BaselineError
from perfcheck.model.control import ControlMeasurement
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.model.session import SessionSummary, summarize
from perfcheck.stats.gate import judge
from perfcheck.stats.history import (
    MAX_SESSIONS,
    MIN_SESSIONS,
    HistoryThresholds,
    appended,
    central_session,
    relative_spread,
    same_target,
    session_distances,
    session_threshold,
)
from perfcheck.stats.verdict import Verdict
from perfcheck.store.baseline import Baseline, load_baseline_file
from tests.fakeproject import run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

KERNEL = "6.18.0-test"


def measurement(latencies_us: list[float], kernel: str = KERNEL) -> Measurement:
    rounds = [
        RoundResult(
            index=i,
            duration_s=1.0,
            histograms={
                "block.latency.read": LogLinearHistogram.from_values([round(us * 1e3)] * 9)
            },
            scalars={"fio.iops.read": 1e6 / us},
        )
        for i, us in enumerate(latencies_us)
    ]
    return Measurement(
        scenario="reads",
        rounds=rounds,
        environment={"kernel.release": kernel},
        provenance={"block.latency": ["tracepoint:block:block_rq_issue"]},
    )


def summary(p50_ns: float, kernel: str = KERNEL) -> SessionSummary:
    return SessionSummary("2026-01-01T00:00:00Z", kernel, 10, {"block.latency.read.p50": p50_ns})


# -- the rule -----------------------------------------------------------------------------------


def test_relative_spread_is_scaled_mad_over_median() -> None:
    # median 10, deviations 0,1,1,2,2 -> MAD 1 -> 1.4826 / 10.
    assert relative_spread([10, 11, 9, 12, 8]) == pytest.approx(0.14826)
    assert relative_spread([5.0]) is None
    assert relative_spread([0.0, 0.0, 0.0]) is None


def test_session_threshold_is_three_robust_sds_of_a_difference_of_two_sessions() -> None:
    assert session_threshold(0.05) == pytest.approx(3 * math.sqrt(2) * 0.05)


def test_fewer_than_min_sessions_never_widen() -> None:
    history = [summary(v) for v in (10_000, 13_000, 8_000, 12_000)][: MIN_SESSIONS - 1]
    thresholds = HistoryThresholds.from_history(history)
    assert thresholds.widen("block.latency.read.p50", 0.10) == (0.10, None)


def test_enough_sessions_widen_to_their_spread_and_say_so() -> None:
    history = [summary(v) for v in (10_000, 11_000, 9_000, 12_000, 8_000)]
    threshold, widening = HistoryThresholds.from_history(history).widen(
        "block.latency.read.p50", 0.10
    )
    assert threshold == pytest.approx(3 * math.sqrt(2) * 0.14826)
    assert widening is not None
    assert widening.sessions == 5
    assert "threshold 10% -> 62.9%" in widening.text()


def test_quiet_sessions_never_narrow_a_threshold() -> None:
    history = [summary(10_000 + i) for i in range(8)]
    assert HistoryThresholds.from_history(history).widen("block.latency.read.p50", 0.10) == (
        0.10,
        None,
    )


def test_sessions_of_another_kernel_do_not_count() -> None:
    history = [summary(v, "5.10") for v in (10_000, 11_000, 9_000, 12_000, 8_000)]
    assert HistoryThresholds.from_history(history, kernel=KERNEL).spreads == {}
    assert HistoryThresholds.from_history(history, kernel="5.10").spreads


@given(st.lists(st.floats(1.0, 1e9), min_size=MIN_SESSIONS, max_size=40), st.floats(0.0, 1.0))
def test_widened_threshold_is_never_below_the_scenarios(medians: list[float], base: float) -> None:
    history = [summary(v) for v in medians]
    threshold, _ = HistoryThresholds.from_history(history).widen("block.latency.read.p50", base)
    assert threshold >= base


def test_history_is_bounded_newest_kept() -> None:
    history: list[SessionSummary] = []
    for i in range(MAX_SESSIONS + 5):
        history = appended(history, summary(float(i + 1)))
    assert len(history) == MAX_SESSIONS
    assert history[-1].medians["block.latency.read.p50"] == MAX_SESSIONS + 5


def test_summary_holds_per_metric_medians_rounds_and_kernel() -> None:
    got = summarize(measurement([10, 12, 11]), "2026-01-01T00:00:00Z", "record")
    assert got.rounds == 3 and got.kernel == KERNEL and got.source == "record"
    assert got.medians["block.latency.read.p50"] == pytest.approx(11_000, rel=0.02)
    assert got.medians["fio.iops.read"] == pytest.approx(1e6 / 11)


def test_judge_widens_thresholds_with_history_so_session_noise_is_not_a_fail() -> None:
    base = Baseline.record(measurement([10.0] * 5 + [10.1] * 5), "m")
    current = measurement([12.5] * 5 + [12.6] * 5)  # +25%: past 10%, rounds fully separated
    assert judge("reads", current, base).verdict is Verdict.FAIL
    # Sessions of this scenario have differed by ~15%: +25% is within their spread.
    base.history = [
        summarize(measurement([us] * 5), "2026-01-01T00:00:00Z")
        for us in (10.0, 11.0, 9.0, 12.0, 8.0, 10.5)
    ]
    widened = judge("reads", current, base)
    assert widened.verdict is Verdict.PASS
    assert {w.metric for w in widened.widened} >= {"block.latency.read.p50", "fio.iops.read"}
    # A regression beyond the sessions' spread still fails.
    assert judge("reads", measurement([25.0] * 10), base).verdict is Verdict.FAIL


# -- the file format ----------------------------------------------------------------------------


def v2_baseline() -> Baseline:
    base = Baseline.record(measurement([10, 11, 12]), "machine")
    base.history = [summary(10_000.0), summary(11_000.0)]
    base.control = ControlMeasurement({0: [1.0, 2.0], 1: [3.0]}, recorded_at=base.recorded_at)
    return base


def test_v2_round_trip_keeps_history_and_control(tmp_path: Path) -> None:
    base = v2_baseline()
    path = tmp_path / "reads.json"
    path.write_text(json.dumps(base.to_dict()))
    loaded = load_baseline_file(path)
    assert loaded.history == base.history
    assert loaded.control == base.control
    assert json.loads(path.read_text())["schema_version"] == 2


def test_v1_file_is_read_as_v2_with_empty_history(tmp_path: Path) -> None:
    data = v2_baseline().to_dict()
    del data["history"], data["control"]
    data["schema_version"] = 1
    path = tmp_path / "reads.json"
    path.write_text(json.dumps(data))
    loaded = load_baseline_file(path)
    assert loaded.history == [] and loaded.control is None
    assert loaded.measurement.rounds


def test_v1_file_with_a_v2_field_is_a_schema_violation(tmp_path: Path) -> None:
    data = v2_baseline().to_dict()
    data["schema_version"] = 1
    path = tmp_path / "reads.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError) as info:
        load_baseline_file(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("version", [0, 3, 99])
def test_unknown_version_is_one_line_naming_the_readable_ones(tmp_path: Path, version: int) -> None:
    data = v2_baseline().to_dict()
    data["schema_version"] = version
    path = tmp_path / "reads.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError) as info:
        load_baseline_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert f"{path}: unknown schema_version {version} (this perfcheck reads 1 and 2)" in message


def test_history_entry_with_a_bad_source_is_refused(tmp_path: Path) -> None:
    data = v2_baseline().to_dict()
    data["history"][0]["source"] = "guess"
    path = tmp_path / "reads.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match="history/0/source"):
        load_baseline_file(path)


# -- the workflow through the plugin -------------------------------------------------------------


def stored(p: pytest.Pytester) -> dict[str, Any]:
    [path] = sorted((p.path / "baselines").rglob("*.json"))
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_refresh_adds_a_session_and_record_adds_passing_ones_keeping_the_rounds(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(project, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    first = stored(project)
    assert first["schema_version"] == 2
    # A recording measures three fresh sessions by default: all three go into the history.
    history = first["history"]
    assert isinstance(history, list) and [h["source"] for h in history] == ["refresh"] * 3

    monkeypatch.setenv("FAKE_SEED", "2")
    run(project, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    assert [h["source"] for h in stored(project)["history"]] == ["refresh"] * 6

    monkeypatch.setenv("FAKE_SEED", "3")
    rounds_before = stored(project)["measurement"]
    result = run(project, "--perfcheck", "--perfcheck-record", "scenarios/")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 passing session(s) added to their baselines' history*"])
    after = stored(project)
    assert [h["source"] for h in after["history"]] == ["refresh"] * 6 + ["record"]
    assert after["measurement"] == rounds_before

    # A FAIL is not a session of the baseline's performance: nothing is added.
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    result = run(project, "--perfcheck", "--perfcheck-record", "scenarios/")
    result.assert_outcomes(failed=1)
    assert len(stored(project)["history"]) == 7


def refreshed_history(p: pytest.Pytester, *args: str) -> int:
    """Refresh the baseline; the number of sessions in its history then."""
    run(p, "--perfcheck-update", *args, "scenarios/").assert_outcomes(passed=1)
    return len(stored(p)["history"])


def refresh_twice(p: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two refreshes of three sessions each: a history of 6."""
    for seed, sessions in (("1", 3), ("2", 6)):
        monkeypatch.setenv("FAKE_SEED", seed)
        assert refreshed_history(p) == sessions


def test_refresh_after_a_real_change_restarts_the_history(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    refresh_twice(project, monkeypatch)
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    assert refreshed_history(project) == 3  # only the new recording's sessions
    assert refreshed_history(project, "--perfcheck-baseline-sessions=1") == 4


def test_refresh_whose_sessions_disagree_keeps_the_history(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    refresh_twice(project, monkeypatch)
    # Two of the three new sessions slow: session noise, not a change of performance.
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    monkeypatch.setenv("FAKE_SLOW_SESSIONS", "0,1")
    assert refreshed_history(project) == 9
    # All three slow: a real change, the history restarts.
    monkeypatch.setenv("FAKE_SLOW_SESSIONS", "0,1,2")
    monkeypatch.setenv("FAKE_SLOWDOWN", "2.5")
    assert refreshed_history(project) == 3


def test_refresh_on_another_kind_of_target_restarts_the_history(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    refresh_twice(project, monkeypatch)
    [path] = sorted((project.path / "baselines").rglob("*.json"))
    data = json.loads(path.read_text())
    data["measurement"]["environment"]["target.model"] = "loop over a file prepared otherwise"
    path.write_text(json.dumps(data))
    assert refreshed_history(project) == 3  # the old sessions ran on another target
    assert refreshed_history(project) == 6


SCRATCH_M = {"target.kind": "scratch", "target.model": "m"}


@pytest.mark.parametrize(
    ("old", "new", "same"),
    [
        (SCRATCH_M, dict(SCRATCH_M), True),
        (SCRATCH_M, {**SCRATCH_M, "target.model": "n"}, False),
        ({"target.kind": "scratch"}, {"target.kind": "given"}, False),
        ({"target.kind": "netns", "target.qdisc": "none"}, {"target.kind": "netns"}, True),
        ({}, {}, True),
    ],
)
def test_same_target_compares_what_the_workload_ran_on(
    old: dict[str, str], new: dict[str, str], same: bool
) -> None:
    assert same_target(old, new) is same


def test_update_and_record_together_is_a_usage_error(project: pytest.Pytester) -> None:
    result = run(project, "--perfcheck-update", "--perfcheck-record", "scenarios/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perfcheck-record*--perfcheck-update*drop one*"])


def test_v1_baseline_still_gates_and_a_refresh_writes_v2(project: pytest.Pytester) -> None:
    run(project, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    [path] = sorted((project.path / "baselines").rglob("*.json"))
    data = json.loads(path.read_text())
    del data["history"], data["control"]
    data["schema_version"] = 1
    path.write_text(json.dumps(data))
    run(project, "--perfcheck", "scenarios/").assert_outcomes(passed=1)
    run(project, "--perfcheck-update", "scenarios/").assert_outcomes(passed=1)
    rewritten = json.loads(path.read_text())
    assert rewritten["schema_version"] == 2
    assert len(rewritten["history"]) == 3


# -- the most typical of several sessions ----------------------------------------------------

session_medians = st.dictionaries(
    st.sampled_from(["a.p50", "a.p90", "b.p50", "iops"]),
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False),
    min_size=4,
    max_size=4,
)


@given(st.lists(session_medians, min_size=1, max_size=6), st.randoms(use_true_random=False))
def test_central_session_does_not_depend_on_the_order_of_the_sessions(
    sessions: list[dict[str, float]], rng: Any
) -> None:
    order = list(range(len(sessions)))
    rng.shuffle(order)
    shuffled = [sessions[i] for i in order]
    distances = session_distances(sessions)
    assert session_distances(shuffled) == pytest.approx([distances[i] for i in order])
    # The chosen session is one of the least distant, in any order.
    assert distances[order[central_session(shuffled)]] == pytest.approx(min(distances))
    assert distances[central_session(sessions)] == pytest.approx(min(distances))


@given(
    st.lists(session_medians, min_size=2, max_size=5),
    st.sampled_from([0.2, 5.0]),
)
def test_a_session_off_on_every_metric_is_never_the_central_one(
    typical: list[dict[str, float]], factor: float
) -> None:
    """An outlier session -- faster or slower than every other on every metric -- is not
    chosen while at least two other sessions exist."""
    top = {m: max(s[m] for s in typical) for m in typical[0]}
    bottom = {m: min(s[m] for s in typical) for m in typical[0]}
    outlier = {m: (top[m] * 2 if factor > 1 else bottom[m] / 2) for m in typical[0]}
    sessions = [outlier, *typical]
    assert central_session(sessions) != 0


def test_central_session_of_three_known_sessions() -> None:
    slow = {"lat.p50": 20_000.0, "iops": 20_000.0}
    usual = {"lat.p50": 10_000.0, "iops": 40_000.0}
    fast = {"lat.p50": 5_000.0, "iops": 90_000.0}
    assert central_session([slow, usual, fast]) == 1
    assert central_session([fast, slow, usual]) == 2
    assert central_session([usual]) == 0
    with pytest.raises(ValueError):
        central_session([])
