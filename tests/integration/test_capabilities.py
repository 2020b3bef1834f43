"""Each missing capability is a one-line error that names it and the fix."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from perfcheck.errors import CapabilityError
from perfcheck.probes import BlockLatencyProbe
from perfcheck.probes import session as probe_session
from perfcheck.probes.session import ProbeSession, check_capabilities


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake machine on which everything is present; tests take pieces away."""
    monkeypatch.setattr(probe_session.os, "geteuid", lambda: 0)
    tracing = tmp_path / "tracing"
    for category, event in BlockLatencyProbe.tracepoints:
        (tracing / "events" / category / event).mkdir(parents=True)
    monkeypatch.setattr(probe_session, "TRACEFS_ROOTS", (tracing,))
    modules = tmp_path / "modules"
    (modules / platform.release() / "build" / "include").mkdir(parents=True)
    monkeypatch.setattr(probe_session, "MODULES_ROOT", modules)
    monkeypatch.setitem(sys.modules, "bcc", type(sys)("bcc"))
    return tmp_path


def error(monkeypatch: pytest.MonkeyPatch | None = None) -> str:
    with pytest.raises(CapabilityError) as info:
        check_capabilities([BlockLatencyProbe()])
    message = str(info.value)
    assert "\n" not in message
    return message


def test_everything_present_passes(machine: Path) -> None:
    check_capabilities([BlockLatencyProbe()])


def test_not_root(machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_session.os, "geteuid", lambda: 1000)
    assert error().startswith("BPF probes need root")


def test_bcc_missing_says_it_comes_from_debian(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "bcc", None)  # makes `import bcc` fail
    message = error()
    assert message.startswith("bcc: not importable")
    assert "python3-bpfcc" in message and "make setup" in message


def test_kernel_headers_missing(machine: Path) -> None:
    build = machine / "modules" / platform.release() / "build" / "include"
    build.rmdir()
    message = error()
    assert message.startswith("kernel headers:") and "make setup" in message


def test_tracefs_not_mounted(machine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_session, "TRACEFS_ROOTS", (machine / "nowhere",))
    message = error()
    assert message.startswith("tracefs: not mounted") and "mount -t tracefs" in message


def test_tracepoint_missing_names_it_and_the_probe(machine: Path) -> None:
    (machine / "tracing" / "events" / "block" / "block_rq_complete").rmdir()
    message = error()
    assert message.startswith("tracepoint block:block_rq_complete (probe block.latency)")


def test_session_start_checks_before_importing_or_compiling(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_session.os, "geteuid", lambda: 1000)
    session = ProbeSession([BlockLatencyProbe()])
    with pytest.raises(CapabilityError):
        session.start()
    assert session.compile_seconds is None


def test_importing_perfcheck_does_not_import_bcc() -> None:
    import subprocess

    code = (
        "import sys, perfcheck, perfcheck.plugin, perfcheck.cli, perfcheck.run.harness;"
        " print('bcc' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
