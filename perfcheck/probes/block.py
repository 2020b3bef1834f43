"""The block probes: ``block.latency``, ``block.queue_latency``, ``block.bio_latency`` and
``block.size``.

Like bcc's biolatency (and ``biolatency -Q``) and bitesize, but on the block layer's
raw tracepoints only: kprobes may be absent, and bcc's biolatency broke when
``blk_account_io_done`` was inlined.

``block.latency``
    ``block_rq_issue`` -> ``block_rq_complete``: time in the driver and device.
    Series ``block.latency.<op>``; counters ``block.requests.<op>``, ``block.bytes.<op>``
    (to cross-check the probe against the workload's own I/O count) and
    ``block.untimed`` (requests the program could not track: its overflow table was
    full; 0 in practice).
    Two variants, chosen per disk when the probe is configured: where the disk's
    requests carry the kernel's own stamp (``io_start_time_ns``, set when a request is
    started, beside ``block_rq_issue``, if the queue collects statistics), one program
    at ``block_rq_complete`` reads it and the clock (BPF time at QD1: 181-237 ns
    against 337-352); else two programs, ``block_rq_issue`` taking the time itself. The check is
    made at run time on real requests: the program counts whether the target's
    requests carry the stamp while the probe reads 16 blocks of the disk itself
    (read-only, ``O_DIRECT``).
    The kernel takes its stamp from the submitting task's plug, whose clock is read
    once per plug (usually at the request's allocation), so the completion-only
    variant starts up to the plug's work earlier than ``block_rq_issue`` and may
    exceed ``block.queue_latency``. Provenance names the stamp
    (``request.io_start_time_ns``), so the variants' baselines are never compared.
``block.queue_latency``
    ``block_rq_insert`` -> ``block_rq_complete``, or ``block_rq_issue`` ->
    ``block_rq_complete`` for a request never inserted (issued directly, as with the
    ``none`` scheduler): adds the time spent in the I/O scheduler. Series
    ``block.queue_latency.<op>``. A request requeued and inserted again counts from
    its last insertion.
``block.bio_latency``
    ``block_bio_queue`` -> the completion of the request holding the bio
    (``block_rq_complete``; the kernel does not fire ``block_bio_complete`` for a bio a
    blk-mq request completes), or ``block_bio_complete`` for a bio that never became part
    of a request (a bio-based disk; a bio failed before). Series
    ``block.bio_latency.<op>``; each histogram's total is the number of bios. Counted per
    bio, by the bio's address: a bio split into several requests counts once and ends
    with the request holding its last part (the original bio; the parts split off are
    new bios the kernel never traces at submission); bios merged into one request count
    each and end together. An empty write with ``REQ_PREFLUSH`` (what fsync sends) is a
    flush. A completion ends at most 320 bios of its request (a bound the verifier needs);
    any beyond count in ``block.untimed``. Not sampled.
``block.size``
    Bytes of each request at ``block_rq_issue``. Series ``block.size.<op>``, whose values
    are **bytes**, not nanoseconds, in the same log-linear buckets.

``<op>`` is read, write, flush or discard (secure erase counts as discard); other
operations (write-zeroes, zone management, passthrough) are not counted.

What each includes, along a bio's way through blk-mq (Linux 6.x)::

    submit_bio: blk-throttle (cgroup io.max) may hold the bio here
    block_bio_queue ------------------------------------ block.bio_latency starts
      split to the queue's limits (block_split); merge into a plugged or queued
      request (block_bio_{back,front}merge: no request of its own); else rq-qos
      throttling (wbt, io.latency, io.cost), then allocate a request: WAIT FOR A TAG
      (a scheduler tag, nr_requests of them, under a scheduler; a driver tag under none)
    block_getrq; the request may sit in the task's plug until it is flushed
    block_rq_insert ------------------------------------ block.queue_latency starts
      in the I/O scheduler; dispatch waits for a driver tag
    block_rq_issue ------------------------------------- block.latency starts
      driver and device (block_rq_requeue: back to insertion; the request timers
      restart, the bio's does not)
    block_rq_complete ---------------------------------- all three end
      then the submitter is woken (aio: the event waits in the ring until the
      application reaps it)

So ``block.latency`` is the driver and device; ``block.queue_latency`` adds the I/O
scheduler and the wait for a driver tag at dispatch (a request issued without
insertion, as under ``none``, counts from its issue); ``block.bio_latency`` adds the
wait for a request tag, rq-qos throttling, splitting and plugging. None includes
blk-throttle (``io.max``), which holds a bio before ``block_bio_queue``, nor the time
before ``submit_bio`` or after completion: fio's clat at depth includes the time a
completed I/O waits for fio to reap it. With mq-deadline and ``nr_requests=4`` at
QD16, fio's clat rose while ``block.queue_latency`` stayed put: bios waited for a tag
(``block.bio_latency`` minus ``block.queue_latency``, mean: 3-19 us against 1.1 us),
and while fio's one thread slept in ``io_submit`` for a tag, completed reads waited in
its ring (``bench/tag_wait.py``, ``bench/RESULTS.md``).

How it is kept cheap (see ``bench/RESULTS.md``):

* Raw tracepoints: the program gets the ``struct request *`` directly instead of a
  formatted trace record, skipping the record's formatting (rwbs, comm, cmd).
* Request state lives in an array slot picked from the request's address (``(rq >> 6)``
  modulo 65536), updated in place: an array lookup is inlined by the verifier where a
  hash lookup is a helper call. A tag set allocates its requests in contiguous,
  cache-line aligned chunks, so a disk's requests mostly get slots of their own; the
  slot keeps the address it belongs to, and a request whose slot another in-flight
  request holds is kept in an overflow hash table instead (exact, just slower; only
  two requests sharing a slot and claiming it in the same instant on two CPUs can lose
  one sample).
* Only the handlers of the block probes being measured stay attached
  (:meth:`_BlockProbe.handlers`): ``block_rq_insert`` fires for every request even
  under ``none``, so ``block.latency`` alone runs two programs per request, not three.
* The target disk is recognised by its ``request_queue`` pointer, learned once from
  ``rq->q->disk`` and cached in the config map, so a request costs one field read to
  filter. Field offsets come from the kernel's BTF (:mod:`perfcheck.probes.btf`) and
  reach the program through the config map: the C text is the same on every kernel.

Sampling (opt-in, ``block_sample = N`` in a scenario, ``perfcheck probe --sample N``):
the issue program times a request only when ``bpf_get_prandom_u32() % N == 0``, so one
request in N, chosen independently of its latency, and the others cost a random number
and a slot check (the completion-only ``block.latency`` chooses at completion, so not
the same requests as ``block.size``). The distribution is the same; the request and
byte counts are 1/N (the cross-check with fio allows for the binomial spread) and
provenance records ``sample:1/N``, so sampled and unsampled measurements are never
compared.
``block.queue_latency`` cannot be sampled: it times a request from its insertion, before
the issue where the choice is made.

The four probes share one program section (a guard keeps it from being pasted twice)
and one config map; the request probes share one request array, ``block.bio_latency``
has a bio array of its own (same slot scheme, its filter a cached ``block_device``
pointer matched by its whole disk's dev_t). Each probe's ``configure`` switches its
part on through a feature bit, so a session holding only ``block.latency`` skips the
others' work.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from perfcheck.model.bpf_layout import HIST_SLOTS
from perfcheck.probes.base import Handler, ProbeCounters
from perfcheck.probes.btf import BTFError, Member, kernel_btf
from perfcheck.probes.catalog import (
    ATTACH_RAW_TRACEPOINT,
    UNIT_BYTES,
    CatalogProbe,
    setting,
)
from perfcheck.probes.features import (
    Unavailable,
    missing_btf_members,
    missing_events_or_types,
)
from perfcheck.probes.maps import percpu_array_sums, read_config, split_histograms, write_config

#: Operation index in the maps -> name. Order is part of the C/Python contract below.
BLOCK_OPS: tuple[str, ...] = ("read", "write", "flush", "discard")

#: Feature bits in ``pc_blk_config.features``, one per probe.
FEATURE_LATENCY = 1
FEATURE_QUEUE = 2
FEATURE_SIZE = 4
FEATURE_BIO = 8
#: block.latency timed from the request's own timestamp, at completion only.
FEATURE_STAMPED = 16
#: Count which of its timestamps the target's requests carry (the run-time check).
FEATURE_DETECT = 32
#: Only the I/O that tasks of one cgroup submitted (:data:`SUBMITTER_SETTING`).
FEATURE_SUBMITTER = 64

#: The probe setting of the submitter filter: a cgroup v2 id. The block probes then time
#: only requests whose first bio a task of that cgroup submitted (and bios it submitted):
#: a test's own I/O among other processes' on the same disk. I/O that a kernel thread
#: submits for it (page-cache writeback) is not its own.
SUBMITTER_SETTING = "submitter_cgroup_id"
#: How provenance says the submitter filter was on: such series count only part of a
#: disk's I/O and are never compared with unfiltered ones.
SUBMITTER_PROVENANCE = "filter:submitter-cgroup"

#: The probe setting (and scenario key) of 1-in-N sampling: ``block_sample = N``.
SAMPLE_SETTING = "block_sample"
#: How a sampled probe's provenance says so: ``sample:1/N``. Sampled and unsampled
#: measurements count different numbers of requests and are not compared.
SAMPLE_PROVENANCE = "sample:1/"

#: Raw tracepoints of the shared program and the argument types it reads.
RAW_TRACEPOINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("block_rq_insert", ("struct request *",)),
    ("block_rq_issue", ("struct request *",)),
    ("block_rq_merge", ("struct request *",)),
    ("block_rq_complete", ("struct request *", "blk_status_t", "unsigned int")),
    ("block_bio_queue", ("struct bio *",)),
    ("block_bio_complete", ("struct request_queue *", "struct bio *")),
    ("block_getrq", ("struct bio *",)),
)

#: Kernel struct members the program reads, at offsets taken from BTF.
BTF_MEMBERS: tuple[tuple[str, str], ...] = (
    ("request", "q"),
    ("request", "cmd_flags"),
    ("request", "__data_len"),
    ("request_queue", "disk"),
    ("gendisk", "major"),
    ("gendisk", "first_minor"),
)

#: The struct members only ``block.bio_latency`` reads (the others load without them).
BIO_BTF_MEMBERS: tuple[tuple[str, str], ...] = (
    ("bio", "bi_bdev"),
    ("bio", "bi_opf"),
    ("bio", "bi_iter"),
    ("bvec_iter", "bi_size"),
    ("block_device", "bd_disk"),
    ("request", "bio"),
    ("bio", "bi_next"),
)

BLOCK_PROGRAM_C = r"""
#ifndef PC_BLOCK_PROGRAM
#define PC_BLOCK_PROGRAM
/*
 * perfcheck block probes: block.latency, block.queue_latency, block.size.
 * Raw tracepoints on block_rq_{insert,issue,merge,complete}; one disk, chosen by dev_t.
 * pc_blk_config (written by Python) holds the target, the probes switched on and the
 * offsets of the struct members read, from the running kernel's BTF.
 */
