"""perfcheck doctor: checks against fake machine trees, the CLI's exit codes, and a real run."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfcheck import cli
from perfcheck.system import doctor
from perfcheck.system.doctor import (
    OPTIONAL_TRACEPOINTS,
    REQUIRED_TRACEPOINTS,
    Check,
    check_bcc,
    check_tracepoint,
    required_checks_pass,
    run_checks,
)
from perfcheck.system.tracefs import tracefs_root, tracepoint_exists

RELEASE = "6.18.44-custom"
ALL_TRACEPOINTS = REQUIRED_TRACEPOINTS + OPTIONAL_TRACEPOINTS


def write_executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def add_tracepoints(tracefs: Path, names: tuple[str, ...]) -> None:
    (tracefs / "events").mkdir(parents=True, exist_ok=True)
    for name in names:
        category, _, event = name.partition(":")
        (tracefs / "events" / category / event).mkdir(parents=True, exist_ok=True)


@dataclass
class FakeMachine:
    """A machine tree under tmp_path; run() checks it like run_checks checks the real one."""

    root: Path
    tracefs: Path
    debug_tracing: Path
    debugfs: Path
    modules: Path
    bin_dir: Path
    python: Path

    def run(self) -> list[Check]:
        return run_checks(
            tracefs_mount_points=(self.tracefs, self.debug_tracing),
            debugfs_root=self.debugfs,
            modules_root=self.modules,
            kernel_release=RELEASE,
            python=str(self.python),
            kernel_build=[],
        )

    def link_headers(self, headers_name: str) -> None:
        headers = self.root / "src" / headers_name
        (headers / "include").mkdir(parents=True)
        (self.modules / RELEASE).mkdir(parents=True)
        (self.modules / RELEASE / "build").symlink_to(headers)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeMachine:
    """A fully set-up fake machine: root, bcc 0.26, headers, tracefs, all tools on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_executable(bin_dir / "fio", "#!/bin/sh\necho fio-3.33\n")
    write_executable(bin_dir / "sockperf", "#!/bin/sh\necho 'sockperf, version 3.7-no.git'\n")
    write_executable(bin_dir / "iperf3", "#!/bin/sh\necho 'iperf 3.12 (cJSON 1.7.15)'\n")
    python = write_executable(tmp_path / "python-with-bcc", "#!/bin/sh\necho 0.26.0\n")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    fake = FakeMachine(
        root=tmp_path,
        tracefs=tmp_path / "sys/kernel/tracing",
        debug_tracing=tmp_path / "sys/kernel/debug/tracing",
        debugfs=tmp_path / "sys/kernel/debug",
        modules=tmp_path / "lib/modules",
        bin_dir=bin_dir,
        python=python,
    )
    fake.tracefs.mkdir(parents=True)
    fake.debugfs.mkdir(parents=True)
    add_tracepoints(fake.tracefs, ALL_TRACEPOINTS)
    fake.link_headers(f"linux-headers-{RELEASE}")
    return fake


# --- tracefs helpers -----------------------------------------------------------------------


def test_tracefs_root_is_none_when_no_mount_point_has_events(tmp_path: Path) -> None:
    empty = tmp_path / "tracing"
    empty.mkdir()
    assert tracefs_root((empty, tmp_path / "absent")) is None


def test_tracefs_root_prefers_the_first_mounted_and_falls_back(tmp_path: Path) -> None:
    first, second = tmp_path / "tracing", tmp_path / "debug/tracing"
    add_tracepoints(second, ())
    assert tracefs_root((first, second)) == second
    add_tracepoints(first, ())
    assert tracefs_root((first, second)) == first


def test_tracepoint_exists_looks_for_the_event_directory(tmp_path: Path) -> None:
    add_tracepoints(tmp_path, ("block:block_rq_issue",))
    assert tracepoint_exists("block", "block_rq_issue", tmp_path)
    assert not tracepoint_exists("block", "block_rq_complete", tmp_path)
    assert not tracepoint_exists("tcp", "tcp_probe", tmp_path)


# --- run_checks on fake machines -----------------------------------------------------------


def test_set_up_machine_passes_every_check_but_kprobes(machine: FakeMachine) -> None:
    checks = machine.run()
    assert required_checks_pass(checks)
    failing = [check.name for check in checks if not check.ok]
    assert failing == ["kprobes"]
    names = {check.name for check in checks}
    assert set(ALL_TRACEPOINTS) <= names
    assert {"root", "bcc", "bcc version", "kernel headers", "tracefs", "fio"} <= names


def test_required_and_optional_tracepoints_are_marked_as_such(machine: FakeMachine) -> None:
    checks = by_name(machine.run())
    assert all(checks[name].required for name in REQUIRED_TRACEPOINTS)
    assert not any(checks[name].required for name in OPTIONAL_TRACEPOINTS)


