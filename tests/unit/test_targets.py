"""Targets: the scratch device comes and goes; a user's data is never written without consent."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from perfcheck.errors import TargetError
from perfcheck.system.environment import block_device_facts
from perfcheck.system.kernel_config import io_schedulers
from perfcheck.system.targets import (
    FILL_CHUNK,
    SCRATCH_MARKER,
    ScratchLoopDevice,
    fill_with_data,
    io_scheduler,
    kernel_dev,
    open_given_target,
    queue_setting,
)
from tests.blockcounts import users_loop_device
from tests.realcaps import requires_fio

pytestmark = [pytest.mark.realfio, requires_fio]


def loop_devices() -> str:
    return subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout


def user_loop_device(size_mib: int = 64) -> contextlib.AbstractContextManager[Path]:
    return users_loop_device(size_mib, "user-data")


def test_scratch_device_is_created_and_removed_without_a_trace() -> None:
    with ScratchLoopDevice.create(64) as scratch:
        assert scratch.path.is_block_device()
        assert scratch.backing_file.name.startswith(SCRATCH_MARKER)
        assert scratch.backing_file.stat().st_size == 64 << 20
        assert scratch.writable
        rdev = scratch.path.stat().st_rdev
        assert scratch.probe_dev == kernel_dev(os.major(rdev), os.minor(rdev))
        assert str(scratch.backing_file) in loop_devices()
    assert not scratch.backing_file.exists()
    assert str(scratch.backing_file) not in loop_devices()


def test_every_page_of_a_scratch_device_holds_data() -> None:
    # tmpfs reads an allocated but unwritten page as a hole (zeroed, not copied, about
    # twice as fast), so reads would depend on what earlier scenarios wrote.
    with ScratchLoopDevice.create(16) as scratch:
        fd = os.open(scratch.backing_file, os.O_RDONLY)
        try:
            assert os.lseek(fd, 0, os.SEEK_HOLE) == 16 << 20, "a page was never written"
        finally:
            os.close(fd)
        with open(scratch.path, "rb") as device:
            device.seek((16 << 20) - 8192)
            tail = device.read(8192)
        assert len(tail) == 8192 and tail.count(0) < 256  # data, not zeros
        # Recorded with each measurement, so a baseline on holes is told apart.
        model = block_device_facts(scratch.disk)["target.model"]
        assert model == "loop over a perfcheck scratch file in /dev/shm, every page written"


def test_filling_writes_whole_and_partial_chunks(tmp_path: Path) -> None:
    path = tmp_path / "f"
    size = 2 * FILL_CHUNK + 4096 + 7
    with open(path, "wb") as fh:
        fill_with_data(fh.fileno(), size)
    data = path.read_bytes()
    assert len(data) == size and data[:FILL_CHUNK] == data[FILL_CHUNK : 2 * FILL_CHUNK]
    assert data.count(0) < size // 128


def test_an_empty_device_may_be_written() -> None:
    with user_loop_device() as dev:
        target = open_given_target(dev, writes=True, allow_destructive=False)
        assert target.disk == dev.name and not target.created_by_harness
        assert target.writable  # checked for writes: fio runs without --readonly
        target.close()
        assert dev.is_block_device()  # closing a user's target leaves it alone


def test_a_filesystem_is_never_written_without_consent() -> None:
    with user_loop_device() as dev:
        subprocess.run(["mkfs.ext4", "-q", "-F", str(dev)], check=True)
        with pytest.raises(TargetError) as info:
            open_given_target(dev, writes=True, allow_destructive=False)
        message = str(info.value)
        assert f"--perfcheck-target {dev}: refusing to write, blkid finds ext4 on it;" in message
        assert "--perfcheck-allow-destructive" in message and "\n" not in message
        # Reading is harmless; consent allows writing.
        open_given_target(dev, writes=False, allow_destructive=False)
        open_given_target(dev, writes=True, allow_destructive=True)


def test_a_partition_table_is_never_written_without_consent() -> None:
    with user_loop_device() as dev:
        # A DOS partition table by hand: one Linux partition from sector 2048, then 0x55AA.
        entry = bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + (2048).to_bytes(4, "little")
        entry += (8192).to_bytes(4, "little")
        with open(dev, "r+b") as fh:
            fh.seek(446)
            fh.write(entry)
            fh.seek(510)
            fh.write(b"\x55\xaa")
        with pytest.raises(TargetError) as info:
            open_given_target(dev, writes=True, allow_destructive=False)
        assert "refusing to write, blkid finds a dos partition table on it;" in str(info.value)


def test_a_mounted_device_is_never_written_without_consent(tmp_path: Path) -> None:
    with user_loop_device() as dev:
        subprocess.run(["mkfs.ext4", "-q", "-F", str(dev)], check=True)
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        subprocess.run(["mount", str(dev), str(mnt)], check=True)
        try:
            with pytest.raises(TargetError) as info:
                open_given_target(dev, writes=True, allow_destructive=False)
            # Was "it holds mounted on ...".
            assert f"refusing to write, it is mounted on {mnt};" in str(info.value)
        finally:
            subprocess.run(["umount", str(mnt)], check=True)


def test_an_existing_file_is_never_overwritten_without_consent(tmp_path: Path) -> None:
    data = tmp_path / "precious"
    data.write_bytes(b"x" * 4096)
    with pytest.raises(TargetError, match="refusing to overwrite an existing file"):
        open_given_target(data, writes=True, allow_destructive=False)
    target = open_given_target(data, writes=False, allow_destructive=False)
    assert not target.writable  # fio runs on it with --readonly
    target.close()
    assert data.read_bytes() == b"x" * 4096


def test_bad_targets_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no such file or device"):
        open_given_target(tmp_path / "missing", writes=False, allow_destructive=False)
    (tmp_path / "empty").touch()
    with pytest.raises(TargetError, match="the file is empty"):
        open_given_target(tmp_path / "empty", writes=False, allow_destructive=False)
    with pytest.raises(TargetError, match="not a block device or regular file"):
        open_given_target(tmp_path, writes=False, allow_destructive=False)


def test_io_scheduler_is_restored() -> None:
    with ScratchLoopDevice.create(16) as scratch:
        knob = Path("/sys/block") / scratch.disk / "queue" / "scheduler"
        before = knob.read_text()
        other = next((s for s in io_schedulers(scratch.disk) if f"[{s}]" not in before), None)
        if other is None:
            pytest.skip(f"{scratch.disk} offers only one I/O scheduler on this kernel")
        with io_scheduler(scratch.disk, other) as old:
            assert f"[{other}]" in knob.read_text()
            assert f"[{old}]" in before
        assert knob.read_text() == before
        with (
            pytest.raises(TargetError, match="scheduler 'no-such' not available"),
            io_scheduler(scratch.disk, "no-such"),
        ):
            pass
        assert knob.read_text() == before


def test_queue_setting_is_restored_and_bad_names_are_one_line_errors() -> None:
    with ScratchLoopDevice.create(16) as scratch:
        knob = Path("/sys/block") / scratch.disk / "queue" / "nr_requests"
        before = knob.read_text()
        with queue_setting(scratch.disk, "nr_requests", "4") as old:
            assert knob.read_text().strip() == "4"
            assert old == before.strip()
        assert knob.read_text() == before
        for name in ("no_such_setting", "../scheduler", "Scheduler"):
            with (
                pytest.raises(TargetError, match=r"--perfcheck-queue .*: .* does not exist; give"),
                queue_setting(scratch.disk, name, "1"),
            ):
                pass
        assert knob.read_text() == before
