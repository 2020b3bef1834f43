"""Probe overhead by toggling the probe under one running fio: fine-grained A/B.

Separate fio runs differ by up to 2x on this kind of machine, so the median IOPS ratio
of whole runs (``overhead.py``) cannot resolve a 1% overhead at QD1. Here one fio job
runs for the whole measurement while the probe's programs are attached and detached
every ``--window`` seconds (50 ms), in ABBA order (A: detached, B: attached); each window's
IOPS is the disk's own completed-I/O count (``/sys/block/<disk>/stat``) over the
window. Adjacent windows share the machine's state, so the ratio of each ABBA block
(B1 + B2) / (A1 + A2) sees the probe, not the drift; the median over many blocks and
its bootstrap 95% interval are reported.

The program is compiled and loaded once; toggling is an attach or detach of its raw
tracepoint programs (no compile), and BPF run-time statistics stay off, so nothing but
the probe itself is measured.

    .venv/bin/python bench/toggle.py [--seconds 60] [--window 0.05] [--setting qd1|saturating]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from perfcheck.probes import BlockLatencyProbe, BlockQueueLatencyProbe, BlockSizeProbe  # noqa: E402
from perfcheck.probes.base import Probe  # noqa: E402
from perfcheck.probes.session import attach_only, build_program, load_program  # noqa: E402
from perfcheck.system.knobs import WORKQUEUE_AFFINITY_SCOPE, sysfs_setting  # noqa: E402
from perfcheck.system.processes import stop_process  # noqa: E402
from perfcheck.system.targets import BlockTarget, ScratchLoopDevice  # noqa: E402
from perfcheck.workloads.fio import die_with_parent  # noqa: E402

SETTINGS: dict[str, list[str]] = {
    "qd1": ["--ioengine=psync", "--iodepth=1"],
    "saturating": ["--ioengine=libaio", "--iodepth=16", "--numjobs=2"],
}

#: The least any block-request probe can cost: two raw-tracepoint programs doing nothing.
EMPTY_PAIR_C = """
RAW_TRACEPOINT_PROBE(block_rq_issue) { return 0; }
RAW_TRACEPOINT_PROBE(block_rq_complete) { return 0; }
"""

#: The least any issue-to-completion timer does: the empty pair plus a clock read on each
#: side and one shared slot (no filter, no per-request state, no histogram). On this
#: machine the clock read is a large share of a timer's cost (bench/RESULTS.md).
CLOCK_PAIR_C = """
BPF_ARRAY(pc_clock_pair, u64, 2);

RAW_TRACEPOINT_PROBE(block_rq_issue)
{
    u32 key = 0;
    u64 *issued = pc_clock_pair.lookup(&key);
    if (issued)
        *issued = bpf_ktime_get_ns();
    return 0;
}

