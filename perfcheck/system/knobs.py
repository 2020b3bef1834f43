"""Kernel settings a run changes (sysfs and module parameters), always put back.

Every change is written to a journal file before it is made, so that if the run is killed
outright (SIGKILL, OOM) the next run finds the journal and restores the old values
(:func:`restore_leftover_knobs`). Journals live in root's state directory
(:func:`perfcheck.system.statedir.state_dir`), never in a world-writable one: the next run writes
what a journal says, as root.

Two settings are changed:

- a disk's I/O scheduler (``--perfcheck-scheduler``), ``/sys/block/<disk>/queue/scheduler``;
- noise control on loop-device targets (the scratch device included): the workqueue
  module's ``default_affinity_scope`` set to ``cpu``. A loop device does its I/O in an
  unbound kworker; with the default scope (``cache``) that worker runs on either CPU,
  so a round lands in a fast mode (the worker shares fio's CPU) or a slow one
  (cross-CPU wake-ups), which on a small VM made per-round p50 vary 4x. With scope
  ``cpu`` the worker runs on the CPU that queued the I/O, fio's, and rounds agree
  within about 10% (kernel 6.18.44-fc-v595). On 6.18.44-fc-v1272 it neither steadied nor
  unsteadied rounds in 24 interleaved pairs (bench/RESULTS.md, bench/affinity_scope.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from perfcheck.errors import TargetError
from perfcheck.system.statedir import ForeignStateFile as _Malformed
from perfcheck.system.statedir import boot_id as _boot_id
from perfcheck.system.statedir import left_by_dead_runs, private_dir, state_dir, write_journal
from perfcheck.system.statedir import read_own_file as _read_own_file

#: Where journals live; None: the state directory (tests point it elsewhere).
JOURNAL_DIR: Path | None = None
#: Where earlier versions kept journals; those of runs killed before an upgrade are
#: replayed with the same checks.
LEGACY_JOURNAL_DIR = Path("/dev/shm")
SYSFS_ROOT = Path("/sys")
WORKQUEUE_AFFINITY_SCOPE = Path("/sys/module/workqueue/parameters/default_affinity_scope")

_JOURNAL_NAME = re.compile(r"knobs-([0-9]+)\.json(\.tmp)?")
_LEGACY_JOURNAL_NAME = re.compile(r"perfcheck-scratch-([0-9]+)-knobs\.(json|tmp)")


class _FromEarlierBoot(_Malformed):
    """A journal of a run killed before the last reboot, which reset what it changed."""


def journal_dir() -> Path:
    return private_dir(JOURNAL_DIR) if JOURNAL_DIR is not None else state_dir()


def journal_path(pid: int | None = None) -> Path:
    return journal_dir() / f"knobs-{pid or os.getpid()}.json"


def sysfs_knob(name: object) -> Path:
    """The real path of a journalled knob, checked to lie under /sys (``..`` and symlinks
    resolved first), or :class:`_Malformed`."""
    if not isinstance(name, str) or not name.startswith("/") or "\0" in name:
        raise _Malformed(f"{name!r} is not an absolute path")
    real = Path(os.path.realpath(name))
    if not real.is_relative_to(os.path.realpath(SYSFS_ROOT)):
        raise _Malformed(f"{name} resolves to {real}, outside {SYSFS_ROOT}")
    return real


def _entries(data: bytes, legacy: bool) -> dict[Path, str]:
    try:
        doc = json.loads(data)
    except ValueError:
        raise _Malformed("not JSON") from None
    if not legacy:
        if not isinstance(doc, dict) or not isinstance(doc.get("settings"), dict):
            raise _Malformed("not a journal of settings")
        if doc.get("boot_id") != _boot_id():
            raise _FromEarlierBoot("written before the last reboot, which reset its settings")
        doc = doc["settings"]
    if not isinstance(doc, dict):
        raise _Malformed("not a journal of settings")
    entries: dict[Path, str] = {}
    for name, old in doc.items():
        if not isinstance(old, str) or len(old) > 256 or "\n" in old:
            raise _Malformed(f"{name}: {old!r} is not a setting's value")
        entries[sysfs_knob(name)] = old
    return entries


def _journal_key(knob: Path) -> str:
    try:
        return str(sysfs_knob(str(knob)))
    except _Malformed as exc:
        raise TargetError(f"{knob}: not a kernel setting ({exc}); only /sys is changed") from None


def _read_journal(path: Path) -> dict[str, str]:
    """This run's own journal (absent: empty). One that does not read as this boot's was
    left under this pid by a process of an earlier boot: it is replaced."""
    if not path.exists():
        return {}
    try:
        return {str(k): v for k, v in _entries(_read_own_file(path), legacy=False).items()}
    except _Malformed:
        return {}


def _write_journal(path: Path, entries: dict[str, str]) -> None:
    if not entries:
        path.unlink(missing_ok=True)
        return
    write_journal(path, {"settings": entries})


def _write_knob(knob: Path, value: str) -> None:
    """Write a knob that exists; never create a file, never follow a final symlink."""
    fd = os.open(knob, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


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
    entries.setdefault(_journal_key(knob), old)
    # One try from the journal entry on: a Ctrl-C (or SIGTERM) landing anywhere in
    # between still restores what was changed and forgets the entry.
    try:
        _write_journal(journal, entries)
        try:
            _write_knob(knob, value)
        except OSError as exc:
            raise TargetError(
                f"{knob}: cannot set {value!r} ({exc.strerror}); run as root, or check the value"
            ) from exc
        yield old
    finally:
        try:
            if current_value(knob) != old:
                _write_knob(knob, old)
        finally:
            _forget(journal, knob)


def _forget(journal: Path, knob: Path) -> None:
    entries = _read_journal(journal)
    entries.pop(_journal_key(knob), None)
    _write_journal(journal, entries)


def _replay(path: Path, pid: int, legacy: bool) -> list[str]:
    """Put back what a dead run's journal holds and remove it; one line per knob, or one
    line saying why the file was skipped."""
    try:
        data = _read_own_file(path)
        if path.name.endswith(".tmp"):  # an interrupted journal write; the journal rules
            path.unlink(missing_ok=True)
            return []
        entries = _entries(data, legacy)
    except _FromEarlierBoot as exc:
        path.unlink(missing_ok=True)
        return [f"removed {path}: {exc}"]
    except _Malformed as exc:
        return [f"skipped {path}: {exc}; perfcheck did not write it"]
    done: list[str] = []
    for knob, old in entries.items():
        try:
            if current_value(knob) != old:
                _write_knob(knob, old)
        except OSError as exc:
            done.append(f"could not restore {knob} to {old!r} ({exc.strerror})")
        else:
            done.append(f"restored {knob} to {old!r} (left by process {pid})")
    path.unlink(missing_ok=True)
    return done


def restore_leftover_knobs(directory: Path | None = None) -> list[str]:
    """Put back settings changed by runs that died without restoring them.

    Also replays the journals perfcheck kept in /dev/shm before it had a state directory
    (a run killed before an upgrade), with the same checks: a regular file of root's
    that only root may write, naming settings under /sys.
    """
    done: list[str] = []
    own = directory if directory is not None else journal_dir()
    for path, _, pid in left_by_dead_runs(own, _JOURNAL_NAME, done):
        done += _replay(path, pid, legacy=False)
    if os.geteuid() == 0:  # only root's runs wrote them
        for path, _, pid in left_by_dead_runs(LEGACY_JOURNAL_DIR, _LEGACY_JOURNAL_NAME, done):
            done += _replay(path, pid, legacy=True)
    return done
