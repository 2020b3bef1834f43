"""A scenario from a pull request cannot damage the host beyond the scratch device.

Each test is an attack through a scenario file (its fio job, its ``[workload.options]``)
or a target path, run for real: fio on a 64 MiB ext4 image on a loop device, or on a
file, through the harness as ``pytest --perfcheck`` runs it. Damage is looked for as a
changed sha256, an ``fsck.ext4 -n`` complaint, or a file created, grown or deleted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from perfcheck.errors import PerfcheckError, ScenarioError, TargetError
from perfcheck.run.harness import Harness
from perfcheck.run.settings import HarnessSettings
from perfcheck.workloads.scenario import load_scenario
from tests.guarded import Ext4Device, ext4_device, sha256
from tests.realcaps import requires_fio

pytestmark = [pytest.mark.realfio, requires_fio]


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[Ext4Device]:
    with ext4_device(tmp_path) as dev:
        yield dev


def run_scenario(
    directory: Path,
    job: str,
    target: Path,
    options: str = "",
    allow_destructive: bool = False,
) -> None:
    """Measure a scenario of ``job`` (and ``[workload.options]`` lines) on ``target`` as a
    perfcheck run does: three short rounds, no probes."""
    scenarios = directory / "scenarios"
    scenarios.mkdir(exist_ok=True)
    (scenarios / "attack.fio").write_text(job)
    toml = '[workload]\nkind = "fio"\njob = "attack.fio"\n'
    if options:
        toml += f"[workload.options]\n{options}\n"
    toml += "[rounds]\ncount = 3\nwarmup = 0\nseconds = 0.5\n"
    (scenarios / "attack.toml").write_text(toml)
    scenario = load_scenario(scenarios / "attack.toml")
    settings = HarnessSettings(
        baseline_dir=directory / "baselines",
        target=target,
        allow_destructive=allow_destructive,
        seconds=0.2,
        tune=False,
    )
    harness = Harness(settings)
    try:
        harness.measure(scenario)
    finally:
        harness.close()


def refused(directory: Path, job: str, target: Path, options: str = "") -> str:
    """The one-line error that stops the scenario."""
    with pytest.raises(PerfcheckError) as info:
        run_scenario(directory, job, target, options)
    message = str(info.value)
    assert "\n" not in message
    return message


READ = "[attack]\nrw=randread\nbs=4k\ndirect=1\n"

# -- the destructive-write guard -------------------------------------------------------


def test_randtrimwrite_is_a_write(tmp_path: Path, ext4: Ext4Device) -> None:
    job = "[attack]\nrw=randtrimwrite\nbs=4k\n"
    message = refused(tmp_path, job, ext4.device)
    assert "refusing to write, blkid finds ext4 on it" in message
    ext4.assert_intact()


@pytest.mark.parametrize("comment", ["; comment", "# comment", ";", "#x"])
def test_an_inline_comment_does_not_hide_a_write(
    tmp_path: Path, ext4: Ext4Device, comment: str
) -> None:
    job = f"[attack]\nrw=randwrite {comment}\nbs=4k\n"
    assert "refusing to write" in refused(tmp_path, job, ext4.device)
    ext4.assert_intact()


def test_an_included_file_is_refused(tmp_path: Path, ext4: Ext4Device) -> None:
    other = tmp_path / "other.fio"
    other.write_text("rw=randwrite\n")
    message = refused(tmp_path, f"[attack]\nbs=4k\ninclude {other}\n", ext4.device)
    assert "attack.fio:3: fio's include is not allowed" in message
    ext4.assert_intact()


def test_an_included_filename_cannot_retarget_fio(tmp_path: Path, ext4: Ext4Device) -> None:
    # The target is a file that may be read; the included file aims writes at the ext4.
    readable = tmp_path / "readable"
    readable.write_bytes(b"r" * (1 << 20))
    other = tmp_path / "other.fio"
    other.write_text(f"filename={ext4.device}\nrw=write\n")
    message = refused(tmp_path, f"[attack]\nbs=4k\ninclude {other}\n", readable)
    assert "include is not allowed" in message
    ext4.assert_intact()


def test_a_write_mode_in_workload_options_is_a_write(tmp_path: Path, ext4: Ext4Device) -> None:
    message = refused(tmp_path, "[attack]\nbs=4k\n", ext4.device, 'rw = "randwrite"')
    assert "refusing to write, blkid finds ext4 on it" in message
    ext4.assert_intact()


@pytest.mark.parametrize("length", [8190, 8191, 8192, 8193])
def test_a_long_line_cannot_hide_an_option(tmp_path: Path, ext4: Ext4Device, length: int) -> None:
    # fio reads lines in pieces of 8191 characters, each piece a line of its own.
    job = "[attack]\nbs=4k\n#" + "x" * (length - 1) + "rw=randwrite\n"
    message = refused(tmp_path, job, ext4.device)
    assert "attack.fio:3: line is longer than" in message
    ext4.assert_intact()


def test_a_colon_in_the_target_path_is_part_of_its_name(
    tmp_path: Path, ext4: Ext4Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fio splits filename= at ':', so "data:victim" would also write ./victim: the ext4.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    (cwd / "victim").symlink_to(ext4.device)
    target = tmp_path / "data:victim"
    target.write_bytes(b"\0" * (4 << 20))
    job = "[attack]\nrw=randwrite\nbs=4k\n"
    run_scenario(tmp_path, job, target, allow_destructive=True)
    ext4.assert_intact()
    assert not (tmp_path / "data").exists()
    assert target.stat().st_size == 4 << 20


def test_a_colon_in_a_device_path_reaches_the_device(tmp_path: Path, ext4: Ext4Device) -> None:
    # Device paths hold colons (/dev/disk/by-path/pci-0000:00:04.0); reading works.
    link = tmp_path / "pci-0000:00:04.0"
    link.symlink_to(ext4.device)
    run_scenario(tmp_path, READ, link)
    ext4.assert_intact()


@pytest.mark.parametrize("name", ["a;b", "a#b", "trailing "])
def test_a_target_path_fio_cannot_name_is_refused(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    target.write_bytes(b"x" * 4096)
    with pytest.raises(TargetError) as info:
        run_scenario(tmp_path, READ, target)
    assert "fio cannot name" in str(info.value) and "symlink" in str(info.value)


# -- read workloads on an existing file --------------------------------------------------


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    path = tmp_path / "precious"
    path.write_bytes(b"p" * 4096)
    return path


def assert_untouched(path: Path) -> None:
    assert path.exists(), f"{path} was deleted"
    assert path.read_bytes() == b"p" * 4096, f"{path} was changed"


def test_size_does_not_grow_a_file_target(tmp_path: Path, precious: Path) -> None:
    message = refused(tmp_path, READ + "size=8m\n", precious)
    assert "read-only" in message
    assert_untouched(precious)


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("unlink=1", "unlink"),
        ("unlink_each_loop=1", "unlink_each_loop"),
        ("ioengine=filedelete", "filedelete"),
        ("fallocate=truncate", "fallocate"),
        ("create_only=1", "create_only"),
    ],
)
def test_a_read_cannot_delete_or_truncate_the_target(
    tmp_path: Path, precious: Path, line: str, option: str
) -> None:
    message = refused(tmp_path, READ + line + "\n", precious)
    assert f"attack.fio:5: fio {'ioengine' if option == 'filedelete' else 'option'}" in message
    assert option in message
    assert_untouched(precious)


@pytest.mark.parametrize(
    "option",
    ["write_iolog", "write_bw_log", "write_lat_log", "write_iops_log", "write_hist_log", "output"],
)
def test_options_cannot_overwrite_other_files(tmp_path: Path, precious: Path, option: str) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"p" * 4096)
    message = refused(tmp_path, READ, precious, f'{option} = "{victim}"')
    assert "attack.toml" in message and option in message
    assert_untouched(victim)
    with pytest.raises(ScenarioError):  # and from the job file too
        run_scenario(tmp_path, READ + f"{option}={victim}\n", precious)
    assert_untouched(victim)


@pytest.mark.parametrize("option", ["exec_prerun", "exec_postrun"])
def test_a_scenario_cannot_run_commands(tmp_path: Path, precious: Path, option: str) -> None:
    pwned = tmp_path / "pwned"
    message = refused(tmp_path, READ + f"{option}=touch {pwned}\n", precious)
    assert f"fio option '{option}' is not allowed" in message
    refused(tmp_path, READ, precious, f'{option} = "touch {pwned}"')
    assert not pwned.exists()


def test_timeout_is_reserved_like_runtime(tmp_path: Path, precious: Path) -> None:
    message = refused(tmp_path, READ + "timeout=3600\n", precious)
    assert "'timeout' is set by perfcheck" in message


def test_filename_in_workload_options_names_the_scenario_file(
    tmp_path: Path, precious: Path, ext4: Ext4Device
) -> None:
    message = refused(tmp_path, READ, precious, f'filename = "{ext4.device}"')
    assert "attack.toml" in message and "attack.fio" not in message
    assert "'filename' is set by perfcheck" in message
    ext4.assert_intact()


# -- what must keep working ------------------------------------------------------------


def test_a_read_of_a_file_target_leaves_it_as_it_was(tmp_path: Path, precious: Path) -> None:
    run_scenario(tmp_path, "[attack]\nrw=randread\nbs=4k\n", precious)
    assert_untouched(precious)


def test_writes_with_consent_reach_the_target_only(tmp_path: Path, ext4: Ext4Device) -> None:
    run_scenario(tmp_path, "[attack]\nrw=randwrite\nbs=4k\ndirect=1\n", ext4.device, "", True)
    assert sha256(ext4.image) != ext4.digest
