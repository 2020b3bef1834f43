"""Real kernel-level slow-downs a loop device can be given, to prove a gate catches one.

A performance gate is only worth something if it FAILs on a real regression. These are
settings of the block layer that measurably slow a given fio job on perfcheck's scratch
loop device; which ones exist depends on the kernel build (bfq is absent from some), so
:func:`offered_slowdowns` keeps those the running kernel offers, and
:func:`choose_slowdown` picks the first of them in order of preference.

Measured on machines of this kind (plain fio, scratch loop device; bench/RESULTS.md):

- ``bfq-qd1``: ``none`` -> ``bfq`` at queue depth 1 raised 4 KiB randread p50 about
  8.7 -> 26 us; bfq holds each request before issuing it.
- ``mq-deadline-nr4-qd16``: ``none`` -> ``mq-deadline`` with ``nr_requests=4`` at queue
  depth 16 (libaio): IOPS -40..-60%, fio clat p50 +45% to 2.3x. With four scheduler tags
  for sixteen I/Os in flight, submitters wait for a tag before their request exists.
- ``tags-nr4-qd16``: the same tag shortage without a scheduler (``none`` with
  ``nr_requests=4``): IOPS -55%, p50 2.5x; every blk-mq kernel offers it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from perfcheck.targets import io_scheduler, queue_setting

#: A scratch-device job: 4 KiB random reads, bypassing the page cache, pinned to CPU 1
#: (as the shipped scenarios are, so fio's CPU is the same in every round).
_BASE_JOB = {
    "rw": "randread",
    "bs": "4k",
    "direct": "1",
    "cpus_allowed": "1",
    "randrepeat": "0",
}


#: The shipped disk scenarios' thresholds (scenarios/randread-4k.toml): p50 gates, the
#: tails only catch gross changes; and what ``perfcheck ab`` applies instead.
QD1_THRESHOLDS = {"*.p50": 0.15, "*.p90": 1.0, "*.p99": 2.0, "fio.iops.*": 0.35}
QD1_AB_THRESHOLDS = {"*.p50": 0.10, "*.p90": 0.15, "*.p99": 0.20, "fio.iops.*": 0.10}
#: At queue depth 16 the loop device's request latency is bimodal (modes near 5 and 40 us
#: on this machine kind) and its p50 lands in either from one session to the next (15.5
#: -> 39.8 us with the same settings): only gross changes of it count. The tag shortage
#: shows in fio's completion latency (+45% to 2.5x) and IOPS (-40..-60%) instead, which
#: gate at half the smallest effect measured.
QD16_THRESHOLDS = {**QD1_THRESHOLDS, "block.*.p50": 3.0, "fio.clat.*.p50": 0.25, "fio.iops.*": 0.2}
QD16_AB_THRESHOLDS = {**QD1_AB_THRESHOLDS, "block.*.p50": 1.0}


@dataclass(frozen=True)
class QueueSlowdown:
    """Block-queue settings that slow a given fio job, against a baseline under ``none``.

    ``queue`` holds ``/sys/block/<disk>/queue/<name>`` values set after the scheduler
    (a scheduler change resets ``nr_requests``).
    """

    name: str
    scheduler: str
    queue: Mapping[str, str]
    job: Mapping[str, str]
    description: str
    #: The scenario's ``[thresholds]`` and ``[ab_thresholds]`` (see :meth:`write_scenario`).
    thresholds: Mapping[str, float] = field(default_factory=lambda: QD1_THRESHOLDS)
    ab_thresholds: Mapping[str, float] = field(default_factory=lambda: QD1_AB_THRESHOLDS)
    #: Schedulers the kernel must offer, beyond ``none``.
    needs: tuple[str, ...] = field(default=())

    def pytest_args(self) -> list[str]:
        """The perfcheck options that apply it to the target of a run."""
        args = [f"--perfcheck-scheduler={self.scheduler}"]
        args += [f"--perfcheck-queue={key}={value}" for key, value in self.queue.items()]
        return args

    def shell_command(self, disk: str = "$PERFCHECK_DISK") -> str:
        """A shell command that applies it to ``disk`` (for ``perfcheck ab --b``)."""
        queue = f"/sys/block/{disk}/queue"
        steps = [f"echo {self.scheduler} > {queue}/scheduler"]
        steps += [f"echo {value} > {queue}/{key}" for key, value in self.queue.items()]
        return " && ".join(steps)

    def undo_command(self, disk: str = "$PERFCHECK_DISK") -> str:
        """A shell command that puts ``disk`` back on ``none`` with its full tag depth (for
        ``perfcheck ab --a``: sides A and B alternate on one device)."""
        queue = f"/sys/block/{disk}/queue"
        steps = [f"echo none > {queue}/scheduler"]
        if "nr_requests" in self.queue:
            # Under none, nr_requests is the tag depth; a scheduler change resets it, but
            # the tag-only slow-down keeps none, so set it back to the hardware's.
            steps.append(f"cat /sys/block/{disk}/mq/0/nr_tags > {queue}/nr_requests")
        return " && ".join(steps)

    def environment_change(self) -> tuple[str, str]:
        """The environment key this slow-down changes, and its value under it (what a FAIL's
        environment diff shows)."""
        if self.scheduler != "none":
            return "target.scheduler", self.scheduler
        key, value = next(iter(self.queue.items()))
        return f"target.queue.{key}", value

    @contextlib.contextmanager
    def applied(self, disk: str) -> Iterator[None]:
        """Apply it to ``disk`` for the duration of a block; everything is put back after."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(io_scheduler(disk, self.scheduler))
            for key, value in self.queue.items():
                stack.enter_context(queue_setting(disk, key, value))
            yield

    def fio_job(self) -> str:
        """The job it slows, as a fio job file for a scenario named after it."""
        lines = [f"; {self.description}", f"[{self.name}]"]
        lines += [f"{key}={value}" for key, value in self.job.items()]
        return "\n".join(lines) + "\n"

    def write_scenario(self, directory: Path, rounds: int = 10, seconds: float = 0.5) -> Path:
        """Write ``<name>.toml`` and its job file into ``directory``; returns the TOML path."""

        def table(values: Mapping[str, float]) -> str:
            return "".join(f'"{key}" = {value}\n' for key, value in values.items())

        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{self.name}.fio").write_text(self.fio_job())
        scenario = directory / f"{self.name}.toml"
        scenario.write_text(
            f'description = "{self.description}"\n'
            'probes = ["block.latency"]\n\n'
            f'[workload]\nkind = "fio"\njob = "{self.name}.fio"\n\n'
            f"[rounds]\ncount = {rounds}\nwarmup = 1\nseconds = {seconds}\n\n"
            f"[thresholds]\n{table(self.thresholds)}\n[ab_thresholds]\n{table(self.ab_thresholds)}"
        )
        return scenario


