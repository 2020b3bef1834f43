"""Reading and writing the BPF maps of catalog probes, through bcc's table objects.

Only the few table operations used here are relied on (``Key``, ``Leaf``, item get/set,
``items_lookup_batch``, ``sum``, ``items``, ``clear``), so tests can hand in small fake
tables instead of a loaded program.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from typing import Any

from perfcheck.model.bpf_layout import HIST_SLOTS
from perfcheck.model.histogram import LogLinearHistogram


def percpu_array_sums(table: Any, length: int) -> list[int]:
    """Each slot of a per-CPU array summed over CPUs, in one batch syscall where possible."""
    sums = [0] * length
    try:
        for key, value in table.items_lookup_batch():
            # bcc 0.26 yields an array's keys as plain ints (a ctypes key in older fakes).
            index = int(getattr(key, "value", key))
            if index < length:
                sums[index] = sum(int(v) for v in value)
        return sums
    except Exception:  # kernels before 5.6 lack batch ops: read key by key
        pass
    for i in range(length):
        sums[i] = int(table.sum(ctypes.c_int(i)).value)
    return sums


def hash_items(table: Any) -> list[tuple[Any, Any]]:
    """All ``(key, value)`` pairs of a hash map, in one batch syscall where possible."""
    try:
        return list(table.items_lookup_batch())
    except Exception:  # kernels before 5.6 lack batch ops: walk the keys
        return list(table.items())


def split_histograms(slots: Sequence[int], names: Sequence[str]) -> dict[str, LogLinearHistogram]:
    """Consecutive ``HIST_SLOTS``-long chunks of ``slots`` as histograms named ``names``."""
    if len(slots) < len(names) * HIST_SLOTS:
        raise ValueError(
            f"{len(slots)} slots cannot hold {len(names)} histograms of {HIST_SLOTS} slots"
        )
    return {
        name: LogLinearHistogram.from_counts(slots[i * HIST_SLOTS : (i + 1) * HIST_SLOTS])
        for i, name in enumerate(names)
    }


def read_config(table: Any) -> Any:
    """The single entry of a one-entry config array (bcc's ctypes struct for it)."""
    return table[table.Key(0)]


def write_config(table: Any, fields: Mapping[str, int]) -> None:
    """Set ``fields`` of the single entry of a config array, keeping its other fields."""
    key = table.Key(0)
    leaf = table[key]
    for name, value in fields.items():
        if not hasattr(leaf, name):
            raise KeyError(f"config map has no field {name!r}")
        setattr(leaf, name, value)
    table[key] = leaf


__all__ = ["hash_items", "percpu_array_sums", "read_config", "split_histograms", "write_config"]