#define PC_BLK_OPS 4
#define PC_BLK_F_LATENCY 1
#define PC_BLK_F_QUEUE 2
#define PC_BLK_F_SIZE 4
#define PC_BLK_F_BIO 8
#define PC_BLK_F_STAMPED 16 /* block.latency from the request's own timestamp */
#define PC_BLK_F_DETECT 32  /* count which timestamps the target's requests carry */
#define PC_BLK_F_SUBMITTER 64 /* only I/O a task of cfg->submitter_cgroup submitted */
#define PC_BLK_WINDOW_WORDS 8
#define PC_BLK_STAMP_WORDS 16

struct pc_blk_config {
    u64 queue;          /* request_queue of the target disk, learned by the program */
    u64 other_queue;    /* the last other disk's request_queue, to skip it cheaply */
    u64 bdev;           /* a block_device (disk or partition) of the target, learned */
    u64 other_bdev;     /* the last other disk's block_device, to skip it cheaply */
    u32 dev;            /* target disk dev_t (MAJOR << 20 | MINOR); 0 times nothing */
    u32 features;       /* PC_BLK_F_* of the probes in the session */
    u32 generation;     /* bumped with each new target: older request slots are void */
    u32 overflowed;     /* overflow entries made in this generation (0: skip the table) */
    u32 sample_every;   /* time 1 request in this many, chosen at random at issue (0, 1: all) */
    u32 off_rq_q;
    u32 off_rq_cmd_flags;
    u32 off_rq_data_len;
    u32 off_rq_window;  /* the three request fields in one read of PC_BLK_WINDOW_WORDS ... */
    u32 word_q;         /* ... at these u64 words of it */
    u32 word_cmd_flags;
    u32 word_data_len;
    u32 shift_cmd_flags; /* bit shift of the u32 inside its word */
    u32 shift_data_len;
    u32 windowed;       /* 0: the fields are too far apart, read them one by one */
    u32 off_q_disk;
    u32 off_disk_major;
    u32 off_disk_first_minor;
    u32 op_mask;
    u32 op_read;
    u32 op_write;
    u32 op_flush;
    u32 op_discard;
    u32 op_secure_erase;
    u32 off_bio_window; /* block.bio_latency: bi_bdev, bi_opf and bi_iter.bi_size, read */
    u32 bio_word_bdev;  /* like the request fields above */
    u32 bio_word_opf;
    u32 bio_word_size;
    u32 bio_shift_opf;
    u32 bio_shift_size;
    u32 bio_windowed;
    u32 off_bio_bdev;
    u32 off_bio_opf;
    u32 off_bio_size;
    u32 off_bdev_disk;
    u32 off_rq_bio;     /* a request's first bio ... */
    u32 off_bio_next;   /* ... and each bio's next */
    u32 flag_preflush;  /* REQ_PREFLUSH: an empty write with it is a flush */
    u32 off_stamp_window; /* completion-only block.latency: q, cmd_flags, __data_len */
    u32 stamp_word_q;     /* and io_start_time_ns in one read */
    u32 stamp_word_cmd_flags;
    u32 stamp_word_data_len;
    u32 stamp_word_io_start;
    u64 submitter_cgroup; /* PC_BLK_F_SUBMITTER: the cgroup v2 id whose I/O is timed */
};

/*
 * Request state in an array slot chosen by the request's address: a tag set allocates
 * its requests in contiguous, cache-line aligned chunks, so (address >> 6) modulo the
 * slot count mostly differs between requests of a disk. The slot keeps the address it
 * belongs to; a request finding its slot held by another one in flight uses the
 * overflow hash table instead.
 */
/* A power of two; tests define fewer to force requests to share slots. */
#ifndef PC_BLK_SLOTS
#define PC_BLK_SLOTS 65536
#endif

struct pc_blk_request {
    u64 rq;             /* the request this slot belongs to */
    u64 insert_ns;      /* 0: not inserted in this pass */
    u64 issue_ns;       /* 0: not issued (or already completed) */
    u32 op;             /* index into PC_BLK_OPS, or PC_BLK_OPS when not counted */
    u32 generation;     /* pc_blk_config.generation when the slot was claimed */
};

BPF_ARRAY(pc_blk_config, struct pc_blk_config, 1);
BPF_ARRAY(pc_blk_requests, struct pc_blk_request, PC_BLK_SLOTS);
/* block.bio_latency's bios, in the same kind of slot (rq holds the bio's address). */
BPF_ARRAY(pc_blk_bios, struct pc_blk_request, PC_BLK_SLOTS);
/* Requests (and bios) whose slot another one of the disk holds: rare, slower, exact. */
BPF_F_TABLE("hash", u64, struct pc_blk_request, pc_blk_overflow, 65536, BPF_F_NO_PREALLOC);
BPF_PERCPU_ARRAY(pc_blk_latency_hist, u64, PC_BLK_OPS * PC_HIST_SLOTS);
BPF_PERCPU_ARRAY(pc_blk_queue_hist, u64, PC_BLK_OPS * PC_HIST_SLOTS);
BPF_PERCPU_ARRAY(pc_blk_size_hist, u64, PC_BLK_OPS * PC_HIST_SLOTS);
BPF_PERCPU_ARRAY(pc_blk_bio_hist, u64, PC_BLK_OPS * PC_HIST_SLOTS);
/* [op] completed bytes of block.latency; [PC_BLK_OPS] requests (or bios) left untimed. */
BPF_PERCPU_ARRAY(pc_blk_counts, u64, PC_BLK_OPS + 1);
/* Target requests with data completed with [0] io_start_time_ns set, [1] not: what the
 * run-time check of the kernel's stamp counts. */
