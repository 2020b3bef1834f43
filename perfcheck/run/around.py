"""Probes around a test's own code: the engine of the ``perfcheck_probes`` fixture.

A test names catalog probes and, for block probes, a device; its code runs in rounds
(each call of its function is one) under the run's probe session, which is attached
once and read around each call, as a scenario's rounds are. What the probes count is
the test's own:

* **Its process tree, by cgroup.** For the duration of the measurement the test's
  process (pytest itself) is moved into a cgroup v2 of its own, and the probes filter
  on its id: syscall and scheduler probes on the current task's cgroup, block probes on
  the cgroup of the task that submitted each request (``submitter_cgroup_id``, see
  :mod:`perfcheck.probes.block`). Children the code starts (``dd``, ``fio``, a
  ``sqlite3``) are forked inside and count too; a pid filter would see the test's own
  process only, and a pid set would have to follow every fork. The move is made once
  per measurement, not per round: moving a process between cgroups waits for an RCU
  grace period (milliseconds). The process moves back to its own cgroup afterwards.
* **The device it names**: a block device, a file on one (its device), or a
  :class:`~perfcheck.system.targets.BlockTarget` such as ``perfcheck_scratch``.

Between rounds the session's maps are read with ``bpf()`` calls from the test's own
process, so ``syscall.latency.bpf`` would count perfcheck's reads: it is left out.

Nothing here knows pytest.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfcheck.errors import CapabilityError, ProbeError, TargetError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.probes import CATALOG, filter_on
from perfcheck.probes.block import SUBMITTER_SETTING
from perfcheck.probes.session import ProbeBackend
from perfcheck.run.measure import keep_measured_series
from perfcheck.run.resources import RunResources
from perfcheck.system import environment
from perfcheck.system.environment import block_device_facts
from perfcheck.system.targets import BlockTarget, disk_dev_numbers, disk_of, kernel_dev
from perfcheck.workloads.rounds import RoundPlan, WorkloadReport, run_rounds

#: The series of perfcheck's own map reads between rounds (see the module docstring).
OWN_READS = ("syscall.latency.bpf", "syscall.calls.bpf", "syscall.time_ns.bpf")
#: What the environment of a measurement of a test's code says about its filter.
FILTER_FACT = "test process tree (cgroup v2)"

#: A device as a test may name it: a path (block device or a file on one) or a target.
DeviceArg = str | os.PathLike[str] | BlockTarget


@dataclass(frozen=True)
class ProbedDevice:
    """The disk whose requests block probes time for a test."""

    path: Path
    disk: str
    probe_dev: int


def probed_device(test: str, device: DeviceArg) -> ProbedDevice:
    """The disk under ``device``, or a one-line TargetError naming ``test`` and the fix."""
    if isinstance(device, BlockTarget):
        return ProbedDevice(device.path, device.disk, device.probe_dev)
    path = Path(device)
    fix = "give a block device, a file on one, or the perfcheck_scratch fixture"
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TargetError(f"{test}: device={str(path)!r}: {exc.strerror}; {fix}") from None
    number = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    major, minor = os.major(number), os.minor(number)
    try:
        disk = disk_of(major, minor)
    except TargetError:
        raise TargetError(
            f"{test}: device={str(path)!r} is on device {major}:{minor}, which is no block"
            f" device (tmpfs, overlay, a network file system?); {fix}"
        ) from None
    return ProbedDevice(path, disk, kernel_dev(*disk_dev_numbers(disk)))


def checked_probes(
    test: str,
    probes: object,
    device: ProbedDevice | None,
    unavailable: Callable[[list[str]], Mapping[str, object]],
) -> tuple[str, ...]:
    """``probes`` as catalog names, or a one-line error naming ``test``, the probe and the
    fix: unknown, unavailable on this kernel, or a block probe without a device."""
    if isinstance(probes, str) or not isinstance(probes, list | tuple) or not probes:
        raise ProbeError(
            f"{test}: probes={probes!r}: give a list of probe names, e.g."
            ' probes=["block.latency"] (see `perfcheck probes`)'
        )
    names = tuple(dict.fromkeys(str(p) for p in probes))
    for name in names:
        if name not in CATALOG:
            raise ProbeError(
                f"{test}: unknown probe {name!r}; the catalog has {', '.join(sorted(CATALOG))}"
                " (`perfcheck probes` describes them)"
            )
    unloadable = sorted(unavailable(list(names)).items())
    if unloadable:
        name, reason = unloadable[0]
        raise CapabilityError(f"{test}: probe {name} cannot load on this kernel: {reason}")
    if device is None and filter_on(names, "dev"):
        needing = [n for n in names if "dev" in getattr(CATALOG[n], "filters", ())]
        raise ProbeError(
            f"{test}: probe {needing[0]} times one disk's requests: pass device= (a block"
            " device, a file on one, or perfcheck_scratch)"
        )
    return names


@dataclass
class CodeRounds:
    """A test's function as a round workload: one call per round; its last return value
    is kept, as pytest-benchmark's fixture returns it."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    last: Any = None

    def run(self, seconds: float) -> WorkloadReport:
        self.last = self.fn(*self.args, **self.kwargs)
        return WorkloadReport()


