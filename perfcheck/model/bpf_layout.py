"""The kernel/user contract of perfcheck's latency histograms, in one place.

Every BPF program perfcheck loads and every Python reader of its maps take the
histogram layout from here, the way libbpf-tools keeps slot counts in one shared
header: a log-linear histogram of nanoseconds, exact below ``HIST_EXACT_BELOW``,
then ``2**HIST_SUB_BITS`` linear sub-buckets per power of two, ``HIST_SLOTS``
slots, values past the last slot clamped into it.

``C_BUCKET_FUNCTION`` is the C twin of :func:`perfcheck.model.histogram.bucket_index`.
Probe templates paste it above their handlers and count into
``BPF_ARRAY(<name>, u64, HIST_SLOTS)`` at ``perfcheck_bucket(delta_ns)``. It uses
only ``u32``, ``u64`` and ``__always_inline``, which a bcc program already has;
it also compiles as plain C once those three are defined, e.g.::

    #include <stdint.h>
    #define u32 uint32_t
    #define u64 uint64_t
    #undef __always_inline  /* glibc's <sys/cdefs.h> may define its own */
    #define __always_inline inline __attribute__((always_inline))

which is how the test suite checks it against the Python twin with gcc.
"""

from __future__ import annotations

from typing import Final

#: log2 of the number of linear sub-buckets per power of two (32 sub-buckets).
HIST_SUB_BITS: Final[int] = 5

#: Number of histogram slots, i.e. the length of the BPF array map.
HIST_SLOTS: Final[int] = 1024

#: Values below this (in ns) get a slot of their own: slot index == value.
HIST_EXACT_BELOW: Final[int] = 2 ** (HIST_SUB_BITS + 1)

_SUB_MASK: Final[int] = (1 << HIST_SUB_BITS) - 1
_LAST_SLOT: Final[int] = HIST_SLOTS - 1

#: C source of ``static __always_inline u32 perfcheck_bucket(u64 v)`` (see module docstring).
C_BUCKET_FUNCTION: Final[str] = f"""\
/*
 * perfcheck_bucket: slot of a latency in ns in perfcheck's log-linear
 * histogram. Exact below {HIST_EXACT_BELOW}; above, {1 << HIST_SUB_BITS} linear sub-buckets per
 * power of two; clamped to slot {_LAST_SLOT}. No loops, floats or division: the
 * msb comes from an unrolled binary search, as BPF has no dependable clz.
 */
static __always_inline u32 perfcheck_bucket(u64 v)
{{
    u64 x = v;
    u32 msb = 0;
    u32 step;
    u32 sh;
    u32 idx;

    if (v < {HIST_EXACT_BELOW})
        return (u32)v;

    step = (u32)((x >> 32) != 0) << 5; x >>= step; msb += step;
    step = (u32)((x >> 16) != 0) << 4; x >>= step; msb += step;
    step = (u32)((x >> 8) != 0) << 3; x >>= step; msb += step;
    step = (u32)((x >> 4) != 0) << 2; x >>= step; msb += step;
    step = (u32)((x >> 2) != 0) << 1; x >>= step; msb += step;
    step = (u32)((x >> 1) != 0); msb += step;

    sh = msb - {HIST_SUB_BITS};
    idx = ((sh + 1) << {HIST_SUB_BITS}) + (u32)((v >> sh) & {_SUB_MASK});
    return idx < {_LAST_SLOT} ? idx : {_LAST_SLOT};
}}
"""
__all__ = [
    "C_BUCKET_FUNCTION",
    "HIST_EXACT_BELOW",
    "HIST_SLOTS",
    "HIST_SUB_BITS",
]
