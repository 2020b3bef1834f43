"""One perfcheck run at a time on a host.

Two runs measuring at once would disturb each other's numbers and fight over the
kernel settings they change (one would "restore" the other's change). A run takes an
exclusive ``flock`` on a lock file before it touches the machine; a second run waits,
saying which process holds it, or gives up after ``timeout`` seconds. The kernel drops
the lock when its holder dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

from perfcheck.errors import PerfcheckError

LOCK_PATH = Path("/dev/shm/perfcheck.lock")


class LockTimeout(PerfcheckError):
    """Another run holds the host-wide lock for longer than we may wait."""


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text().strip()
        if text:
            return text
    return "another run"


class HostLock:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else LOCK_PATH
        self._fd: int | None = None

    def acquire(self, timeout: float, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the lock; wait up to ``timeout`` seconds (0: fail at once if it is held)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(self.path)
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
