"""Fixtures that put catalog probes around a test's own code: ``perfcheck_probes`` and
the scratch device ``perfcheck_scratch``. Registered by :mod:`perfcheck.plugin`; the
work is :mod:`perfcheck.run.around`'s.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from perfcheck.errors import PerfcheckError
from perfcheck.model.measurement import Measurement
from perfcheck.model.names import MAX_NAME_LENGTH, baseline_name_for
from perfcheck.run.around import (
    CodeRounds,
    CollectedHistograms,
    DeviceArg,
    ProbedDevice,
    append_rounds,
    checked_probes,
    collect_around_test,
    measure_code,
    probed_device,
)
from perfcheck.run.harness import Harness
from perfcheck.stats.gate import ScenarioOutcome
from perfcheck.system.targets import ScratchLoopDevice
from perfcheck.workloads.scenario import DEFAULT_ROUNDS, threshold_for

#: The outcome of a test's gated ``perfcheck_probes`` call, applied after its body.
DECIDED_KEY = pytest.StashKey[ScenarioOutcome]()
#: Size of the ``perfcheck_scratch`` device: room for a test's I/O, quick to fill.
SCRATCH_SIZE_MIB = 128
FIXTURE = "perfcheck_probes"


def baseline_name(nodeid: str) -> str:
    """A test's node id as a baseline file name: readable, safe, and distinct even when
    long ids are clipped (a hash of the whole id ends a clipped name)."""
    name = baseline_name_for(nodeid)
    if len(name) < MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME_LENGTH - 11].rstrip('-.')}-{digest}"


class PerfcheckProbes:
    """The ``perfcheck_probes`` fixture's value: call it to measure and gate the test's
    code, or use :meth:`collect` to get histograms without a gate."""

    def __init__(self, item: pytest.Item, harness: Harness, marker: str) -> None:
        self._item = item
        self._marker = marker
        self._harness = harness
        self._test = item.nodeid
        self._gated = False

    def _device(self, device: DeviceArg | None) -> ProbedDevice | None:
        return probed_device(self._test, device) if device is not None else None

    def _probes(self, probes: object, device: ProbedDevice | None) -> tuple[str, ...]:
        return checked_probes(self._test, probes, device, self._harness.probe_availability)

    def __call__(
        self,
        fn: Callable[..., Any],
        *args: Any,
        probes: list[str] | tuple[str, ...],
        rounds: int | None = None,
        warmup: int = 1,
        device: DeviceArg | None = None,
        thresholds: Mapping[str, float] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` once per round (``warmup`` unmeasured first) under
        ``probes``, gate the rounds against the test's baseline and return ``fn``'s last
        return value. The verdict (FAIL, a missing baseline's skip) applies when the
        test's body has finished. Once per test."""
        __tracebackhide__ = True
        if self._gated:
            pytest.fail(f"{self._test}: {FIXTURE}(fn, ...) gates once per test", pytrace=False)
        self._gated = True
        harness = self._harness
        count = rounds if rounds is not None else harness.settings.rounds or DEFAULT_ROUNDS
        code = CodeRounds(fn, args, kwargs)
        error = None
        try:
            where = self._device(device)
            names = self._probes(probes, where)

            def measure(n: int, warm: int) -> Measurement:
                return measure_code(harness, self._test, code, names, where, n, warm)

            def more_for(measurement: Measurement) -> Callable[[int], None]:
                return lambda n: append_rounds(measurement, measure(n, 0).rounds)

            def again() -> tuple[Measurement, Callable[[int], None] | None]:
                measurement = measure(count, warmup)
                return measurement, more_for(measurement)

            # Before the first measurement loads the machine, as for scenarios.
            harness.control_measurement()
            first = measure(count, warmup)
            limits = {**_marker_thresholds(self._item, self._marker), **dict(thresholds or {})}
            outcome = harness.check(
                baseline_name(self._test),
                first,
                lambda metric: threshold_for(limits, metric),
                more_for(first),
                again,
            )
        except PerfcheckError as exc:
            error = str(exc)
        if error is not None:  # outside the except: the message alone, not its chain
            pytest.fail(error, pytrace=False)
        self._item.stash[DECIDED_KEY] = outcome
        return code.last

    @contextlib.contextmanager
    def collect(
        self, *, probes: list[str] | tuple[str, ...], device: DeviceArg | None = None
    ) -> Iterator[CollectedHistograms]:
        """Probes around the ``with`` block, no rounds, no gate: the histograms by name
        once the block ends (``h["block.latency.read"].percentile(99)``)."""
        __tracebackhide__ = True
        with contextlib.ExitStack() as stack:
            error = None
            try:
                where = self._device(device)
                names = self._probes(probes, where)
                around = collect_around_test(self._harness, self._test, names, where)
                collected = stack.enter_context(around)
            except PerfcheckError as exc:
                error = str(exc)
            if error is not None:
                pytest.fail(error, pytrace=False)
            yield collected


