"""A real kernel-level regression caught end to end: real fio, real BPF, real baselines.

The regression is one the running kernel offers (:mod:`perfcheck.system.slowdowns`): bfq at
queue depth 1 where the kernel has bfq (fio's p50 about 1.3x to 3x), else mq-deadline
with four requests at queue depth 16 (IOPS -40..-60%), else four request tags without a
scheduler. A baseline recorded under ``none`` must FAIL under it (against one of up to
five baselines: a session of this VM is now and then an outlier, see ATTEMPTS), naming
the metric and showing the histograms, and not FAIL once the device is back to ``none``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from perfcheck.system.processes import pid_alive
from perfcheck.system.slowdowns import QueueSlowdown
from perfcheck.system.targets import io_scheduler
from tests.blockcounts import users_loop_device
from tests.realcaps import REAL_BPF_AND_FIO

pytestmark = REAL_BPF_AND_FIO

#: With the drift control (as `make perfcheck` runs): a saturating QD16 job is CPU-bound,
#: so another process on its CPU slows it as much as the slow-down does (fio clat p50 64 ->
#: 102 us, IOPS -28% in a same-settings rerun while other suites ran). The control sees the
#: machine slow down and makes such a FAIL INCONCLUSIVE instead.
FAST = (
    "--perfcheck-rounds",
    "10",
    "--perfcheck-seconds",
    "0.5",
    "--perfcheck-control",
    "-p",
    "no:cacheprovider",
)


@pytest.fixture
def scenario(slowdown: QueueSlowdown, tmp_path: Path) -> Path:
    return slowdown.write_scenario(tmp_path / "scenarios")


def perfcheck(
    pytester: pytest.Pytester,
    baselines: Path,
    scenario: Path,
    *args: str,
    fast: tuple[str, ...] = FAST,
) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--perfcheck",
        f"--perfcheck-baseline-dir={baselines}",
        *fast,
        *args,
        str(scenario),
        timeout=300,
    )


def assert_regression_reported(
    result: pytest.RunResult, baselines: Path, slowdown: QueueSlowdown
) -> None:
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            f"*{slowdown.name} regressed*",
            "*.read.p* -> * (+*%, threshold +*%, p=*) FAIL*",
            f"*baseline: {baselines}*{slowdown.name}.json*",
            "*{}: * -> {}*".format(*slowdown.environment_change()),
            "*--perfcheck-update*",
            "*.read, all rounds merged*",
            "*usecs*count*distribution*usecs*count*distribution*",
        ]
    )
    # Before it stood, the FAIL was measured again from a fresh start, and FAILed again
    # (with the scratch device, on a new device slowed down once more).
    result.stdout.fnmatch_lines(["*repeated in a fresh session: FAILed again (* + * rounds)*"])
    assert "Traceback" not in out


def perfcheck_leftovers() -> list[str]:
    """Scratch files, and loop devices over them, of perfcheck runs no longer running
    (another run on the host may hold its own meanwhile; a run cleans up dead runs'
    leftovers when it starts, so after a run any left are that run's)."""
    dead = [
        str(path)
        for path in Path("/dev/shm").glob("perfcheck-scratch-*/perfcheck-scratch-*.img")
        if not pid_alive(int(path.name.split("-")[2]))
    ]
    attached = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return dead + [line for line in attached.splitlines() if any(f in line for f in dead)]


#: Baselines recorded before the slow-down is caught (the figures are bfq's). One session of this
#: VM in several runs 1.5-2x slower or faster throughout (bench/RESULTS.md); a baseline is the most
#: typical of three sessions, but against an outlier one bfq's +30-45% can still fall inside the
#: noise. The scorecard caught bfq in 86-93% of comparisons. While the host is busy it does worse:
#: on 2026-11-30 (fio's p50 under `none` moving between 15 and 50 us minute to minute) bfq's effect
#: in a session ranged +15% to +55%, and twice three baselines in a row missed it (the FAIL not
#: confirmed by its repeat, or p just above alpha). Five attempts cost time only when the first
#: ones miss; all five missing means detection is broken.
ATTEMPTS = 5


def record_until_regression_caught(
    baselines: Path,
    record: Callable[[], pytest.RunResult],
    regress: Callable[[], pytest.RunResult],
) -> pytest.RunResult:
    """Record a baseline in ``baselines``, then run the regression against it; when it
    was not caught (INCONCLUSIVE, or PASS against an outlier baseline), record anew, up to
    ATTEMPTS. Each attempt starts from an empty directory: recorded over the last
    attempt's, a baseline would carry its sessions in its history, and their spread would
    widen the thresholds the next attempt is judged by."""
    misses = []
    for _ in range(ATTEMPTS):
        shutil.rmtree(baselines, ignore_errors=True)
        recorded = record()
        assert recorded.ret == 0, recorded.stdout.str()
        result = regress()
        if result.ret == pytest.ExitCode.TESTS_FAILED:
            return result
        assert result.ret == 0, result.stdout.str()
        misses.append(result.stdout.str())
    raise AssertionError(
        f"slow-down not caught against {ATTEMPTS} baselines:\n" + "\n".join(misses)
    )


def assert_no_regression(result: pytest.RunResult) -> None:
    # Same settings as the baseline: PASS, or INCONCLUSIVE when the machine's noise moved
    # a median past its threshold without the rounds confirming it; never FAIL.
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["perfcheck: 1 measured on *: 1 [PI]*"])


