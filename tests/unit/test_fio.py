"""fio job files and fio's json+ output, read robustly; and a real fio run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfcheck.errors import CapabilityError, ScenarioError, TargetError, WorkloadError
from perfcheck.system.processes import pid_alive
from perfcheck.workloads.fio import (
    FioJobFile,
    FioRunner,
    fio_filename,
    kill_processes_with,
    load_job_file,
    parse_fio_output,
    require_fio,
    run_in_own_group,
    workload_option_problem,
)
from tests.realcaps import requires_fio


def assert_job_refused(tmp_path: Path, text: str, match: str) -> None:
    """A job file of ``text`` is refused with a ScenarioError matching ``match``."""
    job = tmp_path / "j.fio"
    job.write_text(text)
    with pytest.raises(ScenarioError, match=match):
        load_job_file(job)


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


@pytest.mark.realfio
@requires_fio
def test_job_file_options_owned_by_the_harness_are_refused(tmp_path: Path) -> None:
    assert_job_refused(
        tmp_path,
        "[j]\nrw=randread\nfilename=/dev/sda\n",
        r"j.fio:3: fio option 'filename' is set by perfcheck",
    )


@pytest.mark.realfio
@requires_fio
@pytest.mark.parametrize(
    ("rw", "writes"),
    [
        ("randread", False),
        ("read", False),
        ("randread:8", False),
        ("randwrite", True),
        ("randrw", True),
        ("trim", True),
        ("trimwrite", True),
        ("randtrimwrite", True),
        ("randwrite  ; comment", True),
        ("randwrite#", True),
    ],
)
def test_write_detection_is_fio_s_own(tmp_path: Path, rw: str, writes: bool) -> None:
    job = tmp_path / "j.fio"
    job.write_text(f"; comment\n[global]\nbs=4k\n[j]\nrw={rw}\n")
    assert load_job_file(job).writes is writes
    job.write_text(f"[j]\nreadwrite={rw}\n")  # fio's other name for rw
    assert load_job_file(job).writes is writes


@pytest.mark.realfio
@requires_fio
def test_default_rw_is_read_and_options_count(tmp_path: Path) -> None:
    job = tmp_path / "j.fio"
    job.write_text("[j]\nbs=4k\n")
    assert not load_job_file(job).writes
    assert load_job_file(job, {"rw": "randwrite"}).writes
    assert load_job_file(job, {"readwrite": "trim"}).writes
    # Every rw fio reads counts, even one a job's own rw overrides: the safe answer.
    job.write_text("[j]\nrw=read\n")
    assert load_job_file(job, {"rw": "randwrite"}).writes


@pytest.mark.realfio
@requires_fio
@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("include /etc/other.fio", "j.fio:3: fio's include is not allowed"),
        ("  include\tother.fio ; x", "j.fio:3: fio's include is not allowed"),
        ("size=${SIZE}", "j.fio:3: fio's $ substitution is not allowed"),
        ("size=$mb_memory", "j.fio:3: fio's $ substitution is not allowed"),
        ("bs=4k\x01", "j.fio:3: control character U+0001"),
        ("unlink=1", "j.fio:3: fio option 'unlink' is not allowed"),
        ("ioengine=external:/tmp/x.so", "j.fio:3: fio ioengine 'external:/tmp/x.so' is not"),
        ("ioengine = /tmp/x.so # comment", "j.fio:3: fio ioengine '/tmp/x.so' is not allowed"),
        ("ioengine=filedelete", "j.fio:3: fio ioengine 'filedelete' is not allowed"),
        ("iomem=mmap:/tmp/buffers", "j.fio:3: fio option 'iomem=mmap:/tmp/buffers' is not"),
        ("timeout=10", "j.fio:3: fio option 'timeout' is set by perfcheck"),
        ("RW=randwrite", "j.fio:3: fio option 'RW' is not allowed"),
        ("x" * 4097, "j.fio:3: line is longer than 4096 characters"),
    ],
)
def test_job_files_are_refused_before_fio_reads_them(
    tmp_path: Path, line: str, message: str
) -> None:
    job = tmp_path / "j.fio"
    job.write_text(f"[j]\nrw=randread\n{line}\n")
    with pytest.raises(ScenarioError) as info:
        load_job_file(job)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.realfio
@requires_fio
def test_what_fio_reads_is_checked_again(tmp_path: Path) -> None:
    # fio's reading decides: a job it cannot parse is refused with fio's own words.
    assert_job_refused(
        tmp_path, "[j]\nrw=sideways\n", r"j.fio: fio cannot read the job \(.*rw=sideways\)"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("filename", "/dev/sda", "fio option 'filename' is set by perfcheck"),
        ("output", "/etc/passwd", "fio option 'output' is not allowed"),
        ("outp", "/etc/passwd", "fio option 'outp' is not allowed"),  # fio's abbreviations
        ("exec_prerun", "touch /x", "fio option 'exec_prerun' is not allowed"),
        ("ioengine", "filecreate", "fio ioengine 'filecreate' is not allowed"),
        ("bs", "4k\n--filename=/dev/sda", "'bs' must be one line"),
        ("name", "second", "'name' would start a job of its own"),
    ],
)
def test_workload_options_are_checked_by_exact_name(name: str, value: str, message: str) -> None:
    problem = workload_option_problem(name, value)
    assert problem is not None and message in problem
    assert workload_option_problem("iodepth", "4") is None
    assert workload_option_problem("readwrite", "randwrite") is None


@pytest.mark.realfio
@requires_fio
def test_workload_option_errors_name_the_scenario_file(tmp_path: Path) -> None:
    job = tmp_path / "j.fio"
    job.write_text("[j]\nrw=randread\n")
    toml = tmp_path / "s.toml"
    with pytest.raises(ScenarioError) as info:
        load_job_file(job, {"filename": "/dev/sda"}, toml)
    assert str(info.value).startswith(f"{toml}: [workload.options]: fio option 'filename'")


def test_target_paths_are_spelled_as_fio_reads_them(tmp_path: Path) -> None:
    assert fio_filename(Path("/dev/loop9")) == "/dev/loop9"
    by_path = Path("/dev/disk/by-path/pci-0000:00:04.0-scsi-0:0:0:0")
    assert fio_filename(by_path) == r"/dev/disk/by-path/pci-0000\:00\:04.0-scsi-0\:0\:0\:0"
    # fio drops a leading colon unless escaped; relative paths would follow fio's cwd.
    assert fio_filename(tmp_path / ":x") == f"{tmp_path}/\\:x"
    assert fio_filename(Path("rel")) == f"{Path.cwd()}/rel"
    for bad in ("/tmp/a;b", "/tmp/a#b", "/tmp/a ", "/tmp/a\nb"):
        with pytest.raises(TargetError, match="fio cannot name a file") as info:
            fio_filename(Path(bad))
        assert "\n" not in str(info.value)


def test_fio_runs_read_only_unless_the_target_may_be_written(tmp_path: Path) -> None:
    job = FioJobFile(tmp_path / "j.fio", "[j]\n", frozenset({"read"}), {"iodepth": "4"})
    jobfile = tmp_path / "run" / "j.fio"
    cmd = FioRunner(job, Path("/dev/disk/a:b")).command(jobfile, 1.5)
    assert cmd[1] == "--readonly"  # before any option fio checks against it
    assert r"--filename=/dev/disk/a\:b" in cmd and "--allow_file_create=0" in cmd
    assert "--runtime=1500ms" in cmd and "--time_based=1" in cmd
    assert cmd.index("--iodepth=4") < cmd.index(str(jobfile)) == len(cmd) - 1
    writable = FioRunner(job, Path("/dev/loop9"), allow_writes=True).command(jobfile, 1.5)
    assert "--readonly" not in writable


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
    job.write_text("[bad]\nrw=read\n")
    with pytest.raises(WorkloadError) as info:  # no such target, and fio may not create one
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
