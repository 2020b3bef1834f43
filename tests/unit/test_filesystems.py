"""Filesystem targets as plain objects: the mkfs and mount option allow-lists, the
``[target]`` table of a scenario, the journal a killed run leaves, and why a baseline of
another filesystem target is not compared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfcheck.errors import BaselineError, CapabilityError, ScenarioError
from perfcheck.run.sessions import scenario_hash
from perfcheck.stats.gate import check_comparable
from perfcheck.store.baseline import Baseline
from perfcheck.system.filesystems import (
    FILESYSTEMS,
    FilesystemSpec,
    kernel_supports,
    mkfs_options_problem,
    mount_options_problem,
    remove_leftover_mounts,
    require_filesystem,
)
from perfcheck.system.statedir import write_journal
from perfcheck.workloads.fio import FioJobFile, FioRunner
from perfcheck.workloads.scenario import load_scenario
from tests.records import make_measurement

KINDS = sorted(FILESYSTEMS)


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("ext4", []),
        ("ext4", ["-b", "4096", "-O", "^has_journal", "-E", "stride=4,lazy_itable_init=1"]),
        ("ext4", ["-J", "size=16", "-L", "scratch", "-j"]),
        ("xfs", ["-b", "size=4096", "-l", "size=16m", "-m", "crc=1,reflink=0", "-K"]),
        ("btrfs", ["-n", "16384", "-m", "single", "-d", "single", "--csum", "xxhash"]),
    ],
)
def test_mkfs_options_of_the_allow_list_pass(kind: str, options: list[str]) -> None:
    assert mkfs_options_problem(kind, options) is None


@pytest.mark.parametrize(
    ("kind", "options", "says"),
    [
        ("ext4", ["-J", "device=/dev/sdb"], "'device' is not allowed"),
        ("ext4", ["-E", "offset=4096"], "'offset' is not allowed"),
        ("ext4", ["-d", "/etc"], "'-d' is not allowed"),
        ("ext4", ["/dev/sdb"], "a further device or file"),
        ("ext4", ["-b"], "needs a value"),
        ("ext4", ["-L", "a/b"], "label"),
        ("xfs", ["-l", "logdev=/dev/sdb"], "'logdev' is not allowed"),
        ("xfs", ["-l", "size=/dev/sdb"], "only letters"),
        ("xfs", ["-p", "proto"], "'-p' is not allowed"),
        ("btrfs", ["--rootdir", "/"], "'--rootdir' is not allowed"),
        ("btrfs", ["-L", "x", "/dev/vdb"], "a further device or file"),
    ],
)
def test_mkfs_options_naming_files_or_devices_are_refused(
    kind: str, options: list[str], says: str
) -> None:
    problem = mkfs_options_problem(kind, options)
    assert problem is not None and says in problem


@given(
    kind=st.sampled_from(KINDS),
    before=st.lists(st.text(max_size=12), max_size=4),
    word=st.text(max_size=12).map(lambda t: t + "/"),
    after=st.lists(st.text(max_size=12), max_size=4),
)
def test_no_mkfs_word_with_a_slash_passes(
    kind: str, before: list[str], word: str, after: list[str]
) -> None:
    assert mkfs_options_problem(kind, [*before, word, *after]) is not None


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("ext4", ""),
        ("ext4", "data=journal"),
        ("ext4", "sync,noatime,commit=5,errors=remount-ro"),
        ("xfs", "logbsize=256k,noatime"),
        ("btrfs", "compress=zstd:3,space_cache=v2,ssd"),
    ],
)
def test_mount_options_of_the_allow_list_pass(kind: str, options: str) -> None:
    assert mount_options_problem(kind, options) is None


@pytest.mark.parametrize(
    ("kind", "options", "says"),
    [
        ("ext4", "loop", "'loop' is not allowed"),
        ("ext4", "offset=0", "'offset' is not allowed"),
        ("ext4", "journal_path=/dev/sdb", "'journal_path' is not allowed"),
        ("ext4", "errors=panic", "errors=panic is not allowed"),
        ("ext4", "data=bogus", "use one of journal"),
        ("ext4", "noatime=1", "takes no value"),
        ("ext4", "commit", "needs a plain value"),
        ("ext4", "logbsize=256k", "'logbsize' is not allowed for ext4"),
        ("xfs", "logdev=/dev/sdb", "'logdev' is not allowed"),
        ("btrfs", "device=/dev/sdb", "'device' is not allowed"),
        ("btrfs", "subvol=/", "'subvol' is not allowed"),
    ],
)
def test_harmful_mount_options_are_refused(kind: str, options: str, says: str) -> None:
    problem = mount_options_problem(kind, options)
    assert problem is not None and says in problem


@given(kind=st.sampled_from(KINDS), head=st.text(max_size=20), tail=st.text(max_size=20))
def test_no_mount_option_string_with_a_slash_passes(kind: str, head: str, tail: str) -> None:
    assert mount_options_problem(kind, f"{head}/{tail}") is not None


def test_mount_options_always_carry_nodev_and_nosuid() -> None:
    assert FilesystemSpec("ext4", (), "data=journal").mount_option_list() == [
        "data=journal",
        "nodev",
        "nosuid",
    ]
    assert FilesystemSpec("ext4", (), "nosuid").mount_option_list() == ["nosuid", "nodev"]


# -- the scenario's [target] table ---------------------------------------------------------


def write_scenario(directory: Path, target: str, name: str = "fs", kind: str = "fio") -> Path:
    (directory / "job.fio").write_text("[j]\nrw=randwrite\nbs=4k\n")
    workload = '[workload]\nkind = "fio"\njob = "job.fio"\n'
    if kind != "fio":
        workload = f'[workload]\nkind = "{kind}"\n'
    path = directory / f"{name}.toml"
    path.write_text(f"{workload}\n{target}\n")
    return path


def test_a_target_table_makes_a_filesystem_spec(tmp_path: Path) -> None:
    path = write_scenario(
        tmp_path,
        '[target]\nfilesystem = "ext4"\nmkfs_options = ["-b", "4096"]\n'
        'mount_options = "data=journal"',
    )
    assert load_scenario(path).filesystem == FilesystemSpec("ext4", ("-b", "4096"), "data=journal")
    assert load_scenario(write_scenario(tmp_path, "", "raw")).filesystem is None


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ('[target]\nfilesystem = "zfs"', "'target.filesystem': 'zfs' is not a filesystem"),
        ("[target]\nmount_options = 'sync'", "missing key 'target.filesystem'"),
        ('[target]\nfilesystem = "ext4"\nmkfs_options = "-b 4096"', "'target.mkfs_options' must"),
        ('[target]\nfilesystem = "ext4"\nmkfs_options = [4096]', "'target.mkfs_options[0]'"),
        (
            '[target]\nfilesystem = "ext4"\nmkfs_options = ["-J", "device=/dev/vdb"]',
            "'target.mkfs_options': mkfs.ext4 option -J 'device' is not allowed",
        ),
        (
            '[target]\nfilesystem = "ext4"\nmount_options = "loop"',
            "'target.mount_options': mount option 'loop' is not allowed",
        ),
        ('[target]\nfilesystem = "ext4"\nmount = "sync"', "unknown key 'target.mount'"),
    ],
)
def test_a_bad_target_table_is_one_line_naming_file_and_key(
    tmp_path: Path, target: str, says: str
) -> None:
    path = write_scenario(tmp_path, target)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message


def test_a_network_scenario_has_no_target_table(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, '[target]\nfilesystem = "ext4"', kind="iperf3")
    with pytest.raises(ScenarioError, match=r"\[target\] applies to disk scenarios"):
        load_scenario(path)


def test_the_scenario_hash_covers_filesystem_and_options(tmp_path: Path) -> None:
    hashes = set()
    for number, target in enumerate(
        [
            "",
            '[target]\nfilesystem = "ext4"',
            '[target]\nfilesystem = "ext4"\nmount_options = "data=journal"',
            '[target]\nfilesystem = "ext4"\nmkfs_options = ["-b", "1024"]',
        ]
    ):
        directory = tmp_path / str(number)
        directory.mkdir()
        hashes.add(scenario_hash(load_scenario(write_scenario(directory, target))))
    assert len(hashes) == 4


# -- what is compared --------------------------------------------------------------------


def measurement_on(facts: dict[str, str]) -> Baseline:
    return Baseline.record(make_measurement("fs", environment=dict(facts)), "m")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, FilesystemSpec("ext4").facts()),
        (FilesystemSpec("ext4").facts(), FilesystemSpec("xfs").facts()),
        (FilesystemSpec("ext4").facts(), FilesystemSpec("ext4", (), "sync").facts()),
        (FilesystemSpec("ext4").facts(), FilesystemSpec("ext4", ("-b", "1024")).facts()),
    ],
)
def test_a_baseline_of_another_filesystem_target_is_not_compared(
    before: dict[str, str], after: dict[str, str]
) -> None:
    baseline = measurement_on(before)
    with pytest.raises(BaselineError, match="not comparable: re-record"):
        check_comparable("fs", measurement_on(after).measurement, baseline)


def test_the_same_filesystem_target_is_compared_whatever_the_kernel_reports() -> None:
    facts = FilesystemSpec("ext4", (), "noatime").facts()
    now = measurement_on({**facts, "target.filesystem.mounted": "rw (rw,data=journal)"})
    check_comparable("fs", now.measurement, measurement_on(facts))


# -- fio in the mount ------------------------------------------------------------------------


def test_fio_works_in_the_mount_point_and_may_make_its_files_there(tmp_path: Path) -> None:
    job = FioJobFile(path=tmp_path / "j.fio", text="[j]\n", rw_modes=frozenset({"randwrite"}))
    cmd = FioRunner(
        job, Path("/dev/loop7"), True, directory=Path("/run/perfcheck/mnt-1-ab")
    ).command(tmp_path / "j.fio", 1.0)
    assert "--directory=/run/perfcheck/mnt-1-ab" in cmd
    assert "--allow_file_create=1" in cmd
    assert not any(word.startswith("--filename=") for word in cmd)
    raw = FioRunner(job, Path("/dev/loop7"), True).command(tmp_path / "j.fio", 1.0)
    assert "--filename=/dev/loop7" in raw and "--allow_file_create=0" in raw


# -- the machine ------------------------------------------------------------------------------


def test_kernel_support_is_read_from_proc_filesystems_or_the_modules(tmp_path: Path) -> None:
    proc = tmp_path / "filesystems"
    proc.write_text("nodev\tsysfs\n\text4\n")
    modules = tmp_path / "modules"
    (modules / os.uname().release).mkdir(parents=True)
    (modules / os.uname().release / "modules.dep").write_text(
        "kernel/fs/xfs/xfs.ko.xz: kernel/lib/libcrc32c.ko.xz\n"
    )
    assert kernel_supports("ext4", proc, modules)
    assert kernel_supports("xfs", proc, modules)
    assert not kernel_supports("btrfs", proc, modules)


@pytest.mark.parametrize(("kind", "package"), [("ext4", "e2fsprogs"), ("xfs", "xfsprogs")])
def test_a_missing_mkfs_names_its_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str, package: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CapabilityError) as err:
        require_filesystem(kind, "s.toml: [target] filesystem")
    assert str(err.value) == (
        f"s.toml: [target] filesystem: mkfs.{kind} not found; install it:"
        f" `apt-get install {package}`"
    )


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_runs_unmounted_mount_point_and_journal_are_removed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    pid = dead_pid()
    mount_point = state / f"mnt-{pid}-0123abcd"
    mount_point.mkdir(mode=0o700)
    journal = state / f"{mount_point.name}.json"
    write_journal(
        journal,
        {"mount_point": str(mount_point), "device": "/dev/loop9", "dev": "7:9", "mount_id": 1},
    )
    stray = state / f"mnt-{pid}-fedcba98"  # killed before its journal was written
    stray.mkdir(mode=0o700)
    lines = remove_leftover_mounts(state)
    assert lines == [f"removed {mount_point}", f"removed {stray}"]
    assert sorted(state.iterdir()) == []


def test_a_journal_perfcheck_did_not_write_is_left_alone(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    pid = dead_pid()
    elsewhere = state / f"mnt-{pid}-0123abcd.json"
    elsewhere.write_text(json.dumps({"mount_point": "/home", "device": "/dev/vda", "dev": "8:0"}))
    elsewhere.chmod(0o600)
    garbage = state / f"mnt-{pid}-11111111.json"
    garbage.write_text("[]")
    garbage.chmod(0o600)
    lines = remove_leftover_mounts(state)
    assert lines == [
        f"skipped {elsewhere}: it names another mount point; perfcheck did not write it",
        f"skipped {garbage}: not a journal of a mount; perfcheck did not write it",
    ]
    assert elsewhere.exists() and garbage.exists()


def test_a_live_runs_mount_is_not_touched(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    mount_point = state / f"mnt-{os.getpid()}-0123abcd"
    mount_point.mkdir(mode=0o700)
    write_journal(
        state / f"{mount_point.name}.json",
        {"mount_point": str(mount_point), "device": "/dev/loop9", "dev": "7:9"},
    )
    assert remove_leftover_mounts(state) == []
    assert mount_point.exists()


def test_a_filesystem_on_a_users_target_needs_allow_destructive(tmp_path: Path) -> None:
    from perfcheck.errors import TargetError
    from perfcheck.run.resources import RunResources
    from perfcheck.run.settings import HarnessSettings

    scenario = load_scenario(write_scenario(tmp_path, '[target]\nfilesystem = "ext4"'))
    settings = HarnessSettings(baseline_dir=tmp_path, target=Path("/dev/vdz"))
    resources = RunResources(settings)
    assert resources.mount_point is None
    with pytest.raises(TargetError) as err:
        resources.measure(scenario)
    assert str(err.value) == (
        f"{scenario.path}: [target] filesystem = 'ext4' makes a filesystem on"
        " --perfcheck-target /dev/vdz, destroying what it holds; pass"
        " --perfcheck-allow-destructive if it may be"
    )
