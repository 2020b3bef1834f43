"""A probe backend without BPF, for fast tests of the logic around probes.

It behaves like a started :class:`~perfcheck.probes.session.ProbeSession` whose maps
grow only when the test says so (:meth:`FakeProbeBackend.observe`). Real probes are
tested separately against the kernel; this never replaces those tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from perfcheck.histogram import LogLinearHistogram
from perfcheck.probes.base import ProbeCounters


class FakeProbeBackend:
    def __init__(self, provenance: Mapping[str, list[str]] | None = None) -> None:
        self._state = ProbeCounters()
        self._provenance = dict(
            provenance or {"block.latency": ["fake:block_rq_issue", "fake:block_rq_complete"]}
        )
        self.settings: dict[str, int] = {}
        self.started = False
        self.closed = False

    def start(self) -> None:
        self.started = True

    def configure(self, settings: Mapping[str, int]) -> None:
        self.settings = dict(settings)

    def observe(self, op: str, latencies_ns: Iterable[int], size: int = 4096) -> None:
        """Pretend the kernel completed requests of ``op`` with these latencies."""
        values = list(latencies_ns)
        add = ProbeCounters(
            histograms={f"block.latency.{op}": LogLinearHistogram.from_values(values)},
            counters={f"block.requests.{op}": len(values), f"block.bytes.{op}": size * len(values)},
        )
        self._state = self._state.merged(add)

    def snapshot(self) -> ProbeCounters:
        return ProbeCounters(dict(self._state.histograms), dict(self._state.counters))

    def provenance(self) -> dict[str, list[str]]:
        return dict(self._provenance)

    def close(self) -> None:
        self.closed = True
