"""What the probes cost the workload: fio IOPS with and without them, interleaved.

    .venv/bin/python bench/overhead.py [--quick] [--rounds N] [--seconds S] [--json PATH]

On a scratch loop device, two fio settings: QD1 (4k randread, psync) and saturating
(4k randread, libaio, iodepth 16, two jobs). Configurations:

``block.latency``        the block.latency probe alone
``block (3 probes)``     block.latency + block.queue_latency + block.size
``catalog (all)``        every probe that loads here, system-wide where it has no target
``tracepoint v0``        the first block.latency design: perf-buffer tracepoints and a
                         (dev, sector) hash, kept here as the reference it replaced
``bpftrace``             the issue's bpftrace one-liner doing the same histogram

Method: each round runs fio alone, then under each configuration (order rotated every
round), then alone again; each configuration's run is compared with the mean of the
round's two runs alone (interleaved A/B, so slow drifts of the machine cancel). A program
is compiled and attached before its fio run and removed after it, never during. The
figures per configuration are the median IOPS ratio over the rounds, its min..max and
interquartile range. Loop-device noise control (the loop worker on fio's CPU, see
perfcheck.system.knobs) is on unless --no-noise-control.

Two less noisy figures come with it. fio's own CPU time (user + system) per I/O, as a
ratio against the runs alone: it holds the submission side, where block_rq_issue fires
(and a perf-buffer tracepoint formats its record), but not the completion side, which
the loop device runs in a kernel worker. And, from the kernel's BPF run-time statistics
(BPF_ENABLE_STATS), each configuration's BPF time per block request, all its programs
together (bpftrace's programs found by id; the statistics add about 20-40 ns per program
run; the formatting of perf-buffer tracepoint records is not BPF time). Last, the
compile+attach time of the full catalog.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.toggle import CLOCK_PAIR_C, EMPTY_PAIR_C  # noqa: E402
from perfcheck.probes import (  # noqa: E402
    CATALOG,
    BlockBioLatencyProbe,
    BlockLatencyProbe,
    BlockQueueLatencyProbe,
    BlockSizeProbe,
    partition_available,
)
from perfcheck.probes.base import Probe  # noqa: E402
from perfcheck.probes.session import attach_only, build_program, load_program  # noqa: E402
from perfcheck.system.knobs import WORKQUEUE_AFFINITY_SCOPE, sysfs_setting  # noqa: E402
from perfcheck.system.targets import ScratchLoopDevice  # noqa: E402

BPFTRACE_ONE_LINER = (
    "tracepoint:block:block_rq_issue { @s[args->dev, args->sector] = nsecs; }"
    " tracepoint:block:block_rq_complete /@s[args->dev, args->sector]/"
    " { @h = hist(nsecs - @s[args->dev, args->sector]); delete(@s[args->dev, args->sector]); }"
)

# The first block.latency (perf-buffer tracepoints, a hash keyed by dev and sector), kept
# as the reference the raw-tracepoint program is measured against.
TRACEPOINT_V0_C = r"""
#define PC_BLK_OPS 4
struct pc_v0_key { u32 dev; u32 pad; u64 sector; };
BPF_HASH(pc_v0_start, struct pc_v0_key, u64, 16384);
BPF_PERCPU_ARRAY(pc_v0_hist, u64, PC_BLK_OPS * PC_HIST_SLOTS);
BPF_PERCPU_ARRAY(pc_v0_count, u64, PC_BLK_OPS * 2);
BPF_ARRAY(pc_v0_filter, u32, 1);
static __always_inline int pc_v0_op(char c0, char c1)
{
    if (c0 == 'F')
        c0 = (c1 == 'R' || c1 == 'W' || c1 == 'D') ? c1 : 'F';
    switch (c0) {
    case 'R': return 0;
    case 'W': return 1;
    case 'F': return 2;
    case 'D': return 3;
    }
    return -1;
}
static __always_inline int pc_v0_wanted(u32 dev)
{
    u32 zero = 0;
    u32 *want = pc_v0_filter.lookup(&zero);
    return want && *want == dev;
}
TRACEPOINT_PROBE(block, block_rq_issue)
{
    if (!pc_v0_wanted(args->dev))
        return 0;
    struct pc_v0_key key = {};
    key.dev = args->dev;
    key.sector = args->sector;
    u64 ts = bpf_ktime_get_ns();
    pc_v0_start.update(&key, &ts);
    return 0;
}
TRACEPOINT_PROBE(block, block_rq_complete)
{
    if (!pc_v0_wanted(args->dev))
        return 0;
    struct pc_v0_key key = {};
    key.dev = args->dev;
    key.sector = args->sector;
    u64 *tsp = pc_v0_start.lookup(&key);
    if (!tsp)
        return 0;
    u64 delta = bpf_ktime_get_ns() - *tsp;
    pc_v0_start.delete(&key);
    int op = pc_v0_op(args->rwbs[0], args->rwbs[1]);
    if (op < 0)
        return 0;
    u32 slot = (u32)op * PC_HIST_SLOTS + perfcheck_bucket(delta);
    u64 *cnt = pc_v0_hist.lookup(&slot);
    if (cnt)
        (*cnt)++;
    u32 ci = (u32)op * 2;
    cnt = pc_v0_count.lookup(&ci);
    if (cnt)
        (*cnt)++;
    ci++;
    cnt = pc_v0_count.lookup(&ci);
    if (cnt)
        *cnt += (u64)args->nr_sector << 9;
    return 0;
}
"""

FIO_SETTINGS: dict[str, list[str]] = {
    "QD1 (4k randread, psync)": ["--ioengine=psync", "--iodepth=1"],
    "saturating (4k randread, libaio QD16 x 2 jobs)": [
        "--ioengine=libaio",
        "--iodepth=16",
        "--numjobs=2",
    ],
}
#: CPUs each setting keeps busy (with noise control a job's loop worker shares its CPU).
BUSY_CPUS: dict[str, int] = {
    "QD1 (4k randread, psync)": 1,
    "saturating (4k randread, libaio QD16 x 2 jobs)": 2,
}


@dataclass(frozen=True)
class FioRun:
    iops: float
    ios: int
    cpu_ns_per_io: float  # fio's own CPU time (user + system) per I/O


def run_fio(device: Path, seconds: float, options: Sequence[str]) -> FioRun:
    """One fio run, summed over its jobs."""
    cmd = [
        "fio", "--name=overhead", f"--filename={device}", "--rw=randread", "--bs=4k",
        "--direct=1", "--time_based", f"--runtime={seconds}", "--size=200M",
        "--output-format=json", *options,
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 120)
    jobs = json.loads(out.stdout[out.stdout.index("{") :])["jobs"]
    ios = sum(int(job["read"]["total_ios"]) for job in jobs)
    # usr_cpu and sys_cpu are percentages of the job's runtime (ms).
    cpu_ns = sum(
        (float(job["usr_cpu"]) + float(job["sys_cpu"])) / 100 * float(job["job_runtime"]) * 1e6
        for job in jobs
    )
    return FioRun(
        iops=sum(float(job["read"]["iops"]) for job in jobs),
        ios=ios,
        cpu_ns_per_io=cpu_ns / max(ios, 1),
    )


# -- BPF programs by id (bpf(2): BPF_PROG_GET_NEXT_ID, BPF_PROG_GET_FD_BY_ID) -------------

_BPF_NR = {"x86_64": 321, "aarch64": 280}
_LIBC = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: Any) -> int:
    return int(_LIBC.syscall(_BPF_NR[platform.machine()], cmd, ctypes.byref(attr),
                             ctypes.sizeof(attr)))  # fmt: skip


def program_ids() -> list[int]:
    ids, attr = [], (ctypes.c_uint32 * 4)(0)
    while _bpf(11, attr) == 0:  # BPF_PROG_GET_NEXT_ID: attr[0] start, attr[1] next
        ids.append(int(attr[1]))
        attr[0] = attr[1]
    return ids


def program_fd(prog_id: int) -> int:
    attr = (ctypes.c_uint32 * 4)(prog_id)
    return _bpf(13, attr)  # BPF_PROG_GET_FD_BY_ID


def program_statistics(fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a BPF program, from its fdinfo."""
    info = Path(f"/proc/self/fdinfo/{fd}").read_text()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return int(fields.get("run_time_ns", "0").strip() or 0), int(
        fields.get("run_cnt", "0").strip() or 0
    )


