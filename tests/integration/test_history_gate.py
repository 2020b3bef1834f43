"""The history gate and the bisect exit statuses, through pytest runs on the fake backend:
a run judged by the recent sessions of its series in the results store PASSes, a lasting
slow-down FAILs naming the first session after the step (its labels), too short a history
falls back to the stored baseline saying so, and --perfcheck-bisect exits 0/1/125."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from perfcheck.model.outcome import Status
from perfcheck.report.results import load_results
from tests.fakeproject import run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

STORE = "results.sqlite"


def measure(p: pytest.Pytester, mp: pytest.MonkeyPatch, seed: int, *args: str) -> pytest.RunResult:
    """One run storing its session in the project's store; each seed is another session."""
    mp.setenv("FAKE_SEED", str(seed))
    result = run(p, "--perfcheck", f"--perfcheck-store={STORE}", *args, "scenarios/")
    space_out(p.path / STORE)
    return result


def space_out(store: Path) -> None:
    """Sessions a minute apart, in the order they were stored: CI builds are, but fake runs
    in one process take well under a second, and a series is ordered by the second."""
    if not store.exists():
        return
    with contextlib.closing(sqlite3.connect(store)) as db, db:
        db.execute(
            "UPDATE perfcheck_sessions SET recorded_at ="
            " strftime('%Y-%m-%dT%H:%M:%SZ', '2026-12-01', '+' || rowid || ' minutes')"
        )


def build_history(p: pytest.Pytester, mp: pytest.MonkeyPatch, sessions: int) -> None:
    for seed in range(sessions):
        measure(p, mp, 100 + seed, f"--perfcheck-label=build={seed}")


def test_history_gate_passes_a_run_like_its_history_and_fails_a_step_naming_its_first_build(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_history(project, monkeypatch, 7)
    like = measure(
        project,
        monkeypatch,
        7,
        "--perfcheck-gate=history",
        "--perfcheck-save=r.json",
        "--junitxml=junit.xml",
    )
    like.assert_outcomes(passed=1)
    assert (
        '<property name="perfcheck.gate" value="history"'
        in (project.path / "junit.xml").read_text()
    )
    assert load_results(project.path / "r.json").scenarios["fake-reads"].status is Status.PASS
    like.stdout.fnmatch_lines(
        [
            "perfcheck: gate history (the last 20 sessions of each series): 1 judged by their"
            " history, 0 by the stored baseline"
        ]
    )
    decision = json.loads((project.path / "r.json").read_text())["scenarios"]["fake-reads"][
        "decision"
    ]
    assert (decision["gate"], decision["history"]["sessions"]) == ("history", 7)
    assert decision["history"]["new_sessions"] == 1

    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    first = measure(
        project, monkeypatch, 50, "--perfcheck-gate=history", "--perfcheck-label=build=slow-1"
    )
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(
        [
            "*block.latency.read.p50: * -> * (+*%, threshold +10%, p=*) FAIL*",
            "*suspect: the first session was outside the history on *; 2 fresh session(s)*",
            "*step first seen in: this run (build=slow-1)*",
            "*--perfcheck-gate baseline*",
            "perfcheck: the history gate FAILs this series until the step is most of its*",
        ]
    )
    # The next build is still slow: the step is named at the build that brought it.
    second = measure(
        project, monkeypatch, 51, "--perfcheck-gate=history", "--perfcheck-label=build=slow-2"
    )
    second.assert_outcomes(failed=1)
    second.stdout.fnmatch_lines(["*step first seen in: * (build=slow-1, kernel *"])


def test_too_short_a_history_falls_back_to_the_stored_baseline_saying_so(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(project, "--perfcheck-update", f"--perfcheck-store={STORE}").assert_outcomes(passed=1)
    # The update run stores each of its 3 sessions: 3 in the series, 5 needed.
    result = measure(project, monkeypatch, 9, "--perfcheck-gate=history", "--perfcheck-save=r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "perfcheck: gate history (the last 20 sessions of each series): 0 judged by their"
            " history, 1 by the stored baseline",
            "  fake-reads: history gate: 3 session(s) of its series on * (5 needed);"
            " judged against the stored baseline",
        ]
    )
    decision = json.loads((project.path / "r.json").read_text())["scenarios"]["fake-reads"][
        "decision"
    ]
    assert decision["gate"] == "baseline"


def test_no_history_and_no_baseline_skips_as_a_missing_baseline_does(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = measure(project, monkeypatch, 1, "--perfcheck-gate=history")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*gate history (*): 0 judged by their history, 0 by the stored baseline,"
            " 1 by neither (no history, no baseline)",
            "  fake-reads: history gate: 0 session(s) of its series * (5 needed);"
            " no stored baseline either",
            "*no baseline for fake-reads on machine class*",
        ]
    )


def test_the_ini_key_chooses_the_gate(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makeini("[pytest]\nperfcheck_gate = sideways\n")
    result = measure(project, monkeypatch, 1)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*perfcheck_gate = 'sideways' in the ini file: use baseline or history*"]
    )


# -- --perfcheck-bisect ----------------------------------------------------------------------


def bisect(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run(p, "--perfcheck-bisect", "--perfcheck-store=none", *args, "scenarios/")


@pytest.mark.parametrize(
    ("environment", "code", "said"),
    [
        ({}, 0, "exit 0 (1 scenario(s) PASS: this commit is good)"),
        ({"FAKE_SLOWDOWN": "1.5"}, 1, "exit 1 (1 scenario(s) FAIL: this commit is bad)"),
        # Only the first session is slow: its repeat does not FAIL, so INCONCLUSIVE.
        (
            {"FAKE_SLOWDOWN": "1.5", "FAKE_SLOW_SESSIONS": "0"},
            125,
            "exit 125 (1 scenario(s) INCONCLUSIVE: this commit cannot be judged)",
        ),
    ],
    ids=["pass", "fail", "inconclusive"],
)
def test_bisect_exit_status_follows_the_verdict(
    project: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    code: int,
    said: str,
) -> None:
    run(project, "--perfcheck-update").assert_outcomes(passed=1)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = bisect(project, "--perfcheck-strict")
    assert result.ret == code
    result.stdout.fnmatch_lines([f"perfcheck: --perfcheck-bisect: {said}"])


def test_bisect_skips_a_missing_baseline(project: pytest.Pytester) -> None:
    result = bisect(project, "--perfcheck-missing=fail")
    assert result.ret == 125
    result.stdout.fnmatch_lines(["*exit 125 (1 scenario(s) NO BASELINE*"])


@pytest.mark.parametrize(
    ("name", "text"),
    [("broken.toml", "probes = [\n"), ("test_broken.py", "import nowhere_to_be_found\n")],
    ids=["broken-scenario", "collection-error"],
)
def test_bisect_skips_an_error(project: pytest.Pytester, name: str, text: str) -> None:
    run(project, "--perfcheck-update").assert_outcomes(passed=1)
    (project.path / "scenarios" / name).write_text(text)
    result = bisect(project)
    assert result.ret == 125
    result.stdout.fnmatch_lines(["*--perfcheck-bisect: exit 125 (an error (pytest exit status *"])


def test_bisect_skips_a_usage_error(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nperfcheck_missing = sometimes\n")
    result = bisect(project)
    assert result.ret == 125
    result.stderr.fnmatch_lines(["*perfcheck_missing = 'sometimes'*", "*exit 125 (a usage error)*"])


def test_without_bisect_a_usage_error_is_pytests_own(project: pytest.Pytester) -> None:
    project.makeini("[pytest]\nperfcheck_missing = sometimes\n")
    result = run(project, "--perfcheck", "scenarios/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