RAW_TRACEPOINT_PROBE(block_rq_complete)
{
    u32 key = 0;
    u64 *issued = pc_clock_pair.lookup(&key);
    if (!issued)
        return 0;
    u64 start = *issued;
    key = 1;
    u64 *total = pc_clock_pair.lookup(&key);
    if (total)
        *total += bpf_ktime_get_ns() - start;
    return 0;
}
"""

#: A program on a tracepoint the workload never fires (no partitions or device mapper on
#: the scratch loop device): attaching and detaching it costs what any toggle costs, so
#: it measures the method's own bias.
IDLE_C = """
RAW_TRACEPOINT_PROBE(block_bio_remap) { return 0; }
"""

#: Warm-up before the first window, and time lost around each toggle.
WARMUP_S = 2.0
SETTLE_S = 0.01


class Toggled:
    """A loaded program whose raw tracepoints can be attached and detached cheaply."""

    def __init__(self, bpf: Any) -> None:
        self.bpf = bpf
        # bcc attached each RAW_TRACEPOINT_PROBE(tp) as function raw_tracepoint__<tp>.
        self.tracepoints = [bytes(tp) for tp in bpf.raw_tracepoint_fds]
        self.attached = True

    def set(self, attached: bool) -> None:
        if attached == self.attached:
            return
        for tp in self.tracepoints:
            if attached:
                self.bpf.attach_raw_tracepoint(tp=tp, fn_name=b"raw_tracepoint__" + tp)
            else:
                self.bpf.detach_raw_tracepoint(tp=tp)
        self.attached = attached

    def close(self) -> None:
        self.bpf.cleanup()


def load(text: str, probes: Sequence[Probe], dev: int, sample: int = 1) -> Toggled:
    # As a probe session loads it: the handlers no probe reads are left detached.
    bpf = load_program(probes, text)
    for probe in probes:
        probe.configure(bpf, {"dev": dev, "block_sample": sample})
    # As a session does: the handlers follow the variant configure chose.
    attach_only(bpf, probes, probes, release=False)
    return Toggled(bpf)


def load_all(text: str, probes: Sequence[Probe], dev: int) -> Toggled:
    """As :func:`load`, but with every handler bcc attached kept (insert and merge too):
    how probe sessions loaded the block program before they detached idle handlers."""
    from bcc import BPF

    bpf = BPF(text=text.encode())
    for probe in probes:
        probe.configure(bpf, {"dev": dev})
    return Toggled(bpf)


class Nothing(Toggled):
    """No program: the windows are labelled as usual, to check the method reads 0%."""

    def __init__(self) -> None:
        self.tracepoints = []
        self.attached = True

    def close(self) -> None:
        pass


CONFIGURATIONS: dict[str, Callable[[int], Toggled]] = {
    "nothing (A/A)": lambda _dev: Nothing(),
    "idle tracepoint (toggling only)": lambda dev: load(IDLE_C, [], dev),
    "empty raw-tracepoint pair": lambda dev: load(EMPTY_PAIR_C, [], dev),
    "clock-read pair": lambda dev: load(CLOCK_PAIR_C, [], dev),
    "block.latency": lambda dev: load(
        build_program([BlockLatencyProbe()]), [BlockLatencyProbe()], dev
    ),
    "block.latency, two programs": lambda dev: load(
        build_program([BlockLatencyProbe()]), [BlockLatencyProbe(kernel_stamps=False)], dev
    ),
    "block.latency, idle handlers attached too": lambda dev: load_all(
        build_program([BlockLatencyProbe()]), [BlockLatencyProbe()], dev
    ),
    "block.latency, 1 in 8 sampled": lambda dev: load(
        build_program([BlockLatencyProbe()]), [BlockLatencyProbe()], dev, 8
    ),
    "all block probes": lambda dev: load(
        build_program([BlockLatencyProbe(), BlockQueueLatencyProbe(), BlockSizeProbe()]),
        [BlockLatencyProbe(), BlockQueueLatencyProbe(), BlockSizeProbe()],
        dev,
    ),
}


def completed_ios(disk: str) -> int:
    fields = (Path("/sys/block") / disk / "stat").read_text().split()
    return int(fields[0]) + int(fields[4])  # reads + writes completed


@contextlib.contextmanager
def running_fio(target: BlockTarget, seconds: float, options: Sequence[str]) -> Iterator[None]:
    cmd = [
        "fio", "--name=toggle", f"--filename={target.path}", "--rw=randread", "--bs=4k",
        "--direct=1", "--time_based", f"--runtime={seconds}", "--size=200M",
        "--output-format=json", *options,
    ]  # fmt: skip
    # fio dies with this process if it is killed (its job processes with fio).
    process = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent
    )
    try:
        yield
    finally:
        stop_process(process, 30)


@dataclass
class Result:
    configuration: str
    setting: str
    blocks: list[float]  # (B1 + B2) / (A1 + A2) IOPS of each ABBA block
    iops_off: float  # median IOPS of the detached windows

    def median(self) -> float:
        return statistics.median(self.blocks)

    def interval(self, draws: int = 2000, seed: int = 1) -> tuple[float, float]:
        """Bootstrap 95% interval of the median ratio."""
        rng = random.Random(seed)
        n = len(self.blocks)
        medians = sorted(statistics.median(rng.choices(self.blocks, k=n)) for _ in range(draws))
        return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def measure(configuration: str, setting: str, seconds: float, window: float) -> Result:
    with contextlib.ExitStack() as stack:
        if WORKQUEUE_AFFINITY_SCOPE.exists():
            stack.enter_context(sysfs_setting(WORKQUEUE_AFFINITY_SCOPE, "cpu"))
        target = stack.enter_context(ScratchLoopDevice.create(256))
        toggled = CONFIGURATIONS[configuration](target.probe_dev)
        stack.callback(toggled.close)
        toggled.set(False)
        stack.enter_context(running_fio(target, seconds + WARMUP_S + 5, SETTINGS[setting]))
        time.sleep(WARMUP_S)
        rates: list[tuple[bool, float]] = []
        order = (False, True, True, False)
        deadline = time.monotonic() + seconds
        step = 0
        while time.monotonic() < deadline:
            attached = order[step % 4]
            toggled.set(attached)
            time.sleep(SETTLE_S)
            start_ios, start = completed_ios(target.disk), time.monotonic()
            time.sleep(window)
            end_ios, end = completed_ios(target.disk), time.monotonic()
            rates.append((attached, (end_ios - start_ios) / (end - start)))
            step += 1
        toggled.set(False)
    off_rates = [r for attached, r in rates if not attached]
    return Result(configuration, setting, abba_ratios(rates), statistics.median(off_rates))


def abba_ratios(rates: Sequence[tuple[bool, float]]) -> list[float]:
    """(B1 + B2) / (A1 + A2) of each whole block of four windows, ``(attached, IOPS)`` in
    ABBA order; a trailing partial block is dropped."""
    ratios = []
    for i in range(0, len(rates) - 3, 4):
        block = rates[i : i + 4]
        off = sum(rate for attached, rate in block if not attached)
        on = sum(rate for attached, rate in block if attached)
        if off > 0:
            ratios.append(on / off)
    return ratios


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per configuration")
    parser.add_argument("--window", type=float, default=0.05, help="seconds per window")
    parser.add_argument("--setting", choices=sorted(SETTINGS), action="append")
    parser.add_argument("--configuration", choices=sorted(CONFIGURATIONS), action="append")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = [
        measure(configuration, setting, args.seconds, args.window)
        for setting in args.setting or ["qd1"]
        for configuration in args.configuration or list(CONFIGURATIONS)
    ]
    if args.json:
        print(json.dumps([r.__dict__ for r in results]))
        return 0
    print(f"IOPS attached / detached, ABBA blocks of {args.window:g} s windows under one fio")
    print("| setting | configuration | IOPS loss, median (95% CI) | blocks | IOPS detached |")
    print("|---|---|---|---|---|")
    for r in results:
        low, high = r.interval()
        print(
            f"| {r.setting} | {r.configuration} | {100 * (1 - r.median()):.2f}%"
            f" ({100 * (1 - high):.2f}..{100 * (1 - low):.2f}) | {len(r.blocks)}"
            f" | {r.iops_off:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
