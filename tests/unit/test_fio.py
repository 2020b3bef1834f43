"""fio job files and fio's json+ output, read robustly; and a real fio run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfcheck.errors import CapabilityError, ScenarioError, WorkloadError
from perfcheck.system.processes import pid_alive
from perfcheck.workloads.fio import (
    FioJobFile,
    FioRunner,
    kill_processes_with,
    load_job_file,
    parse_fio_output,
    require_fio,
    run_in_own_group,
)
from tests.realcaps import requires_fio


def fio_json(**directions: dict[str, object]) -> dict[str, object]:
    job: dict[str, object] = {"jobname": "j"}
    for name in ("read", "write", "trim"):
        job[name] = directions.get(
            name, {"total_ios": 0, "io_bytes": 0, "iops": 0.0, "bw_bytes": 0}
        )
    return {"fio version": "fio-3.33", "jobs": [job]}


READ = {
    "total_ios": 3,
    "io_bytes": 12288,
    "iops": 1500.0,
    "bw_bytes": 6144000,
    "clat_ns": {"bins": {"8640": 1, "9152": 2}},
}


def test_text_before_the_json_is_ignored() -> None:
    text = "fio: some warning\nnote: more text {not json}\n" + json.dumps(fio_json(read=READ))
    result = parse_fio_output(text)
    assert result.version == "fio-3.33"
    assert result.total_ios == 3 and result.total_bytes == 12288
    assert result.histograms()["fio.clat.read"].total == 3
    assert result.scalars() == {"fio.iops.read": 1500.0, "fio.bw_bytes.read": 6144000.0}
    assert "fio.clat.write" not in result.histograms()


def test_jobs_are_summed() -> None:
    data = fio_json(read=READ)
    data["jobs"] = [data["jobs"][0], data["jobs"][0]]  # type: ignore[index]
    result = parse_fio_output(json.dumps(data))
    assert result.directions["read"].ios == 6
    assert result.directions["read"].clat.total == 6
    assert result.directions["read"].iops == 3000.0


@pytest.mark.parametrize(
    "text",
    ["", "fio: engine libaio not loadable\n", '{"jobs": []}', '{"jobs": [{"read": {}}]}', "{oops"],
)
def test_unreadable_output_is_a_one_line_workload_error(text: str) -> None:
    with pytest.raises(WorkloadError) as info:
        parse_fio_output(text, source="scenarios/x.fio")
    message = str(info.value)
    assert message.startswith("scenarios/x.fio: cannot read fio's JSON output")
    assert "\n" not in message


def test_job_file_options_owned_by_the_harness_are_refused(tmp_path: Path) -> None:
    job = tmp_path / "j.fio"
    job.write_text("[j]\nrw=randread\nfilename=/dev/sda\n")
    with pytest.raises(ScenarioError, match=r"j.fio:3: fio option 'filename' is set by perfcheck"):
        load_job_file(job)


@pytest.mark.parametrize(
    ("rw", "writes"),
    [("randread", False), ("read", False), ("randwrite", True), ("randrw", True), ("trim", True)],
)
def test_write_detection(tmp_path: Path, rw: str, writes: bool) -> None:
    job = tmp_path / "j.fio"
    job.write_text(f"; comment\n[global]\nbs=4k\n[j]\nrw={rw}\n")
    assert load_job_file(job).writes is writes


def test_default_rw_is_read(tmp_path: Path) -> None:
    job = tmp_path / "j.fio"
    job.write_text("[j]\nbs=4k\n")
    assert not load_job_file(job).writes


def test_extra_options_cannot_retarget_fio(tmp_path: Path) -> None:
    job = FioJobFile(tmp_path / "j.fio", "[j]\n", frozenset({"read"}))
    with pytest.raises(ScenarioError, match=r"'filename' in \[workload.options\]"):
        FioRunner(job, Path("/dev/null"), {"filename": "/dev/sda"})


def test_job_text_puts_target_and_runtime_first(tmp_path: Path) -> None:
    job = FioJobFile(tmp_path / "j.fio", "[j]\nrw=read\n", frozenset({"read"}))
    text = FioRunner(job, Path("/dev/loop9")).job_text(1.5)
    assert text.index("filename=/dev/loop9") < text.index("[j]")
    assert "runtime=1500ms" in text and "time_based=1" in text


def test_missing_fio_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CapabilityError, match=r"fio: not found on PATH; install it with `apt-get"):
        require_fio()


@pytest.mark.realfio
@requires_fio
def test_real_fio_on_a_file(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_bytes(b"\0" * (8 << 20))
    job = tmp_path / "seq.fio"
    job.write_text("[seq]\nrw=read\nbs=64k\nioengine=psync\n")
    result = FioRunner(load_job_file(job), target).run(0.3)
    read = result.directions["read"]
    assert read.ios > 0 and read.clat.total == read.ios
    assert read.io_bytes == read.ios * 65536
    assert result.version.startswith("fio-")


@pytest.mark.realfio
@requires_fio
def test_real_fio_failure_is_a_one_line_error(tmp_path: Path) -> None:
    job = tmp_path / "bad.fio"
    job.write_text("[bad]\nrw=read\nioengine=no-such-engine\n")
    with pytest.raises(WorkloadError) as info:
        FioRunner(load_job_file(job), tmp_path / "data").run(0.2)
    assert "fio exited" in str(info.value) and "\n" not in str(info.value)


#: A workload that forks a job which leaves the process group (as fio's jobs do with
#: setsid) and then waits forever, holding the output pipes, like a fio job forked just
#: before its parent was killed.
ESCAPING_JOB = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    open(sys.argv[1], "w").write(str(os.getpid()))
    time.sleep(30)
time.sleep(30)
"""


def test_a_timed_out_workload_and_its_escaped_jobs_are_all_killed(tmp_path: Path) -> None:
    marker = str(tmp_path / "perfcheck-fio-test-marker")
    job_pid_file = tmp_path / "job.pid"
    cmd = [sys.executable, "-c", ESCAPING_JOB, str(job_pid_file), marker]
    started = time.monotonic()
    returncode, _, _ = run_in_own_group(cmd, timeout=1.0, marker=marker)
    assert returncode is None
    # Without the marker, communicate() would wait out the escaped job's 30 s.
    assert time.monotonic() - started < 15
    job = int(job_pid_file.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(job)


def test_kill_processes_with_spares_others(tmp_path: Path) -> None:
    marker = f"perfcheck-test-{tmp_path.name}"
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert kill_processes_with(marker) == [victim.pid]
        assert victim.wait(timeout=10) == -signal.SIGKILL
        assert bystander.poll() is None
    finally:
        for proc in (victim, bystander):
            proc.kill()
            proc.wait()
