"""Where the wait for a request tag shows: fio, block.queue_latency, block.bio_latency.

With mq-deadline and ``nr_requests=4``, 4k random reads at QD16 wait for one of four
scheduler tags. The wait happens after ``block_bio_queue`` and before the request
exists (so before ``block_rq_insert``): ``block.bio_latency`` includes it,
``block.queue_latency`` does not. fio's clat includes more: the time a completed I/O
waits in the aio ring while fio's only thread sleeps in ``io_submit`` for a tag. So the
script also times fio's ``io_submit`` (``syscall.latency``, fio in a cgroup of its own).

Each repeat runs every workload with the disk's default ``nr_requests`` and with 4, in
turn, for ``--seconds`` each; one table row per run.

    .venv/bin/python bench/tag_wait.py [--repeats 5] [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from perfcheck.model.histogram import LogLinearHistogram  # noqa: E402
from perfcheck.probes import (  # noqa: E402
    BlockBioLatencyProbe,
    BlockQueueLatencyProbe,
    SyscallLatencyProbe,
)
from perfcheck.probes.session import ProbeSession  # noqa: E402
from perfcheck.system.cgroup import WorkloadCgroup  # noqa: E402
from perfcheck.system.knobs import sysfs_setting  # noqa: E402
from perfcheck.system.targets import SYSFS_BLOCK, ScratchLoopDevice, io_scheduler  # noqa: E402
from perfcheck.workloads.fio import FioResult, parse_fio_output, run_in_own_group  # noqa: E402

#: QD16 of 4k random reads from one fio job, and from four jobs of QD4.
WORKLOADS: dict[str, list[str]] = {
    "1 job x QD16": ["--ioengine=libaio", "--iodepth=16"],
    "4 jobs x QD4": ["--ioengine=libaio", "--iodepth=4", "--numjobs=4"],
}

US = 1000.0


def run_fio(
    device: Path, seconds: float, options: Sequence[str], cgroup: WorkloadCgroup
) -> FioResult:
    cmd = [
        "fio", "--name=tag-wait", f"--filename={device}", "--rw=randread", "--bs=4k",
        "--direct=1", "--time_based", f"--runtime={seconds}", "--size=200M",
        "--output-format=json+", "--group_reporting", *options,
    ]  # fmt: skip
    code, stdout, stderr = run_in_own_group(cmd, seconds + 120, preexec=cgroup.preexec_fn())
    if code != 0:
        raise SystemExit(f"fio exited {code}: {stderr.strip() or stdout.strip()}")
    return parse_fio_output(stdout)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    print(
        "| workload | nr_requests | IOPS | fio clat p50 | bio p50 | bio mean | queue p50"
        " | queue mean | bio - queue, mean | io_submit share of fio's time |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    session = ProbeSession(
        [BlockQueueLatencyProbe(), BlockBioLatencyProbe(), SyscallLatencyProbe()]
    )
    session.start()
    try:
        with ScratchLoopDevice.create(256) as scratch, WorkloadCgroup.create() as cgroup:
            session.configure({"dev": scratch.probe_dev, "cgroup_id": cgroup.id})
            nr_requests = SYSFS_BLOCK / scratch.disk / "queue" / "nr_requests"
            with io_scheduler(scratch.disk, "mq-deadline"):
                default = nr_requests.read_text().strip()
                for _ in range(args.repeats):
                    for name, options in WORKLOADS.items():
                        for depth in (default, "4"):
                            with sysfs_setting(nr_requests, depth):
                                before = session.snapshot()
                                fio = run_fio(scratch.path, args.seconds, options, cgroup)
                                seen = session.snapshot().since(before).histograms
                            print(row(name, depth, fio, seen, args.seconds, options), flush=True)
    finally:
        session.close()
    return 0


def row(
    name: str,
    depth: str,
    fio: FioResult,
    seen: dict[str, LogLinearHistogram],
    seconds: float,
    options: Sequence[str],
) -> str:
    read = fio.directions["read"]
    bio, queue = seen["block.bio_latency.read"], seen["block.queue_latency.read"]
    submit = seen.get("syscall.latency.io_submit")
    jobs = 4 if "--numjobs=4" in options else 1
    share = submit.mean() * submit.total / (seconds * 1e9 * jobs) if submit and submit.total else 0
    cells = [
        name, depth, f"{read.iops:.0f}", f"{read.clat.percentile(50) / US:.1f} us",
        f"{bio.percentile(50) / US:.1f}", f"{bio.mean() / US:.1f}",
        f"{queue.percentile(50) / US:.1f}", f"{queue.mean() / US:.1f}",
        f"{(bio.mean() - queue.mean()) / US:.1f} us", f"{share:.0%}",
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