def _marker_thresholds(item: pytest.Item, name: str) -> dict[str, float]:
    marker = item.get_closest_marker(name)
    return dict((marker.kwargs.get("thresholds") or {}) if marker is not None else {})


@dataclass(eq=False)  # a plugin is hashed by identity, as pluggy's registry needs
class ProbeFixtures:
    """The fixtures as a plugin object: :mod:`perfcheck.plugin` registers one with its
    own pieces (so this module never imports it back)."""

    #: The run's harness, None without --perfcheck.
    harness_of: Callable[[pytest.Config], Harness | None]
    #: Turns an outcome into the test's result (fail, skip, properties).
    apply_outcome: Callable[[pytest.Item, ScenarioOutcome], None]
    marker: str
    skip_reason: str

    def _run_harness(self, request: pytest.FixtureRequest, what: str) -> Harness:
        harness = self.harness_of(request.config)
        if harness is None:
            pytest.skip(self.skip_reason)
        if harness.settings.ab_commands is not None:
            pytest.skip(f"perfcheck ab compares scenario files only, not {what} tests")
        return harness

    @pytest.fixture
    def perfcheck_probes(self, request: pytest.FixtureRequest) -> PerfcheckProbes:
        """Catalog probes around the test's own code, filtered to the test's process tree
        and the device it names. Gated: each call of ``fn`` is a round, compared with the
        test's baseline (record it with ``--perfcheck-update``); returns ``fn``'s last
        result::

            def test_reads(perfcheck_probes, perfcheck_scratch):
                perfcheck_probes(read_4k, perfcheck_scratch.path, probes=["block.latency"],
                                 device=perfcheck_scratch, rounds=10)

        Collection only: ``with perfcheck_probes.collect(probes=[...], device=...) as h:``
        then ``h["block.latency.read"].percentile(99)`` (ns). Without ``--perfcheck`` the
        test is skipped (it needs root and BPF), as scenario tests are.
        """
        return PerfcheckProbes(request.node, self._run_harness(request, FIXTURE), self.marker)

    @pytest.fixture
    def perfcheck_scratch(self, request: pytest.FixtureRequest) -> Iterator[ScratchLoopDevice]:
        """A scratch loop device of the test's own (128 MiB in RAM, filled with data), on
        the run's ``--perfcheck-scheduler``/``--perfcheck-queue`` settings: write it freely
        (``.path``; pass it as ``device=`` to ``perfcheck_probes``). Removed after the
        test."""
        harness = self._run_harness(request, "perfcheck_scratch")
        with contextlib.ExitStack() as stack:
            error = None
            try:
                device = stack.enter_context(harness.own_scratch(SCRATCH_SIZE_MIB))
            except PerfcheckError as exc:
                error = f"{request.node.nodeid}: perfcheck_scratch: {exc}"
            if error is not None:
                pytest.fail(error, pytrace=False)
            yield device

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        result = yield
        outcome = item.stash.get(DECIDED_KEY, None)
        if outcome is not None:
            self.apply_outcome(item, outcome)
        return result
