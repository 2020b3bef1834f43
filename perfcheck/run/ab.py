"""Interleaved A/B comparisons: ``perfcheck ab --a 'CMD' --b 'CMD' [-- PYTEST_ARGS]``.

For a before/after question on one's own machine (is bfq slower than none here? does
this sysctl help?) a stored baseline is the wrong tool: the baseline was measured in
another session, and sessions differ. ``perfcheck ab`` measures both set-ups in one
run, alternating between them, and judges B against A with the same verdict rules
(per-round Mann-Whitney, thresholds, sequential rounds) and the same reports.

How a scenario runs
-------------------

1. The target is opened (with the default scratch loop device its name is only known
   now; a network scenario's namespace and server are started) and the A command runs,
   then the scenario's warm-up rounds; then the B command and B's warm-up rounds.
2. Measured rounds alternate in ABBA order (A B B A A B B A ...), so that slow drift of
   the machine during the run falls on both sides alike. The set-up command of a side
   runs each time the side changes.
3. B's rounds are judged against A's (A plays the baseline). When a metric is
   INCONCLUSIVE, more rounds are added to both sides, still in ABBA order, under the
   same alpha spending as against a stored baseline (:mod:`perfcheck.stats.sequential`).
4. At the end -- also when the run fails or is interrupted -- the A command runs once
   more if B's was the last one run, so the machine is left in the A state.
5. A FAIL must repeat, as against a stored baseline: steps 1-4 run again in a fresh
   session (a new scratch device, a restarted network scenario; a target the user gave
   stays), and the FAIL stands only if that run FAILs too; else it is INCONCLUSIVE.
   Runs on the shared VM of the scorecard differ more than rounds of one run do
   (``bench/RESULTS.md``). ``--perfcheck-no-repeat`` turns it off.

The commands run with ``/bin/sh -c`` and these environment variables:
``PERFCHECK_SIDE`` (``A`` or ``B``), ``PERFCHECK_SCENARIO``, and for a disk scenario
``PERFCHECK_DISK`` (``loop0``) and ``PERFCHECK_DEVICE`` (``/dev/loop0``), for a network
scenario ``PERFCHECK_NETNS`` (the namespace its client and server run in, e.g. for
``ip netns exec "$PERFCHECK_NETNS" sysctl -w ...`` or a ``tc qdisc`` on its ``lo``).
A command that exits non-zero stops the scenario with a one-line error. perfcheck does
not know what a command changed: restoring anything beyond "run A again" (a sysctl on
the host, say) is the user's job.
A scratch device, and so anything set on it, disappears at the end of the run.

No baseline is read or written; ``--perfcheck-save`` and ``--perfcheck-report`` work as
in a normal run, with A in the baseline's place.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from perfcheck.errors import WorkloadError
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.run.measure import scenario_writes
from perfcheck.store.baseline import Baseline
from perfcheck.system.processes import run_within
from perfcheck.system.targets import BlockTarget
from perfcheck.text import utc_timestamp
from perfcheck.workloads.scenario import Scenario

if TYPE_CHECKING:
    from perfcheck.run.harness import Harness, ThresholdLookup
    from perfcheck.stats.gate import ScenarioOutcome, ScenarioVerdict

ENV_DISK = "PERFCHECK_DISK"
ENV_DEVICE = "PERFCHECK_DEVICE"
ENV_SIDE = "PERFCHECK_SIDE"
ENV_SCENARIO = "PERFCHECK_SCENARIO"
#: Longest a set-up command may run.
COMMAND_TIMEOUT_S = 120.0

SIDE_A = "A"
SIDE_B = "B"

#: What a failure says in place of "refresh the baseline".
AB_HINT = (
    "perfcheck ab judged B against A, measured alternately in this run; no baseline was"
    " read or written"
)


@dataclass(frozen=True)
class ABCommands:
    """The set-up commands of the two sides."""

    a: str
    b: str

    def of(self, side: str) -> str:
        return self.a if side == SIDE_A else self.b


def abba_sides(start: int, count: int) -> list[str]:
    """Sides of measured rounds ``start .. start+count-1`` of the ABBA pattern (pairs
    AB, BA, AB, ...): round ``2k`` and ``2k+1`` form pair ``k``."""
    sides = []
    for number in range(start, start + count):
        pair, second = divmod(number, 2)
        first = SIDE_A if pair % 2 == 0 else SIDE_B
        other = SIDE_B if first == SIDE_A else SIDE_A
        sides.append(other if second else first)
    return sides


def runs_of(sides: Sequence[str]) -> Iterator[tuple[str, int]]:
    """``["A", "B", "B", "A"]`` -> ``("A", 1), ("B", 2), ("A", 1)``."""
    index = 0
    while index < len(sides):
        end = index
        while end < len(sides) and sides[end] == sides[index]:
            end += 1
        yield sides[index], end - index
        index = end


def target_environment(target: BlockTarget) -> dict[str, str]:
    """What a block scenario's commands are told: the scratch device's names."""
    return {ENV_DISK: target.disk, ENV_DEVICE: str(target.path)}


def run_command(command: str, side: str, scenario: str, context: Mapping[str, str]) -> None:
    """Run one side's set-up command; a failure is a one-line ``WorkloadError``.

    ``context`` is what the command is told about the run's target (the scratch device,
    or the network scenario's namespace) besides the side and the scenario.
    """
    env = {**os.environ, **context, ENV_SIDE: side, ENV_SCENARIO: scenario}
    too_slow = (
        f"perfcheck ab: the {side} command `{command}` did not finish within"
        f" {COMMAND_TIMEOUT_S:.0f} s; make it return promptly"
    )
    proc = run_within(["/bin/sh", "-c", command], COMMAND_TIMEOUT_S, too_slow, env=env)
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        told = " ".join(f"{k}={v}" for k, v in sorted(context.items()))
        raise WorkloadError(
            f"perfcheck ab: the {side} command `{command}` exited {proc.returncode}"
            f" ({said[-1] if said else 'no message'}); it ran with {told or 'no target'}"
        )


#: Measures a scenario (its warm-up, then the given number of rounds) for one side.
SideMeasurer = Callable[[Scenario, int], Measurement]


@dataclass
class InterleavedRun:
    """Both sides of one scenario, measured alternately on one target."""

    scenario: Scenario
    name: str
    commands: ABCommands
    measure_rounds: SideMeasurer
    #: What the commands are told about the target (see :func:`run_command`).
    context: Mapping[str, str]
    sides: dict[str, Measurement] = field(default_factory=dict)
    measured: int = 0
    last_side: str | None = None
    #: Every command run, in order (side letters), for the report and tests.
    commands_run: list[str] = field(default_factory=list)

    def switch(self, side: str) -> None:
        if self.last_side != side:
            self.last_side = side
            self.commands_run.append(side)
            run_command(self.commands.of(side), side, self.name, self.context)

    def _measure(self, side: str, rounds: int, warmup: int) -> Measurement:
        return self.measure_rounds(replace(self.scenario, warmup=warmup), rounds)

    def warm_up(self) -> None:
        for side in (SIDE_A, SIDE_B):
            self.switch(side)
            got = self._measure(side, 0, self.scenario.warmup)
            got.scenario = self.name
            self.sides[side] = got

    def add_rounds(self, per_side: int) -> None:
        """``per_side`` more measured rounds on each side, continuing the ABBA pattern."""
        sides = abba_sides(self.measured, 2 * per_side)
        self.measured += len(sides)
        for side, count in runs_of(sides):
            self.switch(side)
            got = self._measure(side, count, 0)
            into = self.sides[side]
            if not into.rounds:
                # The first measured rounds' environment describes the side (scheduler...).
                into.environment = got.environment
                into.provenance = got.provenance
            for rnd in got.rounds:
                into.rounds.append(_reindexed(rnd, len(into.rounds)))

    def leave_in_a(self) -> None:
        """Run A once more if B's command was the last one run."""
        if self.last_side == SIDE_B:
            self.switch(SIDE_A)

    def baseline(self, machine_class: str) -> Baseline:
        from perfcheck import __version__

        return Baseline(
            scenario=self.name,
            machine_class=machine_class,
            measurement=self.sides[SIDE_A],
            recorded_at=utc_timestamp(),
            perfcheck_version=__version__,
        )


