"""Change points in session medians (perfcheck.stats.changes) and `perfcheck changes`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfcheck.cli import main
from perfcheck.cli import store as cli_store
from perfcheck.stats.changes import DEFAULT_ALPHA, best_split, change_points, tail_change
from perfcheck.store.sessions.records import MetricRecord, StoredSession
from perfcheck.store.sessions.sqlstore import open_store, store_location


def noise(rng: np.random.Generator, median: float, n: int, spread: float = 0.05) -> list[float]:
    return list(rng.lognormal(math.log(median), spread, n))


def test_a_step_is_found_where_it_is_with_its_size() -> None:
    rng = np.random.default_rng(1)
    values = noise(rng, 10.0, 40) + noise(rng, 13.0, 40)
    (point,) = change_points(values)
    assert point.index == 40
    assert point.p_value <= 0.01
    assert point.change == pytest.approx(0.3, abs=0.05)
    assert (point.before_sessions, point.after_sessions) == (40, 40)


def test_two_steps_are_both_found() -> None:
    rng = np.random.default_rng(2)
    values = noise(rng, 10.0, 20, 0.1) + noise(rng, 11.5, 20, 0.1) + noise(rng, 9.0, 20, 0.1)
    points = change_points(values)
    assert [p.index for p in points] == pytest.approx([20, 40], abs=1)
    assert points[0].change > 0.1 and points[1].change < -0.15


def test_same_setting_sessions_give_almost_no_change_points() -> None:
    # 30 series of 100 sessions from one distribution: at alpha 0.01 a split is wrongly
    # accepted about once per 100 tests.
    false = sum(
        len(change_points(noise(np.random.default_rng(s), 10.0, 100, 0.1))) for s in range(30)
    )
    assert false <= 2


def test_one_outlying_session_is_not_a_change() -> None:
    rng = np.random.default_rng(3)
    values = noise(rng, 10.0, 30)
    values[15] = 25.0  # one session 2.5x off, as a shared machine sometimes gives
    assert change_points(values) == []


def test_too_short_to_split() -> None:
    assert best_split([1.0, 2.0, 3.0, 4.0, 5.0]) is None
    assert change_points([1.0, 1.0, 9.0, 9.0]) == []


def test_answers_are_reproducible() -> None:
    rng = np.random.default_rng(4)
    values = noise(rng, 10.0, 12, 0.2) + noise(rng, 12.0, 12, 0.2)
    assert change_points(values) == change_points(values)


def test_cli_default_alpha_is_the_methods() -> None:
    assert cli_store.CHANGES_ALPHA == DEFAULT_ALPHA


def _session(n: int, median: float) -> StoredSession:
    return StoredSession(
        session_id=f"{n:032x}",
        recorded_at=f"2026-12-{1 + n // 24:02d}T{n % 24:02d}:00:00Z",
        scenario="randread-4k",
        machine_class="x86_64-2cpu-test",
        status="PASS",
        source="run",
        kernel_release=f"6.18.{n}",
        rounds=10,
        labels={"build": str(n)},
        metrics={"fio.iops.read": MetricRecord("fio.iops.read", median)},
    )


def test_changes_command_names_the_first_session_after_a_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(5)
    medians = noise(rng, 30_000.0, 30) + noise(rng, 20_000.0, 20)
    store = str(tmp_path / "s.sqlite")
    location = store_location(store, tmp_path)
    assert location is not None
    with open_store(location) as opened:
        opened.append_all([_session(n, m) for n, m in enumerate(medians)])
    assert main(["changes", "--store", store, "--json"]) == 0
    (change,) = json.loads(capsys.readouterr().out)["changes"]
    assert change["metric"] == "fio.iops.read"
    assert change["first_session_after"]["labels"] == {"build": "30"}
    assert change["first_session_after"]["kernel_release"] == "6.18.30"
    assert change["change"] == pytest.approx(-1 / 3, abs=0.05)
    assert change["p_value"] <= 0.01
    # The table, piped: whole ids.
    assert main(["changes", "randread-4k", "--store", store]) == 0
    out = capsys.readouterr().out
    assert f"{30:032x}" in out and "-3" in out
    # Filters: a step before --since, or smaller than --min-change, is not listed.
    assert main(["changes", "--store", store, "--since", "2026-12-03", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changes"] == []
    assert main(["changes", "--store", store, "--min-change", "0.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changes"] == []
    assert main(["changes", "--store", store, "--since", "yesterday"]) == 2
    assert "--since 'yesterday'" in capsys.readouterr().err


# -- the tail rule: a step just before the newest session ------------------------------------


def test_a_step_three_sessions_before_the_end_is_found() -> None:
    rng = np.random.default_rng(6)
    values = noise(rng, 10.0, 20) + noise(rng, 13.0, 3)
    (point,) = change_points(values)
    assert point.index == 20
    assert point.p_value <= DEFAULT_ALPHA
    assert (point.before_sessions, point.after_sessions) == (20, 3)
    assert point.change == pytest.approx(0.3, abs=0.1)
    # Without the tail rule the split statistic cannot call it yet.
    assert change_points(values, tail=False) == []


def test_two_outlying_sessions_at_the_end_are_not_a_step() -> None:
    rng = np.random.default_rng(7)
    values = [*noise(rng, 10.0, 20), 25.0, 24.0]
    assert change_points(values) == []
    # ... nor once the next session is back to normal.
    assert change_points([*values, 10.0]) == []


def test_the_tail_is_judged_against_sessions_after_the_last_change_point() -> None:
    rng = np.random.default_rng(9)
    values = noise(rng, 10.0, 20, 0.02) + noise(rng, 15.0, 20, 0.02) + noise(rng, 20.0, 4, 0.02)
    points = change_points(values)
    assert [p.index for p in points] == [20, 40]
    assert points[1].before_median == pytest.approx(15.0, rel=0.05)


def test_tail_change_needs_a_reference() -> None:
    assert tail_change([1.0] * 7 + [2.0] * 3) is None
    assert tail_change([1.0] * 8 + [2.0] * 3) is not None


@settings(max_examples=40, deadline=None)
@given(
    value=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    length=st.integers(min_value=0, max_value=80),
)
def test_a_constant_series_has_no_change_point(value: float, length: int) -> None:
    assert change_points([value] * length) == []


@settings(max_examples=30, deadline=None)
@given(
    before=st.integers(min_value=10, max_value=40),
    after=st.integers(min_value=3, max_value=40),
    factor=st.floats(min_value=1.5, max_value=10.0),
    up=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_a_clean_large_step_is_found_at_its_index(
    before: int, after: int, factor: float, up: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    level = 100.0 * (factor if up else 1.0 / factor)
    values = noise(rng, 100.0, before, 0.02) + noise(rng, level, after, 0.02)
    (point,) = [p for p in change_points(values) if p.index == before]
    assert (point.change > 0) == up


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    scale=st.floats(min_value=1e-3, max_value=1e3),
    shift=st.floats(min_value=-1e3, max_value=1e3),
)
def test_positive_affine_transforms_keep_the_change_points(
    seed: int, scale: float, shift: float
) -> None:
    rng = np.random.default_rng(seed)
    values = noise(rng, 10.0, 15, 0.1) + noise(rng, 12.0, 15, 0.1) + noise(rng, 14.0, 3, 0.1)
    moved = [scale * v + shift for v in values]
    assert [p.index for p in change_points(moved)] == [p.index for p in change_points(values)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_the_split_search_tests_only_ranks(seed: int) -> None:
    # Any increasing transform (here log and cube) leaves the ranks, so the splits'
    # significance; only where near-equal splits fall may move, by a session at most.
    rng = np.random.default_rng(seed)
    values = noise(rng, 10.0, 20, 0.1) + noise(rng, 12.0, 20, 0.1)
    found = change_points(values, tail=False)
    for moved in (np.log(values), np.asarray(values) ** 3):
        again = change_points(moved.tolist(), tail=False)
        assert [p.p_value for p in again] == [p.p_value for p in found]
        assert all(abs(a.index - b.index) <= 1 for a, b in zip(again, found, strict=True))
