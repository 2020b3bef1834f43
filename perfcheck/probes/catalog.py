"""What a catalog probe says about itself: a summary, how it attaches, what it filters on,
what unit its series are in, and whether this machine can load it.

:class:`CatalogProbe` extends :class:`~perfcheck.probes.base.Probe` with these, so
``perfcheck probes`` can describe the catalog and callers can skip, with the exact
reason, a probe that cannot load here, before anything is compiled.

Settings keys a probe reads in ``configure(bpf, settings)`` (all ints; absent or 0 means
"no filter"):

``dev``
    kernel dev_t (``MAJOR << 20 | MINOR``) of the disk whose requests block probes time.
``pid``
    a process id (tgid): only that process's threads.
``cgroup_id``
    a cgroup v2 id (the inode number of its directory, see :mod:`perfcheck.system.cgroup`):
    only tasks in that cgroup.
``port``
    a TCP port: only connections with this local or remote port.
``submitter_cgroup_id``
    a cgroup v2 id: block probes time only the I/O tasks of that cgroup submitted (a
    test's own, see :mod:`perfcheck.run.around`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from perfcheck.model.bpf_layout import HIST_SLOTS
from perfcheck.probes.base import (
    ATTACH_RAW_TRACEPOINT,
    ATTACH_TRACEPOINT,
    Handler,
    Probe,
    ProbeCounters,
)
from perfcheck.probes.features import Unavailable, missing_tracepoints
from perfcheck.probes.maps import percpu_array_sums, split_histograms

#: Attach types a probe's events are reached through, as provenance spells them (the two
#: tracepoint kinds are defined with the handlers in :mod:`perfcheck.probes.base`).
ATTACH_KPROBE = "kprobe"
ATTACH_UPROBE = "uprobe"

#: Units a series can be in. Histograms are log-linear whatever the unit; ``bytes``
#: series (request sizes) reuse the bucket scheme with bytes in place of nanoseconds.
UNIT_NS = "ns"
UNIT_BYTES = "bytes"


class CatalogProbe(Probe):
    """A probe of perfcheck's catalog. Subclasses also set the class attributes below."""

    #: One line for ``perfcheck probes``.
    summary: ClassVar[str]
    #: How the events are reached (``ATTACH_*``).
    attach: ClassVar[str] = ATTACH_TRACEPOINT
    #: Settings keys this probe honours (see the module docstring).
    filters: ClassVar[tuple[str, ...]] = ()
    #: Settings that change how it measures rather than what (``block_sample``).
    options: ClassVar[tuple[str, ...]] = ()
    #: Unit of the values in this probe's histograms.
    unit: ClassVar[str] = UNIT_NS
    #: Optional probes depend on kernel features beyond tracepoints (kprobes, uprobes).
    optional: ClassVar[bool] = False

    @classmethod
    def events(cls) -> list[str]:
        """The kernel events this probe attaches to, as provenance records them."""
        return [f"{cls.attach}:{cat}:{event}" for cat, event in cls.tracepoints]

    @classmethod
    def unavailable(cls) -> Unavailable | None:
        """Why this probe cannot load on this machine, or None. Never compiles anything."""
        return missing_tracepoints(cls.tracepoints)

    def provenance(self) -> list[str]:
        return self.events()

    def handlers(self) -> tuple[Handler, ...]:
        if self.attach == ATTACH_RAW_TRACEPOINT:
            return tuple((ATTACH_RAW_TRACEPOINT, event) for _, event in self.tracepoints)
        if self.attach == ATTACH_TRACEPOINT:
            return tuple((ATTACH_TRACEPOINT, f"{cat}:{event}") for cat, event in self.tracepoints)
        return ()  # kprobes and uprobes are attached by configure, not as the program loads

    def series_names(self) -> list[str]:
        """Names of the histograms :meth:`read` returns (for help texts and tests)."""
        return []

    #: The per-CPU array the default :meth:`read` reads: one block of HIST_SLOTS slots per
    #: name in :meth:`series_names`, in that order. Probes with other maps override read.
    HIST_MAP: ClassVar[bytes] = b""

    def read(self, bpf: Any) -> ProbeCounters:
        names = self.series_names()
        slots = percpu_array_sums(bpf[self.HIST_MAP], len(names) * HIST_SLOTS)
        return ProbeCounters(histograms=split_histograms(slots, names))


def setting(settings: Mapping[str, int], key: str) -> int:
    """A settings value as a non-negative int (0 when absent)."""
    value = settings.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"probe setting {key!r} must be a non-negative int, got {value!r}")
    return value


__all__ = [
    "ATTACH_KPROBE",
    "ATTACH_RAW_TRACEPOINT",
    "ATTACH_TRACEPOINT",
    "ATTACH_UPROBE",
    "UNIT_BYTES",
    "UNIT_NS",
    "CatalogProbe",
    "setting",
]
