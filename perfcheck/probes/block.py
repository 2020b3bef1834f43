"""``block.latency``: time from block_rq_issue to block_rq_complete, per operation.

Like bcc's biolatency, but on the block tracepoints only (kprobes may be absent, and
bcc's biolatency broke when ``blk_account_io_done`` was inlined). Requests are
matched by (device, sector); only the target disk is timed, filtered inside BPF so
other disks cost a map lookup and nothing more.

Series: ``block.latency.<op>`` for op in read, write, flush, discard.
Counters: ``block.requests.<op>`` and ``block.bytes.<op>``, used to cross-check the
probe against the workload's own I/O count.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from typing import Any, ClassVar

from perfcheck.bpf_layout import HIST_SLOTS
from perfcheck.histogram import LogLinearHistogram
from perfcheck.probes.base import Probe, ProbeCounters

#: Operation index in the maps -> name. Order is part of the C/Python contract below.
BLOCK_OPS: tuple[str, ...] = ("read", "write", "flush", "discard")

BLOCK_LATENCY_C = r"""
/*
 * block.latency: block_rq_issue -> block_rq_complete latency of one disk, per op.
 * pc_blk_filter[0] holds the disk's dev_t (MAJOR << 20 | MINOR); nothing else is timed.
 * pc_blk_hist is indexed op * PC_HIST_SLOTS + slot; pc_blk_count[op * 2] counts
 * requests and [op * 2 + 1] bytes.
 */
#define PC_BLK_OPS 4

struct pc_blk_key {
    u32 dev;
    u32 pad;
    u64 sector;
};

BPF_HASH(pc_blk_start, struct pc_blk_key, u64, 16384);
BPF_PERCPU_ARRAY(pc_blk_hist, u64, PC_BLK_OPS * PC_HIST_SLOTS);
BPF_PERCPU_ARRAY(pc_blk_count, u64, PC_BLK_OPS * 2);
BPF_ARRAY(pc_blk_filter, u32, 1);

/* rwbs: optional 'F' (preflush) then R/W/D/F(lush); anything else is not counted. */
static __always_inline int pc_blk_op(char c0, char c1)
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

static __always_inline int pc_blk_wanted(u32 dev)
{
    u32 zero = 0;
    u32 *want = pc_blk_filter.lookup(&zero);
    return want && *want == dev;
}

TRACEPOINT_PROBE(block, block_rq_issue)
{
    if (!pc_blk_wanted(args->dev))
        return 0;
    struct pc_blk_key key = {};
    key.dev = args->dev;
    key.sector = args->sector;
    u64 ts = bpf_ktime_get_ns();
    pc_blk_start.update(&key, &ts);
    return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
    if (!pc_blk_wanted(args->dev))
        return 0;
    struct pc_blk_key key = {};
    key.dev = args->dev;
    key.sector = args->sector;
    u64 *tsp = pc_blk_start.lookup(&key);
    if (!tsp)
        return 0;
    u64 delta = bpf_ktime_get_ns() - *tsp;
    pc_blk_start.delete(&key);

    int op = pc_blk_op(args->rwbs[0], args->rwbs[1]);
    if (op < 0)
        return 0;
    u32 slot = (u32)op * PC_HIST_SLOTS + perfcheck_bucket(delta);
    u64 *cnt = pc_blk_hist.lookup(&slot);
    if (cnt)
        (*cnt)++;
    u32 ci = (u32)op * 2;
    cnt = pc_blk_count.lookup(&ci);
    if (cnt)
        (*cnt)++;
    ci++;
    cnt = pc_blk_count.lookup(&ci);
    if (cnt)
        *cnt += (u64)args->nr_sector << 9;
    return 0;
}
"""


def _percpu_array_sums(table: Any, length: int) -> list[int]:
    """Sum a BPF per-CPU array over CPUs, in one batch syscall where the kernel allows."""
    sums = [0] * length
    try:
        for key, value in table.items_lookup_batch():
            sums[int(key.value)] = sum(int(v) for v in value)
        return sums
    except Exception:
        pass
    for i in range(length):
        sums[i] = int(table.sum(ctypes.c_int(i)).value)
    return sums


class BlockLatencyProbe(Probe):
    name: ClassVar[str] = "block.latency"
    tracepoints: ClassVar[tuple[tuple[str, str], ...]] = (
        ("block", "block_rq_issue"),
        ("block", "block_rq_complete"),
    )
    C_SOURCE: ClassVar[str] = BLOCK_LATENCY_C

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        bpf[b"pc_blk_filter"][ctypes.c_int(0)] = ctypes.c_uint32(settings.get("dev", 0))

    def read(self, bpf: Any) -> ProbeCounters:
        slots = _percpu_array_sums(bpf[b"pc_blk_hist"], len(BLOCK_OPS) * HIST_SLOTS)
        counts = _percpu_array_sums(bpf[b"pc_blk_count"], len(BLOCK_OPS) * 2)
        out = ProbeCounters()
        for i, op in enumerate(BLOCK_OPS):
            chunk = slots[i * HIST_SLOTS : (i + 1) * HIST_SLOTS]
            out.histograms[f"block.latency.{op}"] = LogLinearHistogram.from_counts(chunk)
            out.counters[f"block.requests.{op}"] = counts[i * 2]
            out.counters[f"block.bytes.{op}"] = counts[i * 2 + 1]
        return out
