"""One run at a time: a second run waits for the first, or fails fast with who holds it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from perfcheck.system import lock as lock_module
from perfcheck.system.lock import HostLock, LockTimeout


def hold_in_child(path: Path, seconds: float) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from perfcheck.system.lock import HostLock
        lock = HostLock(Path({str(path)!r}))
        lock.acquire(0)
        print("held", flush=True)
        time.sleep({seconds})
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    """Where the tests' own host lock lives."""
    return tmp_path / "perfcheck.lock"


def test_second_run_fails_fast_naming_the_holder(lock_path: Path) -> None:
    child = hold_in_child(lock_path, 30)
    try:
        with pytest.raises(LockTimeout) as info:
            HostLock(lock_path).acquire(0)
        message = str(info.value)
        assert f"held by process {child.pid} (perfcheck)" in message
        assert "--perfcheck-lock-timeout" in message and "\n" not in message
    finally:
        child.kill()
        child.wait()


def test_second_run_waits_then_proceeds(lock_path: Path) -> None:
    child = hold_in_child(lock_path, 1.0)
    told: list[str] = []
    started = time.monotonic()
    lock = HostLock(lock_path)
    lock.acquire(30, on_wait=told.append)
    try:
        assert time.monotonic() - started > 0.3
        assert told and "waiting for process" in told[0]
    finally:
        lock.release()
        child.wait()


def test_a_killed_holder_releases_the_lock(lock_path: Path) -> None:
    child = hold_in_child(lock_path, 30)
    child.kill()
    child.wait()
    lock = HostLock(lock_path)
    lock.acquire(0)
    assert lock.held
    lock.release()


def test_pytest_run_refuses_while_another_run_holds_the_lock(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "perfcheck.lock"
    monkeypatch.setattr(lock_module, "LOCK_PATH", path)
    child = hold_in_child(path, 30)
    try:
        result = pytester.runpytest("--perfcheck", "--perfcheck-lock-timeout=0")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*held by process {child.pid}*one at a time*"])
    finally:
        child.kill()
        child.wait()
    # Once free, a run proceeds and releases the lock at the end.
    result = pytester.runpytest("--perfcheck", "--perfcheck-lock-timeout=0")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    HostLock(path).acquire(0)


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "soon"])
def test_lock_timeout_must_be_a_finite_number_of_seconds(
    pytester: pytest.Pytester, value: str
) -> None:
    """``nan`` waited forever (no comparison with it is true) and a negative one made no sense."""
    result = pytester.runpytest("--perfcheck", f"--perfcheck-lock-timeout={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*argument --perfcheck-lock-timeout: '{value}' is not a number of seconds; give 0 or*"]
    )
