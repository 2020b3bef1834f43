"""One perfcheck run at a time on a host.

Two runs measuring at once would disturb each other's numbers and fight over the
kernel settings they change (one would "restore" the other's change). A run takes an
exclusive ``flock`` on a lock file before it touches the machine; a second run waits,
saying which process holds it, or gives up after ``timeout`` seconds. The kernel drops
the lock when its holder dies, however it dies.

The lock file lives in root's state directory (:mod:`perfcheck.system.statedir`), is opened
without following a symlink, and must be a regular file of the user running: a file
another user could plant or point elsewhere would let them truncate any file as root.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from perfcheck.errors import PerfcheckError
from perfcheck.system.statedir import StateDirError, state_dir

#: None: ``perfcheck.system.lock`` in the state directory (tests point it elsewhere).
LOCK_PATH: Path | None = None


class LockTimeout(PerfcheckError):
    """Another run holds the host-wide lock for longer than we may wait."""


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text:
            return text
    return "another run"


def _open_lock_file(path: Path) -> int:
    """The lock file, created if absent: never through a symlink, only a regular file of
    this user; anything else is a one-line error."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        why = "a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise StateDirError(
            f"{path}: cannot open the host lock ({why}); remove it (perfcheck did not make"
            " it) and run again"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        os.close(fd)
        raise StateDirError(
            f"{path}: not a regular file of uid {os.geteuid()}; remove it (perfcheck did not"
            " make it) and run again"
        )
    return fd


class HostLock:
    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = LOCK_PATH if LOCK_PATH is not None else state_dir() / "perfcheck.lock"
        return self._path

    def acquire(self, timeout: float, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock; wait up to ``timeout`` seconds (0: fail at once if it is held)."""
        fd = _open_lock_file(self.path)
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeout(
                        f"{self.path}: held by {holder}; perfcheck runs one at a time. Wait for"
                        " it, or raise --perfcheck-lock-timeout"
                    ) from None
                if not told and on_wait is not None:
                    on_wait(f"perfcheck: waiting for {holder} to finish ({self.path})")
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} (perfcheck)\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None
