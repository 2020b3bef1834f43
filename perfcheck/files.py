"""Reading the files users hand perfcheck: scenarios, fio job files, baselines, results.

Each is read the same careful way (bounded in size, UTF-8) and every problem is one line
that names the file, says what is wrong and how to fix it, in the caller's error type
(``ScenarioError`` for scenario inputs, ``BaselineError`` for stored data).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from perfcheck.errors import PerfcheckError


def _size_text(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO", "a directory", ...), or None for a regular one."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def read_text_file(
    path: Path,
    *,
    noun: str,
    fix: str,
    error: type[PerfcheckError],
    max_bytes: int | None = None,
) -> str:
    """The text of ``path`` (a ``noun`` such as "scenario file"), at most ``max_bytes``."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it would hang the run,
        # which holds the host lock); whatever is not a regular file is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        kind = _file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            os.close(fd)
            raise error(f"{path}: is {kind}, not a regular file; {fix}")
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise error(f"{path}: no such {noun}; {fix}") from exc
    except OSError as exc:
        raise error(
            f"{path}: cannot read {noun} ({exc.strerror or exc}); check its permissions"
        ) from exc
    if max_bytes is not None and len(raw) > max_bytes:
        raise error(f"{path}: larger than {_size_text(max_bytes)}, not a {noun}; {fix}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(
            f"{path}: not UTF-8 text at line {line} (byte offset {exc.start}); save it as"
            f" UTF-8, or {fix}"
        ) from exc
