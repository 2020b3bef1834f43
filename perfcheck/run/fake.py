"""A probe backend without BPF, for fast tests of the logic around probes.

It behaves like a started :class:`~perfcheck.probes.session.ProbeSession` whose maps
grow only when the test says so (:meth:`FakeProbeBackend.observe`). Real probes are
tested separately against the kernel; this never replaces those tests.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.probes.base import ProbeCounters
from perfcheck.probes.block import BLOCK_OPS
from perfcheck.system.cgroup import WorkloadCgroup
from perfcheck.system.targets import BlockTarget
from perfcheck.workloads.rounds import WorkloadReport

if TYPE_CHECKING:
    from perfcheck.run.harness import Harness


class FakeProbeBackend:
    def __init__(self, provenance: Mapping[str, list[str]] | None = None) -> None:
        # Like the real probe, every operation's counters exist from the start.
        self._state = ProbeCounters(
            histograms={f"block.latency.{op}": LogLinearHistogram.empty() for op in BLOCK_OPS},
            counters={
                f"block.{what}.{op}": 0 for op in BLOCK_OPS for what in ("requests", "bytes")
            },
        )
        self._provenance = dict(
            provenance or {"block.latency": ["fake:block_rq_issue", "fake:block_rq_complete"]}
        )
        self.settings: dict[str, int] = {}
        self.started = False
        self.closed = False
        #: The probe names of every ``activate`` call, in order.
        self.activations: list[tuple[str, ...]] = []

    def start(self) -> None:
        self.started = True

    def activate(self, names: Sequence[str]) -> None:
        self.activations.append(tuple(names))

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


class FakeBlockWorkload:
    """A workload that 'issues' reads whose latencies come from a function, and tells a
    :class:`FakeProbeBackend` about them as the kernel would tell a real probe.

    ``latency_ns(round_number, i)`` gives the i-th request's latency; ``requests`` per
    round. Useful to test the record/compare/refresh cycle without root.
    """

    def __init__(
        self,
        backend: FakeProbeBackend,
        latency_ns: Callable[[int, int], int],
        requests: int = 200,
        size: int = 4096,
    ) -> None:
        self.backend = backend
        self.latency_ns = latency_ns
        self.requests = requests
        self.size = size
        self.rounds_run = 0

    def run(self, seconds: float) -> WorkloadReport:
        self.rounds_run += 1
        values = [self.latency_ns(self.rounds_run, i) for i in range(self.requests)]
        self.backend.observe("read", values, self.size)
        fio = LogLinearHistogram.from_values(v + 2000 for v in values)
        return WorkloadReport(
            histograms={"fio.clat.read": fio},
            scalars={"fio.iops.read": self.requests / max(seconds, 1e-9)},
            ios=self.requests,
            io_bytes=self.requests * self.size,
        )


def fake_target() -> BlockTarget:
    """A block target that is no device: for fake workloads, which never open it."""
    return BlockTarget(
        path=Path(os.devnull),
        disk="fake0",
        probe_dev=1,
        created_by_harness=True,
        size_bytes=0,
        description="fake target",
    )


@contextlib.contextmanager
def fake_cgroup() -> Iterator[WorkloadCgroup]:
    """A cgroup that is none: the process stays where it is (for fake probes)."""
    yield WorkloadCgroup(path=Path(os.devnull), id=1)


def use_fakes(
    harness: Harness,
    latency_ns: Callable[[int, int], int],
    backend: FakeProbeBackend | None = None,
) -> FakeProbeBackend:
    """Make ``harness`` run every block scenario on fakes: the fake probe ``backend``
    (a new one by default), :func:`fake_target` and a :class:`FakeBlockWorkload` whose
    request latencies come from ``latency_ns(round_number, i)``.

    For a ``pytest_perfcheck_harness`` hook in a conftest, to test a workflow (record,
    compare, refresh, reports) in a second without root, fio or BPF. Returns the backend.
    """
    probes = backend if backend is not None else FakeProbeBackend()
    harness.probe_factory = lambda names: probes
    harness.target_factory = lambda writes: fake_target()
    harness.workload_factory = lambda scenario, target: FakeBlockWorkload(probes, latency_ns)
    harness.join_cgroup = fake_cgroup
    return probes
