"""One perfcheck run: the target, the probe session and the baseline store, shared by
every scenario and test of a pytest session (or a CLI command), created on first
need and released once at the end.

Nothing here knows pytest; :mod:`perfcheck.plugin` maps options onto
:class:`HarnessSettings` and items onto :meth:`Harness.check`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from perfcheck import environment
from perfcheck.baseline import Baseline, BaselineStore, utc_timestamp
from perfcheck.drift import ControlMeasurement, check_drift, downgrade_for_drift, measure_control
from perfcheck.errors import BaselineError, CapabilityError
from perfcheck.fio import kill_leftover_workloads
from perfcheck.gate import ScenarioVerdict, is_gated, judge
from perfcheck.history import (
    DEFAULT_BASELINE_SESSIONS,
    SOURCE_RECORD,
    SOURCE_REFRESH,
    appended,
    central_session,
    same_target,
    summarize,
)
from perfcheck.knobs import WORKQUEUE_AFFINITY_SCOPE, restore_leftover_knobs, sysfs_setting
from perfcheck.measurement import Measurement
from perfcheck.netload import NetworkLoad, NetworkSetup
from perfcheck.netns import remove_leftover_network
from perfcheck.probes import CATALOG, filter_on
from perfcheck.probes.features import (
    Unavailable,
    bpf_prerequisites_missing,
    partition_available,
)
from perfcheck.probes.session import ProbeBackend, ProbeSession
from perfcheck.processes import remove_leftover_tempdirs
from perfcheck.rounds import ProgressCallback, Workload
from perfcheck.runner import measure, measure_network, scenario_writes
from perfcheck.scenario import Scenario
from perfcheck.sequential import DEFAULT_BATCH, DEFAULT_MAX_ROUNDS, SequentialPlan, run_sequential
from perfcheck.targets import (
    BlockTarget,
    ScratchLoopDevice,
    io_scheduler,
    open_given_target,
    queue_setting,
    remove_leftover_scratch,
)
from perfcheck.verdict import DEFAULT_ALPHA, MetricComparison, Verdict


class MissingBaseline(StrEnum):
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class HarnessSettings:
    baseline_dir: Path
    update: bool = False
    target: Path | None = None
    allow_destructive: bool = False
    scheduler: str | None = None
    #: Block-queue attributes set on the target after the scheduler (--perfcheck-queue).
    queue: tuple[tuple[str, str], ...] = ()
    rounds: int | None = None
    seconds: float | None = None
    missing: MissingBaseline = MissingBaseline.SKIP
    machine_class: str | None = None
    alpha: float = DEFAULT_ALPHA
    scratch_size_mib: int = 512
    #: Noise control for loop-device targets (see perfcheck.knobs).
    tune: bool = True
    #: Fail instead of falling back to workload-only metrics when BPF probes cannot start.
    require_bpf: bool = False
    #: Sequential rounds: cap on the current side's rounds, and rounds added per look.
    max_rounds: int = DEFAULT_MAX_ROUNDS
    batch: int = DEFAULT_BATCH
    #: INCONCLUSIVE fails the test (--perfcheck-strict).
    strict: bool = False
    #: Alpha per scenario, not per metric: Holm's correction (--perfcheck-holm).
    holm: bool = False
    #: A FAIL must repeat in a fresh session before it stands (--perfcheck-no-repeat).
    repeat_fails: bool = True
    #: Add passing sessions to their baseline's history (--perfcheck-record).
    record: bool = False
    #: A recording measures this many fresh sessions and keeps the most typical one as the
    #: baseline, all of them going into its history (--perfcheck-baseline-sessions).
    baseline_sessions: int = DEFAULT_BASELINE_SESSIONS
    #: Measure the drift control once per run (--perfcheck-control).
    control: bool = False
    #: Interleaved A/B: the set-up commands of sides A and B (perfcheck.ab).
    ab_commands: tuple[str, str] | None = None


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    RECORDED = "RECORDED"
    NO_BASELINE = "NO BASELINE"


@dataclass
class ScenarioOutcome:
    """What happened to one scenario (or perfcheck-using test) in this run."""

    name: str
    status: Status
    measurement: Measurement
    verdict: ScenarioVerdict | None = None
    baseline_path: Path | None = None
    #: How a recording was made, e.g. which of several sessions became the baseline.
    note: str | None = None


ThresholdLookup = Callable[[str], "float | None"]
ProbeFactory = Callable[[list[str]], ProbeBackend]
#: Measures a scenario anew: its measurement, and how to add rounds to it.
MeasureAgain = Callable[[], tuple[Measurement, Callable[[int], None] | None]]
TargetFactory = Callable[[bool], BlockTarget]
WorkloadFactory = Callable[[Scenario, BlockTarget], Workload]


def baseline_name_for(text: str) -> str:
    """A test id made into a baseline name (file-name safe, readable)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return name[:128] or "unnamed"