BPF_ARRAY(pc_blk_stamps_seen, u64, 2);
/* PC_BLK_F_SUBMITTER: first bios of requests a task of the submitter cgroup allocated
 * (block_getrq runs in the submitter's context; completions run anywhere). */
BPF_TABLE("lru_hash", u64, u32, pc_blk_submitted, 65536);

static __always_inline struct pc_blk_config *pc_blk_cfg(void)
{
    u32 zero = 0;
    return pc_blk_config.lookup(&zero);
}

/* The request fields the program uses, read in one go when they are close together. */
struct pc_blk_fields {
    u64 q;
    u32 cmd_flags;
    u32 data_len;
};

static __always_inline void pc_blk_read_fields(struct pc_blk_config *cfg, u64 rq,
                                               struct pc_blk_fields *f)
{
    if (cfg->windowed) {
        u64 window[PC_BLK_WINDOW_WORDS];
        bpf_probe_read_kernel(window, sizeof(window), (void *)(rq + cfg->off_rq_window));
        f->q = window[cfg->word_q & (PC_BLK_WINDOW_WORDS - 1)];
        f->cmd_flags = (u32)(window[cfg->word_cmd_flags & (PC_BLK_WINDOW_WORDS - 1)]
                             >> (cfg->shift_cmd_flags & 32));
        f->data_len = (u32)(window[cfg->word_data_len & (PC_BLK_WINDOW_WORDS - 1)]
                            >> (cfg->shift_data_len & 32));
        return;
    }
    bpf_probe_read_kernel(&f->q, sizeof(f->q), (void *)(rq + cfg->off_rq_q));
    bpf_probe_read_kernel(&f->cmd_flags, sizeof(f->cmd_flags),
                          (void *)(rq + cfg->off_rq_cmd_flags));
    bpf_probe_read_kernel(&f->data_len, sizeof(f->data_len), (void *)(rq + cfg->off_rq_data_len));
}

/* Whether gendisk disk is the target: its dev_t (of the whole disk) is cfg->dev. */
static __always_inline int pc_blk_is_target_disk(struct pc_blk_config *cfg, u64 disk)
{
    if (!disk)
        return 0;
    u32 major = 0, minor = 0;
    bpf_probe_read_kernel(&major, sizeof(major), (void *)(disk + cfg->off_disk_major));
    bpf_probe_read_kernel(&minor, sizeof(minor), (void *)(disk + cfg->off_disk_first_minor));
    return ((major << 20) | minor) == cfg->dev;
}

/* Whether queue q is the target disk's: a comparison once the queue is known. */
static __always_inline int pc_blk_wanted(struct pc_blk_config *cfg, u64 q)
{
    if (!q || q == cfg->other_queue)
        return 0;
    if (q == cfg->queue)
        return 1;
    u64 disk = 0;
    bpf_probe_read_kernel(&disk, sizeof(disk), (void *)(q + cfg->off_q_disk));
    if (pc_blk_is_target_disk(cfg, disk)) {
        cfg->queue = q;
        return 1;
    }
    cfg->other_queue = q;
    return 0;
}

/* The bio fields block.bio_latency uses (q holds bi_bdev), read like a request's. */
static __always_inline void pc_blk_read_bio(struct pc_blk_config *cfg, u64 bio,
                                            struct pc_blk_fields *f)
{
    if (cfg->bio_windowed) {
        u64 window[PC_BLK_WINDOW_WORDS];
        bpf_probe_read_kernel(window, sizeof(window), (void *)(bio + cfg->off_bio_window));
        f->q = window[cfg->bio_word_bdev & (PC_BLK_WINDOW_WORDS - 1)];
        f->cmd_flags = (u32)(window[cfg->bio_word_opf & (PC_BLK_WINDOW_WORDS - 1)]
                             >> (cfg->bio_shift_opf & 32));
        f->data_len = (u32)(window[cfg->bio_word_size & (PC_BLK_WINDOW_WORDS - 1)]
                            >> (cfg->bio_shift_size & 32));
        return;
    }
    bpf_probe_read_kernel(&f->q, sizeof(f->q), (void *)(bio + cfg->off_bio_bdev));
    bpf_probe_read_kernel(&f->cmd_flags, sizeof(f->cmd_flags), (void *)(bio + cfg->off_bio_opf));
    bpf_probe_read_kernel(&f->data_len, sizeof(f->data_len), (void *)(bio + cfg->off_bio_size));
}

/* Whether block_device bdev (the disk or one of its partitions) is the target's. */
static __always_inline int pc_blk_bdev_wanted(struct pc_blk_config *cfg, u64 bdev)
{
    if (!bdev || bdev == cfg->other_bdev)
        return 0;
    if (bdev == cfg->bdev)
        return 1;
    u64 disk = 0;
    bpf_probe_read_kernel(&disk, sizeof(disk), (void *)(bdev + cfg->off_bdev_disk));
    if (pc_blk_is_target_disk(cfg, disk)) {
        cfg->bdev = bdev;
        return 1;
    }
    cfg->other_bdev = bdev;
    return 0;
}

static __always_inline u32 pc_blk_op_index(struct pc_blk_config *cfg, u32 cmd_flags)
{
    u32 op = cmd_flags & cfg->op_mask;
    if (op == cfg->op_read)
        return 0;
    if (op == cfg->op_write)
        return 1;
    if (op == cfg->op_flush)
        return 2;
    if (op == cfg->op_discard || op == cfg->op_secure_erase)
        return 3;
    return PC_BLK_OPS;
}

#define PC_BLK_LATENCY_HIST 0
#define PC_BLK_QUEUE_HIST 1
#define PC_BLK_SIZE_HIST 2
#define PC_BLK_BIO_HIST 3

/* hist[op][bucket(value)]++ on one of the four histogram maps. */
static __always_inline void pc_blk_count(int which, u32 op, u64 value)
{
    u32 slot = op * PC_HIST_SLOTS + perfcheck_bucket(value);
    u64 *n;
    if (which == PC_BLK_LATENCY_HIST)
        n = pc_blk_latency_hist.lookup(&slot);
    else if (which == PC_BLK_QUEUE_HIST)
        n = pc_blk_queue_hist.lookup(&slot);
    else if (which == PC_BLK_SIZE_HIST)
        n = pc_blk_size_hist.lookup(&slot);
    else
        n = pc_blk_bio_hist.lookup(&slot);
    if (n)
        (*n)++;
}

static __always_inline void pc_blk_add(u32 index, u64 amount)
{
    u64 *n = pc_blk_counts.lookup(&index);
    if (n)
        *n += amount;
}

/*
 * The state of request rq (of bio rq, with bio): in its slot when the slot holds it, else
 * in the overflow table. With claim, a request without state gets the slot if no request
 * of this target is in flight there, else an overflow entry; without, only existing state
 * is returned. A bio and a request in flight never share an address, so they share the
 * overflow table.
 */