def test_a_real_slowdown_fails_and_recovers_on_the_scratch_device(
    pytester: pytest.Pytester, tmp_path: Path, slowdown: QueueSlowdown, scenario: Path
) -> None:
    baselines = tmp_path / "baselines"
    slower = record_until_regression_caught(
        baselines,
        lambda: perfcheck(
            pytester, baselines, scenario, "--perfcheck-update", "--perfcheck-scheduler=none"
        ),
        lambda: perfcheck(pytester, baselines, scenario, *slowdown.pytest_args()),
    )
    [baseline] = baselines.rglob(f"{slowdown.name}.json")
    # The recording measured three sessions, each on a scratch device of its own, and kept
    # the most typical; all three are in its history.
    assert len(json.loads(baseline.read_text())["history"]) == 3
    assert_regression_reported(slower, baselines, slowdown)
    # Both sessions' scratch devices are gone (the first one before the repeat began).
    assert perfcheck_leftovers() == []

    back = perfcheck(pytester, baselines, scenario, "--perfcheck-scheduler=none")
    assert_no_regression(back)


def caller_loop_device(size_mib: int = 256) -> contextlib.AbstractContextManager[Path]:
    """A loop device made the way a user would, outside perfcheck."""
    return users_loop_device(size_mib, "caller-made")


def test_a_real_slowdown_through_perfcheck_target_on_a_callers_loop_device(
    pytester: pytest.Pytester, tmp_path: Path, slowdown: QueueSlowdown, scenario: Path
) -> None:
    baselines = tmp_path / "baselines"
    with caller_loop_device() as dev, io_scheduler(dev.name, "none"):
        target = f"--perfcheck-target={dev}"

        def slowed() -> pytest.RunResult:
            with slowdown.applied(dev.name):
                return perfcheck(pytester, baselines, scenario, target)

        slower = record_until_regression_caught(
            baselines,
            lambda: perfcheck(
                pytester,
                baselines,
                scenario,
                "--perfcheck-update",
                "--perfcheck-baseline-sessions=1",
                target,
            ),
            slowed,
        )
        assert_regression_reported(slower, baselines, slowdown)

        back = perfcheck(pytester, baselines, scenario, target)
        assert_no_regression(back)
        # The caller's device is still there and still the caller's, with its settings back.
        assert dev.is_block_device()
        assert "[none]" in (Path("/sys/block") / dev.name / "queue" / "scheduler").read_text()