@contextlib.contextmanager
def probes_around_test(
    resources: RunResources, test: str, probes: tuple[str, ...], device: ProbedDevice | None
) -> Iterator[ProbeBackend]:
    """The run's probe session with only ``probes`` attached, filtered to the test's
    process tree and ``device``, while the block runs; detached afterwards."""
    try:
        backend = resources.probes(probes)
    except CapabilityError as exc:  # --perfcheck-require bpf
        raise CapabilityError(f"{test}: {exc}") from None
    if backend is None:
        why = resources.probes_unavailable or "no probe of them can load here"
        raise CapabilityError(f"{test}: probes {', '.join(probes)} cannot start: {why}")
    with contextlib.ExitStack() as stack:
        cgroup = stack.enter_context(resources.join_cgroup())
        backend.configure(
            {
                "dev": device.probe_dev if device is not None else 0,
                "cgroup_id": cgroup.id,
                SUBMITTER_SETTING: cgroup.id,
            }
        )
        stack.callback(backend.activate, ())  # nothing attached costs the next test anything
        yield backend


def round_histograms(
    before: Mapping[str, LogLinearHistogram], after: Mapping[str, LogLinearHistogram]
) -> dict[str, LogLinearHistogram]:
    """What the probes counted between two snapshots, without perfcheck's own reads."""
    out = {}
    for name, hist in after.items():
        if name in OWN_READS:
            continue
        seen = hist.subtract(before[name]) if name in before else hist
        if seen.total > 0:
            out[name] = seen
    return out


def measure_code(
    resources: RunResources,
    test: str,
    code: CodeRounds,
    probes: tuple[str, ...],
    device: ProbedDevice | None,
    rounds: int,
    warmup: int,
) -> Measurement:
    """``warmup`` and ``rounds`` calls of the test's code under its probes: a Measurement
    as a scenario's (only probe series with enough samples per round are kept)."""
    with probes_around_test(resources, test, probes, device) as backend:
        results = run_rounds(
            RoundPlan(rounds=rounds, warmup=warmup, seconds=0.0),
            code,
            backend,
            check_block_counts=False,  # the code's I/O is not counted by a tool to check
        )
        provenance = {k: v for k, v in backend.provenance().items() if k in probes}
    for rnd in results:
        for name in OWN_READS:
            rnd.histograms.pop(name, None)
    keep_measured_series(results, probes)
    extra: dict[str, object] = {"probes.filter": FILTER_FACT, "workload.kind": "code"}
    if device is not None:
        extra.update(block_device_facts(device.disk))
    return Measurement(
        scenario=test,
        rounds=results,
        environment=environment.capture(extra),
        provenance=provenance,
    )


def append_rounds(measurement: Measurement, more: list[RoundResult]) -> None:
    """Add ``more`` current rounds to ``measurement`` (sequential looks)."""
    for rnd in more:
        rnd.index = len(measurement.rounds)
        measurement.rounds.append(rnd)


class CollectedHistograms(Mapping[str, LogLinearHistogram]):
    """What probes counted around a block of a test's code: histogram name ->
    :class:`LogLinearHistogram` (ns; bytes for ``block.size``), filled when the block
    ends, and the plain counters (``block.requests.read``, ``syscall.calls.fsync``)."""

    def __init__(self) -> None:
        self._histograms: dict[str, LogLinearHistogram] = {}
        self.counters: dict[str, int] = {}

    def fill(self, histograms: dict[str, LogLinearHistogram], counters: dict[str, int]) -> None:
        self._histograms = histograms
        self.counters = counters

    def __getitem__(self, name: str) -> LogLinearHistogram:
        try:
            return self._histograms[name]
        except KeyError:
            raise KeyError(
                f"{name!r}: no such histogram was counted; counted: "
                f"{', '.join(sorted(self._histograms)) or 'none (read it after the with block)'}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._histograms)

    def __len__(self) -> int:
        return len(self._histograms)


@contextlib.contextmanager
def collect_around_test(
    resources: RunResources, test: str, probes: tuple[str, ...], device: ProbedDevice | None
) -> Iterator[CollectedHistograms]:
    """Probes around a block of the test's code, no rounds and no gate."""
    collected = CollectedHistograms()
    with probes_around_test(resources, test, probes, device) as backend:
        before = backend.snapshot()
        yield collected
        after = backend.snapshot()
    seen = after.since(before)
    counters = {k: v for k, v in seen.counters.items() if v and k not in OWN_READS}
    collected.fill(round_histograms(before.histograms, after.histograms), counters)