static __always_inline struct pc_blk_request *pc_blk_slot_state(struct pc_blk_config *cfg,
                                                                u64 rq, int claim, int bio)
{
    u32 index = (u32)(rq >> 6) & (PC_BLK_SLOTS - 1);
    struct pc_blk_request *r;
    if (bio)
        r = pc_blk_bios.lookup(&index);
    else
        r = pc_blk_requests.lookup(&index);
    if (!r)
        return 0;
    if (r->rq == rq && r->generation == cfg->generation)
        return r;
    /* A request's first use, a shared slot, or another disk's request: the slow path,
     * which skips the table while nothing has overflowed into it. */
    if (!claim && !cfg->overflowed)
        return 0;
    struct pc_blk_request *o = pc_blk_overflow.lookup(&rq);
    if (o && o->generation == cfg->generation)
        return o;
    if (!claim)
        return 0;
    if (r->generation != cfg->generation || !(r->issue_ns || r->insert_ns)) {
        /* Compare-and-swap: of two CPUs claiming the slot at once, one gets it. */
        u64 owner = r->rq;
        if (__sync_val_compare_and_swap(&r->rq, owner, rq) == owner) {
            r->generation = cfg->generation;
            r->insert_ns = 0;
            r->issue_ns = 0;
            return r;
        }
    }
    if (o) {
        o->generation = cfg->generation;
        o->insert_ns = 0;
        o->issue_ns = 0;
        return o;
    }
    struct pc_blk_request fresh = {};
    fresh.rq = rq;
    fresh.generation = cfg->generation;
    if (pc_blk_overflow.update(&rq, &fresh)) {
        pc_blk_add(PC_BLK_OPS, 1);
        return 0;
    }
    __sync_fetch_and_add(&cfg->overflowed, 1);
    return pc_blk_overflow.lookup(&rq);
}

static __always_inline struct pc_blk_request *pc_blk_state(struct pc_blk_config *cfg, u64 rq,
                                                           int claim)
{
    return pc_blk_slot_state(cfg, rq, claim, 0);
}

/* Whether request rq is timed under the submitter filter (always without it). */
static __always_inline int pc_blk_submitted_here(struct pc_blk_config *cfg, u64 rq)
{
    if (!(cfg->features & PC_BLK_F_SUBMITTER))
        return 1;
    u64 bio = 0;
    bpf_probe_read_kernel(&bio, sizeof(bio), (void *)(rq + cfg->off_rq_bio));
    return bio && pc_blk_submitted.lookup(&bio);
}

