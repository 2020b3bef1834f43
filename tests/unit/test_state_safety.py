"""What another local user plants in world-writable /dev/shm never makes perfcheck act as root.

Each test plants as ``nobody`` what an attacker would (a journal, a symlink or directory
named like a leftover, an absurd pid) in a sticky world-writable directory like /dev/shm,
then runs perfcheck's clean-up as root and checks that nothing outside perfcheck's own
state was touched, and that each planted thing is named in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from perfcheck.errors import PerfcheckError
from perfcheck.system import knobs, lock, statedir, targets
from perfcheck.system.lock import HostLock
from perfcheck.system.statedir import StateDirError, private_dir
from perfcheck.system.targets import SCRATCH_MARKER, remove_leftover_scratch

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("losetup") is None,
    reason="needs root, setpriv and losetup (util-linux) to plant files as another user",
)


def as_nobody(*cmd: str) -> None:
    subprocess.run([*AS_NOBODY, *cmd], check=True, capture_output=True, timeout=30)


def dead_pid() -> int:
    """The pid of a process that has just ended (reused only after pid_max more forks)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A sticky, world-writable directory in /dev/shm: what /dev/shm is, on a small scale
    (so planted names stay out of the way of real runs on this host)."""
    path = Path(tempfile.mkdtemp(prefix="statecheck-", dir="/dev/shm"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def journal_dirs(shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Knob journals are kept in a private state directory, and looked for in
    ``shared_dir`` too, where runs before the upgrade left them."""
    (tmp_path / "state").mkdir(mode=0o700)
    monkeypatch.setattr(knobs, "JOURNAL_DIR", tmp_path / "state")
    monkeypatch.setattr(knobs, "LEGACY_JOURNAL_DIR", shared_dir)


@pytest.fixture
def victim_loop() -> Iterator[tuple[Path, str]]:
    """A loop device perfcheck did not create, over a root-owned file in /dev/shm."""
    backing = Path("/dev/shm") / f"statecheck-victim-{secrets.token_hex(4)}.img"
    with open(backing, "xb") as fh:
        os.posix_fallocate(fh.fileno(), 0, 4 << 20)
    backing.chmod(0o644)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield backing, dev
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False)
        backing.unlink(missing_ok=True)


def attached(dev: str, backing: Path) -> bool:
    out = subprocess.run(
        ["losetup", "--noheadings", "--output", "BACK-FILE", dev],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return str(backing) in out


@pytest.mark.usefixtures("journal_dirs")
def test_journal_planted_by_nobody_in_dev_shm_is_skipped(shared_dir: Path) -> None:
    """The attack of issue 20: a journal in /dev/shm (where perfcheck kept them, and still
    looks for those of runs killed before an upgrade) whose key leaves /sys with ``..``."""
    target = shared_dir / f"created-as-root-{secrets.token_hex(4)}"
    journal = shared_dir / f"perfcheck-scratch-{dead_pid()}-knobs.json"
    content = json.dumps({f"/sys/../{target.relative_to('/')}": "owned"})
    as_nobody("sh", "-c", f"printf '%s' '{content}' > {journal}")
    lines = knobs.restore_leftover_knobs()
    assert not target.exists()
    assert lines == [f"skipped {journal}: owned by uid 65534, not 0; perfcheck did not write it"]


@pytest.mark.usefixtures("journal_dirs")
def test_root_owned_journal_with_dot_dot_is_skipped_too(shared_dir: Path) -> None:
    target = shared_dir / f"created-as-root-{secrets.token_hex(4)}"
    journal = shared_dir / f"perfcheck-scratch-{dead_pid()}-knobs.json"
    journal.write_text(json.dumps({f"/sys/../{target.relative_to('/')}": "owned"}))
    [line] = knobs.restore_leftover_knobs()
    assert not target.exists()
    assert line.startswith(f"skipped {journal}: /sys/../") and f"resolves to {target}" in line


def test_symlink_named_like_a_leftover_image_detaches_nothing(
    shared_dir: Path, victim_loop: tuple[Path, str]
) -> None:
    backing, dev = victim_loop
    planted = shared_dir / f"{SCRATCH_MARKER}{dead_pid()}-0123abcd.img"
    as_nobody("ln", "-s", str(backing), str(planted))
    lines = remove_leftover_scratch(shared_dir)
    assert attached(dev, backing), "clean-up detached a loop device perfcheck did not create"
    assert lines == [f"skipped {planted}: not a regular file, not a scratch file perfcheck made"]
    assert backing.exists()


def test_hard_link_named_like_a_leftover_image_detaches_nothing(
    shared_dir: Path, victim_loop: tuple[Path, str]
) -> None:
    """Where protected_hardlinks is 0 anyone can link root's file under a scratch name."""
    backing, dev = victim_loop
    planted = shared_dir / f"{SCRATCH_MARKER}{dead_pid()}-0123abcd.img"
    os.link(backing, planted)
    [line] = remove_leftover_scratch(shared_dir)
    assert attached(dev, backing)
    assert line.endswith("hard-linked elsewhere, not a scratch file perfcheck made")


def test_directory_of_nobody_named_like_a_scratch_directory_is_skipped(
    shared_dir: Path, victim_loop: tuple[Path, str]
) -> None:
    backing, dev = victim_loop
    name = f"{SCRATCH_MARKER}{dead_pid()}-0123abcd"
    as_nobody("mkdir", "-m", "700", str(shared_dir / name))
    as_nobody("ln", "-s", str(backing), str(shared_dir / name / f"{name}.img"))
    lines = remove_leftover_scratch(shared_dir)
    assert attached(dev, backing)
    assert lines == [
        f"skipped {shared_dir / name}: owned by uid 65534, not 0, not a scratch directory"
        " perfcheck made"
    ]


def test_malformed_leftover_names_are_skipped_with_one_line_each(shared_dir: Path) -> None:
    """A directory named like an image, a 20-digit pid: each crashed the clean-up."""
    as_nobody("mkdir", str(shared_dir / f"{SCRATCH_MARKER}{dead_pid()}-0123abcd.img"))
    huge = "9" * 20
    as_nobody("touch", str(shared_dir / f"{SCRATCH_MARKER}{huge}-0123abcd.img"))
    as_nobody("touch", str(shared_dir / f"perfcheck-scratch-{huge}-knobs.json"))
    lines = remove_leftover_scratch(shared_dir)
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "not a regular file" in lines[0]
    assert lines[1].endswith(f"{huge} is not a process id")


@pytest.mark.usefixtures("journal_dirs")
def test_twenty_digit_pid_in_a_journal_name_is_skipped(shared_dir: Path) -> None:
    huge = "9" * 20
    as_nobody("touch", str(shared_dir / f"perfcheck-scratch-{huge}-knobs.json"))
    assert knobs.restore_leftover_knobs() == [
        f"skipped {shared_dir}/perfcheck-scratch-{huge}-knobs.json: {huge} is not a process id"
    ]


@contextlib.contextmanager
def image_on_a_loop_device(image: Path) -> Iterator[str]:
    """A new 4 MiB ``image`` attached to a loop device, as a killed run leaves it; the
    device is detached afterwards if the code under test did not."""
    with open(image, "xb") as fh:
        os.posix_fallocate(fh.fileno(), 0, 4 << 20)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "--detach", dev], check=False, capture_output=True)