def test_tool_versions_are_parsed_from_their_version_output(machine: FakeMachine) -> None:
    checks = by_name(machine.run())
    assert checks["fio"].detail.startswith("3.33 at ")
    assert checks["sockperf"].detail.startswith("3.7 at ")
    assert checks["iperf3"].detail.startswith("3.12 at ")
    assert checks["bcc version"].detail == "0.26.0"


def test_missing_headers_fail_with_the_setup_fix(machine: FakeMachine) -> None:
    (machine.modules / RELEASE / "build").unlink()
    headers = by_name(machine.run())["kernel headers"]
    assert not headers.ok and headers.required
    assert "build/include" in headers.detail
    assert "make setup" in headers.fix


def test_another_kernels_headers_pass_and_say_so(tmp_path: Path, machine: FakeMachine) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (machine.modules / RELEASE / "build").unlink()
    (other / "linux-headers-6.1.0-57-cloud-amd64" / "include").mkdir(parents=True)
    (machine.modules / RELEASE / "build").symlink_to(other / "linux-headers-6.1.0-57-cloud-amd64")
    headers = by_name(machine.run())["kernel headers"]
    assert headers.ok
    assert "linux-headers-6.1.0-57-cloud-amd64" in headers.detail
    assert "another kernel's headers" in headers.detail


def test_unmounted_tracefs_fails_tracefs_and_every_tracepoint(machine: FakeMachine) -> None:
    (machine.tracefs / "events").rename(machine.root / "events-elsewhere")
    checks = by_name(machine.run())
    assert not checks["tracefs"].ok and checks["tracefs"].required
    assert "make setup" in checks["tracefs"].fix
    assert not any(checks[name].ok for name in ALL_TRACEPOINTS)
    assert checks["kprobes"].detail == "unknown: tracefs not mounted"
    assert not required_checks_pass(list(checks.values()))


def test_tracefs_under_debugfs_is_enough(machine: FakeMachine) -> None:
    (machine.tracefs / "events").rename(machine.root / "moved")
    machine.debug_tracing.mkdir(parents=True)
    (machine.root / "moved").rename(machine.debug_tracing / "events")
    checks = by_name(machine.run())
    assert checks["tracefs"].ok
    assert checks["tracefs"].detail == str(machine.debug_tracing)
    assert required_checks_pass(list(checks.values()))


def test_missing_required_tracepoint_fails_the_machine(machine: FakeMachine) -> None:
    (machine.tracefs / "events/block/block_rq_insert").rmdir()
    checks = machine.run()
    insert = by_name(checks)["block:block_rq_insert"]
    assert not insert.ok and insert.required and insert.fix
    assert not required_checks_pass(checks)


def test_missing_optional_tracepoint_and_tools_do_not_fail_the_machine(
    machine: FakeMachine,
) -> None:
    (machine.tracefs / "events/tcp/tcp_probe").rmdir()
    (machine.bin_dir / "sockperf").unlink()
    (machine.bin_dir / "iperf3").unlink()
    checks = machine.run()
    named = by_name(checks)
    assert not named["tcp:tcp_probe"].ok
    assert not named["sockperf"].ok and "sockperf" in named["sockperf"].fix
    assert not named["iperf3"].ok
    assert required_checks_pass(checks)


def test_missing_fio_fails_the_machine(machine: FakeMachine) -> None:
    (machine.bin_dir / "fio").unlink()
    checks = machine.run()
    fio = by_name(checks)["fio"]
    assert not fio.ok and fio.required
    assert fio.detail == "not found on PATH"
    assert "make setup" in fio.fix
    assert not required_checks_pass(checks)


def test_kprobes_are_informational(machine: FakeMachine) -> None:
    kprobes = by_name(machine.run())["kprobes"]
    assert not kprobes.ok and not kprobes.required
    assert kprobes.detail == "absent: kprobe-based probes unavailable"
    (machine.tracefs / "kprobe_events").write_text("")
    assert by_name(machine.run())["kprobes"].ok


def test_not_root_fails_the_machine(machine: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    checks = machine.run()
    root = by_name(checks)["root"]
    assert not root.ok and root.required
    assert "1000" in root.detail and "sudo" in root.fix
    assert not required_checks_pass(checks)


def test_bare_machine_fails_each_required_check_with_a_one_line_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    failing_python = write_executable(tmp_path / "python", "#!/bin/sh\nexit 1\n")
    checks = run_checks(
        tracefs_mount_points=(tmp_path / "tracing",),
        debugfs_root=tmp_path / "debug",
        modules_root=tmp_path / "modules",
        kernel_release=RELEASE,
        python=str(failing_python),
    )
    required = [check for check in checks if check.required]
    assert required and not any(check.ok for check in required)
    for check in checks:
        if not check.ok:
            assert check.fix and "\n" not in check.fix, check


# --- bcc -----------------------------------------------------------------------------------


def test_bcc_not_importable_by_this_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec_without_bcc(name: str, package: str | None = None) -> object:
        return None if name == "bcc" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec_without_bcc)
    bcc, version = check_bcc()
    assert not bcc.ok and bcc.required
    assert sys.executable in bcc.detail
    assert "make setup" in bcc.fix and ".venv/bin/perfcheck" in bcc.fix
    assert not version.ok and not version.required


