"""Interleaved A/B: the ABBA order, the commands' environment, leaving the machine in A,
verdicts through the plugin (fake backend), the ``perfcheck ab`` command line, and one real
run (none vs the real slow-down this kernel offers, on the scratch device)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfcheck.cli import build_parser
from perfcheck.cli.ab import ab_command, cmd_ab
from perfcheck.run.ab import abba_sides, runs_of
from perfcheck.system.kernel_config import scratch_io_schedulers
from perfcheck.system.slowdowns import choose_slowdown
from tests.fakeproject import make_project, scenario_text
from tests.realcaps import requires_bpf, requires_fio

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# -- the order -----------------------------------------------------------------------------------


def test_abba_order_alternates_pairs() -> None:
    assert "".join(abba_sides(0, 8)) == "ABBAABBA"
    assert "".join(abba_sides(8, 4)) == "ABBA"
    assert "".join(abba_sides(2, 4)) == "BAAB"


@given(st.integers(0, 50), st.integers(0, 50))
def test_any_even_stretch_of_the_pattern_is_balanced(start: int, pairs: int) -> None:
    sides = abba_sides(2 * start, 2 * pairs)
    assert sides.count("A") == sides.count("B") == pairs


def test_runs_group_consecutive_rounds_of_a_side() -> None:
    assert list(runs_of(list("ABBAAB"))) == [("A", 1), ("B", 2), ("A", 2), ("B", 1)]
    assert list(runs_of([])) == []


# -- the command line ----------------------------------------------------------------------------


def test_ab_command_runs_pytest_with_both_commands_and_default_scenarios(tmp_path: Path) -> None:
    command = ab_command("echo a", "echo b", ["--", "-k", "randread"])
    assert command[:3] == [sys.executable, "-m", "pytest"]
    assert command[3:] == [
        "--perfcheck",
        "--perfcheck-ab-a=echo a",
        "--perfcheck-ab-b=echo b",
        "-k",
        "randread",
        "scenarios/",
    ]
    given_path = ab_command("a", "b", [str(tmp_path)])
    assert given_path[-1] == str(tmp_path) and "scenarios/" not in given_path


def test_perfcheck_ab_parses_and_returns_pytests_exit_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["ab", "--a", "true", "--b", "false", "--", "-x"])
    assert isinstance(args, argparse.Namespace)
    seen: list[list[str]] = []

    def fake_run(command: list[str]) -> int:
        seen.append(command)
        return 1

    assert cmd_ab(args, fake_run) == 1
    assert seen[0][-2:] == ["-x", "scenarios/"]
    assert "perfcheck ab: -m pytest --perfcheck" in capsys.readouterr().out


# -- through the plugin, with the fake backend ----------------------------------------------------

CONFTEST = textwrap.dedent(
    """
    import math
    import os
    import random
    from pathlib import Path

    from perfcheck.run.fake import FakeProbeBackend, use_fakes

    STATE = Path(os.environ["FAKE_STATE"])


    def pytest_perfcheck_harness(config, harness):
        backend = FakeProbeBackend()
        rng = random.Random(1)
        slowdown = {}

        def latency(round_no, i):
            # The set-up commands write the slowdown the "kernel" now has.
            if i == 0:
                slowdown["now"] = float(STATE.read_text())
            return int(rng.lognormvariate(math.log(10_000 * slowdown["now"]), 0.05))

        use_fakes(harness, latency, backend)
    """
)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    make_project(pytester, CONFTEST, {"fake-reads": scenario_text(rounds=6)})
    state = pytester.path / "state"
    state.write_text("1.0")
    monkeypatch.setenv("FAKE_STATE", str(state))
    return pytester


def side_command(slowdown: float, log: Path) -> str:
    return (
        f'echo {slowdown} > "$FAKE_STATE";'
        f' echo "$PERFCHECK_SIDE $PERFCHECK_DISK $PERFCHECK_DEVICE $PERFCHECK_SCENARIO" >> {log}'
    )


def run_ab(p: pytest.Pytester, a: str, b: str, *args: str) -> pytest.RunResult:
    return p.runpytest(
        "-p", "no:cacheprovider", "--perfcheck", f"--perfcheck-ab-a={a}", f"--perfcheck-ab-b={b}",
        *args, "scenarios/",
    )  # fmt: skip


def test_b_slower_than_a_fails_with_the_ab_report_and_ends_in_a(project: pytest.Pytester) -> None:
    log = project.path / "commands.log"
    saved = project.path / "results.json"
    result = run_ab(
        project, side_command(1.0, log), side_command(1.5, log), f"--perfcheck-save={saved}"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*fake-reads regressed*",
            "*block.latency.read.p50: * -> * (+*%, threshold +10%, p=*) FAIL*",
            "*baseline: side A (`echo 1.0*`), measured alternately with B in this run"
            " (6 rounds vs 6 now)*",
            "*perfcheck ab judged B against A*no baseline was read or written*",
        ]
    )
    result.stdout.fnmatch_lines(["*FAILed again (6 + 6 rounds): the first session's FAIL stands*"])
    # An A/B run reads no baseline, so its advice is not to re-record one.
    assert "--perfcheck-update" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "perfcheck: B measured worse than A on the metrics marked FAIL, in this run and again"
            " in a fresh session; if B's cost is expected, nothing needs updating"
        ]
    )
    lines = log.read_text().splitlines()
    # Warm-up A then B, then ABBA over 6 rounds per side (A BB AA BB AA BB A), ending in A;
    # the FAIL is repeated in a fresh session: the same again.
    assert [line.split()[0] for line in lines] == list("ABABABABA") * 2
    assert set(line.split(" ", 1)[1] for line in lines) == {"fake0 /dev/null fake-reads"}
    assert (project.path / "state").read_text().strip() == "1.0"
    assert not list(project.path.rglob("baselines/**/*.json"))
    scenario = json.loads(saved.read_text())["scenarios"]["fake-reads"]
    assert scenario["status"] == "FAIL" and scenario["baseline_path"] is None
    assert scenario["decision"]["baseline_rounds"] == scenario["decision"]["current_rounds"] == 6


def test_a_fail_that_does_not_repeat_in_a_fresh_session_is_inconclusive(
    project: pytest.Pytester,
) -> None:
    # B is slower only while its command has run at most 4 times: the first interleaved run
    # (warm-up B, then ABBA over 6 rounds per side switches to B 3 more times).
    log = project.path / "commands.log"
    count = project.path / "b-count"
    b = (
        f"n=$(cat {count} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {count};"
        f' if [ $n -le 4 ]; then echo 1.5 > "$FAKE_STATE"; else echo 1.0 > "$FAKE_STATE"; fi'
    )
    result = run_ab(project, side_command(1.0, log), b)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*block.latency.read.p50: * -> * (+*%, threshold +10%, p=*) INCONCLUSIVE*",
            "*did not FAIL again (6 + 6 rounds; *), so the FAIL is INCONCLUSIVE*",
        ]
    )
    assert count.read_text().strip() == "8"


def test_no_repeat_lets_the_first_fail_stand(project: pytest.Pytester) -> None:
    log = project.path / "commands.log"
    result = run_ab(
        project, side_command(1.0, log), side_command(1.5, log), "--perfcheck-no-repeat"
    )
    result.assert_outcomes(failed=1)
    assert "FAILed again" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "perfcheck: B measured worse than A on the metrics marked FAIL (not repeated:"
            " --perfcheck-no-repeat); run it without --perfcheck-no-repeat to confirm; if B's"
            " cost is expected, nothing needs updating"
        ]
    )
    assert [line.split()[0] for line in log.read_text().splitlines()] == list("ABABABABA")


def test_same_set_up_on_both_sides_passes(project: pytest.Pytester) -> None:
    log = project.path / "commands.log"
    result = run_ab(project, side_command(1.0, log), side_command(1.0, log))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["perfcheck: 1 measured on *: 1 PASS"])


def test_failing_command_stops_the_scenario_with_one_line_and_still_ends_in_a(
    project: pytest.Pytester,
) -> None:
    log = project.path / "commands.log"
    bad_b = f"{side_command(1.5, log)}; echo cannot set it >&2; exit 3"
    result = run_ab(project, side_command(1.0, log), bad_b)
    result.assert_outcomes(errors=1)  # a broken set-up is an ERROR, never a regression
    result.stdout.fnmatch_lines(["*the B command `*` exited 3 (cannot set it); it ran with*"])
    assert "Traceback" not in result.stdout.str()
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["A", "B", "A"]


def test_ab_refuses_update_and_needs_both_commands(project: pytest.Pytester) -> None:
    result = run_ab(project, "true", "true", "--perfcheck-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*store nothing: drop --perfcheck-update*"])
    result = project.runpytest("--perfcheck", "--perfcheck-ab-a=true", "scenarios/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*go together: give both commands*"])


# -- real: none vs a real slow-down on the scratch device -----------------------------------------


@pytest.mark.realbpf
@pytest.mark.realfio
@requires_bpf
@requires_fio
def test_real_ab_none_vs_a_real_slowdown_fails_and_leaves_the_device_in_a(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    slowdown = choose_slowdown(scratch_io_schedulers())
    if slowdown is None:
        pytest.skip("no blk-mq loop device here: no queue setting can slow one down")
    scenario = slowdown.write_scenario(tmp_path / "scenarios")
    log = tmp_path / "queue.log"
    queue = "/sys/block/$PERFCHECK_DISK/queue"
    record = f"; echo $(cat {queue}/scheduler) $(cat {queue}/nr_requests) >> {log}"
    result = pytester.runpytest_subprocess(
        "--perfcheck",
        f"--perfcheck-ab-a={slowdown.undo_command()}{record}",
        f"--perfcheck-ab-b={slowdown.shell_command()}{record}",
        "--perfcheck-rounds=10",
        "--perfcheck-seconds=0.5",
        "--perfcheck-max-rounds=20",
        "-p",
        "no:cacheprovider",
        str(scenario),
        timeout=300,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"*{slowdown.name} regressed*",
            "*.read.p50: * -> * (+*%, threshold +10%, p=*) FAIL*",
            "*baseline: side A*measured alternately with B in this run*",
            "*repeated in a fresh session: FAILed again*",
            "*{}: * -> {}*".format(*slowdown.environment_change()),
        ]
    )
    # Each line: the scheduler file (the active one in brackets) and nr_requests.
    seen = [
        (line.split("[")[1].split("]")[0], line.rsplit(" ", 1)[1])
        for line in log.read_text().splitlines()
    ]
    # Each session starts and ends in A: none, with the queue's own depth.
    assert seen[0][0] == "none" and seen[-1] == seen[0], seen
    slowed = (slowdown.scheduler, slowdown.queue.get("nr_requests"))
    assert any(s == slowed[0] and (slowed[1] is None or n == slowed[1]) for s, n in seen), seen