def _reindexed(rnd: RoundResult, index: int) -> RoundResult:
    rnd.index = index
    return rnd


def run_ab(
    harness: Harness,
    name: str,
    scenario: Scenario,
    commands: ABCommands,
    thresholds: ThresholdLookup | None = None,
) -> ScenarioOutcome:
    """Measure A and B interleaved and judge B against A; the outcome is the harness's.

    A FAIL must repeat (as against a stored baseline, :meth:`Harness.confirm_fail`): both
    sides are measured again, interleaved, in a fresh session (a new scratch device, a
    restarted network scenario), and the FAIL stands only if that run FAILs too;
    ``--perfcheck-no-repeat`` turns this off.
    """
    from perfcheck.stats.gate import ScenarioOutcome, status_of

    def judge() -> ScenarioVerdict:
        return judge_interleaved(harness, name, scenario, commands, thresholds)

    verdict = harness.confirm_fail(judge(), judge)
    outcome = ScenarioOutcome(name, status_of(verdict), verdict.measurement, verdict, None)
    harness.outcomes.append(outcome)
    return outcome


def judge_interleaved(
    harness: Harness,
    name: str,
    scenario: Scenario,
    commands: ABCommands,
    thresholds: ThresholdLookup | None = None,
) -> ScenarioVerdict:
    """One interleaved run of a scenario on the harness's current target: B judged
    against A, with sequential rounds added to both sides while undecided."""
    # The target exists before the first command runs, so the commands can be told its name.
    if scenario.workload.network is not None:
        context = harness.network(scenario).command_environment()
    else:
        context = target_environment(harness.target(scenario_writes(scenario)))
    run = InterleavedRun(
        scenario,
        name,
        commands,
        harness.measure_rounds,
        context,
    )
    rounds = harness.settings.rounds if harness.settings.rounds is not None else scenario.rounds
    try:
        run.warm_up()
        run.add_rounds(rounds)
        verdict = harness.decide(
            name, run.sides[SIDE_B], run.baseline(harness.machine_class), thresholds, run.add_rounds
        )
    finally:
        run.leave_in_a()
    verdict.baseline_label = f"side A (`{commands.a}`), measured alternately with B in this run"
    return verdict