#: In order of preference: bfq where the kernel has it (the gate's first proof, and the
#: largest effect at QD1), then tag shortages, with a scheduler and without one.
SLOWDOWNS: tuple[QueueSlowdown, ...] = (
    QueueSlowdown(
        name="bfq-qd1",
        scheduler="bfq",
        queue={},
        job={**_BASE_JOB, "iodepth": "1", "ioengine": "psync"},
        description="4 KiB random reads at queue depth 1; slowed by the bfq scheduler",
        needs=("bfq",),
    ),
    QueueSlowdown(
        name="mq-deadline-nr4-qd16",
        scheduler="mq-deadline",
        queue={"nr_requests": "4"},
        job={**_BASE_JOB, "iodepth": "16", "ioengine": "libaio"},
        description="4 KiB random reads at queue depth 16; slowed by mq-deadline with four"
        " requests",
        needs=("mq-deadline",),
        thresholds=QD16_THRESHOLDS,
        ab_thresholds=QD16_AB_THRESHOLDS,
    ),
    QueueSlowdown(
        name="tags-nr4-qd16",
        scheduler="none",
        queue={"nr_requests": "4"},
        job={**_BASE_JOB, "iodepth": "16", "ioengine": "libaio"},
        description="4 KiB random reads at queue depth 16; slowed by four request tags",
        thresholds=QD16_THRESHOLDS,
        ab_thresholds=QD16_AB_THRESHOLDS,
    ),
)


def offered_slowdowns(schedulers: Collection[str]) -> list[QueueSlowdown]:
    """The slow-downs a kernel whose queues offer ``schedulers`` can apply (blk-mq queues
    always offer ``none``; an empty list means the device has no scheduler at all)."""
    if "none" not in schedulers:
        return []
    return [s for s in SLOWDOWNS if all(name in schedulers for name in s.needs)]


def choose_slowdown(schedulers: Collection[str]) -> QueueSlowdown | None:
    """The preferred slow-down among those offered, or None when none is."""
    offered = offered_slowdowns(schedulers)
    return offered[0] if offered else None


def holding_scheduler(schedulers: Collection[str]) -> str | None:
    """A scheduler other than ``none`` that holds each request between insertion and
    issue (bfq longest, then mq-deadline, then kyber), or None when the queue has none."""
    for name in ("bfq", "mq-deadline", "kyber"):
        if name in schedulers:
            return name
    others = [name for name in schedulers if name != "none"]
    return others[0] if others else None
