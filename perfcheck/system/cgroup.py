"""A cgroup v2 per run, so probes can time the workload's tasks and nothing else.

The workload's processes are started inside :class:`WorkloadCgroup` (``preexec_fn``
moves each child in before it runs the workload's program, so its threads and children
are inside from their first instruction). Probes filter on the cgroup's id, which BPF
gets for the current task with ``bpf_get_current_cgroup_id()``: the settings key
``cgroup_id``.

cgroup v2 is found in ``/proc/self/mountinfo`` (``/sys/fs/cgroup`` on unified systems,
``/sys/fs/cgroup/unified`` on hybrid ones). No controller is enabled: the cgroup only
groups tasks. Its id is the inode number of its directory, as the kernel's
``kernfs_node.id``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from perfcheck.errors import CapabilityError

MOUNTINFO = Path("/proc/self/mountinfo")
#: Every cgroup perfcheck creates carries this marker, so a killed run's can be found.
CGROUP_MARKER = "perfcheck-"


def cgroup2_root(mountinfo: Path = MOUNTINFO) -> Path | None:
    """Mount point of the cgroup v2 hierarchy, or None when it is not mounted."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        # "<id> <parent> <maj:min> <root> <mount point> <options> ... - <fstype> <source> ..."
        before, sep, after = line.partition(" - ")
        if sep and after.split(" ", 1)[0] == "cgroup2":
            return Path(before.split(" ")[4])
    return None


def cgroup_id(path: Path) -> int:
    """The id BPF reports for tasks in the cgroup at ``path`` (its directory's inode)."""
    return os.stat(path).st_ino


@dataclass
class WorkloadCgroup:
    """A cgroup v2 made for one run; removed on :meth:`close`, its tasks moved out first."""

    path: Path
    id: int

    @classmethod
    def create(cls, root: Path | None = None) -> WorkloadCgroup:
        if root is None:
            root = cgroup2_root()
        if root is None:
            raise CapabilityError(
                "cgroup v2: not mounted (no cgroup2 in /proc/self/mountinfo); mount it, e.g."
                " `mount -t cgroup2 none /sys/fs/cgroup/unified`, or filter by pid"
            )
        path = root / f"{CGROUP_MARKER}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except OSError as exc:
            raise CapabilityError(
                f"{path}: cannot create a cgroup ({exc.strerror}); run as root"
            ) from exc
        return cls(path=path, id=cgroup_id(path))

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into the cgroup."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def preexec_fn(self) -> Callable[[], None]:
        """For ``subprocess.Popen(preexec_fn=...)``: the child moves itself in before exec."""
        procs = str(self.path / "cgroup.procs")

        def join() -> None:
            # In the forked child: only async-signal-safe-ish calls, no Python objects shared.
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

        return join

    def pids(self) -> list[int]:
        text = (self.path / "cgroup.procs").read_text()
        return [int(line) for line in text.split()]

    def kill(self, timeout_s: float = 5.0) -> None:
        """SIGKILL every task inside, children that left their session or process group
        included, and wait until none is left."""
        kill_tasks(self.path, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Move any task still inside to the parent cgroup, then remove the cgroup."""
        if not self.path.exists():
            return
        parent = self.path.parent / "cgroup.procs"
        deadline = time.monotonic() + timeout_s
        while True:
            for pid in self.pids():
                with contextlib.suppress(OSError):  # it may exit meanwhile
                    parent.write_text(str(pid))
            try:
                self.path.rmdir()
                return
            except OSError:
                # EBUSY while an exiting task is still accounted to it.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def __enter__(self) -> WorkloadCgroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kill_tasks(path: Path, timeout_s: float = 5.0) -> None:
    """SIGKILL every task in the cgroup at ``path`` and wait until it is empty:
    ``cgroup.kill`` (Linux 5.14+) kills them all at once, forks included; without it each
    listed process is killed until none is left."""
    procs = path / "cgroup.procs"
    if not procs.read_text().split():
        return
    with contextlib.suppress(OSError):
        (path / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + timeout_s
    while True:
        pids = [int(line) for line in procs.read_text().split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise OSError(f"{path}: tasks {pids} still inside after SIGKILL")
        time.sleep(0.005)


def _own_cgroup(root: Path) -> Path:
    """This process's cgroup v2 directory (``0::/path`` in /proc/self/cgroup)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return root / line.removeprefix("0::").lstrip("/")
    return root


@contextlib.contextmanager
def process_in_own_cgroup() -> Iterator[WorkloadCgroup]:
    """This process (all its threads, and children it forks meanwhile) in a new cgroup v2
    while the block runs; back in its own cgroup afterwards, the new one removed."""
    cgroup = WorkloadCgroup.create()
    home = _own_cgroup(cgroup.path.parent)
    try:
        try:
            cgroup.add(os.getpid())
        except OSError as exc:
            raise CapabilityError(
                f"{cgroup.path}: cannot move process {os.getpid()} in ({exc.strerror}); run as root"
            ) from exc
        try:
            yield cgroup
        finally:
            (home / "cgroup.procs").write_text(str(os.getpid()))
    finally:
        cgroup.close()


__all__ = [
    "CGROUP_MARKER",
    "WorkloadCgroup",
    "cgroup2_root",
    "cgroup_id",
    "kill_tasks",
    "process_in_own_cgroup",
]