def test_a_killed_runs_scratch_directory_is_removed_and_its_device_detached(
    shared_dir: Path,
) -> None:
    run_dir = shared_dir / f"{SCRATCH_MARKER}{dead_pid()}-0123abcd"
    run_dir.mkdir(mode=0o700)
    image = run_dir / f"{run_dir.name}.img"
    with image_on_a_loop_device(image) as dev:
        lines = remove_leftover_scratch(shared_dir)
        assert not attached(dev, image) and not run_dir.exists()
        assert lines[-1] == f"removed {image}" and lines[0].startswith(f"detached {dev}")


def test_a_legacy_scratch_file_of_a_killed_run_is_removed(shared_dir: Path) -> None:
    """A run killed before the upgrade left its image directly in /dev/shm."""
    image = shared_dir / f"{SCRATCH_MARKER}{dead_pid()}-0123abcd.img"
    with image_on_a_loop_device(image) as dev:
        lines = remove_leftover_scratch(shared_dir)
        assert not attached(dev, image) and not image.exists()
        assert lines[0].startswith(f"detached {dev}") and lines[-1] == f"removed {image}"


def test_scratch_device_lives_in_a_private_directory(shared_dir: Path) -> None:
    with targets.ScratchLoopDevice.create(16, directory=shared_dir) as scratch:
        run_dir = scratch.backing_file.parent
        st = run_dir.lstat()
        assert run_dir.parent == shared_dir and st.st_uid == 0
        assert st.st_mode & 0o777 == 0o700
        assert scratch.backing_file.stat().st_mode & 0o777 == 0o600
        with pytest.raises(subprocess.CalledProcessError):
            as_nobody("touch", str(run_dir / "planted"))
    assert not run_dir.exists()


def test_the_state_directory_is_root_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statedir, "STATE_DIR", tmp_path / "perfcheck")
    path = statedir.state_dir()
    st = path.lstat()
    assert st.st_uid == 0 and st.st_mode & 0o7777 == 0o700


def test_the_real_state_directory_refuses_other_users() -> None:
    path = statedir.state_dir()
    assert path == Path("/run/perfcheck")
    with pytest.raises(subprocess.CalledProcessError):
        as_nobody("ln", "-s", "/etc/passwd", str(path / "perfcheck.lock"))


@pytest.mark.parametrize("how", ["symlink", "other owner", "open mode"])
def test_a_squatted_state_directory_is_refused(shared_dir: Path, how: str) -> None:
    path = shared_dir / "perfcheck"
    if how == "symlink":
        as_nobody("ln", "-s", str(shared_dir), str(path))
    elif how == "other owner":
        as_nobody("mkdir", "-m", "700", str(path))
    else:
        path.mkdir(mode=0o700)
        path.chmod(0o777)
    with pytest.raises(StateDirError) as info:
        private_dir(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "remove it" in message and "\n" not in message


def test_a_symlink_at_the_lock_path_truncates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "perfcheck.lock"
    link.symlink_to(victim)
    monkeypatch.setattr(lock, "LOCK_PATH", link)
    with pytest.raises(PerfcheckError, match=r"\(a symlink\); remove it"):
        HostLock().acquire(0)
    assert victim.read_text() == "keep"


def test_a_lock_file_of_another_user_is_refused(
    shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_dir / "perfcheck.lock"
    as_nobody("touch", str(path))
    as_nobody("chmod", "666", str(path))
    monkeypatch.setattr(lock, "LOCK_PATH", path)
    with pytest.raises(PerfcheckError, match="not a regular file of uid 0"):
        HostLock().acquire(0)


def test_scratch_files_are_refused_in_a_world_writable_directory_without_sticky_bit(
    shared_dir: Path,
) -> None:
    shared_dir.chmod(0o777)  # anyone could rename the run's directory away
    with pytest.raises(targets.TargetError) as info:
        targets.ScratchLoopDevice.create(16, directory=shared_dir)
    message = str(info.value)
    assert message.startswith(f"{shared_dir}: world-writable without the sticky bit")
    assert "\n" not in message and list(shared_dir.iterdir()) == []
