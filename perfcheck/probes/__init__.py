"""The probe catalog: BPF programs on kernel tracepoints that fill latency histograms.

Each probe reads like a small bcc tool: its C as a constant with a header comment,
the kernel features it needs (checked before loading, see
:mod:`perfcheck.probes.features`), and a reader that turns its maps into
:class:`~perfcheck.model.histogram.LogLinearHistogram` series. The probes a session needs
are joined into one BPF program, compiled once; each scenario runs with only its own
probes attached (:meth:`~perfcheck.probes.session.ProbeSession.activate`).

Nothing here imports bcc; :mod:`perfcheck.probes.session` does, lazily.
"""

from __future__ import annotations

from perfcheck.probes.base import Probe, ProbeCounters
from perfcheck.probes.block import (
    BlockBioLatencyProbe,
    BlockLatencyProbe,
    BlockQueueLatencyProbe,
    BlockSizeProbe,
)
from perfcheck.probes.catalog import CatalogProbe
from perfcheck.probes.features import Unavailable, partition_available
from perfcheck.probes.func import FuncLatencyProbe, UserFuncLatencyProbe
from perfcheck.probes.net import NetSoftirqProbe, TcpSrttProbe
from perfcheck.probes.sched import SchedRunqLatencyProbe
from perfcheck.probes.syscall import SyscallLatencyProbe

#: Probe name -> class. Scenarios name probes by these keys.
CATALOG: dict[str, type[Probe]] = {
    probe.name: probe
    for probe in (
        BlockLatencyProbe,
        BlockQueueLatencyProbe,
        BlockSizeProbe,
        BlockBioLatencyProbe,
        SchedRunqLatencyProbe,
        NetSoftirqProbe,
        TcpSrttProbe,
        SyscallLatencyProbe,
        FuncLatencyProbe,
        UserFuncLatencyProbe,
    )
}


def probe_names() -> list[str]:
    return sorted(CATALOG)


def filter_on(names: tuple[str, ...] | list[str], setting: str) -> bool:
    """Whether any of the named catalog probes filters on ``setting`` (e.g. ``cgroup_id``)."""
    return any(setting in getattr(CATALOG.get(name), "filters", ()) for name in names)


__all__ = [
    "CATALOG",
    "BlockBioLatencyProbe",
    "BlockLatencyProbe",
    "BlockQueueLatencyProbe",
    "BlockSizeProbe",
    "CatalogProbe",
    "FuncLatencyProbe",
    "NetSoftirqProbe",
    "Probe",
    "ProbeCounters",
    "SchedRunqLatencyProbe",
    "SyscallLatencyProbe",
    "TcpSrttProbe",
    "Unavailable",
    "UserFuncLatencyProbe",
    "filter_on",
    "partition_available",
    "probe_names",
]
