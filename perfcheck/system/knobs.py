"""Kernel settings a run changes (sysfs and module parameters), always put back.

Every change is written to a journal file in /dev/shm before it is made, so that if the
run is killed outright (SIGKILL, OOM) the next run finds the journal by its marker and
restores the old values (:func:`restore_leftover_knobs`).

Two settings are changed:

- a disk's I/O scheduler (``--perfcheck-scheduler``), ``/sys/block/<disk>/queue/scheduler``;
- noise control on loop-device targets (the scratch device included): the workqueue
  module's ``default_affinity_scope`` set to ``cpu``. A loop device does its I/O in an
  unbound kworker; with the default scope (``cache``) that worker runs on either CPU,
  so a round lands in a fast mode (the worker shares fio's CPU) or a slow one
  (cross-CPU wake-ups), which on a small VM made per-round p50 vary 4x. With scope
  ``cpu`` the worker runs on the CPU that queued the I/O, fio's, and rounds agree
  within about 10%.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from perfcheck.errors import TargetError
from perfcheck.system.processes import pid_alive

JOURNAL_DIR = Path("/dev/shm")
JOURNAL_PREFIX = "perfcheck-scratch-"
WORKQUEUE_AFFINITY_SCOPE = Path("/sys/module/workqueue/parameters/default_affinity_scope")


def journal_path(pid: int | None = None) -> Path:
    return JOURNAL_DIR / f"{JOURNAL_PREFIX}{pid or os.getpid()}-knobs.json"


def _read_journal(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if str(k).startswith("/sys/")}


def _write_journal(path: Path, entries: dict[str, str]) -> None:
    if not entries:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries, sort_keys=True))
    os.replace(tmp, path)


def current_value(knob: Path) -> str:
    """A knob's value; for choice knobs (``none [bfq] kyber``) the selected choice."""
    text = knob.read_text().strip()
    match = re.search(r"\[([^\]]+)\]", text)
    return match.group(1) if match else text


@contextlib.contextmanager
def sysfs_setting(knob: Path, value: str) -> Iterator[str]:
    """Set ``knob`` to ``value`` for the duration; yields the old value, restored after."""
    try:
        old = current_value(knob)
    except OSError as exc:
        raise TargetError(f"{knob}: cannot read ({exc.strerror}); this kernel lacks it") from exc
    if old == value:
        yield old
        return
    journal = journal_path()
    entries = _read_journal(journal)
    entries.setdefault(str(knob), old)
    # One try from the journal entry on: a Ctrl-C (or SIGTERM) landing anywhere in
    # between still restores what was changed and forgets the entry.
    try:
        _write_journal(journal, entries)
        try:
            knob.write_text(value)
        except OSError as exc:
            raise TargetError(
                f"{knob}: cannot set {value!r} ({exc.strerror}); run as root, or check the value"
            ) from exc
        yield old
    finally:
        try:
            if current_value(knob) != old:
                knob.write_text(old)
        finally:
            _forget(journal, knob)


def _forget(journal: Path, knob: Path) -> None:
    entries = _read_journal(journal)
    entries.pop(str(knob), None)
    _write_journal(journal, entries)


def restore_leftover_knobs(directory: Path | None = None) -> list[str]:
    """Put back settings changed by runs that died without restoring them."""
    restored: list[str] = []
    for journal in sorted((directory or JOURNAL_DIR).glob(f"{JOURNAL_PREFIX}*-knobs.json")):
        pid_text = journal.name[len(JOURNAL_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        for knob, old in _read_journal(journal).items():
            with contextlib.suppress(OSError):
                Path(knob).write_text(old)
                restored.append(f"restored {knob} to {old!r} (left by process {pid_text})")
        journal.unlink(missing_ok=True)
    return restored