def test_bcc_import_failure_names_the_error(tmp_path: Path) -> None:
    python = write_executable(
        tmp_path / "python",
        "#!/bin/sh\necho 'OSError: libbcc.so.0: cannot open shared object file' >&2\nexit 1\n",
    )
    bcc, _ = check_bcc(str(python))
    assert not bcc.ok
    assert "libbcc.so.0: cannot open shared object file" in bcc.detail


def test_old_bcc_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    python = write_executable(tmp_path / "python", "#!/bin/sh\necho 0.18.0\n")
    bcc, version = check_bcc(str(python))
    assert bcc.ok
    assert not version.ok and not version.required
    assert "0.18.0" in version.detail and "0.26" in version.fix


# --- property: the machine passes exactly when every required tracepoint is there ------------


@given(present=st.sets(st.sampled_from(ALL_TRACEPOINTS)))
def test_tracepoint_checks_pass_iff_required_ones_are_present(present: set[str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        tracefs = Path(directory)
        add_tracepoints(tracefs, tuple(present))
        checks = [
            check_tracepoint(name, name in REQUIRED_TRACEPOINTS, tracefs)
            for name in ALL_TRACEPOINTS
        ]
        assert [check.ok for check in checks] == [name in present for name in ALL_TRACEPOINTS]
        assert required_checks_pass(checks) == set(REQUIRED_TRACEPOINTS).issubset(present)


# --- CLI -----------------------------------------------------------------------------------


def canned_checks(*, fio_ok: bool = True, iperf3_ok: bool = True) -> list[Check]:
    return [
        Check("root", True, True, "running as root", ""),
        Check(
            "fio",
            fio_ok,
            True,
            "3.33 at /usr/bin/fio" if fio_ok else "not found on PATH",
            "" if fio_ok else "run `sudo make setup` (installs Debian's fio)",
        ),
        Check("iperf3", iperf3_ok, False, "not found on PATH", "run `sudo make setup`"),
        Check(
            "kprobes", False, False, "absent: kprobe-based probes unavailable [info]", "none needed"
        ),
    ]


@pytest.fixture
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


@pytest.mark.parametrize(
    ("fio_ok", "iperf3_ok", "exit_code"),
    [(True, True, 0), (True, False, 0), (False, True, 1), (False, False, 1)],
)
def test_doctor_exits_nonzero_only_when_a_required_check_fails(
    fio_ok: bool,
    iperf3_ok: bool,
    exit_code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    wide_terminal: None,
) -> None:
    monkeypatch.setattr(
        doctor, "run_checks", lambda: canned_checks(fio_ok=fio_ok, iperf3_ok=iperf3_ok)
    )
    assert cli.main(["doctor"]) == exit_code
    assert cli.main(["doctor", "--json"]) == exit_code
    capsys.readouterr()


def test_doctor_table_shows_each_check_with_status_detail_and_fix(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], wide_terminal: None
) -> None:
    monkeypatch.setattr(doctor, "run_checks", lambda: canned_checks(fio_ok=False))
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    fio_row = next(line for line in out.splitlines() if " fio " in line)
    assert "FAIL" in fio_row and "not found on PATH" in fio_row
    assert "run `sudo make setup` (installs Debian's fio)" in fio_row
    # Details are shown literally, not read as rich markup.
    assert "[info]" in out
    assert "1 required check(s) failed: fio" in out


def test_doctor_json_lists_every_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(doctor, "run_checks", lambda: canned_checks(fio_ok=False))
    assert cli.main(["doctor", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    assert [check["name"] for check in document["checks"]] == ["root", "fio", "iperf3", "kprobes"]
    assert document["checks"][1] == {
        "name": "fio",
        "ok": False,
        "required": True,
        "detail": "not found on PATH",
        "fix": "run `sudo make setup` (installs Debian's fio)",
    }


def test_no_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "doctor" in capsys.readouterr().err


def test_unknown_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["no-such-command"])
    assert exit_info.value.code == 2


def test_python_dash_m_perfcheck_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "perfcheck", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "doctor" in result.stdout


# --- this machine ----------------------------------------------------------------------------


@pytest.mark.realbpf
def test_doctor_passes_on_this_machine_after_setup() -> None:
    if os.geteuid() != 0:
        pytest.skip("perfcheck doctor needs root to pass")
    if importlib.util.find_spec("bcc") is None:
        pytest.skip(f"bcc is not importable by {sys.executable}; run `sudo make setup`")
    result = subprocess.run(
        [sys.executable, "-m", "perfcheck", "doctor", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    document = json.loads(result.stdout)
    failed = [check for check in document["checks"] if check["required"] and not check["ok"]]
    assert result.returncode == 0, f"required checks failed (run `sudo make setup`): {failed}"
    assert document["ok"] is True
