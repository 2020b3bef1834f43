"""Kernel settings are journalled, restored after the run, and after a killed run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from perfcheck.errors import TargetError
from perfcheck.system import knobs


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "legacy").mkdir()
    monkeypatch.setattr(knobs, "JOURNAL_DIR", tmp_path / "state")
    monkeypatch.setattr(knobs, "LEGACY_JOURNAL_DIR", tmp_path / "legacy")
    # Knob paths are journalled only under /sys; the fakes live under a stand-in for it.
    root = tmp_path / "sys"
    root.mkdir()
    monkeypatch.setattr(knobs, "SYSFS_ROOT", root)
    return root


def dead_pid() -> int:
    """The pid of a process that has just ended (reused only after pid_max more forks)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def make_knob(sysfs: Path, name: str, text: str) -> Path:
    knob = sysfs / name
    knob.write_text(text)
    return knob


def test_choice_knob_is_set_and_restored(sysfs: Path) -> None:
    knob = make_knob(sysfs, "scheduler", "[none] bfq")
    with knobs.sysfs_setting(knob, "bfq") as old:
        assert old == "none"
        assert knob.read_text() == "bfq"
        journal = json.loads(knobs.journal_path().read_text())
        assert journal["settings"] == {str(knob): "none"}
    assert knob.read_text() == "none"
    assert not knobs.journal_path().exists()


def test_restored_even_when_the_block_raises(sysfs: Path) -> None:
    knob = make_knob(sysfs, "scope", "cache")
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


def test_a_dead_runs_journal_is_replayed_and_removed(sysfs: Path) -> None:
    knob = make_knob(sysfs, "scope", "cpu")
    pid = dead_pid()
    dead = knobs.journal_path(pid=pid)
    write_journal(dead, {str(knob): "cache"})
    alive = knobs.journal_path()  # this process: must be left alone
    write_journal(alive, {str(knob): "other"})
    restored = knobs.restore_leftover_knobs()
    assert restored == [f"restored {knob} to 'cache' (left by process {pid})"]
    assert knob.read_text() == "cache"
    assert not dead.exists() and alive.exists()


def write_journal(path: Path, settings: dict[str, str], boot_id: str | None = None) -> None:
    boot = knobs._boot_id() if boot_id is None else boot_id
    path.write_text(json.dumps({"boot_id": boot, "settings": settings}))
    path.chmod(0o600)


def test_journal_entries_outside_sys_are_skipped(sysfs: Path, tmp_path: Path) -> None:
    target = tmp_path / "not-a-knob"
    target.write_text("keep")
    pid = dead_pid()
    dead = knobs.journal_path(pid=pid)
    write_journal(dead, {str(target): "overwritten"})
    [line] = knobs.restore_leftover_knobs()
    assert line.startswith(f"skipped {dead}: {target} resolves to {target}, outside {sysfs}")
    assert target.read_text() == "keep"


def test_dot_dot_out_of_sys_is_resolved_and_skipped(sysfs: Path, tmp_path: Path) -> None:
    """The prefix ``/sys/`` alone let ``/sys/../tmp/x`` through; the resolved path counts."""
    target = tmp_path / "created-as-root"
    pid = dead_pid()
    dead = knobs.journal_path(pid=pid)
    write_journal(dead, {f"{sysfs}/../{target.name}": "x"})
    [line] = knobs.restore_leftover_knobs()
    assert f"resolves to {target}, outside {sysfs}" in line and "\n" not in line
    assert not target.exists()


def test_a_symlink_under_sys_to_outside_is_skipped(sysfs: Path, tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep")
    (sysfs / "link").symlink_to(target)
    pid = dead_pid()
    dead = knobs.journal_path(pid=pid)
    write_journal(dead, {str(sysfs / "link"): "x"})
    [line] = knobs.restore_leftover_knobs()
    assert "outside" in line and target.read_text() == "keep"


def test_a_journal_from_an_earlier_boot_is_dropped_not_replayed(sysfs: Path) -> None:
    knob = make_knob(sysfs, "scope", "cpu")
    pid = dead_pid()
    dead = knobs.journal_path(pid=pid)
    write_journal(dead, {str(knob): "cache"}, boot_id="another-boot")
    assert knobs.restore_leftover_knobs() == [
        f"removed {dead}: written before the last reboot, which reset its settings"
    ]
    assert knob.read_text() == "cpu" and not dead.exists()


def test_a_journal_of_an_earlier_boot_under_this_pid_is_replaced(sysfs: Path) -> None:
    """/run can be on disk: a process of an earlier boot may have had this run's pid."""
    knob = make_knob(sysfs, "scope", "cache")
    write_journal(knobs.journal_path(), {str(sysfs / "other"): "x"}, boot_id="another-boot")
    with knobs.sysfs_setting(knob, "cpu"):
        journal = json.loads(knobs.journal_path().read_text())
        assert journal["settings"] == {str(knob): "cache"}
    assert knob.read_text() == "cache" and not knobs.journal_path().exists()


def test_a_legacy_journal_in_dev_shm_is_replayed(sysfs: Path, tmp_path: Path) -> None:
    """A run killed before the upgrade left its journal in /dev/shm, in the old format."""
    knob = make_knob(sysfs, "scope", "cpu")
    pid = dead_pid()
    legacy = tmp_path / "legacy" / f"perfcheck-scratch-{pid}-knobs.json"
    legacy.write_text(json.dumps({str(knob): "cache"}))
    assert knobs.restore_leftover_knobs() == [f"restored {knob} to 'cache' (left by process {pid})"]
    assert knob.read_text() == "cache" and not legacy.exists()


def test_a_symlink_at_the_journals_tmp_path_is_not_followed(sysfs: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    knobs.journal_path().with_name(knobs.journal_path().name + ".tmp").symlink_to(victim)
    knob = make_knob(sysfs, "scope", "cache")
    with knobs.sysfs_setting(knob, "cpu"):
        assert knob.read_text() == "cpu"
    assert victim.read_text() == "keep" and knob.read_text() == "cache"


def test_restoring_never_creates_a_file(sysfs: Path) -> None:
    pid = dead_pid()
    dead = knobs.journal_path(pid=pid)
    write_journal(dead, {str(sysfs / "absent"): "x"})
    [line] = knobs.restore_leftover_knobs()
    assert line.startswith(f"could not restore {sysfs / 'absent'}")
    assert not (sysfs / "absent").exists()
