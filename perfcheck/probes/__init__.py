"""The probe catalog: BPF programs on kernel tracepoints that fill latency histograms.

Each probe reads like a small bcc tool: its C as a constant with a header comment,
the tracepoints it needs (checked before loading), and a reader that turns its maps
into :class:`~perfcheck.histogram.LogLinearHistogram` series. The probes a session
needs are joined into one BPF program, compiled and attached once.

Nothing here imports bcc; :mod:`perfcheck.probes.session` does, lazily.
"""

from __future__ import annotations

from perfcheck.probes.base import Probe, ProbeCounters
from perfcheck.probes.block import BlockLatencyProbe

#: Probe name -> class. Scenarios name probes by these keys.
CATALOG: dict[str, type[Probe]] = {
    BlockLatencyProbe.name: BlockLatencyProbe,
}


def probe_names() -> list[str]:
    return sorted(CATALOG)


__all__ = ["CATALOG", "BlockLatencyProbe", "Probe", "ProbeCounters", "probe_names"]
