"""What every probe provides to a probe session."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from perfcheck.model.histogram import LogLinearHistogram

#: Attach types of the handlers bcc attaches as a program loads (``RAW_TRACEPOINT_PROBE``
#: and ``TRACEPOINT_PROBE``), as provenance spells them.
ATTACH_TRACEPOINT = "tracepoint"
ATTACH_RAW_TRACEPOINT = "raw_tracepoint"

#: A tracepoint handler of a loaded program, as the session attaches and detaches it:
#: ``("raw_tracepoint", "block_rq_issue")`` or ``("tracepoint", "tcp:tcp_probe")``.
Handler = tuple[str, str]


@dataclass
class ProbeCounters:
    """A probe's cumulative state at one instant: histograms and plain counters.

    BPF maps only grow while attached, so a round's data is ``after - before``.
    """

    histograms: dict[str, LogLinearHistogram] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)

    def since(self, earlier: ProbeCounters) -> ProbeCounters:
        hists = {
            name: hist.subtract(earlier.histograms[name]) if name in earlier.histograms else hist
            for name, hist in self.histograms.items()
        }
        counts = {name: v - earlier.counters.get(name, 0) for name, v in self.counters.items()}
        return ProbeCounters(histograms=hists, counters=counts)

    def merged(self, other: ProbeCounters) -> ProbeCounters:
        hists = dict(self.histograms)
        for name, hist in other.histograms.items():
            hists[name] = hists[name].merge(hist) if name in hists else hist
        counts = dict(self.counters)
        for name, v in other.counters.items():
            counts[name] = counts.get(name, 0) + v
        return ProbeCounters(histograms=hists, counters=counts)


class Probe(ABC):
    """One entry of the catalog. Subclasses set ``name``, ``tracepoints`` and ``C_SOURCE``."""

    name: ClassVar[str]
    #: ``(category, event)`` pairs that must exist before the program is loaded.
    tracepoints: ClassVar[tuple[tuple[str, str], ...]]
    #: C text of the probe; the session puts the shared histogram helpers above it.
    C_SOURCE: ClassVar[str]

    def provenance(self) -> list[str]:
        """The kernel events this probe's data came from, as stored in baselines."""
        return [f"tracepoint:{cat}:{event}" for cat, event in self.tracepoints]

    def handlers(self) -> tuple[Handler, ...]:
        """The program's tracepoint handlers this probe's numbers come from.

        bcc attaches every handler as the program loads; a session keeps attached only
        those of the probes being measured (:meth:`ProbeSession.activate`), because a
        handler runs, and costs time, on every event even when nothing reads it."""
        return ()

    def release(self, bpf: Any) -> None:
        """Stop what :meth:`configure` started (kprobes, uprobes, a feature switch) while
        the probe is not measured; the next ``configure`` starts it again."""
        return None

    @abstractmethod
    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        """Write run-time settings (e.g. the target device) into the program's maps."""

    @abstractmethod
    def read(self, bpf: Any) -> ProbeCounters:
        """Read the probe's cumulative maps."""
