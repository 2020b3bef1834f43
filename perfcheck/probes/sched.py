"""``sched.runqlat``: how long runnable tasks wait for a CPU (bcc's runqlat, on raw
tracepoints).

A task starts waiting when it is woken (``sched_wakeup``, ``sched_wakeup_new``) or
preempted while still runnable (``sched_switch`` with ``prev`` preempted or in state
TASK_RUNNING), and stops when ``sched_switch`` puts it on a CPU. Series ``sched.runqlat``.

Filters: ``pid`` (the woken task's process) and ``cgroup_id`` (its cgroup v2); both 0
means every task. For a switched-out task the filter uses the current task's ids (it is
``prev``); for a woken task it reads ``tgid`` and ``cgroups->dfl_cgrp->kn->id`` from its
``task_struct`` at offsets from the kernel's BTF. The idle task (pid 0) is never timed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from perfcheck.probes.btf import kernel_btf
from perfcheck.probes.catalog import ATTACH_RAW_TRACEPOINT, CatalogProbe, setting
from perfcheck.probes.features import (
    Unavailable,
    missing_events_or_types,
)
from perfcheck.probes.maps import write_config

RAW_TRACEPOINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sched_wakeup", ("struct task_struct *",)),
    ("sched_wakeup_new", ("struct task_struct *",)),
    # prev_state joined the arguments in Linux 5.18.
    ("sched_switch", ("bool", "struct task_struct *", "struct task_struct *", "unsigned int")),
)

BTF_MEMBERS: tuple[tuple[str, str], ...] = (
    ("task_struct", "pid"),
    ("task_struct", "tgid"),
    ("task_struct", "cgroups"),
    ("css_set", "dfl_cgrp"),
    ("cgroup", "kn"),
    ("kernfs_node", "id"),
)

SCHED_RUNQLAT_C = r"""
/*
 * sched.runqlat: wakeup or preemption -> sched_switch onto a CPU, per task (tid).
 * pc_sched_config: filters and task_struct offsets from BTF; nothing is timed until
 * ready is set.
 */
struct pc_sched_config {
    u64 cgroup_id;      /* 0: any cgroup */
    u32 tgid;           /* 0: any process */
    u32 ready;
    u32 off_task_pid;
    u32 off_task_tgid;
    u32 off_task_cgroups;
    u32 off_css_set_dfl_cgrp;
    u32 off_cgroup_kn;
    u32 off_kernfs_node_id;
};

BPF_ARRAY(pc_sched_config, struct pc_sched_config, 1);
/* tid -> when it became runnable (0: not waiting). Entries are updated in place, not
 * deleted, which costs far less per event; LRU drops the entries of exited threads. */
BPF_TABLE("lru_hash", u32, u64, pc_sched_queued, 65536);
BPF_PERCPU_ARRAY(pc_sched_hist, u64, PC_HIST_SLOTS);

static __always_inline u64 pc_sched_read_ptr(u64 base, u32 offset)
{
    u64 value = 0;
    if (base)
        bpf_probe_read_kernel(&value, sizeof(value), (void *)(base + offset));
    return value;
}

static __always_inline int pc_sched_task_wanted(struct pc_sched_config *cfg, u64 task)
{
    if (cfg->tgid) {
        u32 tgid = 0;
        bpf_probe_read_kernel(&tgid, sizeof(tgid), (void *)(task + cfg->off_task_tgid));
        if (tgid != cfg->tgid)
            return 0;
    }
    if (cfg->cgroup_id) {
        u64 css = pc_sched_read_ptr(task, cfg->off_task_cgroups);
        u64 cgrp = pc_sched_read_ptr(css, cfg->off_css_set_dfl_cgrp);
        u64 kn = pc_sched_read_ptr(cgrp, cfg->off_cgroup_kn);
        if (pc_sched_read_ptr(kn, cfg->off_kernfs_node_id) != cfg->cgroup_id)
            return 0;
    }
    return 1;
}

static __always_inline void pc_sched_mark_queued(u32 tid, u64 now)
{
    u64 *queued = pc_sched_queued.lookup(&tid);
    if (queued)
        *queued = now;
    else
        pc_sched_queued.update(&tid, &now);
}