def default_probe_factory(names: list[str]) -> ProbeBackend:
    return ProbeSession([CATALOG[name]() for name in names])


#: Which of these probes cannot load on this machine, and why (name -> reason).
ProbeAvailability = Callable[[list[str]], dict[str, Unavailable]]


def catalog_unavailable(names: list[str]) -> dict[str, Unavailable]:
    """Probes of the catalog that cannot load here, each with its reason and fix.

    Only asked when the machine-wide prerequisites (root, bcc, headers, tracefs) are
    there: without them every probe is out, and starting the session says which one is
    missing, once.
    """
    if bpf_prerequisites_missing() is not None:
        return {}
    _, skipped = partition_available([CATALOG[name] for name in names if name in CATALOG])
    return skipped


NetworkFactory = Callable[[Scenario], NetworkSetup]


def default_network_factory(scenario: Scenario) -> NetworkSetup:
    """Start a network scenario's namespace and server; a workload cgroup is made when
    one of its probes filters on it."""
    spec = scenario.workload.network
    if spec is None:
        raise ValueError(f"{scenario.name} is not a network scenario")
    return NetworkLoad.start(spec, with_cgroup=filter_on(scenario.probes, "cgroup_id"))


@dataclass
class Harness:
    settings: HarnessSettings
    probe_factory: ProbeFactory = default_probe_factory
    target_factory: TargetFactory | None = None
    workload_factory: WorkloadFactory | None = None
    outcomes: list[ScenarioOutcome] = field(default_factory=list)
    #: Things the run did to the machine that the user should hear about.
    notices: list[str] = field(default_factory=list)
    #: Why the probes could not start (no root, no bcc, ...), when they could not.
    probes_unavailable: str | None = None
    #: Probes named by scenarios that this machine cannot load, left out of the session.
    skipped_probes: dict[str, Unavailable] = field(default_factory=dict)
    #: Says which probes cannot load here; replaceable for tests.
    probe_availability: ProbeAvailability = catalog_unavailable
    _probes: ProbeBackend | None = None
    _probe_names: tuple[str, ...] = ()
    _scratch: BlockTarget | None = None
    _scratch_stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    #: Sessions started over again to repeat a FAIL (fresh_session).
    fresh_sessions: int = 0
    _cleanup: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _scheduled_disks: set[str] = field(default_factory=set)
    _cleaned_leftovers: bool = False
    _tuned: bool = False
    #: Starts network scenarios (namespace, server); replaceable for tests.
    network_factory: NetworkFactory = default_network_factory
    #: The running network scenario: its name and set-up, until another scenario starts.
    _network: tuple[str, NetworkSetup] | None = None
    _control: ControlMeasurement | None = None
    #: Measures the drift control; replaceable for tests.
    control_factory: Callable[[], ControlMeasurement] = measure_control

    def __post_init__(self) -> None:
        self.store = BaselineStore(self.settings.baseline_dir)
        self.machine_class = environment.machine_class(self.settings.machine_class)

    # -- shared resources -------------------------------------------------------------

    def want_probes(self, names: set[str] | list[str] | tuple[str, ...]) -> None:
        """Declare probes that will be needed, so one program compiles them all."""
        if self._probes is None:
            self._probe_names = tuple(sorted(set(self._probe_names) | set(names)))

    def probes(self, names: tuple[str, ...]) -> ProbeBackend | None:
        """The run's probe session with only ``names`` (a scenario's probes) attached, or
        None when none of them can be measured. Attached probes cost every event they see,
        so another scenario's probes would slow this one's workload."""
        backend = self._probe_session(names)
        if self._probes is not None:
            self._probes.activate(tuple(n for n in names if n not in self.skipped_probes))
        return backend

    def _probe_session(self, names: tuple[str, ...]) -> ProbeBackend | None:
        if not names:
            return None
        if self.probes_unavailable is not None:
            return None
        if self._probes is None:
            self.want_probes(names)
            self._skip_unavailable_probes()
            loadable = [n for n in self._probe_names if n not in self.skipped_probes]
            if not loadable:
                return None
            backend = self.probe_factory(loadable)
            try:
                backend.start()
            except CapabilityError as exc:
                if self.settings.require_bpf:
                    raise
                # Without root or bcc the workloads' own metrics are still worth comparing.
                self.probes_unavailable = str(exc)
                self.notices.append(
                    f"BPF probes skipped, only the workloads' own metrics were compared: {exc}"
                )
                return None
            self._probes = backend
            self._cleanup.callback(backend.close)
        missing = set(names) - set(self._probe_names)
        if missing:
            raise RuntimeError(f"probes {sorted(missing)} were not declared before the session")
        if self._probes is None or not set(names) - set(self.skipped_probes):
            return None
        return self._probes

    def _skip_unavailable_probes(self) -> None:
        """Leave out the declared probes this machine cannot load, each with a notice.

        An optional probe (``func.latency``, ``ufunc.latency``) is left out even with
        ``require_bpf``: its absence is a fact of the kernel, not a broken set-up. A
        probe the product relies on is not: with ``require_bpf`` its absence is an error.
        """
        skipped = self.probe_availability(list(self._probe_names))
        for name, reason in sorted(skipped.items()):
            optional = bool(getattr(CATALOG.get(name), "optional", False))
            if self.settings.require_bpf and not optional:
                raise CapabilityError(f"probe {name} cannot load here: {reason}")
            self.skipped_probes[name] = reason
            self.notices.append(f"probe {name} skipped, its metrics were not compared: {reason}")

    def _clean_leftovers(self) -> None:
        """Once per run: undo what killed runs left (settings, devices, namespaces, files)."""
        if not self._cleaned_leftovers:
            self._cleaned_leftovers = True
            cleaned = (
                kill_leftover_workloads()
                + restore_leftover_knobs()
                + remove_leftover_scratch()
                + remove_leftover_network()
                + remove_leftover_tempdirs()
            )
            self.notices += [f"cleaned up after an earlier killed run: {c}" for c in cleaned]

    def network(self, scenario: Scenario) -> NetworkSetup:
        """A network scenario's namespace and server: started at its first measurement,
        kept for its extra rounds, stopped when another scenario is measured or at close."""
        self._clean_leftovers()
        if self._network is not None and self._network[0] == scenario.name:
            return self._network[1]
        self._stop_network()
        setup = self.network_factory(scenario)
        self._cleanup.callback(setup.close)
        self._network = (scenario.name, setup)
        return setup

    def _stop_network(self) -> None:
        if self._network is not None:
            setup, self._network = self._network[1], None
            setup.close()

    def _measure_network(
        self, scenario: Scenario, rounds: int | None, progress: ProgressCallback | None
    ) -> Measurement:
        setup = self.network(scenario)
        self.control_measurement()  # before the probes load: none is attached during it
        probes = self.probes(scenario.probes)
        return measure_network(
            scenario,
            setup,
            probes,
            rounds=rounds,
            seconds=self.settings.seconds,
            progress=progress,
        )

    def target(self, writes: bool) -> BlockTarget:
        self._clean_leftovers()
        if self.target_factory is not None:
            target = self.target_factory(writes)
        elif self.settings.target is not None:
            target = open_given_target(
                self.settings.target,
                writes=writes,
                allow_destructive=self.settings.allow_destructive,
            )
        else:
            if self._scratch is None:
                # The device and what is set on it go together (see fresh_session).
                self._scratch_stack = contextlib.ExitStack()
                self._cleanup.callback(self._scratch_stack.close)
                self._scratch = ScratchLoopDevice.create(self.settings.scratch_size_mib)
                self._scratch_stack.callback(self._scratch.close)
            target = self._scratch
        if self.settings.tune and not self._tuned and target.disk.startswith("loop"):
            # A loop device's I/O runs in a kworker: keep it on the submitting CPU.
            self._tuned = True
            if WORKQUEUE_AFFINITY_SCOPE.exists():
                self._cleanup.enter_context(sysfs_setting(WORKQUEUE_AFFINITY_SCOPE, "cpu"))
        # A loop device keeps its queue settings between uses, so the scratch device is
        # put on a known scheduler ("none") unless the run asks for another.
        default = "none" if isinstance(target, ScratchLoopDevice) else None
        scheduler = self.settings.scheduler or default
        if target.disk not in self._scheduled_disks:
            stack = self._scratch_stack if target is self._scratch else self._cleanup
            if scheduler:
                stack.enter_context(io_scheduler(target.disk, scheduler))
            # After the scheduler: changing it resets queue attributes such as nr_requests.
            for name, value in self.settings.queue:
                stack.enter_context(queue_setting(target.disk, name, value))
            self._scheduled_disks.add(target.disk)
        return target

    def fresh_session(self) -> None:
        """Make the next measurement a new session, as a later run would be: a new
        scratch device (the old one released with what was set on it) and a restarted
        network scenario. A target the user gave stays; the probes stay compiled."""
        self._stop_network()
        if self._scratch is not None:
            self._scheduled_disks.discard(self._scratch.disk)
            self._scratch = None
            stack, self._scratch_stack = self._scratch_stack, contextlib.ExitStack()
            stack.close()
        self.fresh_sessions += 1

    def close(self) -> None:
        """Release everything in reverse order of creation (scheduler, device, probes)."""
        self._probes = None
        self._scratch = None
        self._network = None
        self._cleanup.close()

    # -- one scenario --------------------------------------------------------------------

    def measure(self, scenario: Scenario, progress: ProgressCallback | None = None) -> Measurement:
        return self.measure_rounds(scenario, self.settings.rounds, progress)

    def measure_rounds(
        self, scenario: Scenario, rounds: int | None, progress: ProgressCallback | None = None
    ) -> Measurement:
        """The scenario's warm-up and ``rounds`` measured rounds (None: the scenario's), on
        its block target or in its network namespace, under the run's probes."""
        if scenario.workload.network is not None:
            return self._measure_network(scenario, rounds, progress)
        self._stop_network()  # no idle server of an earlier scenario during disk rounds
        target = self.target(scenario_writes(scenario))
        # Before the first scenario loads the machine, and before any probe is attached.
        self.control_measurement()
        probes = self.probes(scenario.probes)
        return measure(
            scenario,
            target,
            probes,
            rounds=rounds,
            seconds=self.settings.seconds,
            # None: fio, in a cgroup of its own when a probe filters on one.
            workload=(
                self.workload_factory(scenario, target)
                if self.workload_factory is not None
                else None
            ),
            progress=progress,
        )

    @property
    def measured_control(self) -> ControlMeasurement | None:
        """The drift control if this run measured it (never measures it)."""
        return self._control

    def control_measurement(self) -> ControlMeasurement | None:
        """The drift control of this run, measured on first need (None unless enabled)."""
        if self.settings.control and self._control is None:
            self._control = self.control_factory()
        return self._control

    def measure_more(
        self,
        scenario: Scenario,
        measurement: Measurement,
        rounds: int,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Append ``rounds`` more measured rounds (no warm-up: the run is already warm)."""
        more = self.measure_rounds(replace(scenario, warmup=0), rounds, progress)
        for rnd in more.rounds:
            rnd.index = len(measurement.rounds)
            measurement.rounds.append(rnd)

    def sequential_plan(self, initial: int) -> SequentialPlan:
        return SequentialPlan(
            initial=initial,
            max_rounds=max(initial, self.settings.max_rounds),
            batch=self.settings.batch,
            alpha=self.settings.alpha,
        )

    def check(
        self,
        name: str,
        measurement: Measurement,
        thresholds: ThresholdLookup | None = None,
        measure_more: Callable[[int], None] | None = None,
        measure_again: MeasureAgain | None = None,
    ) -> ScenarioOutcome:
        """Record the measurement (update mode) or judge it against its baseline.

        ``measure_more(n)`` appends n current rounds to ``measurement``; with it, an
        INCONCLUSIVE verdict gets more rounds (perfcheck.sequential) before it stands.
        ``measure_again()`` measures the scenario anew (its measurement, and how to add
        rounds to it); with it, a FAIL must repeat in a fresh session before it stands
        (:meth:`repeat_fail`).
        """
        measurement.scenario = name
        path = self.store.path_for(name, self.machine_class)
        if self.settings.update:
            sessions = self._sessions_to_record(name, measurement, measure_again)
            chosen = central_session([_medians(m) for m in sessions])
            measurement = sessions[chosen]
            others = [m for i, m in enumerate(sessions) if i != chosen]
            self.store.queue(self._recorded(name, measurement, thresholds, others))
            note = None
            if len(sessions) > 1:
                note = (
                    f"baseline from session {chosen + 1} of {len(sessions)} fresh sessions"
                    " (the most typical; all of them added to its history)"
                )
            outcome = ScenarioOutcome(
                name, Status.RECORDED, measurement, baseline_path=path, note=note
            )
        else:
            baseline = self.store.load(name, self.machine_class)
            if baseline is None:
                outcome = ScenarioOutcome(name, Status.NO_BASELINE, measurement, baseline_path=path)
            else:
                verdict = self.decide(name, measurement, baseline, thresholds, measure_more)
                if verdict.verdict is Verdict.FAIL and measure_again is not None:
                    verdict = self.repeat_fail(verdict, thresholds, measure_again)
                    measurement = verdict.measurement
                outcome = ScenarioOutcome(name, status_of(verdict), measurement, verdict, path)
                if self.settings.record and outcome.status is Status.PASS:
                    self._queue_history(baseline, measurement)
        self.outcomes.append(outcome)
        return outcome

    def _sessions_to_record(
        self, name: str, first: Measurement, measure_again: MeasureAgain | None
    ) -> list[Measurement]:
        """``first`` and, for a baseline from several sessions, that many more measured
        each in a fresh session (new scratch device, restarted network scenario).

        One session can be an outlier throughout on a shared machine (bench/RESULTS.md:
        a few sessions in twenty run 1.5-2x faster or slower), and a baseline recorded in
        one would make every later run FAIL or hide a regression; the most typical of
        three is rarely one."""
        sessions = [first]
        if measure_again is None:
            return sessions
        for _ in range(self.settings.baseline_sessions - 1):
            self.fresh_session()
            measurement, _more = measure_again()
            measurement.scenario = name
            sessions.append(measurement)
        return sessions

    def repeat_fail(
        self,
        first: ScenarioVerdict,
        thresholds: ThresholdLookup | None,
        measure_again: MeasureAgain,
    ) -> ScenarioVerdict:
        """A FAIL stands only if a fresh session FAILs too; else it is INCONCLUSIVE.

        Sessions of one machine differ more than rounds of one session (bench/RESULTS.md:
        on the shared VM a few sessions in twenty run 1.5-2x faster or slower throughout),
        so a stored-baseline FAIL is first measured again from a new start: a new scratch
        device, a restarted network scenario. The repeat's verdict is the one reported
        when it FAILs as well. Off with ``--perfcheck-no-repeat``.
        """

        def judge_again() -> ScenarioVerdict:
            measurement, more = measure_again()
            measurement.scenario = first.name
            return self.decide(first.name, measurement, first.baseline, thresholds, more)

        return self.confirm_fail(first, judge_again)

    def confirm_fail(
        self, first: ScenarioVerdict, judge_again: Callable[[], ScenarioVerdict]
    ) -> ScenarioVerdict:
        """The rule of :meth:`repeat_fail` with any way of judging again:
        ``judge_again()`` runs in a fresh session (:meth:`fresh_session`) and judges the
        scenario anew (against its stored baseline, or ``perfcheck ab``'s two sides
        measured again)."""
        if not self.settings.repeat_fails or first.verdict is not Verdict.FAIL:
            return first
        self.fresh_session()
        second = judge_again()
        rounds = f"{len(first.measurement.rounds)} + {len(second.measurement.rounds)} rounds"
        if second.verdict is Verdict.FAIL:
            second.repeat = f"FAILed again ({rounds}): the first session's FAIL stands"
            return second
        top = second.worst
        there = f"{top.metric}: {top.reason}" if top is not None else "every metric PASSed"
        first.repeat = f"did not FAIL again ({rounds}; {there}), so the FAIL is INCONCLUSIVE"
        first.comparisons = [
            replace(
                c,
                verdict=Verdict.INCONCLUSIVE,
                rounds_needed=None,
                reason=f"{c.reason}; but a fresh session did not FAIL again",
            )
            if c.verdict is Verdict.FAIL
            else c
            for c in first.comparisons
        ]
        return first

    def decide(
        self,
        name: str,
        measurement: Measurement,
        baseline: Baseline,
        thresholds: ThresholdLookup | None = None,
        measure_more: Callable[[int], None] | None = None,
    ) -> ScenarioVerdict:
        """Sequential looks, then the drift control's say: the verdict of one comparison."""
        last: list[ScenarioVerdict] = []

        def look(alpha: float) -> list[MetricComparison]:
            last[:] = [judge(name, measurement, baseline, thresholds, alpha, self.settings.holm)]
            return last[0].comparisons

        result = run_sequential(self.sequential_plan(len(measurement.rounds)), look, measure_more)
        verdict = last[0]
        verdict.looks = result.looks
        drift = check_drift(baseline.control, self.control_measurement(), self.settings.alpha)
        verdict.drift = drift
        verdict.comparisons = downgrade_for_drift(verdict.comparisons, drift)
        return verdict

    def _recorded(
        self,
        name: str,
        measurement: Measurement,
        thresholds: ThresholdLookup | None,
        others: list[Measurement] | None = None,
    ) -> Baseline:
        """A new baseline, carrying the old one's history plus this session and the
        ``others`` measured with it (see perfcheck.history: a recording whose sessions
        all FAIL against the old one, or that ran on another kind of target, restarts
        the history)."""
        new = Baseline.record(measurement, self.machine_class)
        new.control = self.control_measurement()
        try:
            old = self.store.load(name, self.machine_class)
        except BaselineError:
            old = None  # an unreadable old baseline is being replaced: its history is lost
        sessions = [*(others or []), measurement]
        history = []
        if old is not None and same_target(old.measurement.environment, measurement.environment):
            try:
                # Performance moved only if every new session FAILs against the old
                # baseline: sessions of one refresh that disagree show session noise.
                moved = all(
                    judge(name, s, old, thresholds, self.settings.alpha).verdict is Verdict.FAIL
                    for s in sessions
                )
                if not moved:
                    history = list(old.history)
            except BaselineError:
                pass  # other probe points: the old sessions measured something else
        for session in sessions:
            summary = summarize(session, new.recorded_at, SOURCE_REFRESH, _gated(session))
            history = appended(history, summary)
        new.history = history
        return new

    def _queue_history(self, baseline: Baseline, measurement: Measurement) -> None:
        summary = summarize(measurement, utc_timestamp(), SOURCE_RECORD, _gated(measurement))
        baseline.history = appended(baseline.history, summary)
        self.store.queue(baseline)

    def flush(self) -> list[Path]:
        """Write queued baselines (atomically); called once, at the end of a good run."""
        return self.store.flush()

    def discard(self) -> None:
        self.store.discard()


def status_of(verdict: ScenarioVerdict) -> Status:
    return {
        Verdict.PASS: Status.PASS,
        Verdict.FAIL: Status.FAIL,
        Verdict.INCONCLUSIVE: Status.INCONCLUSIVE,
    }[verdict.verdict]


def _medians(measurement: Measurement) -> dict[str, float]:
    """Median of each gated metric's rounds: what sessions are compared by."""
    return dict(summarize(measurement, "", SOURCE_REFRESH, _gated(measurement)).medians)


def _gated(measurement: Measurement) -> list[str]:
    return [m for m in measurement.metric_series() if is_gated(m)]
