"""Where a run keeps what outlives it: directories only its own user can write.

perfcheck runs as root, and what it finds there on the next run (a journal of kernel
settings to put back, a scratch image whose loop device to detach) it acts on as root. So
none of it lives where another user can write a file, plant a symlink or squat a name:

- :data:`STATE_DIR` (``/run/perfcheck``, mode 0700) holds the host lock and the journals
  of kernel settings; a few small files, so ``/run`` fits however it is backed.
- Scratch images need RAM-backed space (512 MiB each), which ``/dev/shm`` has and
  ``/run`` often lacks (it is a few percent of memory, or, on some machines, on disk).
  ``/dev/shm`` is world-writable, so each image lives in a directory of its own,
  ``/dev/shm/perfcheck-scratch-<pid>-<random>`` (mode 0700), made with ``mkdir``, which
  fails on any name that already exists, and checked after creation. ``/dev/shm`` is
  sticky, so no other user can rename or remove it.

Every such directory is checked before use: a real directory (not a symlink), owned by
this user, with no permission for group or others. Anything else is refused with one line.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from perfcheck.errors import PerfcheckError
from perfcheck.system.processes import PID_MAX_LIMIT, pid_alive

#: Root's state directory (the host lock, journals of kernel settings and mounts).
STATE_DIR = Path("/run/perfcheck")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
#: A journal names a handful of things; anything larger was not written by perfcheck.
MAX_JOURNAL_BYTES = 1 << 16


class StateDirError(PerfcheckError):
    """A state directory or file is not what perfcheck made (wrong owner, mode or type)."""


def state_dir() -> Path:
    """The directory for this user's state, created (mode 0700) and checked.

    Root's is :data:`STATE_DIR`. Another user (a run on a file target, without probes)
    changes no kernel settings and only needs a lock: its own directory, so its runs
    exclude each other but cannot hold root's lock.
    """
    if os.geteuid() == 0:
        return private_dir(STATE_DIR)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path(tempfile.gettempdir())
    return private_dir(base / f"perfcheck-{os.geteuid()}")


def why_not_private(st: os.stat_result) -> str | None:
    """Why an lstat result is not a directory of this user closed to others, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not {os.geteuid()}"
    if st.st_mode & 0o077:
        return f"mode {stat.S_IMODE(st.st_mode):04o}, open to group or others"
    return None


def private_dir(path: Path) -> Path:
    """``path`` as a directory of this user with mode 0700, created if absent.

    An existing one that is not exactly that (a symlink, another owner, wider permissions)
    is refused, never repaired: whoever made it could have put anything inside.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StateDirError(
            f"{path}: cannot create perfcheck's state directory ({exc.strerror});"
            f" run as root, or create {path.parent}"
        ) from exc
    why = why_not_private(path.lstat())
    if why is not None:
        raise StateDirError(
            f"{path}: {why}; perfcheck keeps its state only in a directory of its own user"
            " with mode 0700: remove it (perfcheck did not make it) and run again"
        )
    return path


def parse_pid(text: str) -> int | None:
    """A process id from a file name, or None when it cannot be one (too long, zero)."""
    if re.fullmatch(r"[1-9][0-9]{0,6}", text) is None:
        return None
    pid = int(text)
    return pid if pid <= PID_MAX_LIMIT else None


class ForeignStateFile(Exception):
    """A file in a state directory that perfcheck did not write; skipped with its reason."""


def boot_id() -> str:
    """This boot's id: a journal of another boot describes state the reboot reset."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def read_own_file(path: Path) -> bytes:
    """A small regular file of this user that no one else may write, read without
    following a symlink or blocking on a FIFO; anything else raises
    :class:`ForeignStateFile`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ForeignStateFile("a symlink" if exc.errno == errno.ELOOP else exc.strerror) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ForeignStateFile("not a regular file")
        if st.st_uid != os.geteuid():
            raise ForeignStateFile(f"owned by uid {st.st_uid}, not {os.geteuid()}")
        if st.st_mode & 0o022 or st.st_nlink != 1:
            raise ForeignStateFile("writable by others or hard-linked")
        if st.st_size > MAX_JOURNAL_BYTES:
            raise ForeignStateFile(f"{st.st_size} bytes, too large for a journal")
        return os.read(fd, MAX_JOURNAL_BYTES)
    finally:
        os.close(fd)


def write_journal(path: Path, content: dict[str, object]) -> None:
    """Replace the journal ``path`` with ``content`` and this boot's id, atomically (a
    reader finds the old journal or the new one, never half of one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # left by a write that was interrupted
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"boot_id": boot_id(), **content}, fh, sort_keys=True)
    os.replace(tmp, path)


def left_by_dead_runs(
    directory: Path, pattern: re.Pattern[str], skipped: list[str]
) -> Iterator[tuple[Path, re.Match[str], int]]:
    """(path, name match, pid) of each entry of ``directory`` named like ``pattern`` (whose
    first group is the pid of the run that made it) whose process no longer exists, in
    name order. A name holding no possible pid adds a line to ``skipped``."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        pid = parse_pid(match.group(1))
        if pid is None:
            skipped.append(f"skipped {directory / name}: {match.group(1)} is not a process id")
        elif not pid_alive(pid):
            yield directory / name, match, pid


def new_private_dir(parent: Path, prefix: str) -> Path:
    """A new directory ``<prefix><pid>-<random>`` of this run in ``parent`` (mode 0700):
    ``mkdir`` fails on a name that exists (whoever planted it), so the name is drawn
    again; the result is checked. ``OSError`` other than a taken name is the caller's."""
    for _ in range(100):
        path = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return private_dir(path)
    raise StateDirError(f"{parent}: no free name for a directory {prefix}* after 100 tries")