static __always_inline void pc_sched_woken(u64 task)
{
    u32 zero = 0;
    struct pc_sched_config *cfg = pc_sched_config.lookup(&zero);
    if (!cfg || !cfg->ready)
        return;
    u32 pid = 0;
    bpf_probe_read_kernel(&pid, sizeof(pid), (void *)(task + cfg->off_task_pid));
    if (!pid || !pc_sched_task_wanted(cfg, task))
        return;
    pc_sched_mark_queued(pid, bpf_ktime_get_ns());
}

RAW_TRACEPOINT_PROBE(sched_wakeup)
{
    pc_sched_woken(ctx->args[0]);
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_wakeup_new)
{
    pc_sched_woken(ctx->args[0]);
    return 0;
}

RAW_TRACEPOINT_PROBE(sched_switch)
{
    u32 zero = 0;
    struct pc_sched_config *cfg = pc_sched_config.lookup(&zero);
    if (!cfg || !cfg->ready)
        return 0;
    u64 now = bpf_ktime_get_ns();
    /* prev is the current task: still runnable when preempted or TASK_RUNNING (0) */
    if (ctx->args[0] || (u32)ctx->args[3] == 0) {
        u64 id = bpf_get_current_pid_tgid();
        u32 prev = (u32)id;
        if (prev && (!cfg->tgid || (id >> 32) == cfg->tgid)
            && (!cfg->cgroup_id || bpf_get_current_cgroup_id() == cfg->cgroup_id))
            pc_sched_mark_queued(prev, now);
    }
    u32 next = 0;
    bpf_probe_read_kernel(&next, sizeof(next), (void *)(ctx->args[2] + cfg->off_task_pid));
    u64 *queued = pc_sched_queued.lookup(&next);
    if (!queued || !*queued)
        return 0;
    u64 delta = now - *queued;
    *queued = 0;
    u32 slot = perfcheck_bucket(delta);
    u64 *n = pc_sched_hist.lookup(&slot);
    if (n)
        (*n)++;
    return 0;
}
"""


@dataclass(frozen=True)
class TaskLayout:
    off_task_pid: int
    off_task_tgid: int
    off_task_cgroups: int
    off_css_set_dfl_cgrp: int
    off_cgroup_kn: int
    off_kernfs_node_id: int


@functools.lru_cache(maxsize=1)
def task_layout() -> TaskLayout:
    """task_struct offsets of the running kernel (raises BTFError if missing)."""
    btf = kernel_btf()

    def offset(struct_name: str, member: str) -> int:
        return btf.member(struct_name, member).offset

    return TaskLayout(
        off_task_pid=offset("task_struct", "pid"),
        off_task_tgid=offset("task_struct", "tgid"),
        off_task_cgroups=offset("task_struct", "cgroups"),
        off_css_set_dfl_cgrp=offset("css_set", "dfl_cgrp"),
        off_cgroup_kn=offset("cgroup", "kn"),
        off_kernfs_node_id=offset("kernfs_node", "id"),
    )


class SchedRunqLatencyProbe(CatalogProbe):
    name: ClassVar[str] = "sched.runqlat"
    summary: ClassVar[str] = "run-queue latency: runnable to running, per task (runqlat)"
    tracepoints: ClassVar[tuple[tuple[str, str], ...]] = tuple(
        ("sched", name) for name, _ in RAW_TRACEPOINTS
    )
    C_SOURCE: ClassVar[str] = SCHED_RUNQLAT_C
    attach: ClassVar[str] = ATTACH_RAW_TRACEPOINT
    filters: ClassVar[tuple[str, ...]] = ("pid", "cgroup_id")

    @classmethod
    def unavailable(cls) -> Unavailable | None:
        return missing_events_or_types(cls.tracepoints, RAW_TRACEPOINTS, BTF_MEMBERS)

    def series_names(self) -> list[str]:
        return ["sched.runqlat"]

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        fields = dict(task_layout().__dict__)
        fields.update(
            tgid=setting(settings, "pid"), cgroup_id=setting(settings, "cgroup_id"), ready=1
        )
        # Tasks queued under the previous filter must not be timed under this one.
        bpf[b"pc_sched_queued"].clear()
        write_config(bpf[b"pc_sched_config"], fields)

    HIST_MAP: ClassVar[bytes] = b"pc_sched_hist"


__all__ = ["SCHED_RUNQLAT_C", "SchedRunqLatencyProbe", "TaskLayout", "task_layout"]
