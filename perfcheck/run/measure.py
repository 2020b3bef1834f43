"""From a scenario to a :class:`~perfcheck.model.measurement.Measurement`: target, workload,
probes and rounds put together. Used by the pytest plugin and usable from a shell::

    from perfcheck.run.measure import measure
    from perfcheck.workloads.scenario import load_scenario
    from perfcheck.system.targets import ScratchLoopDevice
    from perfcheck.probes import BlockLatencyProbe
    from perfcheck.probes.session import ProbeSession

    with ScratchLoopDevice.create() as target:
        probes = ProbeSession([BlockLatencyProbe()])
        probes.start()
        m = measure(load_scenario(Path("scenarios/randread-4k.toml")), target, probes)
        probes.close()
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from perfcheck.errors import ScenarioError
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.probes import filter_on
from perfcheck.probes.block import SAMPLE_SETTING
from perfcheck.probes.session import ProbeBackend
from perfcheck.system import environment
from perfcheck.system.cgroup import WorkloadCgroup
from perfcheck.system.environment import block_device_facts
from perfcheck.system.filesystems import MountedFilesystem
from perfcheck.system.knobs import WORKQUEUE_AFFINITY_SCOPE, current_value
from perfcheck.system.netns import NetnsTarget
from perfcheck.system.processes import run_tempdir
from perfcheck.system.targets import BlockTarget
from perfcheck.workloads.command import CommandRunner, CommandWorkload
from perfcheck.workloads.fio import FioJobFile, FioRunner, load_job_file
from perfcheck.workloads.netload import NetworkSetup, whole_seconds
from perfcheck.workloads.rounds import (
    ProgressCallback,
    RoundPlan,
    Workload,
    WorkloadReport,
    run_rounds,
)
from perfcheck.workloads.scenario import Scenario

FIO_PROVENANCE = ["fio --output-format=json+ clat_ns bins, iops, bw_bytes"]


@dataclass
class FioWorkload:
    """fio as a round workload: one fio run per round."""

    runner: FioRunner

    def run(self, seconds: float) -> WorkloadReport:
        result = self.runner.run(seconds)
        return WorkloadReport(
            histograms=result.histograms(),
            scalars=result.scalars(),
            ios=result.total_ios,
            io_bytes=result.total_bytes,
        )


def _job_path(scenario: Scenario) -> Path:
    if scenario.workload.job is None:
        raise ScenarioError(
            f"{scenario.path}: a {scenario.workload.kind} scenario has no fio job file"
        )
    return scenario.workload.job


def fio_job(scenario: Scenario) -> FioJobFile:
    """The scenario's fio job file with its ``[workload.options]``, checked as fio reads
    them (errors about the options name the scenario file)."""
    return load_job_file(_job_path(scenario), scenario.workload.options, scenario.path)


def fio_workload(
    scenario: Scenario,
    target: BlockTarget,
    cgroup: WorkloadCgroup | None = None,
    filesystem: MountedFilesystem | None = None,
) -> FioWorkload:
    """The scenario's fio job on ``target``, read-only unless the target is writable;
    with ``cgroup``, fio starts inside it; with ``filesystem`` (made on the target), fio's
    files are made in it."""
    preexec = cgroup.preexec_fn() if cgroup is not None else None
    if filesystem is not None:
        runner = FioRunner(
            fio_job(scenario), target.path, True, preexec, directory=filesystem.mount_point
        )
    else:
        runner = FioRunner(fio_job(scenario), target.path, target.writable, preexec=preexec)
    return FioWorkload(runner)


def scenario_writes(scenario: Scenario) -> bool:
    """Whether the scenario writes to its block target (network scenarios have none; a
    command scenario says so with ``writes = true``)."""
    if scenario.workload.network is not None:
        return False
    if scenario.filesystem is not None:
        return True
    if scenario.workload.command is not None:
        return scenario.workload.command.writes
    return fio_job(scenario).writes


def _keep_probe_series(names: Mapping[str, object], probes: tuple[str, ...]) -> set[str]:
    # A probe's series is named after it (tcp.srtt) or below it (block.latency.read).
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in probes)}


def measure(
    scenario: Scenario,
    target: BlockTarget | NetworkSetup,
    probes: ProbeBackend | None,
    *,
    rounds: int | None = None,
    seconds: float | None = None,
    workload: Workload | None = None,
    progress: ProgressCallback | None = None,
    filesystem: MountedFilesystem | None = None,
) -> Measurement:
    """Run the scenario's rounds on ``target`` under the already started ``probes``.

    A block ``target``: without ``workload``, fio runs the scenario's job; when one of its
    probes filters on a cgroup (scheduler, syscalls), fio starts in a cgroup of its own and
    they time it only; fio's own series are always kept; ``filesystem``: the scenario's
    filesystem, made on the block target and mounted, where fio works. A network ``target`` is the
    started load (namespace, server); the probes are filtered to the server's port and the
    workload's cgroup. A command scenario runs its command in a cgroup of its own, with
    the block target (and ``filesystem``'s mount point, when given) in its environment.
    Series are kept as :func:`_measurement` says.
    """
    plan = _plan(scenario, rounds, seconds)
    if isinstance(target, BlockTarget) and scenario.workload.command is not None:
        return _measure_command(scenario, target, probes, plan, workload, progress, filesystem)
    if isinstance(target, BlockTarget):
        return _measure_block(scenario, target, probes, plan, workload, progress, filesystem)
    return _measure_network(scenario, target, probes, plan, workload, progress)


def _measure_block(
    scenario: Scenario,
    target: BlockTarget,
    probes: ProbeBackend | None,
    plan: RoundPlan,
    workload: Workload | None,
    progress: ProgressCallback | None,
    filesystem: MountedFilesystem | None = None,
) -> Measurement:
    extra: dict[str, object] = {}
    with contextlib.ExitStack() as stack:
        settings = {"dev": target.probe_dev, SAMPLE_SETTING: scenario.block_sample}
        cgroup = None
        if workload is None and probes is not None and filter_on(scenario.probes, "cgroup_id"):
            cgroup = stack.enter_context(WorkloadCgroup.create())
            settings["cgroup_id"] = cgroup.id
            extra["probes.filter"] = "workload cgroup"
        if probes is not None:
            probes.configure(settings)
        results = run_rounds(
            plan,
            workload or fio_workload(scenario, target, cgroup, filesystem),
            probes if scenario.probes else None,
            # On a file target, or a filesystem on the target, the disk also carries the
            # filesystem's own I/O (journal, metadata).
            check_block_counts=filesystem is None and target.path.is_block_device(),
            block_sample=scenario.block_sample,
            progress=progress,
        )
    extra.update(_block_target_facts(target, filesystem))
    extra["round.seconds"] = plan.seconds
    return _measurement(scenario, results, probes, "fio.", {"fio": list(FIO_PROVENANCE)}, extra)


def _block_target_facts(
    target: BlockTarget, filesystem: MountedFilesystem | None
) -> dict[str, object]:
    facts: dict[str, object] = dict(block_device_facts(target.disk))
    facts["target.kind"] = "scratch" if target.created_by_harness else "given"
    if filesystem is not None:
        facts.update(filesystem.facts())
    if WORKQUEUE_AFFINITY_SCOPE.exists():
        facts["tune.workqueue_affinity_scope"] = current_value(WORKQUEUE_AFFINITY_SCOPE)
    return facts


def _measure_command(
    scenario: Scenario,
    target: BlockTarget,
    probes: ProbeBackend | None,
    plan: RoundPlan,
    workload: Workload | None,
    progress: ProgressCallback | None,
    filesystem: MountedFilesystem | None,
) -> Measurement:
    """A command scenario's rounds: the command in a cgroup of its own (probes that filter
    on one time it only), in a temporary directory unless it names one, in a private
    network namespace when it asks for one; all removed at the end, also on errors."""
    spec = scenario.workload.command
    if spec is None:
        raise ValueError(f"{scenario.name} is not a command scenario")
    extra: dict[str, object] = {}
    with contextlib.ExitStack() as stack:
        cgroup = stack.enter_context(WorkloadCgroup.create())
        settings = {"dev": target.probe_dev, SAMPLE_SETTING: scenario.block_sample}
        if filter_on(scenario.probes, "cgroup_id"):
            settings["cgroup_id"] = cgroup.id
            extra["probes.filter"] = "workload cgroup"
        if probes is not None:
            probes.configure(settings)
        tmp = Path(stack.enter_context(run_tempdir("command")))
        netns = stack.enter_context(NetnsTarget.create()) if spec.netns else None
        runner = CommandRunner(
            spec,
            scenario.path,
            cgroup,
            cwd=tmp,
            device=target.path,
            netns=netns.name if netns is not None else None,
            mount=filesystem.mount_point if filesystem is not None else None,
            wrap=netns.command if netns is not None else None,
        )
        results = run_rounds(
            plan,
            workload or CommandWorkload(runner),
            probes if scenario.probes else None,
            # Only fio reports the requests it issued; a command's are its own business.
            check_block_counts=False,
            block_sample=scenario.block_sample,
            progress=progress,
        )
    extra.update(_block_target_facts(target, filesystem))
    extra.update(spec.describe())
    if spec.seconds is not None:
        extra["round.seconds"] = plan.seconds
    provenance = {"command": spec.provenance()}
    return _measurement(scenario, results, probes, "command.", provenance, extra)


#: A probe series with fewer samples in a round is left out of that round: its
#: percentiles would be a handful of values (a client's start-up syscalls), not statistics.
#: Block probe series are exempt: their requests are the workload's own I/O, checked
#: against its count, and a slow disk may make few in a short round.
MIN_PROBE_SAMPLES_PER_ROUND = 100


def _plan(scenario: Scenario, rounds: int | None, seconds: float | None) -> RoundPlan:
    return RoundPlan(
        rounds=rounds if rounds is not None else scenario.rounds,
        warmup=scenario.warmup,
        seconds=seconds if seconds is not None else scenario.round_seconds,
    )


def keep_measured_series(
    results: list[RoundResult], probes: tuple[str, ...], tool_prefix: str = ""
) -> None:
    """Keep in each round the workload tool's own series (names starting ``tool_prefix``;
    none when empty) and the series of ``probes`` (a shared probe session may hold more)
    with enough samples to be statistics."""
    for rnd in results:
        keep = _keep_probe_series(rnd.histograms, probes)
        rnd.histograms = {
            k: h
            for k, h in rnd.histograms.items()
            if (tool_prefix and k.startswith(tool_prefix))
            or (k in keep and (k.startswith("block.") or h.total >= MIN_PROBE_SAMPLES_PER_ROUND))
        }


def _measurement(
    scenario: Scenario,
    results: list[RoundResult],
    probes: ProbeBackend | None,
    tool_prefix: str,
    provenance: dict[str, list[str]],
    extra: dict[str, object],
) -> Measurement:
    """The measurement of ``results``: per round the workload tool's own series (names
    starting ``tool_prefix``) and the series of the probes the scenario names (a shared
    probe session may hold more) with enough samples; the probes' provenance."""
    keep_measured_series(results, scenario.probes, tool_prefix)
    if probes is not None:
        provenance.update({k: v for k, v in probes.provenance().items() if k in scenario.probes})
    return Measurement(
        scenario=scenario.name,
        rounds=results,
        environment=environment.capture(extra),
        provenance=provenance,
    )


def _measure_network(
    scenario: Scenario,
    load: NetworkSetup,
    probes: ProbeBackend | None,
    plan: RoundPlan,
    workload: Workload | None,
    progress: ProgressCallback | None,
) -> Measurement:
    if probes is not None:
        probes.configure(load.probe_settings())
    results = run_rounds(
        plan,
        workload or load.workload,
        probes if scenario.probes else None,
        check_block_counts=False,
        progress=progress,
    )
    extra: dict[str, object] = dict(load.facts())
    extra["round.seconds"] = float(whole_seconds(plan.seconds))
    return _measurement(scenario, results, probes, f"{load.spec.kind}.", load.provenance(), extra)