# -- configurations -----------------------------------------------------------------------


class Loaded:
    """A configuration attached to the kernel; ``close`` removes it."""

    def bpf_statistics(self) -> tuple[int, int] | None:
        """(BPF run time in ns, block_rq_complete runs: requests) so far, with statistics
        on; None if unknown (bpftrace's programs are not ours to read)."""
        return None

    def close(self) -> None: ...


class LoadedProgram(Loaded):
    def __init__(self, bpf: Any) -> None:
        self.bpf = bpf

    def bpf_statistics(self) -> tuple[int, int] | None:
        # Requests are counted at completion: every configuration has that handler, and
        # some (block.bio_latency) have no block_rq_issue one.
        total = requests = 0
        for name, function in self.bpf.funcs.items():
            run_time, runs = program_statistics(function.fd)
            total += run_time
            if name.endswith(b"block_rq_complete"):
                requests += runs
        return total, requests

    def close(self) -> None:
        self.bpf.cleanup()


class LoadedBpftrace(Loaded):
    def __init__(self, process: subprocess.Popen[str], programs: list[int]) -> None:
        self.process = process
        self.programs = programs  # fds of the programs bpftrace loaded

    def bpf_statistics(self) -> tuple[int, int] | None:
        if len(self.programs) != 2:
            return None  # not sure which programs are bpftrace's
        stats = [program_statistics(fd) for fd in self.programs]
        # Both programs run once per request: issue and complete.
        return sum(t for t, _ in stats), min(runs for _, runs in stats)

    def close(self) -> None:
        for fd in self.programs:
            os.close(fd)
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