/* A request gets its first bio in the context of the task that submitted it. */
RAW_TRACEPOINT_PROBE(block_getrq)
{
    struct pc_blk_config *cfg = pc_blk_cfg();
    if (!cfg || !(cfg->features & PC_BLK_F_SUBMITTER))
        return 0;
    u64 bio = ctx->args[0];
    if (bpf_get_current_cgroup_id() == cfg->submitter_cgroup) {
        u32 one = 1;
        pc_blk_submitted.update(&bio, &one);
    } else {
        /* The address of a bio of ours merged away and freed, now another's. */
        pc_blk_submitted.delete(&bio);
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(block_rq_insert)
{
    struct pc_blk_config *cfg = pc_blk_cfg();
    if (!cfg || !(cfg->features & PC_BLK_F_QUEUE) || !cfg->dev)
        return 0;
    u64 rq = ctx->args[0];
    u64 q = 0;
    bpf_probe_read_kernel(&q, sizeof(q), (void *)(rq + cfg->off_rq_q));
    if (!pc_blk_wanted(cfg, q) || !pc_blk_submitted_here(cfg, rq))
        return 0;
    struct pc_blk_request *r = pc_blk_state(cfg, rq, 1);
    if (r) {
        r->insert_ns = bpf_ktime_get_ns();
        r->issue_ns = 0;
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(block_rq_issue)
{
    struct pc_blk_config *cfg = pc_blk_cfg();
    if (!cfg || !cfg->features || !cfg->dev)
        return 0;
    u64 rq = ctx->args[0];
    u32 every = cfg->sample_every;
    if (every > 1 && bpf_get_prandom_u32() % every) {
        /* Not sampled: only forget an earlier issue of this request (a requeue). */
        struct pc_blk_request *old = pc_blk_state(cfg, rq, 0);
        if (old)
            old->issue_ns = 0;
        return 0;
    }
    struct pc_blk_fields f;
    pc_blk_read_fields(cfg, rq, &f);
    if (!pc_blk_wanted(cfg, f.q) || !pc_blk_submitted_here(cfg, rq))
        return 0;
    u32 op = pc_blk_op_index(cfg, f.cmd_flags);
    if ((cfg->features & PC_BLK_F_SIZE) && op < PC_BLK_OPS)
        pc_blk_count(PC_BLK_SIZE_HIST, op, f.data_len);
    if (!(cfg->features & (PC_BLK_F_LATENCY | PC_BLK_F_QUEUE)))
        return 0;
    struct pc_blk_request *r = pc_blk_state(cfg, rq, 1);
    if (r) {
        r->issue_ns = bpf_ktime_get_ns();
        r->op = op;
    }
    return 0;
}

/* A request merged into another is freed without completing: forget its insertion. */
RAW_TRACEPOINT_PROBE(block_rq_merge)
{
    struct pc_blk_config *cfg = pc_blk_cfg();
    if (!cfg || !(cfg->features & PC_BLK_F_QUEUE))
        return 0;
    struct pc_blk_request *r = pc_blk_state(cfg, ctx->args[0], 0);
    if (r) {
        r->insert_ns = 0;
        r->issue_ns = 0;
    }
    return 0;
}

static __always_inline void pc_blk_count_bio(struct pc_blk_request *r, u64 now)
{
    u64 elapsed = now - r->issue_ns;
    u32 op = r->op;
    r->issue_ns = 0;
    if (op < PC_BLK_OPS)
        pc_blk_count(PC_BLK_BIO_HIST, op, elapsed);
}

/*
 * End bio's timer at now, if block_bio_queue started one. Unlike a request's, a bio's
 * overflow entry is deleted: slab-allocated bios have many more addresses than a tag
 * set has requests, and the table would fill.
 */
static __always_inline void pc_blk_end_bio(struct pc_blk_config *cfg, u64 bio, u64 now)
{
    u32 index = (u32)(bio >> 6) & (PC_BLK_SLOTS - 1);
    struct pc_blk_request *r = pc_blk_bios.lookup(&index);
    if (!r)
        return;
    if (r->rq == bio && r->generation == cfg->generation) {
        if (r->issue_ns)
            pc_blk_count_bio(r, now);
        return;
    }
    if (!cfg->overflowed)
        return;
    struct pc_blk_request *o = pc_blk_overflow.lookup(&bio);
    if (!o)
        return;
    if (o->generation == cfg->generation && o->issue_ns)
        pc_blk_count_bio(o, now);
    pc_blk_overflow.delete(&bio);
}

/*
 * Bios one completion ends, a bound the verifier needs: 1280 KiB (the usual largest
 * request) of 4 KiB bios. Bios past it stay untimed and count in block.untimed.
 */
#define PC_BLK_MAX_BIOS 320

/*
 * A blk-mq request's completion ends its bios: the kernel traces it instead of each
 * bio's (block_bio_complete does not fire for them). Only the bios it finishes, the
 * first nr_bytes of the request, end here; a partial completion leaves the rest.
 */
static __always_inline void pc_blk_end_request_bios(struct pc_blk_config *cfg, u64 rq,
                                                    u32 nr_bytes)
{
    u64 q = 0;
    bpf_probe_read_kernel(&q, sizeof(q), (void *)(rq + cfg->off_rq_q));
    if (!pc_blk_wanted(cfg, q))
        return;
    u64 bio = 0;
    bpf_probe_read_kernel(&bio, sizeof(bio), (void *)(rq + cfg->off_rq_bio));
    u64 now = bpf_ktime_get_ns();
    u64 done = 0;
    for (int i = 0; i < PC_BLK_MAX_BIOS; i++) {
        if (!bio)
            return;
        u64 next = 0;
        u32 size = 0;
        bpf_probe_read_kernel(&next, sizeof(next), (void *)(bio + cfg->off_bio_next));
        bpf_probe_read_kernel(&size, sizeof(size), (void *)(bio + cfg->off_bio_size));
        done += size;
        if (done > nr_bytes)
            return;
        pc_blk_end_bio(cfg, bio, now);
        bio = next;
    }
    if (bio)
        pc_blk_add(PC_BLK_OPS, 1);
}

/* The request probes' part of a completion. */
static __always_inline void pc_blk_end_request(struct pc_blk_config *cfg, u64 rq, u32 nr_bytes)
{
    struct pc_blk_request *r = pc_blk_state(cfg, rq, 0);
    if (!r || !r->issue_ns)
        return;
    u64 now = bpf_ktime_get_ns();
    u64 issued = r->issue_ns;
    u64 inserted = r->insert_ns;
    u32 op = r->op;
    r->issue_ns = 0;
    r->insert_ns = 0;
    if (op >= PC_BLK_OPS)
        return;
    if (cfg->features & PC_BLK_F_LATENCY) {
        pc_blk_count(PC_BLK_LATENCY_HIST, op, now - issued);
        pc_blk_add(op, nr_bytes);
    }
    if (cfg->features & PC_BLK_F_QUEUE) {
        u64 queued = (inserted && inserted <= issued) ? inserted : issued;
        pc_blk_count(PC_BLK_QUEUE_HIST, op, now - queued);
    }
}

static __always_inline void pc_blk_seen(u32 index)
{
    u64 *n = pc_blk_stamps_seen.lookup(&index);
    if (n)
        __sync_fetch_and_add(n, 1);
}

/*
 * Completion-only block.latency: the kernel stamped the request when it was started
 * (io_start_time_ns, when the queue collects statistics); one read of the request and
 * one clock read time it, with no issue program. A request without the stamp was never
 * issued (an fsync's empty flush request, completed by the flush machinery), which the
 * two-program variant does not count either; if a queue stopped collecting statistics
 * mid-run, the request count would fall short of fio's and the cross-check fail.
 */
static __always_inline void pc_blk_end_stamped(struct pc_blk_config *cfg, u64 rq, u32 nr_bytes)
{
    u32 every = cfg->sample_every;
    if (every > 1 && bpf_get_prandom_u32() % every)
        return;
    u64 w[PC_BLK_STAMP_WORDS];
    bpf_probe_read_kernel(w, sizeof(w), (void *)(rq + cfg->off_stamp_window));
    if (!pc_blk_wanted(cfg, w[cfg->stamp_word_q & (PC_BLK_STAMP_WORDS - 1)]))
        return;
    u32 cmd_flags = (u32)(w[cfg->stamp_word_cmd_flags & (PC_BLK_STAMP_WORDS - 1)]
                          >> (cfg->shift_cmd_flags & 32));
    u32 data_len = (u32)(w[cfg->stamp_word_data_len & (PC_BLK_STAMP_WORDS - 1)]
                         >> (cfg->shift_data_len & 32));
    /* A partial completion (nr_bytes short of what is left) is not the request's end. */
    if (nr_bytes < data_len || !pc_blk_submitted_here(cfg, rq))
        return;
    u32 op = pc_blk_op_index(cfg, cmd_flags);
    if (op >= PC_BLK_OPS)
        return;
    u64 stamp = w[cfg->stamp_word_io_start & (PC_BLK_STAMP_WORDS - 1)];
    if (cfg->features & PC_BLK_F_DETECT) {
        /* A request with data completes only after it was started. */
        if (data_len)
            pc_blk_seen(stamp ? 0 : 1);
        return;
    }
    if (!stamp)
        return;
    u64 now = bpf_ktime_get_ns();
    if (stamp > now) {
        pc_blk_add(PC_BLK_OPS, 1);
        return;
    }
    pc_blk_count(PC_BLK_LATENCY_HIST, op, now - stamp);
    pc_blk_add(op, nr_bytes);
}

RAW_TRACEPOINT_PROBE(block_rq_complete)
{
    struct pc_blk_config *cfg = pc_blk_cfg();
    if (!cfg)
        return 0;
    if (cfg->features & (PC_BLK_F_STAMPED | PC_BLK_F_DETECT))
        pc_blk_end_stamped(cfg, ctx->args[0], (u32)ctx->args[2]);
    if (cfg->features & (PC_BLK_F_LATENCY | PC_BLK_F_QUEUE))
        pc_blk_end_request(cfg, ctx->args[0], (u32)ctx->args[2]);
    /* After the request's clock read, so a bio never ends before its request. */
    if (cfg->features & PC_BLK_F_BIO)
        pc_blk_end_request_bios(cfg, ctx->args[0], (u32)ctx->args[2]);
    if (cfg->features & PC_BLK_F_SUBMITTER) {
        u64 bio = 0;
        bpf_probe_read_kernel(&bio, sizeof(bio), (void *)(ctx->args[0] + cfg->off_rq_bio));
        pc_blk_submitted.delete(&bio);
    }
    return 0;
}

/*
 * block.bio_latency: a bio from its submission (block_bio_queue, traced once per bio,
 * before the wait for a request tag) to its end: the completion of the request holding
 * it (block_rq_complete, above), or block_bio_complete for a bio that never became part
 * of a request (a bio-based disk, or a bio failed before). Keyed by the bio's address.
 */
RAW_TRACEPOINT_PROBE(block_bio_queue)
{
    struct pc_blk_config *cfg = pc_blk_cfg();
    if (!cfg || !(cfg->features & PC_BLK_F_BIO) || !cfg->dev)
        return 0;
    if ((cfg->features & PC_BLK_F_SUBMITTER)
        && bpf_get_current_cgroup_id() != cfg->submitter_cgroup)
        return 0;
    u64 bio = ctx->args[0];
    struct pc_blk_fields f;
    pc_blk_read_bio(cfg, bio, &f);
    if (!pc_blk_bdev_wanted(cfg, f.q))
        return 0;
    u32 op = pc_blk_op_index(cfg, f.cmd_flags);
    /* A flush reaches the block layer as an empty write with REQ_PREFLUSH. */
    if (op == 1 && !f.data_len && (f.cmd_flags & cfg->flag_preflush))
        op = 2;
    if (op >= PC_BLK_OPS)
        return 0;
    struct pc_blk_request *r = pc_blk_slot_state(cfg, bio, 1, 1);
    if (r) {
        r->issue_ns = bpf_ktime_get_ns();
        r->op = op;
    }
    return 0;
}

RAW_TRACEPOINT_PROBE(block_bio_complete)
{
    struct pc_blk_config *cfg = pc_blk_cfg();
    if (cfg && (cfg->features & PC_BLK_F_BIO))
        pc_blk_end_bio(cfg, ctx->args[1], bpf_ktime_get_ns());
    return 0;
}
#endif /* PC_BLOCK_PROGRAM */
"""


@dataclass(frozen=True)
class BlockLayout:
    """What the block program needs to know about this kernel, from its BTF."""

    off_rq_q: int
    off_rq_cmd_flags: int
    off_rq_data_len: int
    off_rq_window: int
    word_q: int
    word_cmd_flags: int
    word_data_len: int
    shift_cmd_flags: int
    shift_data_len: int
    windowed: int
    off_q_disk: int
    off_disk_major: int
    off_disk_first_minor: int
    op_mask: int
    op_read: int
    op_write: int
    op_flush: int
    op_discard: int
    op_secure_erase: int

    def fields(self) -> dict[str, int]:
        return dict(self.__dict__)


# REQ_OP_BITS, used when the kernel's BTF lacks the enum that reveals it (it has been 8
# since Linux 4.10).
DEFAULT_REQ_OP_BITS = 8


#: Bytes the program reads at once to get all the request fields it needs.
WINDOW_BYTES = 64


def request_window(
    q: Member, cmd_flags: Member, data_len: Member, struct_size: int | None = None
) -> dict[str, int]:
    """Where the three request fields sit in one aligned ``WINDOW_BYTES`` read, if they fit.

    One read instead of three: each ``bpf_probe_read_kernel`` is a helper call, and the
    issue path runs for every request. ``q`` is a pointer (a whole u64 word); the two u32
    fields are shifted out of their word, little- or big-endian alike. With ``struct_size``,
    a window that would read past the struct's end is not used.
    """
    start = min(q.offset, cmd_flags.offset, data_len.offset) & ~7
    end = max(m.offset + m.size for m in (q, cmd_flags, data_len))
    aligned = q.size == 8 and q.offset % 8 == 0 and cmd_flags.size == data_len.size == 4
    aligned = aligned and cmd_flags.offset % 4 == 0 and data_len.offset % 4 == 0
    past_end = struct_size is not None and start + WINDOW_BYTES > struct_size
    if end - start > WINDOW_BYTES or not aligned or past_end:
        return {
            "off_rq_window": 0, "word_q": 0, "word_cmd_flags": 0, "word_data_len": 0,
            "shift_cmd_flags": 0, "shift_data_len": 0, "windowed": 0,
        }  # fmt: skip

    def shift(member: Member) -> int:
        low_half = (member.offset % 8 == 0) == (sys.byteorder == "little")
        return 0 if low_half else 32

    return {
        "off_rq_window": start,
        "word_q": (q.offset - start) // 8,
        "word_cmd_flags": (cmd_flags.offset - start) // 8,
        "word_data_len": (data_len.offset - start) // 8,
        "shift_cmd_flags": shift(cmd_flags),
        "shift_data_len": shift(data_len),
        "windowed": 1,
    }


@functools.lru_cache(maxsize=1)
def block_layout() -> BlockLayout:
    """Offsets and operation codes of the running kernel (raises BTFError if missing)."""
    btf = kernel_btf()
    try:
        # __REQ_FAILFAST_DEV is the first flag bit, right above the op bits.
        op_bits = btf.enum_value("req_flag_bits", "__REQ_FAILFAST_DEV")
    except BTFError:
        op_bits = DEFAULT_REQ_OP_BITS

    def op(name: str) -> int:
        return btf.enum_value("req_op", name)

    q = btf.member("request", "q")
    cmd_flags = btf.member("request", "cmd_flags")
    data_len = btf.member("request", "__data_len")
    return BlockLayout(
        off_rq_q=q.offset,
        off_rq_cmd_flags=cmd_flags.offset,
        off_rq_data_len=data_len.offset,
        **request_window(q, cmd_flags, data_len),
        off_q_disk=btf.member("request_queue", "disk").offset,
        off_disk_major=btf.member("gendisk", "major").offset,
        off_disk_first_minor=btf.member("gendisk", "first_minor").offset,
        op_mask=(1 << op_bits) - 1,
        op_read=op("REQ_OP_READ"),
        op_write=op("REQ_OP_WRITE"),
        op_flush=op("REQ_OP_FLUSH"),
        op_discard=op("REQ_OP_DISCARD"),
        op_secure_erase=op("REQ_OP_SECURE_ERASE"),
    )


@dataclass(frozen=True)
class BioLayout:
    """Where ``block.bio_latency`` finds a bio's disk, operation and size, from BTF."""

    off_bio_window: int
    bio_word_bdev: int
    bio_word_opf: int
    bio_word_size: int
    bio_shift_opf: int
    bio_shift_size: int
    bio_windowed: int
    off_bio_bdev: int
    off_bio_opf: int
    off_bio_size: int
    off_bdev_disk: int
    off_rq_bio: int
    off_bio_next: int
    flag_preflush: int

    def fields(self) -> dict[str, int]:
        return dict(self.__dict__)


# __REQ_PREFLUSH, used when the kernel's BTF lacks the enum (bit 18 since Linux 6.0).
DEFAULT_REQ_PREFLUSH_BIT = 18


def bio_window(bdev: Member, opf: Member, size: Member, struct_size: int) -> dict[str, int]:
    """:func:`request_window` for the bio's ``bi_bdev``, ``bi_opf`` and ``bi_size``."""
    window = request_window(bdev, opf, size, struct_size)
    return {
        "off_bio_window": window["off_rq_window"],
        "bio_word_bdev": window["word_q"],
        "bio_word_opf": window["word_cmd_flags"],
        "bio_word_size": window["word_data_len"],
        "bio_shift_opf": window["shift_cmd_flags"],
        "bio_shift_size": window["shift_data_len"],
        "bio_windowed": window["windowed"],
    }


@functools.lru_cache(maxsize=1)
def bio_layout() -> BioLayout:
    """The bio offsets of the running kernel (raises BTFError if missing)."""
    btf = kernel_btf()
    try:
        preflush_bit = btf.enum_value("req_flag_bits", "__REQ_PREFLUSH")
    except BTFError:
        preflush_bit = DEFAULT_REQ_PREFLUSH_BIT
    bdev = btf.member("bio", "bi_bdev")
    opf = btf.member("bio", "bi_opf")
    size_in_iter = btf.member("bvec_iter", "bi_size")
    size = Member(btf.member("bio", "bi_iter").offset + size_in_iter.offset, size_in_iter.size)
    return BioLayout(
        **bio_window(bdev, opf, size, btf.struct_size("bio")),
        off_bio_bdev=bdev.offset,
        off_bio_opf=opf.offset,
        off_bio_size=size.offset,
        off_bdev_disk=btf.member("block_device", "bd_disk").offset,
        off_rq_bio=btf.member("request", "bio").offset,
        off_bio_next=btf.member("bio", "bi_next").offset,
        flag_preflush=1 << preflush_bit,
    )


#: The request's own timestamp the completion-only ``block.latency`` times from: set in
#: ``blk_mq_start_request`` (beside ``block_rq_issue``) when the queue collects
#: statistics (wbt, io.latency, ...). Not ``start_time_ns``: it is set at allocation,
#: also on requests never issued (an fsync's empty flush request), which would then
#: count where the two-program variant counts nothing.
REQUEST_STAMP = "io_start_time_ns"

#: Bytes the completion-only program reads at once: q, cmd_flags, __data_len and the
#: stamp (0..120 in a 6.18 request).
STAMP_WINDOW_BYTES = 128


@dataclass(frozen=True)
class StampLayout:
    """Where the completion-only ``block.latency`` finds what it reads, from BTF."""

    off_stamp_window: int
    stamp_word_q: int
    stamp_word_cmd_flags: int
    stamp_word_data_len: int
    stamp_word_io_start: int

    def fields(self) -> dict[str, int]:
        return dict(self.__dict__)


def stamp_window(
    q: Member, cmd_flags: Member, data_len: Member, io_start: Member
) -> StampLayout | None:
    """The four request fields in one aligned ``STAMP_WINDOW_BYTES`` read, or None."""
    words = (q, io_start)
    halves = (cmd_flags, data_len)
    if any(m.size != 8 or m.offset % 8 for m in words) or any(
        m.size != 4 or m.offset % 4 for m in halves
    ):
        return None
    first = min(m.offset for m in (*words, *halves)) & ~7
    end = max(m.offset + m.size for m in (*words, *halves))
    if end - first > STAMP_WINDOW_BYTES:
        return None
    return StampLayout(
        off_stamp_window=first,
        stamp_word_q=(q.offset - first) // 8,
        stamp_word_cmd_flags=(cmd_flags.offset - first) // 8,
        stamp_word_data_len=(data_len.offset - first) // 8,
        stamp_word_io_start=(io_start.offset - first) // 8,
    )


@functools.lru_cache(maxsize=1)
def stamp_layout() -> StampLayout | None:
    """This kernel's layout for the completion-only variant; None when its BTF lacks the
    stamp or it lies too far from the other fields (then: two programs)."""
    try:
        btf = kernel_btf()
        members = [
            btf.member("request", name) for name in ("q", "cmd_flags", "__data_len", REQUEST_STAMP)
        ]
    except BTFError:
        return None
    return stamp_window(*members)


#: Reads the run-time check makes of the target disk: enough requests to see whether the
#: kernel stamps them, few enough to take a millisecond or two.
CHECK_READS = 16
CHECK_READ_BYTES = 4096


def disk_node(dev: int) -> Path | None:
    """The device node of disk ``dev`` (``MAJOR << 20 | MINOR``), from sysfs."""
    uevent = Path(f"/sys/dev/block/{dev >> 20}:{dev & 0xFFFFF}/uevent")
    try:
        lines = uevent.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("DEVNAME="):
            return Path("/dev") / line.removeprefix("DEVNAME=")
    return None


def read_directly(node: Path, reads: int = CHECK_READS) -> int:
    """Read ``reads`` blocks from the start of ``node``, bypassing the page cache so each
    is a request; opened read-only. Returns how many reads completed (0 if it cannot
    open the node)."""
    try:
        fd = os.open(node, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        return 0
    done = 0
    try:
        with mmap.mmap(-1, CHECK_READ_BYTES) as buffer:  # page aligned, as O_DIRECT needs
            for i in range(reads):
                try:
                    if os.preadv(fd, [buffer], i * CHECK_READ_BYTES) <= 0:
                        break
                except OSError:
                    break
                done += 1
    finally:
        os.close(fd)
    return done


def check_request_stamps(bpf: Any, dev: int, layout: BlockLayout) -> str | None:
    """:data:`REQUEST_STAMP` if every request with data of disk ``dev`` carried it while
    the program watched a few reads of its own, else None (then: two programs).

    The field being in BTF is not enough: the kernel sets it only when the queue
    collects statistics, so the check looks at real requests.
    """
    stamps = stamp_layout()
    node = disk_node(dev)
    if stamps is None or node is None:
        return None
    config = bpf[b"pc_blk_config"]
    seen = bpf[b"pc_blk_stamps_seen"]
    write_config(config, stamps.fields())
    configure_block_program(bpf, dev, FEATURE_DETECT, layout)
    for i in range(2):
        seen[seen.Key(i)] = seen.Leaf(0)
    # The completion handler may be detached while another scenario is measured.
    attached = b"block_rq_complete" in bpf.raw_tracepoint_fds
    if not attached:
        bpf.attach_raw_tracepoint(
            tp=b"block_rq_complete", fn_name=b"raw_tracepoint__block_rq_complete"
        )
    try:
        reads = read_directly(node)
    finally:
        if not attached:
            bpf.detach_raw_tracepoint(tp=b"block_rq_complete")
        features = int(read_config(config).features)
        write_config(config, {"features": features & ~FEATURE_DETECT})
    stamped, unstamped = (int(seen[seen.Key(i)].value) for i in range(2))
    if reads > 0 and stamped >= reads and unstamped == 0:
        return REQUEST_STAMP
    return None


#: Most requests ``block_sample`` may skip per timed one.
MAX_SAMPLE_EVERY = 1024


def check_sample(sample_every: int) -> None:
    """A one-line ``ValueError`` unless ``sample_every`` is a sampling rate the program takes.

    Sampling is decided at issue, so ``block.queue_latency`` (timed from insertion) is
    not meaningful while it is on; scenarios refuse the combination."""
    if isinstance(sample_every, bool) or not 1 <= sample_every <= MAX_SAMPLE_EVERY:
        raise ValueError(
            f"block_sample must be 1..{MAX_SAMPLE_EVERY} (time 1 request in N), got {sample_every}"
        )


def configure_submitter(bpf: Any, cgroup: int) -> None:
    """Switch the submitter filter on for cgroup v2 id ``cgroup`` (0: off). Called after
    :func:`configure_block_program`, whose new target resets the features."""
    config = bpf[b"pc_blk_config"]
    features = int(read_config(config).features)
    if cgroup:
        bpf[b"pc_blk_submitted"].clear()
        fields = {"off_rq_bio": bio_layout().off_rq_bio, "submitter_cgroup": cgroup}
        write_config(config, {**fields, "features": features | FEATURE_SUBMITTER})
    elif features & FEATURE_SUBMITTER:
        write_config(config, {"submitter_cgroup": 0, "features": features & ~FEATURE_SUBMITTER})


def configure_block_program(
    bpf: Any, dev: int, feature: int, layout: BlockLayout, sample_every: int = 1
) -> None:
    """Aim the shared block program at disk ``dev`` and switch ``feature`` on, timing one
    request in ``sample_every`` (chosen at random at issue; 1: every request).

    A new target forgets the cached queues and starts a new generation, which voids the
    request slots of the previous disk; the features other probes switched on are kept.
    """
    config = bpf[b"pc_blk_config"]
    current = read_config(config)
    fields = layout.fields()
    if int(current.dev) != dev:
        generation = (int(current.generation) + 1) & 0xFFFFFFFF
        fields.update(
            queue=0, other_queue=0, bdev=0, other_bdev=0, dev=dev, features=0,
            generation=generation, overflowed=0,
        )  # fmt: skip
        previous = 0
    else:
        previous = int(current.features)
    fields["features"] = previous | feature
    check_sample(sample_every)
    fields["sample_every"] = sample_every
    write_config(config, fields)


class _BlockProbe(CatalogProbe):
    """Shared by the three block probes: one program, one filter, a feature bit each."""

    tracepoints: ClassVar[tuple[tuple[str, str], ...]] = tuple(
        ("block", name) for name, _ in RAW_TRACEPOINTS
    )
    C_SOURCE: ClassVar[str] = BLOCK_PROGRAM_C
    attach: ClassVar[str] = ATTACH_RAW_TRACEPOINT
    filters: ClassVar[tuple[str, ...]] = ("dev", SUBMITTER_SETTING)
    feature: ClassVar[int]
    #: The tracepoints this probe's numbers come from (its handlers; the program has four).
    sources: ClassVar[tuple[str, ...]]

    @classmethod
    def events(cls) -> list[str]:
        return [f"{cls.attach}:block:{name}" for name in cls.sources]

    def handlers(self) -> tuple[Handler, ...]:
        # Not all four: block_rq_insert fires for every request even under "none"
        # (plugged I/O is inserted when the plug is flushed), so block.latency alone
        # would run three programs per request instead of two (bench/RESULTS.md).
        return tuple((ATTACH_RAW_TRACEPOINT, name) for name in self.sources) + self._getrq()

    #: Whether the last configure switched the submitter filter on.
    submitter: bool = False

    def _getrq(self) -> tuple[Handler, ...]:
        # The submitter filter learns each request's submitter where it gets its bio.
        return ((ATTACH_RAW_TRACEPOINT, "block_getrq"),) if self.submitter else ()

    def _configure_submitter(self, bpf: Any, settings: Mapping[str, int]) -> None:
        cgroup = setting(settings, SUBMITTER_SETTING)
        configure_submitter(bpf, cgroup)
        self.submitter = cgroup != 0

    def _filter_provenance(self) -> list[str]:
        return [SUBMITTER_PROVENANCE] if self.submitter else []

    def release(self, bpf: Any) -> None:
        """Switch this probe's part of the shared program off (see :meth:`configure`)."""
        config = bpf[b"pc_blk_config"]
        features = int(read_config(config).features)
        if features & self.feature:
            write_config(config, {"features": features & ~self.feature})

    @classmethod
    def unavailable(cls) -> Unavailable | None:
        return missing_events_or_types(cls.tracepoints, RAW_TRACEPOINTS, BTF_MEMBERS)

    #: 1 in how many requests the last configure asked to time (provenance says so).
    sample_every: int = 1

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        sample = setting(settings, SAMPLE_SETTING) or 1
        configure_block_program(bpf, setting(settings, "dev"), self.feature, block_layout(), sample)
        self._configure_submitter(bpf, settings)
        self.sample_every = sample

    def provenance(self) -> list[str]:
        events = self.events()
        if self.sample_every > 1:
            events.append(f"{SAMPLE_PROVENANCE}{self.sample_every}")
        return events + self._filter_provenance()


class BlockLatencyProbe(_BlockProbe):
    """Issue to completion, in one of two variants chosen per disk at configure time.

    Completion-only (the cheaper, when the disk's requests carry the kernel's own issue
    timestamp, ``io_start_time_ns``): one program on ``block_rq_complete`` reads the
    request's stamp and the clock once. Otherwise two programs, ``block_rq_issue``
    taking the timestamp itself. Provenance names the variant
    (``request.io_start_time_ns`` after the completion event), so a baseline of one is
    never compared with the other. What each measures: ``bench/RESULTS.md``.
    """

    name: ClassVar[str] = "block.latency"
    summary: ClassVar[str] = "disk request latency, issue to completion, per op (biolatency)"
    feature: ClassVar[int] = FEATURE_LATENCY
    options: ClassVar[tuple[str, ...]] = (SAMPLE_SETTING,)
    sources: ClassVar[tuple[str, ...]] = ("block_rq_issue", "block_rq_complete")

    def __init__(self, kernel_stamps: bool = True) -> None:
        #: False: always two programs (to compare the variants on the same requests).
        self.kernel_stamps = kernel_stamps
        #: The request timestamp timed from, per disk, as the run-time check found it.
        self.stamps: dict[int, str | None] = {}
        #: The variant in use: a timestamp name, or None for the two-program variant.
        self.stamp: str | None = None

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        sample = setting(settings, SAMPLE_SETTING) or 1
        check_sample(sample)
        dev = setting(settings, "dev")
        layout = block_layout()
        if dev and dev not in self.stamps:
            found = check_request_stamps(bpf, dev, layout) if self.kernel_stamps else None
            self.stamps[dev] = found
        self.stamp = self.stamps.get(dev) if dev else None
        stamps = stamp_layout() if self.stamp is not None else None
        if stamps is not None:
            write_config(bpf[b"pc_blk_config"], stamps.fields())
            feature, other = FEATURE_STAMPED, FEATURE_LATENCY
        else:
            feature, other = FEATURE_LATENCY, FEATURE_STAMPED
        configure_block_program(bpf, dev, feature, layout, sample)
        config = bpf[b"pc_blk_config"]
        write_config(config, {"features": int(read_config(config).features) & ~other})
        self._configure_submitter(bpf, settings)
        self.sample_every = sample

    def release(self, bpf: Any) -> None:
        config = bpf[b"pc_blk_config"]
        features = int(read_config(config).features)
        if features & (FEATURE_LATENCY | FEATURE_STAMPED):
            write_config(config, {"features": features & ~(FEATURE_LATENCY | FEATURE_STAMPED)})

    def handlers(self) -> tuple[Handler, ...]:
        if self.stamp is not None:
            return ((ATTACH_RAW_TRACEPOINT, "block_rq_complete"), *self._getrq())
        return super().handlers()

    def provenance(self) -> list[str]:
        if self.stamp is None:
            return super().provenance()
        events = [f"{self.attach}:block:block_rq_complete", f"request.{self.stamp}"]
        if self.sample_every > 1:
            events.append(f"{SAMPLE_PROVENANCE}{self.sample_every}")
        return events + self._filter_provenance()

    def series_names(self) -> list[str]:
        return [f"block.latency.{op}" for op in BLOCK_OPS]

    def read(self, bpf: Any) -> ProbeCounters:
        slots = percpu_array_sums(bpf[b"pc_blk_latency_hist"], len(BLOCK_OPS) * HIST_SLOTS)
        counts = percpu_array_sums(bpf[b"pc_blk_counts"], len(BLOCK_OPS) + 1)
        out = ProbeCounters(histograms=split_histograms(slots, self.series_names()))
        for i, op in enumerate(BLOCK_OPS):
            out.counters[f"block.requests.{op}"] = out.histograms[f"block.latency.{op}"].total
            out.counters[f"block.bytes.{op}"] = counts[i]
        out.counters["block.untimed"] = counts[len(BLOCK_OPS)]
        return out


class BlockQueueLatencyProbe(_BlockProbe):
    name: ClassVar[str] = "block.queue_latency"
    summary: ClassVar[str] = (
        "disk request latency incl. I/O scheduler, insert (or issue) to completion (biolatency -Q)"
    )
    feature: ClassVar[int] = FEATURE_QUEUE
    sources: ClassVar[tuple[str, ...]] = (
        "block_rq_insert",
        "block_rq_issue",
        "block_rq_merge",
        "block_rq_complete",
    )

    def series_names(self) -> list[str]:
        return [f"block.queue_latency.{op}" for op in BLOCK_OPS]

    HIST_MAP: ClassVar[bytes] = b"pc_blk_queue_hist"


class BlockSizeProbe(_BlockProbe):
    name: ClassVar[str] = "block.size"
    summary: ClassVar[str] = "disk request size in bytes at issue, per op (bitesize)"
    unit: ClassVar[str] = UNIT_BYTES
    feature: ClassVar[int] = FEATURE_SIZE
    options: ClassVar[tuple[str, ...]] = (SAMPLE_SETTING,)
    sources: ClassVar[tuple[str, ...]] = ("block_rq_issue",)

    def series_names(self) -> list[str]:
        return [f"block.size.{op}" for op in BLOCK_OPS]

    HIST_MAP: ClassVar[bytes] = b"pc_blk_size_hist"


class BlockBioLatencyProbe(_BlockProbe):
    """Bios from submission to completion: includes the wait for a request tag.

    Counted per bio, the unit a file system or fio hands the block layer: a bio split
    into several requests counts once, timed until its last piece completes; bios merged
    into one request count each. The number of bios is each histogram's total.
    """

    name: ClassVar[str] = "block.bio_latency"
    summary: ClassVar[str] = (
        "disk I/O latency incl. the wait for a request tag, bio submit to completion, per op"
    )
    feature: ClassVar[int] = FEATURE_BIO
    sources: ClassVar[tuple[str, ...]] = (
        "block_bio_queue",
        "block_rq_complete",
        "block_bio_complete",
    )

    @classmethod
    def unavailable(cls) -> Unavailable | None:
        return super().unavailable() or missing_btf_members(BIO_BTF_MEMBERS)

    def configure(self, bpf: Any, settings: Mapping[str, int]) -> None:
        # The offsets go in before configure switches the feature on.
        write_config(bpf[b"pc_blk_config"], bio_layout().fields())
        super().configure(bpf, settings)

    def series_names(self) -> list[str]:
        return [f"block.bio_latency.{op}" for op in BLOCK_OPS]

    def read(self, bpf: Any) -> ProbeCounters:
        # Histograms only: a counter named block.* would enter the request cross-check.
        slots = percpu_array_sums(bpf[b"pc_blk_bio_hist"], len(BLOCK_OPS) * HIST_SLOTS)
        return ProbeCounters(histograms=split_histograms(slots, self.series_names()))


#: The probes that time 1 request in ``block_sample`` when asked (the others refuse it).
SAMPLED_PROBES: tuple[str, ...] = tuple(
    cls.name
    for cls in (BlockLatencyProbe, BlockQueueLatencyProbe, BlockSizeProbe, BlockBioLatencyProbe)
    if SAMPLE_SETTING in cls.options
)


# The ctypes twin of struct pc_blk_config, for tests and tools that build the map by hand.
class BlockConfigStruct(ctypes.Structure):
    _fields_ = [
        ("queue", ctypes.c_uint64),
        ("other_queue", ctypes.c_uint64),
        ("bdev", ctypes.c_uint64),
        ("other_bdev", ctypes.c_uint64),
        ("dev", ctypes.c_uint32),
        ("features", ctypes.c_uint32),
        ("generation", ctypes.c_uint32),
        ("overflowed", ctypes.c_uint32),
        ("sample_every", ctypes.c_uint32),
        *((name, ctypes.c_uint32) for name in BlockLayout.__dataclass_fields__),
        *((name, ctypes.c_uint32) for name in BioLayout.__dataclass_fields__),
        *((name, ctypes.c_uint32) for name in StampLayout.__dataclass_fields__),
        ("submitter_cgroup", ctypes.c_uint64),
    ]


__all__ = [
    "BLOCK_OPS",
    "BLOCK_PROGRAM_C",
    "SAMPLED_PROBES",
    "SAMPLE_SETTING",
    "SUBMITTER_SETTING",
    "BioLayout",
    "BlockBioLatencyProbe",
    "BlockConfigStruct",
    "BlockLatencyProbe",
    "BlockLayout",
    "BlockQueueLatencyProbe",
    "BlockSizeProbe",
    "bio_layout",
    "block_layout",
    "check_sample",
    "configure_block_program",
]
