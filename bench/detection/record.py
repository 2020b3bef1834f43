"""Record sessions of rounds for the detection scorecard: real fio, real BPF probe.

Each *session* is what one ``pytest --perfcheck`` run of ``scenarios/randread-4k`` would
measure: a fresh scratch loop device, one warm-up round, then ``--rounds`` measured rounds
(the current side of a sequential comparison may use them all; a baseline uses the first
ten), plus the drift-control measurement. The probe program is compiled once for the whole
recording, as a pytest run compiles it once for all its scenarios.

Conditions (one per session):

- ``A``: scheduler ``none``, nothing else: the settings baselines are recorded with;
- ``bfq``, ``mq-deadline``: that I/O scheduler on the loop device;
- ``throttle``: scheduler ``none``, fio in a cgroup v1 blkio cgroup whose
  ``blkio.throttle.read_iops_device`` is 90% of the median IOPS of the ``A`` sessions
  recorded before it (the first session is always ``A``);
- ``cpu30``, ``cpu70``: scheduler ``none`` while ``stress-ng --cpu 1 --taskset 1
  --cpu-load 30|70`` loads fio's CPU (the job pins fio to CPU 1).

Sessions alternate ``A`` and one regression in turn (A, bfq, A, mq-deadline, A, throttle,
...), so slow drift of the machine over the recording lands on both sides alike.

With ``--interleaved`` a session holds both sides instead: scheduler ``none`` on a fresh
scratch device, two warm-up rounds under A, one under the regression, then ``--rounds``
rounds per side in ABBA order (:func:`perfcheck.run.ab.abba_sides`, the order ``perfcheck ab``
uses), switching the condition on and off between runs of rounds: the scheduler is
written, the process moves in and out of the throttled blkio cgroup (limit: 90% of the
warm-up A rounds' IOPS), stress-ng is started and stopped. Condition ``AA`` switches
nothing (A against A, for false FAILs).

Only per-round metric values are kept (percentiles of each histogram and fio's scalars):
that is all the verdict rules use, and it keeps the data small.

Run as root: ``.venv/bin/python -m bench.detection.record [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from perfcheck.run.ab import abba_sides, runs_of  # noqa: E402
from perfcheck.run.measure import fio_workload, measure  # noqa: E402
from perfcheck.run.resources import default_probe_factory  # noqa: E402
from perfcheck.system import environment  # noqa: E402
from perfcheck.system.knobs import WORKQUEUE_AFFINITY_SCOPE, sysfs_setting  # noqa: E402
from perfcheck.system.lock import HostLock  # noqa: E402
from perfcheck.system.processes import stop_process  # noqa: E402
from perfcheck.system.targets import ScratchLoopDevice, io_scheduler  # noqa: E402
from perfcheck.text import utc_timestamp  # noqa: E402
from perfcheck.workloads.control import measure_control  # noqa: E402
from perfcheck.workloads.scenario import load_scenario  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent / "data"
SCENARIO = ROOT / "scenarios" / "randread-4k.toml"
REGRESSIONS = ("bfq", "mq-deadline", "throttle", "cpu30", "cpu70")
BLKIO_ROOT = Path("/sys/fs/cgroup/blkio")
#: The throttle's IOPS limit as a share of the A sessions' median IOPS.
THROTTLE_SHARE = 0.90
FIO_CPU = 1


@contextlib.contextmanager
def blkio_throttle(dev_numbers: str, iops: int) -> Iterator[None]:
    """This process (and so fio, its child) in a blkio cgroup limited to ``iops`` reads/s."""
    group = BLKIO_ROOT / f"perfcheck-detect-{os.getpid()}"
    group.mkdir(exist_ok=True)
    try:
        (group / "blkio.throttle.read_iops_device").write_text(f"{dev_numbers} {iops}")
        (group / "cgroup.procs").write_text(str(os.getpid()))
        try:
            yield
        finally:
            (BLKIO_ROOT / "cgroup.procs").write_text(str(os.getpid()))
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


@contextlib.contextmanager
def cpu_load(percent: int) -> Iterator[None]:
    proc = subprocess.Popen(
        [
            "stress-ng",
            "--cpu",
            "1",
            "--taskset",
            str(FIO_CPU),
            "--cpu-load",
            str(percent),
            "--timeout",
            "3600",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # let it start its worker
        yield
    finally:
        stop_process(proc, 10)


def condition_context(
    condition: str, disk: str, throttle_iops: int
) -> contextlib.AbstractContextManager[Any]:
    if condition == "throttle":
        numbers = (Path("/sys/block") / disk / "dev").read_text().strip()
        return blkio_throttle(numbers, throttle_iops)
    if condition.startswith("cpu"):
        return cpu_load(int(condition[3:]))
    return contextlib.nullcontext()


def record_session(
    condition: str, probes: Any, rounds: int, seconds: float, throttle_iops: int
) -> dict[str, Any]:
    scenario = load_scenario(SCENARIO)
    scheduler = condition if condition in ("bfq", "mq-deadline") else "none"
    started = utc_timestamp()
    with (
        ScratchLoopDevice.create(256) as target,
        io_scheduler(target.disk, scheduler),
        condition_context(condition, target.disk, throttle_iops),
    ):
        control = measure_control()
        measurement = measure(scenario, target, probes, rounds=rounds, seconds=seconds)
    env = measurement.environment
    return {
        "condition": condition,
        "started_at": started,
        "scheduler": env.get("target.scheduler"),
        "throttle_iops": throttle_iops if condition == "throttle" else None,
        "rounds": [r.metric_values() for r in measurement.rounds],
        "control": control.to_dict(),
        "provenance": measurement.provenance,
    }


class Switcher:
    """Turns one regression on (side B) and off (side A) on a running scratch device."""

    def __init__(self, condition: str, disk: str) -> None:
        self.condition = condition
        self.disk = disk
        self.throttle_iops = 0
        self._stack: contextlib.ExitStack | None = None

    def set(self, side: str) -> None:
        if side == "A":
            if self._stack is not None:
                self._stack.close()
                self._stack = None
            return
        if self._stack is not None or self.condition == "AA":
            return
        stack = contextlib.ExitStack()
        if self.condition in ("bfq", "mq-deadline"):
            stack.enter_context(io_scheduler(self.disk, self.condition))
        else:
            stack.enter_context(condition_context(self.condition, self.disk, self.throttle_iops))
        self._stack = stack


def record_interleaved(condition: str, probes: Any, rounds: int, seconds: float) -> dict[str, Any]:
    scenario = load_scenario(SCENARIO)
    measured_only = replace(scenario, warmup=0)
    started = utc_timestamp()
    sequence: list[dict[str, Any]] = []
    with ScratchLoopDevice.create(256) as target, io_scheduler(target.disk, "none"):
        switcher = Switcher(condition, target.disk)
        workload = fio_workload(scenario, target)
        try:
            warm = measure(
                measured_only, target, probes, rounds=2, seconds=seconds, workload=workload
            )
            switcher.throttle_iops = int(
                THROTTLE_SHARE * statistics.median(r.scalars["fio.iops.read"] for r in warm.rounds)
            )
            switcher.set("B")
            measure(measured_only, target, probes, rounds=1, seconds=seconds, workload=workload)
            for side, count in runs_of(abba_sides(0, 2 * rounds)):
                switcher.set(side)
                got = measure(
                    measured_only,
                    target,
                    probes,
                    rounds=count,
                    seconds=seconds,
                    workload=workload,
                )
                sequence += [{"side": side, **r.metric_values()} for r in got.rounds]
        finally:
            switcher.set("A")
    return {
        "condition": condition,
        "mode": "interleaved",
        "started_at": started,
        "throttle_iops": switcher.throttle_iops if condition == "throttle" else None,
        "sequence": sequence,
        "provenance": got.provenance,
    }


def schedule(blocks: int) -> list[str]:
    order: list[str] = []
    for _ in range(blocks):
        for regression in REGRESSIONS:
            order += ["A", regression]
    return order


def load_span(loads: list[float]) -> dict[str, Any] | None:
    """The 1-minute load average seen at the sessions' starts, for the scorecard's text."""
    if not loads:
        return None
    return {"min": min(loads), "max": max(loads), "source": "1-min load at each session start"}


def write_recording(
    output: Path,
    args: argparse.Namespace,
    began: float,
    loads: list[float],
    sessions: list[dict[str, Any]],
    what: str,
) -> None:
    """Write the recorded sessions (if any) with what the scorecard says about them."""
    if not sessions:
        return
    document: dict[str, Any] = {
        "kind": "perfcheck-detection-sessions",
        "version": 1,
        "scenario": SCENARIO.name,
        "round_seconds": args.seconds,
        "rounds_per_session": args.rounds,
        "machine_class": environment.machine_class(),
        "kernel": platform.release(),
        "recorded_at": utc_timestamp(),
        "elapsed_s": round(time.monotonic() - began, 1),
        "load_average": load_span(loads),
        "sessions": sessions,
    }
    if args.interleaved:
        document["mode"] = "interleaved"
    output.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(output, "wt", encoding="utf-8") as fh:
        json.dump(document, fh, separators=(",", ":"))
    print(f"record: {len(sessions)} {what} written to {output}")


def progress(text: str, started: float) -> None:
    """One line per recorded session, with how long it took."""
    print(f"{text} ({time.monotonic() - started:.0f} s)", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=4, help="sessions per regression")
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds per session")
    parser.add_argument("--seconds", type=float, default=0.5, help="length of each round")
    parser.add_argument(
        "--aa", type=int, default=1, help="with --interleaved: AA runs per block (default 1)"
    )
    parser.add_argument("--quick", action="store_true", help="1 block of 6 rounds (smoke test)")
    parser.add_argument("--output", type=Path, help="data file (default: data/<time>.json.gz)")
    parser.add_argument(
        "--interleaved",
        action="store_true",
        help="sessions of A and one regression in ABBA order (--rounds per side)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.blocks, args.rounds = 1, 6
    if args.interleaved:
        return main_interleaved(args)
    if os.geteuid() != 0 or shutil.which("fio") is None or shutil.which("stress-ng") is None:
        print("record: needs root, fio and stress-ng (make setup)", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    output = args.output or DATA_DIR / f"sessions-{stamp}{'-quick' if args.quick else ''}.json.gz"
    sessions: list[dict[str, Any]] = []
    probes = default_probe_factory(["block.latency"])
    probes.start()
    began = time.monotonic()
    loads: list[float] = []
    try:
        with sysfs_setting(WORKQUEUE_AFFINITY_SCOPE, "cpu"):
            for number, condition in enumerate(schedule(args.blocks), 1):
                a_iops = [
                    statistics.median(r["fio.iops.read"] for r in s["rounds"])
                    for s in sessions
                    if s["condition"] == "A"
                ]
                throttle = int(THROTTLE_SHARE * statistics.median(a_iops)) if a_iops else 0
                t0 = time.monotonic()
                loads.append(os.getloadavg()[0])
                session = record_session(condition, probes, args.rounds, args.seconds, throttle)
                session["index"] = number
                sessions.append(session)
                p50 = statistics.median(r["block.latency.read.p50"] for r in session["rounds"])
                iops = statistics.median(r["fio.iops.read"] for r in session["rounds"])
                progress(
                    f"[{number}/{args.blocks * 2 * len(REGRESSIONS)}] {condition:12s}"
                    f" p50 {p50 / 1e3:6.2f} us  IOPS {iops / 1e3:6.1f}k ",
                    t0,
                )
    finally:
        probes.close()
        write_recording(output, args, began, loads, sessions, "sessions")
    return 0


def main_interleaved(args: argparse.Namespace) -> int:
    if os.geteuid() != 0 or shutil.which("fio") is None or shutil.which("stress-ng") is None:
        print("record: needs root, fio and stress-ng (make setup)", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    suffix = "-quick" if args.quick else ""
    output = args.output or DATA_DIR / f"interleaved-{stamp}{suffix}.json.gz"
    order = [c for _ in range(args.blocks) for c in ("AA",) * args.aa + REGRESSIONS]
    sessions: list[dict[str, Any]] = []
    probes = default_probe_factory(["block.latency"])
    probes.start()
    began = time.monotonic()
    loads: list[float] = []
    lock = HostLock()
    try:
        with sysfs_setting(WORKQUEUE_AFFINITY_SCOPE, "cpu"):
            for number, condition in enumerate(order, 1):
                t0 = time.monotonic()
                loads.append(os.getloadavg()[0])
                # One session at a time on this host: other perfcheck runs wait between ours.
                lock.acquire(900)
                try:
                    session = record_interleaved(condition, probes, args.rounds, args.seconds)
                finally:
                    lock.release()
                session["index"] = number
                sessions.append(session)
                progress(f"[{number}/{len(order)}] {condition:12s}", t0)
    finally:
        probes.close()
        write_recording(output, args, began, loads, sessions, "interleaved sessions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
