"""Where the workload does its I/O: a scratch loop device, or a device or file the user names.

The default target is :class:`ScratchLoopDevice`: a loop device over a file in a
directory of its own in ``/dev/shm``. It is blk-mq (so ``block:block_rq_*`` tracepoints
fire), RAM-backed (so the host's disk noise stays out), and the harness creates and
removes it.

A target named with ``--perfcheck-target`` is never written to when it holds
anything (a filesystem, a partition table, any signature ``blkid`` knows, a
mount, a holder such as LVM), unless the user passes
``--perfcheck-allow-destructive``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from perfcheck.errors import CapabilityError, TargetError
from perfcheck.system.kernel_config import SYSFS_BLOCK, io_schedulers
from perfcheck.system.knobs import sysfs_setting
from perfcheck.system.processes import run_tool
from perfcheck.system.statedir import left_by_dead_runs, new_private_dir, why_not_private

#: Every file and device the harness creates carries this marker in its name, so a
#: later run can find what a killed run left behind.
SCRATCH_MARKER = "perfcheck-scratch-"
SCRATCH_DIR = Path("/dev/shm")
#: A queue attribute's name: one path component, as the block layer names them.
QUEUE_SETTING_NAME = re.compile(r"[a-z][a-z0-9_]*")
SYSFS_DEV_BLOCK = Path("/sys/dev/block")


def kernel_dev(major: int, minor: int) -> int:
    """dev_t as block tracepoints report it (the kernel's MKDEV: major << 20 | minor)."""
    return (major << 20) | minor


def _run(cmd: list[str], what: str) -> str:
    if shutil.which(cmd[0]) is None:
        raise CapabilityError(
            f"{cmd[0]}: not found; it is needed to {what} (install util-linux: `make setup`)"
        )
    return run_tool(cmd, what, timeout_s=60)


def disk_of(major: int, minor: int) -> str:
    """Whole-disk name (``loop0``, ``vda``) of a device number, partitions resolved to
    their disk, because block tracepoints report the disk's dev_t."""
    node = SYSFS_DEV_BLOCK / f"{major}:{minor}"
    try:
        real = node.resolve(strict=True)
    except OSError as exc:
        raise TargetError(
            f"device {major}:{minor} is not a block device known to sysfs ({node} missing);"
            " block probes need a block device"
        ) from exc
    if (real / "partition").exists():
        return real.parent.name
    return real.name


def disk_dev_numbers(disk: str) -> tuple[int, int]:
    text = (SYSFS_BLOCK / disk / "dev").read_text().strip()
    major, minor = text.split(":")
    return int(major), int(minor)


@dataclass
class BlockTarget:
    """A place fio can do I/O on, and the disk whose requests the block probes watch.

    ``path`` is what fio opens; ``disk`` the whole disk under it; ``probe_dev`` that
    disk's dev_t in the kernel's encoding, for the in-kernel filter. ``writable``: the
    workload may write it (the scratch device, or a target checked for writes); fio runs
    read-only on any other.
    """

    path: Path
    disk: str
    probe_dev: int
    created_by_harness: bool
    size_bytes: int
    description: str
    writable: bool = False

    def close(self) -> None:
        """Release what the harness created; a target it did not create is left alone."""

    def __enter__(self) -> BlockTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Bytes written per call when a scratch file is filled.
FILL_CHUNK = 1 << 20


def fill_with_data(fd: int, size: int) -> None:
    """Write data over the first ``size`` bytes of ``fd``.

    tmpfs reads a page that was allocated but never written as a hole: the kernel zeroes
    the reader's buffer instead of copying a page, about twice as fast (a 1 MiB sequential
    read of such a device took 195 us at p50 where written pages took 345 us). Reads on a
    device fresh from ``fallocate`` would then depend on what earlier scenarios of the run
    happened to write, so every page is written before the device is used.
    """
    chunk = memoryview(os.urandom(FILL_CHUNK))
    offset = 0
    while offset < size:
        offset += os.pwrite(fd, chunk[: min(FILL_CHUNK, size - offset)], offset)


@dataclass
class ScratchLoopDevice(BlockTarget):
    """A loop device over a RAM-backed file in /dev/shm, created and removed by the harness.

    The file lives in a directory of its own (``perfcheck-scratch-<pid>-<random>``, mode
    0700, see :mod:`perfcheck.system.statedir`): /dev/shm is world-writable, and what the next
    run finds there it acts on as root.
    """

    backing_file: Path = field(default=Path())
    _closed: bool = False

    @classmethod
    def create(cls, size_mib: int = 512, directory: Path = SCRATCH_DIR) -> ScratchLoopDevice:
        if os.geteuid() != 0:
            raise CapabilityError(
                "a scratch loop device needs root: run as root (sudo) or pass"
                " --perfcheck-target with a device or file you may use"
            )
        run_dir = _make_scratch_dir(directory)
        backing = run_dir / f"{run_dir.name}.img"
        size = size_mib * 1024 * 1024
        try:
            fd = os.open(
                backing, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            try:
                os.posix_fallocate(fd, 0, size)  # no memory: fail now, not mid-run
                fill_with_data(fd, size)
            finally:
                os.close(fd)
        except OSError as exc:
            _remove_scratch_dir(run_dir)
            raise TargetError(
                f"{backing}: cannot create a {size_mib} MiB scratch file ({exc.strerror});"
                f" free memory in {directory} or pass --perfcheck-target"
            ) from exc
        except BaseException:  # interrupted while allocating: leave nothing behind
            _remove_scratch_dir(run_dir)
            raise
        try:
            dev = Path(
                _run(["losetup", "--find", "--show", str(backing)], "attach a loop device").strip()
            )
            rdev = os.stat(dev).st_rdev
            major, minor = os.major(rdev), os.minor(rdev)
        except BaseException:
            _remove_scratch_dir(run_dir)
            raise
        return cls(
            path=dev,
            disk=dev.name,
            probe_dev=kernel_dev(major, minor),
            created_by_harness=True,
            size_bytes=size,
            description=f"scratch {dev} over {backing} ({size_mib} MiB)",
            writable=True,
            backing_file=backing,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            _run(["losetup", "--detach", str(self.path)], "detach the scratch loop device")
        finally:
            _remove_scratch_dir(self.backing_file.parent)


def _make_scratch_dir(directory: Path) -> Path:
    """A new directory of this run for its scratch file: ``mkdir`` fails on a name that
    exists (whoever planted it), so the name is drawn again; the result is checked."""
    try:
        parent = directory.lstat()
    except OSError as exc:
        raise TargetError(
            f"{directory}: cannot use it for scratch files ({exc.strerror}); pass"
            " --perfcheck-target"
        ) from exc
    if parent.st_mode & stat.S_IWOTH and not parent.st_mode & stat.S_ISVTX:
        # Without the sticky bit anyone could rename the run's directory and put another
        # in its place.
        raise TargetError(
            f"{directory}: world-writable without the sticky bit, unsafe for scratch files;"
            f" `chmod +t {directory}`, or pass --perfcheck-target"
        )
    try:
        return new_private_dir(directory, SCRATCH_MARKER)
    except OSError as exc:
        raise TargetError(
            f"{directory}: cannot create a scratch directory in it ({exc.strerror});"
            f" check {directory}, or pass --perfcheck-target"
        ) from exc


def _remove_scratch_dir(path: Path) -> None:
    """Remove a scratch directory this run made (its one file, then itself)."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(path):
            (path / name).unlink(missing_ok=True)
        path.rmdir()


def _signature(dev: Path) -> str | None:
    """What ``blkid`` finds on a device (filesystem, partition table, RAID, ...) as a clause
    (``blkid finds ext4 on it``), or None."""
    if shutil.which("blkid") is None:
        raise CapabilityError(
            "blkid: not found; it is needed to check a target for data before writing"
            " (install util-linux: `make setup`)"
        )
    proc = subprocess.run(
        ["blkid", "--probe", "--output", "export", str(dev)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode == 2:  # blkid: nothing found
        return None
    if proc.returncode != 0:
        # Unknown state: treat as occupied rather than risk data.
        return f"blkid cannot read it ({proc.stderr.strip() or proc.returncode})"
    fields = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    kind = fields.get("TYPE") or "a signature"
    if "PTTYPE" in fields:
        kind = f"a {fields['PTTYPE']} partition table"
    return f"blkid finds {kind} on it"


def _in_use(dev: Path, disk: str, major: int, minor: int) -> str | None:
    """Why a block device is in use (mounted, held, has partitions) as a clause, or None."""
    want = f"{major}:{minor}"
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            parts = line.split()
            if len(parts) > 4 and parts[2] == want:
                return f"it is mounted on {parts[4]}"
    node = (SYSFS_DEV_BLOCK / want).resolve()
    holders = node / "holders"
    if holders.is_dir() and any(holders.iterdir()):
        return f"it is held by {', '.join(p.name for p in holders.iterdir())}"
    if node.name == disk:
        parts = [p.name for p in node.iterdir() if (p / "partition").exists()]
        if parts:
            return f"it has partitions {', '.join(sorted(parts))}"
    return None


def open_given_target(path: Path, writes: bool, allow_destructive: bool) -> BlockTarget:
    """A user-named block device or file, checked for safety when the workload writes;
    writable only then (fio runs read-only on it otherwise)."""
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise TargetError(
            f"--perfcheck-target {path}: no such file or device; give an existing block"
            " device or file"
        ) from exc
    if stat.S_ISBLK(st.st_mode):
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        disk = disk_of(major, minor)
        size = int((SYSFS_DEV_BLOCK / f"{major}:{minor}" / "size").read_text()) * 512
        if writes and not allow_destructive:
            reason = _in_use(path, disk, major, minor) or _signature(path)
            if reason is not None:
                raise TargetError(
                    f"--perfcheck-target {path}: refusing to write, {reason};"
                    " pass --perfcheck-allow-destructive if its data may be destroyed"
                )
        return _given_target(path, disk, size, f"block device {path} (disk {disk})", writes)
    if stat.S_ISREG(st.st_mode):
        if st.st_size == 0:
            raise TargetError(
                f"--perfcheck-target {path}: the file is empty; give it a size first"
                f" (e.g. `fallocate -l 1G {path}`)"
            )
        if writes and not allow_destructive:
            raise TargetError(
                f"--perfcheck-target {path}: refusing to overwrite an existing file;"
                " pass --perfcheck-allow-destructive if its contents may be destroyed"
            )
        major, minor = os.major(st.st_dev), os.minor(st.st_dev)
        disk = disk_of(major, minor)
        return _given_target(path, disk, st.st_size, f"file {path} on disk {disk}", writes)
    raise TargetError(
        f"--perfcheck-target {path}: not a block device or regular file; give one of those"
    )


def _given_target(
    path: Path, disk: str, size_bytes: int, description: str, writable: bool
) -> BlockTarget:
    dmaj, dmin = disk_dev_numbers(disk)
    return BlockTarget(
        path=path,
        disk=disk,
        probe_dev=kernel_dev(dmaj, dmin),
        created_by_harness=False,
        size_bytes=size_bytes,
        description=description,
        writable=writable,
    )


@contextlib.contextmanager
def io_scheduler(disk: str, name: str) -> Iterator[str]:
    """Set a disk's I/O scheduler for the duration of a block, then restore the old one
    (journalled, so a killed run's change is undone by the next run)."""
    knob = SYSFS_BLOCK / disk / "queue" / "scheduler"
    available = io_schedulers(disk, SYSFS_BLOCK)
    if name not in available:
        raise TargetError(
            f"{knob}: scheduler {name!r} not available (have: {', '.join(available)});"
            f" load its module (e.g. `modprobe {name}`)"
        )
    with sysfs_setting(knob, name) as old:
        yield old


@contextlib.contextmanager
def queue_setting(disk: str, name: str, value: str) -> Iterator[str]:
    """Set ``/sys/block/<disk>/queue/<name>`` (``nr_requests``, ``rq_affinity``, ...) for
    the duration of a block, then restore it (journalled, as :func:`io_scheduler`)."""
    queue = SYSFS_BLOCK / disk / "queue"
    knob = queue / name
    if not QUEUE_SETTING_NAME.fullmatch(name) or not knob.is_file():
        try:
            have = sorted(p.name for p in queue.iterdir() if p.is_file())
        except OSError:
            have = []
        raise TargetError(
            f"--perfcheck-queue {name}={value}: {knob} does not exist; give one of"
            f" {', '.join(have) or 'the files in that directory'}"
        )
    with sysfs_setting(knob, value) as old:
        yield old


#: A scratch directory, or (before it had one) a scratch file directly in /dev/shm.
_ANY_SCRATCH_NAME = re.compile(rf"{re.escape(SCRATCH_MARKER)}([0-9]+)-[0-9a-f]{{8}}(\.img)?")


def _loop_devices_over(st: os.stat_result) -> list[str]:
    """Loop devices whose backing file is the file of ``st``: matched by device and inode
    as the kernel reports them, never by a path someone could point elsewhere."""
    out = subprocess.run(
        ["losetup", "--list", "--json", "--output", "NAME,BACK-MAJ:MIN,BACK-INO"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    try:
        devices = json.loads(out)["loopdevices"] if out.strip() else []
    except (ValueError, KeyError, TypeError):
        return []
    want = (f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", str(st.st_ino))
    return [
        str(dev["name"])
        for dev in devices
        if isinstance(dev, dict)
        and (str(dev.get("back-maj:min", "")).strip(), str(dev.get("back-ino", "")).strip()) == want
    ]


def _scratch_file_problem(st: os.stat_result) -> str | None:
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}"
    if st.st_nlink != 1:
        return "hard-linked elsewhere"
    return None


def _remove_scratch_file(path: Path, st: os.stat_result, pid: int) -> list[str]:
    removed = []
    if shutil.which("losetup") is not None:
        for dev in _loop_devices_over(st):
            subprocess.run(["losetup", "--detach", dev], check=False, timeout=30)
            removed.append(f"detached {dev} (left by process {pid})")
    path.unlink(missing_ok=True)
    removed.append(f"removed {path}")
    return removed


def remove_leftover_scratch(directory: Path = SCRATCH_DIR) -> list[str]:
    """Remove scratch devices and files left by runs that were killed (SIGKILL, power loss).

    A scratch directory is ``perfcheck-scratch-<pid>-<token>`` holding
    ``perfcheck-scratch-<pid>-<token>.img``; it is a leftover when its process no longer
    exists. Its loop devices are detached first. Scratch files that perfcheck kept directly
    in /dev/shm before it made directories (a run killed before an upgrade) are removed
    too. Anything named so that perfcheck did not make (another owner, a symlink, another
    type, a link to another file, a pid no process can have) is left alone with one line
    saying why. Returns one line per thing removed or skipped.
    """
    lines: list[str] = []
    if os.geteuid() != 0:
        return lines  # only root makes scratch devices, and only root can remove them
    for path, match, pid in left_by_dead_runs(directory, _ANY_SCRATCH_NAME, lines):
        name = path.name
        legacy = match.group(2) is not None
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue  # another run removed it meanwhile
        if legacy:
            why = _scratch_file_problem(st)
            if why is not None:
                lines.append(f"skipped {path}: {why}, not a scratch file perfcheck made")
                continue
            lines += _remove_scratch_file(path, st, pid)
            continue
        why = why_not_private(st)
        if why is not None:
            lines.append(f"skipped {path}: {why}, not a scratch directory perfcheck made")
            continue
        image = path / f"{name}.img"
        with contextlib.suppress(FileNotFoundError):
            image_st = image.lstat()
            why = _scratch_file_problem(image_st)
            if why is not None:  # only root writes here; still, never act on a stranger
                lines.append(f"skipped {image}: {why}, not a scratch file perfcheck made")
                continue
            lines += _remove_scratch_file(image, image_st, pid)
        try:
            path.rmdir()
        except OSError as exc:
            lines.append(f"skipped {path}: cannot remove it ({exc.strerror})")
    return lines
