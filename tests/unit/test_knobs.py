"""Kernel settings are journalled, restored after the run, and after a killed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfcheck.errors import TargetError
from perfcheck.system import knobs


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(knobs, "JOURNAL_DIR", tmp_path / "shm")
    (tmp_path / "shm").mkdir()
    # Knob paths are journalled only under /sys; the fake lives at a path that says so.
    root = tmp_path / "sys"
    root.mkdir()
    return root


def make_knob(sysfs: Path, name: str, text: str) -> Path:
    knob = sysfs / name
    knob.write_text(text)
    return knob


def test_choice_knob_is_set_and_restored(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    knob = make_knob(sysfs, "scheduler", "[none] bfq")
    monkeypatch.setattr(knobs, "_read_journal", lambda path: _journal(path))
    with knobs.sysfs_setting(knob, "bfq") as old:
        assert old == "none"
        assert knob.read_text() == "bfq"
        assert json.loads(knobs.journal_path().read_text()) == {str(knob): "none"}
    assert knob.read_text() == "none"
    assert not knobs.journal_path().exists()


def test_restored_even_when_the_block_raises(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    knob = make_knob(sysfs, "scope", "cache")
    monkeypatch.setattr(knobs, "_read_journal", lambda path: _journal(path))
    with pytest.raises(RuntimeError), knobs.sysfs_setting(knob, "cpu"):
        raise RuntimeError("boom")
    assert knob.read_text() == "cache"


def test_unchanged_value_is_not_journalled(sysfs: Path) -> None:
    knob = make_knob(sysfs, "scope", "cpu")
    with knobs.sysfs_setting(knob, "cpu"):
        assert not knobs.journal_path().exists()


def test_missing_knob_is_a_one_line_error(sysfs: Path) -> None:
    with pytest.raises(TargetError, match="cannot read"), knobs.sysfs_setting(sysfs / "nope", "x"):
        pass


def test_a_dead_runs_journal_is_replayed_and_removed(
    sysfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(knobs, "_read_journal", lambda path: _journal(path))
    knob = make_knob(sysfs, "scope", "cpu")
    dead = knobs.journal_path(pid=2**22 + 17)  # above pid_max's default: never alive
    dead.write_text(json.dumps({str(knob): "cache"}))
    alive = knobs.journal_path()  # this process: must be left alone
    alive.write_text(json.dumps({str(knob): "other"}))
    restored = knobs.restore_leftover_knobs()
    assert restored == [f"restored {knob} to 'cache' (left by process {2**22 + 17})"]
    assert knob.read_text() == "cache"
    assert not dead.exists() and alive.exists()


def test_journal_entries_outside_sys_are_ignored(sysfs: Path) -> None:
    target = sysfs / "not-a-knob"
    target.write_text("keep")
    dead = knobs.journal_path(pid=2**22 + 18)
    dead.write_text(json.dumps({str(target): "overwritten"}))
    assert knobs.restore_leftover_knobs() == []
    assert target.read_text() == "keep"


def _journal(path: Path) -> dict[str, str]:
    """The real reader, minus its /sys/ guard (the fakes live in a temporary directory)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()}
