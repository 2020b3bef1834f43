"""The resources of one perfcheck run, shared by every scenario and test of a pytest
session (or a CLI command): the block target, the network scenario's namespace, the probe
session, the drift control and the kernel settings changed for the run. Each is made on
first need and released once at the end (:meth:`RunResources.close`); leftovers of a
killed run are cleaned first. Judging is :class:`perfcheck.run.harness.Harness`'s.

Nothing here knows pytest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from perfcheck.errors import CapabilityError, TargetError
from perfcheck.model.control import ControlMeasurement
from perfcheck.model.measurement import Measurement
from perfcheck.probes import CATALOG, filter_on
from perfcheck.probes.features import (
    Unavailable,
    bpf_prerequisites_missing,
    partition_available,
)
from perfcheck.probes.session import ProbeBackend, ProbeSession
from perfcheck.run.measure import measure, scenario_writes
from perfcheck.run.settings import HarnessSettings
from perfcheck.system.cgroup import WorkloadCgroup, process_in_own_cgroup
from perfcheck.system.filesystems import MountedFilesystem, remove_leftover_mounts
from perfcheck.system.knobs import WORKQUEUE_AFFINITY_SCOPE, restore_leftover_knobs, sysfs_setting
from perfcheck.system.netns import remove_leftover_network
from perfcheck.system.processes import remove_leftover_tempdirs
from perfcheck.system.targets import (
    BlockTarget,
    ScratchLoopDevice,
    io_scheduler,
    open_given_target,
    queue_setting,
    remove_leftover_scratch,
)
from perfcheck.workloads.control import measure_control
from perfcheck.workloads.fio import kill_leftover_workloads
from perfcheck.workloads.netload import NetworkLoad, NetworkSetup
from perfcheck.workloads.rounds import ProgressCallback, Workload
from perfcheck.workloads.scenario import Scenario

ProbeFactory = Callable[[list[str]], ProbeBackend]
TargetFactory = Callable[[bool], BlockTarget]
WorkloadFactory = Callable[[Scenario, BlockTarget], Workload]


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
class RunResources:
    settings: HarnessSettings
    probe_factory: ProbeFactory = default_probe_factory
    target_factory: TargetFactory | None = None
    workload_factory: WorkloadFactory | None = None
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
    #: The scenario whose filesystem is mounted, and the filesystem, until another
    #: scenario is measured (a filesystem scenario's extra rounds reuse it).
    _filesystem: tuple[str, MountedFilesystem] | None = None
    #: Puts this process in a cgroup of its own while probes time a test's code
    #: (perfcheck.run.around); replaceable for tests.
    join_cgroup: Callable[[], contextlib.AbstractContextManager[WorkloadCgroup]] = (
        process_in_own_cgroup
    )

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
            # A test's own code names its probes only when it runs (perfcheck_probes): the
            # session is compiled again with them, once.
            self._cleanup_probes()
            return self._probe_session(names)
        if self._probes is None or not set(names) - set(self.skipped_probes):
            return None
        return self._probes

    def _cleanup_probes(self) -> None:
        if self._probes is not None:
            backend, self._probes = self._probes, None
            backend.close()

    def _skip_unavailable_probes(self) -> None:
        """Leave out the declared probes this machine cannot load, each with a notice.

        An optional probe (``func.latency``, ``ufunc.latency``) is left out even with
        ``require_bpf``: its absence is a fact of the kernel, not a broken set-up. A
        probe the product relies on is not: with ``require_bpf`` its absence is an error.
        """
        skipped = self.probe_availability(list(self._probe_names))
        for name, reason in sorted(skipped.items()):
            if name in self.skipped_probes:
                continue  # said when the session was first compiled
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
                # Before the scratch devices: a device under a mount cannot be detached.
                + remove_leftover_mounts()
                + remove_leftover_scratch()
                + remove_leftover_network()
                + remove_leftover_tempdirs()
            )
            self.notices += [
                c if c.startswith("skipped ") else f"cleaned up after an earlier killed run: {c}"
                for c in cleaned
            ]

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
        return measure(
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
        if target.disk not in self._scheduled_disks:
            stack = self._scratch_stack if target is self._scratch else self._cleanup
            self._set_up_queue(target, stack)
            self._scheduled_disks.add(target.disk)
        return target

    def _set_up_queue(self, target: BlockTarget, stack: contextlib.ExitStack) -> None:
        """The run's noise control, scheduler and queue settings on ``target``'s disk, put
        back when ``stack`` closes (the noise control at the end of the run)."""
        if self.settings.tune and not self._tuned and target.disk.startswith("loop"):
            # A loop device's I/O runs in a kworker: keep it on the submitting CPU.
            self._tuned = True
            if WORKQUEUE_AFFINITY_SCOPE.exists():
                self._cleanup.enter_context(sysfs_setting(WORKQUEUE_AFFINITY_SCOPE, "cpu"))
        # A loop device keeps its queue settings between uses, so the scratch device is
        # put on a known scheduler ("none") unless the run asks for another.
        default = "none" if isinstance(target, ScratchLoopDevice) else None
        scheduler = self.settings.scheduler or default
        if scheduler:
            stack.enter_context(io_scheduler(target.disk, scheduler))
        # After the scheduler: changing it resets queue attributes such as nr_requests.
        for name, value in self.settings.queue:
            stack.enter_context(queue_setting(target.disk, name, value))

    @contextlib.contextmanager
    def own_scratch(self, size_mib: int) -> Iterator[ScratchLoopDevice]:
        """A scratch loop device of its own, for a test's code to write freely: on the
        run's scheduler and queue settings, released (with them) on the way out. Not the
        run's shared device, which a FAIL's fresh session replaces under the code's feet."""
        self._clean_leftovers()
        with contextlib.ExitStack() as stack:
            device = ScratchLoopDevice.create(size_mib)
            stack.callback(device.close)
            self._set_up_queue(device, stack)
            yield device

    @property
    def mount_point(self) -> Path | None:
        """Where the running scenario's filesystem is mounted (``[target] filesystem``),
        or None when it runs on the raw target or in a network namespace."""
        return self._filesystem[1].mount_point if self._filesystem is not None else None

    def filesystem(self, scenario: Scenario, target: BlockTarget) -> MountedFilesystem | None:
        """The scenario's filesystem on ``target``: made and mounted at its first
        measurement, kept for its extra rounds, unmounted when another scenario is measured
        (or at close). None for a scenario without ``[target]``.

        On a target the user gave, making a filesystem destroys what it holds: refused
        without ``--perfcheck-allow-destructive``.
        """
        if (
            self._filesystem is not None
            and self._filesystem[0] == scenario.name
            and self._filesystem[1].device == target.path
        ):
            return self._filesystem[1]
        self._stop_filesystem()
        spec = scenario.filesystem
        if spec is None:
            return None
        if not target.created_by_harness:
            self._check_filesystem_allowed(scenario, target.path)
        where = f"{scenario.path}: [target] filesystem = {spec.kind!r}"
        mounted = MountedFilesystem.create(spec, target.path, where)
        self._cleanup.callback(mounted.close)
        self._filesystem = (scenario.name, mounted)
        return mounted

    def _check_filesystem_allowed(self, scenario: Scenario, target: Path) -> None:
        """Refuse to make a scenario's filesystem on a target the user gave, unless its
        data may be destroyed (--perfcheck-allow-destructive)."""
        if scenario.filesystem is not None and not self.settings.allow_destructive:
            raise TargetError(
                f"{scenario.path}: [target] filesystem = {scenario.filesystem.kind!r} makes a"
                f" filesystem on --perfcheck-target {target}, destroying what it holds; pass"
                " --perfcheck-allow-destructive if it may be"
            )

    def _stop_filesystem(self) -> None:
        if self._filesystem is not None:
            mounted, self._filesystem = self._filesystem[1], None
            mounted.close()

    def fresh_session(self) -> None:
        """Make the next measurement a new session, as a later run would be: a new
        scratch device (the old one released with what was set on it, its filesystem
        unmounted first) and a restarted network scenario. A target the user gave stays;
        the probes stay compiled."""
        self._stop_network()
        self._stop_filesystem()
        if self._scratch is not None:
            self._scheduled_disks.discard(self._scratch.disk)
            self._scratch = None
            stack, self._scratch_stack = self._scratch_stack, contextlib.ExitStack()
            stack.close()
        self.fresh_sessions += 1

    def close(self) -> None:
        """Release everything in reverse order of creation (scheduler, device, probes)."""
        try:
            self._stop_filesystem()  # before its device, whenever that was made
        finally:
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
            self._stop_filesystem()
            return self._measure_network(scenario, rounds, progress)
        self._stop_network()  # no idle server of an earlier scenario during disk rounds
        if self.settings.target is not None and self.target_factory is None:
            self._check_filesystem_allowed(scenario, self.settings.target)
        target = self.target(scenario_writes(scenario))
        # Made (or unmounted, for a raw scenario) before the probes load and fio starts.
        filesystem = self.filesystem(scenario, target)
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
            filesystem=filesystem,
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
