"""A FAIL against a stored baseline must repeat in a fresh session before it stands:
a slowdown that lasts FAILs (the repeat's verdict is reported), one that was only the
first session's is INCONCLUSIVE, and --perfcheck-no-repeat reports the first at once."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.fakeproject import make_project
from tests.fakeproject import run as run_project

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CONFTEST = textwrap.dedent(
    """
    import math
    import os
    import random
    from pathlib import Path

    from perfcheck.run.fake import use_fakes


    def pytest_perfcheck_harness(config, harness):
        slowdown = float(os.environ.get("FAKE_SLOWDOWN", "1.0"))
        # How many sessions the slowdown lasts: FAKE_SLOW_SESSIONS=1 is only the first.
        lasts = int(os.environ.get("FAKE_SLOW_SESSIONS", "99"))
        rng = random.Random(1)

        def latency(round_no, i):
            factor = slowdown if harness.fresh_sessions < lasts else 1.0
            return int(rng.lognormvariate(math.log(10_000 * factor), 0.05))

        use_fakes(harness, latency)
        real_fresh_session = harness.fresh_session

        def fresh_session():
            Path("sessions.log").open("a").write("fresh\\n")
            real_fresh_session()

        harness.fresh_session = fresh_session
    """
)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    make_project(pytester, CONFTEST)
    run(pytester, "--perfcheck-update").assert_outcomes(passed=1)
    (pytester.path / "sessions.log").unlink()  # the recording's own fresh sessions
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    return pytester


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return run_project(p, *args, "scenarios/")


def fresh_sessions(p: pytest.Pytester) -> int:
    log = p.path / "sessions.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def assert_repeated_once(
    p: pytest.Pytester, result: pytest.RunResult, verdict: str, repeat: str
) -> None:
    """The p50 got ``verdict``, after one fresh session whose outcome reads ``repeat``."""
    result.stdout.fnmatch_lines(
        [
            f"*block.latency.read.p50: * -> * (+*%, threshold +10%, p=*) {verdict}*",
            f"*repeated in a fresh session: {repeat}*",
        ]
    )
    assert fresh_sessions(p) == 1


def test_a_lasting_slowdown_fails_after_repeating_in_a_fresh_session(
    project: pytest.Pytester,
) -> None:
    saved = project.path / "results.json"
    result = run(project, "--perfcheck", f"--perfcheck-save={saved}")
    result.assert_outcomes(failed=1)
    assert_repeated_once(
        project, result, "FAIL", "FAILed again (5 + 5 rounds): the first session's FAIL stands"
    )
    decision = json.loads(saved.read_text())["scenarios"]["fake-reads"]["decision"]
    assert decision["repeat"].startswith("FAILed again")


def test_a_slowdown_of_the_first_session_only_is_inconclusive(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SLOW_SESSIONS", "1")
    result = run(project, "--perfcheck")
    result.assert_outcomes(passed=1)
    assert_repeated_once(
        project,
        result,
        "INCONCLUSIVE",
        "did not FAIL again (5 + 5 rounds; *), so the FAIL is INCONCLUSIVE",
    )
    # Strict mode fails it, as any INCONCLUSIVE.
    run(project, "--perfcheck", "--perfcheck-strict").assert_outcomes(failed=1)


def test_no_repeat_reports_the_first_fail_at_once(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SLOW_SESSIONS", "1")
    result = run(project, "--perfcheck", "--perfcheck-no-repeat")
    result.assert_outcomes(failed=1)
    assert "repeated in a fresh session" not in result.stdout.str()
    assert fresh_sessions(project) == 0


def test_a_pass_is_never_repeated_and_a_recording_measures_its_sessions(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.0")
    run(project, "--perfcheck").assert_outcomes(passed=1)
    assert fresh_sessions(project) == 0
    run(project, "--perfcheck-update").assert_outcomes(passed=1)
    assert fresh_sessions(project) == 2  # the baseline comes from 3 sessions
    run(project, "--perfcheck-update", "--perfcheck-baseline-sessions=1").assert_outcomes(passed=1)
    assert fresh_sessions(project) == 2


def baseline_p50(p: pytest.Pytester) -> float:
    """The stored baseline's median p50 (its own session is the history's last entry)."""
    [path] = sorted((p.path / "baselines").rglob("*.json"))
    history = json.loads(path.read_text())["history"]
    return float(history[-1]["medians"]["block.latency.read.p50"])


@pytest.mark.parametrize("sessions", ["1", "3"])
def test_a_baseline_from_three_sessions_leaves_out_an_outlier_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, sessions: str
) -> None:
    """The first session of the recording runs twice as fast as every later one: recorded
    alone it is the baseline and an unchanged run FAILs against it; as one of three
    sessions it is left out and the unchanged run PASSes."""
    make_project(pytester, CONFTEST)
    monkeypatch.setenv("FAKE_SLOWDOWN", "0.5")
    monkeypatch.setenv("FAKE_SLOW_SESSIONS", "1")
    result = run(pytester, "--perfcheck-update", f"--perfcheck-baseline-sessions={sessions}")
    result.assert_outcomes(passed=1)
    if sessions == "3":
        result.stdout.fnmatch_lines(
            ["*fake-reads: baseline from session [23] of 3 fresh sessions (the most typical*"]
        )
    monkeypatch.setenv("FAKE_SLOWDOWN", "1.0")
    if sessions == "1":
        assert baseline_p50(pytester) < 6_000
        run(pytester, "--perfcheck").assert_outcomes(failed=1)
    else:
        assert 9_000 < baseline_p50(pytester) < 11_000
        run(pytester, "--perfcheck").assert_outcomes(passed=1)


def test_baseline_sessions_out_of_range_is_a_usage_error(project: pytest.Pytester) -> None:
    result = run(project, "--perfcheck-update", "--perfcheck-baseline-sessions=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perfcheck-baseline-sessions: 0: give 1 to 9 sessions*"])
