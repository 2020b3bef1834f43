"""Data perfcheck must never write: a fresh ext4 image on a loop device, checked after a
test by its sha256 and ``fsck.ext4 -n``, and detached afterwards."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Ext4Device:
    """A loop device over a freshly made ext4 image."""

    image: Path
    device: Path
    digest: str

    def assert_intact(self) -> None:
        assert sha256(self.image) == self.digest, f"{self.device} ({self.image}) was written"
        fsck = subprocess.run(
            ["fsck.ext4", "-n", str(self.image)], capture_output=True, text=True, check=False
        )
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def attached(image: Path) -> bool:
    listing = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True)
    return f"({image})" in listing.stdout


@contextlib.contextmanager
def ext4_device(directory: Path, size_mib: int = 64) -> Iterator[Ext4Device]:
    """An ext4 image of ``size_mib`` in ``directory`` on a loop device, detached at the end."""
    image = directory / "ext4.img"
    with open(image, "wb") as fh:
        fh.truncate(size_mib << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    digest = sha256(image)
    device = Path(
        subprocess.run(
            ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    try:
        yield Ext4Device(image, device, digest)
    finally:
        subprocess.run(["losetup", "--detach", str(device)], check=False)
    assert not attached(image)
