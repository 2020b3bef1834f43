"""Where tracefs is mounted and which tracepoints the kernel offers, read without bcc.

Shared by ``perfcheck doctor`` and the probes' feature checks; every answer comes from the
running kernel (a tracepoint is a directory under ``events/``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# tracefs's own mount point first; bcc 0.26 prefers the one under debugfs when it exists.
TRACEFS_MOUNT_POINTS: tuple[Path, ...] = (
    Path("/sys/kernel/tracing"),
    Path("/sys/kernel/debug/tracing"),
)
DEBUGFS_ROOT = Path("/sys/kernel/debug")


def readable_dir(path: Path) -> bool:
    """Whether ``path`` is a directory we can see (unreadable counts as absent)."""
    # Path.is_dir raises on EACCES (tracefs is root-only); treat unreadable as absent.
    try:
        return path.is_dir()
    except OSError:
        return False


def tracefs_root(mount_points: Sequence[Path] = TRACEFS_MOUNT_POINTS) -> Path | None:
    """The first of ``mount_points`` where tracefs is mounted and readable, else None.

    >>> root = tracefs_root()
    >>> root is None or (root / "events").is_dir()
    True
    """
    for mount_point in mount_points:
        if readable_dir(mount_point / "events"):
            return mount_point
    return None


def tracepoint_exists(category: str, event: str, root: Path | None = None) -> bool:
    """Whether the kernel offers tracepoint ``category:event`` (e.g. ``block``, ``block_rq_issue``).

    ``root`` is a tracefs mount; by default the one :func:`tracefs_root` finds. False when
    tracefs is not mounted or not readable (it is root-only).
    """
    if root is None:
        root = tracefs_root()
    return root is not None and readable_dir(root / "events" / category / event)