def load_probes(probes: Sequence[Probe], dev: int, sample: int = 1) -> Loaded:
    bpf = load_program(probes)
    for probe in probes:
        probe.configure(bpf, {"dev": dev, "block_sample": sample})
    # As a session does: the handlers follow the variant configure chose.
    attach_only(bpf, probes, probes, release=False)
    return LoadedProgram(bpf)


def load_v0(dev: int) -> Loaded:
    from bcc import BPF

    bpf = BPF(text=build_program([]).encode() + TRACEPOINT_V0_C.encode())
    bpf[b"pc_v0_filter"][ctypes.c_int(0)] = ctypes.c_uint32(dev)
    return LoadedProgram(bpf)


def load_bpftrace(_dev: int) -> Loaded:
    before = set(program_ids())
    process = subprocess.Popen(
        ["bpftrace", "-e", BPFTRACE_ONE_LINER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline()  # "Attaching 2 probes..." once attached
    if "Attaching" not in first:
        process.kill()
        raise RuntimeError(f"bpftrace did not attach: {first.strip() or process.stderr}")
    # bpftrace prints that line before it loads and attaches: wait for its two programs.
    deadline = time.monotonic() + 20
    new: list[int] = []
    while len(new) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        new = [pid for pid in program_ids() if pid not in before]
    time.sleep(0.2)
    return LoadedBpftrace(process, [fd for fd in map(program_fd, new) if fd >= 0])


def load_reference(text: str) -> Callable[[int], Loaded]:
    """A loader of a reference program (no probe to configure: the device is ignored)."""

    def load(_dev: int) -> Loaded:
        from bcc import BPF

        return LoadedProgram(BPF(text=text.encode()))

    return load


#: The least a completion-only timer does: one program reading the clock.
CLOCK_ONLY_C = """
BPF_ARRAY(pc_clock_only, u64, 1);

RAW_TRACEPOINT_PROBE(block_rq_complete)
{
    u32 key = 0;
    u64 *last = pc_clock_only.lookup(&key);
    if (last)
        *last = bpf_ktime_get_ns();
    return 0;
}
"""

#: The same plus the one read of the request the completion-only block.latency makes
#: (128 bytes from its start: q, cmd_flags, __data_len and both stamps).
CLOCK_AND_READ_C = """
BPF_ARRAY(pc_clock_read, u64, 1);

RAW_TRACEPOINT_PROBE(block_rq_complete)
{
    u32 key = 0;
    u64 w[16];
    bpf_probe_read_kernel(w, sizeof(w), (void *)ctx->args[0]);
    u64 *last = pc_clock_read.lookup(&key);
    if (last)
        *last = bpf_ktime_get_ns() - w[14];
    return 0;
}
"""


def bpf_time_only(repeats: int, seconds: float) -> str:
    """BPF time per block request of the empty pair (the floor) and of block.latency, at
    each setting, ``repeats`` runs each, alternating: a quick look at what the program
    itself adds over the cost of running any program at all."""
    configs: dict[str, Callable[[int], Loaded]] = {
        "empty raw-tracepoint pair (floor)": load_reference(EMPTY_PAIR_C),
        "clock-read pair (floor of any issue-to-completion timer)": load_reference(CLOCK_PAIR_C),
        "one program, clock read (floor of a completion-only timer)": load_reference(CLOCK_ONLY_C),
        "one program, clock read and the 128-byte request read": load_reference(CLOCK_AND_READ_C),
        "block.latency, two programs": lambda dev: load_probes(
            [BlockLatencyProbe(kernel_stamps=False)], dev
        ),
        "block.latency, two programs, 1 in 8 sampled": lambda dev: load_probes(
            [BlockLatencyProbe(kernel_stamps=False)], dev, 8
        ),
        "block.bio_latency": lambda dev: load_probes([BlockBioLatencyProbe()], dev),
        "block.latency, completion-only (the request's own stamp)": lambda dev: load_probes(
            [BlockLatencyProbe()], dev
        ),
    }
    found: dict[str, dict[str, list[float]]] = {
        name: {setting: [] for setting in FIO_SETTINGS} for name in configs
    }
    with contextlib.ExitStack() as stack:
        if WORKQUEUE_AFFINITY_SCOPE.exists():
            stack.enter_context(sysfs_setting(WORKQUEUE_AFFINITY_SCOPE, "cpu"))
        target = stack.enter_context(ScratchLoopDevice.create(256))
        stack.enter_context(bpf_run_time_statistics())
        for _ in range(repeats):
            for setting, options in FIO_SETTINGS.items():
                for name, load in configs.items():
                    loaded = load(target.probe_dev)
                    try:
                        before = loaded.bpf_statistics()
                        run_fio(target.path, seconds, options)
                        after = loaded.bpf_statistics()
                    finally:
                        loaded.close()
                    if before is not None and after is not None and after[1] > before[1]:
                        per_io = (after[0] - before[0]) / (after[1] - before[1])
                        found[name][setting].append(per_io)
    lines = [
        f"BPF ns per block request ({repeats} runs of {seconds:g} s each, alternating;"
        " includes the statistics' own cost):",
        "",
        "| configuration | " + " | ".join(FIO_SETTINGS) + " |",
        "|---|" + "---|" * len(FIO_SETTINGS),
    ]
    for name, by_setting in found.items():
        cells = [
            f"{statistics.median(v):.0f} ({min(v):.0f}..{max(v):.0f})" if v else "-"
            for v in by_setting.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class Configuration:
    name: str
    load: Callable[[int], Loaded]
    ratios: dict[str, list[float]] = field(default_factory=dict)
    cpu_ratios: dict[str, list[float]] = field(default_factory=dict)
    ns_per_io: dict[str, float] = field(default_factory=dict)


def configurations(include_bpftrace: bool) -> list[Configuration]:
    everything, _skipped = partition_available([cls() for cls in CATALOG.values()])
    configs = [
        Configuration("block.latency", lambda dev: load_probes([BlockLatencyProbe()], dev)),
        Configuration(
            "block (3 probes)",
            lambda dev: load_probes(
                [BlockLatencyProbe(), BlockQueueLatencyProbe(), BlockSizeProbe()], dev
            ),
        ),
        Configuration(
            f"catalog (all {len(everything)})",
            lambda dev: load_probes(everything, dev),  # type: ignore[arg-type]
        ),
        Configuration("tracepoint v0", load_v0),
    ]
    if include_bpftrace:
        configs.append(Configuration("bpftrace one-liner", load_bpftrace))
    return configs


# -- measurement ----------------------------------------------------------------------------


@contextlib.contextmanager
def bpf_run_time_statistics() -> Iterator[None]:
    """Kernel BPF run-time statistics on while the returned fd is open (BPF_ENABLE_STATS)."""
    attr = (ctypes.c_uint32 * 4)(0)  # type = BPF_STATS_RUN_TIME
    fd = _bpf(32, attr)  # BPF_ENABLE_STATS
    if fd < 0:
        raise OSError(ctypes.get_errno(), "BPF_ENABLE_STATS failed")
    try:
        yield
    finally:
        os.close(fd)


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def compile_times(repeats: int) -> list[float]:
    from bcc import BPF

    probes, _ = partition_available([cls() for cls in CATALOG.values()])
    text = build_program(probes).encode()  # type: ignore[arg-type]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        bpf = BPF(text=text)
        times.append(time.perf_counter() - started)
        bpf.cleanup()
    return times


def measure(args: argparse.Namespace) -> dict[str, Any]:
    configs = configurations(not args.no_bpftrace)
    plain: dict[str, list[float]] = {setting: [] for setting in FIO_SETTINGS}
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        if not args.no_noise_control and WORKQUEUE_AFFINITY_SCOPE.exists():
            stack.enter_context(sysfs_setting(WORKQUEUE_AFFINITY_SCOPE, "cpu"))
        target = stack.enter_context(ScratchLoopDevice.create(256))
        for setting, options in FIO_SETTINGS.items():
            run_fio(target.path, 1.0, options)  # warm-up
            for rnd in range(args.rounds):
                shift = rnd % len(configs)
                order = configs[shift:] + configs[:shift]
                first = run_fio(target.path, args.seconds, options)
                under: dict[str, FioRun] = {}
                for config in order:
                    loaded = config.load(target.probe_dev)
                    try:
                        under[config.name] = run_fio(target.path, args.seconds, options)
                    finally:
                        loaded.close()
                last = run_fio(target.path, args.seconds, options)
                alone = (first.iops + last.iops) / 2
                alone_cpu = (first.cpu_ns_per_io + last.cpu_ns_per_io) / 2
                plain[setting] += [first.iops, last.iops]
                for config in configs:
                    run = under[config.name]
                    config.ratios.setdefault(setting, []).append(run.iops / alone)
                    config.cpu_ratios.setdefault(setting, []).append(run.cpu_ns_per_io / alone_cpu)
                shown = "  ".join(f"{c.name} {under[c.name].iops / alone:.3f}" for c in configs)
                print(f"  {setting[:10]} round {rnd + 1}: alone {alone:9.0f} IOPS  {shown}",
                      flush=True)  # fmt: skip
        # BPF time per I/O, from the kernel's statistics (perfcheck's programs only).
        with bpf_run_time_statistics():
            for setting, options in FIO_SETTINGS.items():
                for config in configs:
                    loaded = config.load(target.probe_dev)
                    try:
                        before = loaded.bpf_statistics()
                        run_fio(target.path, args.seconds, options)
                        after = loaded.bpf_statistics()
                    finally:
                        loaded.close()
                    # Per block request (on any disk: other disks' requests also run
                    # the programs), all of the configuration's programs together.
                    if before is not None and after is not None and after[1] > before[1]:
                        config.ns_per_io[setting] = (after[0] - before[0]) / (after[1] - before[1])
    compiles = compile_times(args.compiles)
    return {
        "settings": list(FIO_SETTINGS),
        "rounds": args.rounds,
        "seconds": args.seconds,
        "noise_control": not args.no_noise_control,
        "load_average": [load_before, os.getloadavg()[0]],
        "kernel": platform.release(),
        "alone_iops": plain,
        "configurations": {
            c.name: {"ratios": c.ratios, "cpu_ratios": c.cpu_ratios, "bpf_ns_per_io": c.ns_per_io}
            for c in configs
        },
        "compile_attach_s": compiles,
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Kernel {results['kernel']}, {results['rounds']} rounds of {results['seconds']} s per"
        f" configuration and setting, noise control {'on' if results['noise_control'] else 'off'},"
        f" load average {results['load_average'][0]:.1f} -> {results['load_average'][1]:.1f}.",
        "",
    ]
    for setting in results["settings"]:
        alone = results["alone_iops"][setting]
        lo, hi = quartiles(alone)
        lines += [
            f"### {setting}",
            "",
            f"fio alone: median {statistics.median(alone):,.0f} IOPS, min..max"
            f" {min(alone):,.0f}..{max(alone):,.0f}, IQR {lo:,.0f}..{hi:,.0f} ({len(alone)} runs)",
            "",
            "| configuration | median IOPS ratio | IOPS loss | min..max | IQR"
            " | fio CPU per I/O, ratio (IQR) | BPF ns per I/O | BPF share of busy CPU |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, data in results["configurations"].items():
            ratios = data["ratios"][setting]
            median = statistics.median(ratios)
            q1, q3 = quartiles(ratios)
            cost = data["bpf_ns_per_io"].get(setting)
            # BPF time per second of I/O at the median plain IOPS, over the busy CPUs.
            share = (
                "-"
                if cost is None
                else f"{100 * cost * statistics.median(alone) / (1e9 * BUSY_CPUS[setting]):.1f}%"
            )
            cpu = data["cpu_ratios"][setting]
            c1, c3 = quartiles(cpu)
            lines.append(
                f"| {name} | {median:.3f} | {100 * (1 - median):.1f}% |"
                f" {min(ratios):.3f}..{max(ratios):.3f} | {q1:.3f}..{q3:.3f} |"
                f" {statistics.median(cpu):.3f} ({c1:.3f}..{c3:.3f}) |"
                f" {'-' if cost is None else f'{cost:.0f}'} | {share} |"
            )
        lines.append("")
    compiles = results["compile_attach_s"]
    lines.append(
        f"Compile+attach of the full catalog: median {statistics.median(compiles):.2f} s,"
        f" min..max {min(compiles):.2f}..{max(compiles):.2f} s ({len(compiles)} runs)."
    )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 rounds of 1.5 s (about 3 min)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds per setting (default 10)")
    parser.add_argument("--seconds", type=float, default=3.0, help="fio runtime per run")
    parser.add_argument("--compiles", type=int, default=5, help="compile+attach repetitions")
    parser.add_argument("--no-bpftrace", action="store_true", help="leave bpftrace out")
    parser.add_argument("--no-noise-control", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--bpf-time-only",
        type=int,
        metavar="N",
        help="only BPF time per request of the floors and the block probes' variants, N runs",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.compiles = 4, 1.5, 3
    if os.geteuid() != 0:
        print("overhead: needs root (BPF, loop devices)", file=sys.stderr)
        return 2
    if args.bpf_time_only:
        print(bpf_time_only(args.bpf_time_only, args.seconds))
        return 0
    results = measure(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True))
    print()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
