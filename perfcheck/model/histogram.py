"""Latency histograms: one log-linear type of nanoseconds, converted at the edges.

Everything perfcheck measures ends up as a :class:`LogLinearHistogram`: BPF array
maps (:meth:`LogLinearHistogram.from_bpf_items`), fio's ``json+`` latency bins
(:meth:`LogLinearHistogram.from_fio_bins`) and raw samples
(:meth:`LogLinearHistogram.from_values`). The layout is the kernel/user contract in
:mod:`perfcheck.model.bpf_layout`; :func:`bucket_index` here is the Python twin of the C
``perfcheck_bucket`` that the probes run, and the test suite holds the two equal.

Scheme ``loglinear-k5-ns`` (1024 slots, values in ns):

* ``0 <= v < 64``: slot ``v``; exact.
* ``v >= 64``: with ``msb = floor(log2 v)`` and ``sh = msb - 5``, slot
  ``((sh + 1) << 5) + ((v >> sh) & 31)``: 32 linear sub-buckets per power of two,
  so a bucket is at most 1/32 of its lower bound wide and its midpoint is within
  1/64 (about 1.6%) of any value in it.
* Slot 1023, ``[2**35 + 31 * 2**30, 2**36)`` ns (up to about 68.7 s), also holds
  every larger value: the histogram is clamped at the top.
"""

from __future__ import annotations

import bisect
import math
import numbers
import operator
from collections.abc import Collection, Iterable, Mapping
from itertools import accumulate
from typing import Any, Final, SupportsFloat, SupportsIndex

from perfcheck.model.bpf_layout import HIST_EXACT_BELOW, HIST_SLOTS, HIST_SUB_BITS

#: Name of the bucket scheme, stored with every serialised histogram.
SCHEME: Final[str] = "loglinear-k5-ns"

_SUB_BUCKETS: Final[int] = 1 << HIST_SUB_BITS
_SUB_MASK: Final[int] = _SUB_BUCKETS - 1
_LAST_SLOT: Final[int] = HIST_SLOTS - 1

#: Divisor from ns to each unit a log2 view can be shown in.
LOG2_VIEW_UNITS: Final[Mapping[str, int]] = {
    "nsecs": 1,
    "usecs": 1_000,
    "msecs": 1_000_000,
}

# bcc's print_log2_hist layout: 40-star bars, halved when a row needs wide numbers.
_BAR_WIDTH: Final[int] = 40
_WIDE_BAR_WIDTH: Final[int] = 20
_NARROW_LAST_ROW: Final[int] = 32
_SIDE_BY_SIDE_GAP: Final[str] = "   "

# Relative tolerance under which pct * total / 100 counts as a whole rank: keeps
# float noise (0.07 * 10000 / 100 == 7.000000000000001) from moving a percentile
# to the next sample.
_RANK_SNAP: Final[float] = 1e-12


def bucket_index(v: int) -> int:
    """Slot of a latency of ``v`` ns; the Python twin of the C ``perfcheck_bucket``."""
    v = operator.index(v)
    if v < 0:
        raise ValueError(f"latency must be >= 0 ns, got {v}")
    if v < HIST_EXACT_BELOW:
        return v
    sh = v.bit_length() - 1 - HIST_SUB_BITS
    idx = ((sh + 1) << HIST_SUB_BITS) + ((v >> sh) & _SUB_MASK)
    return min(idx, _LAST_SLOT)


def _compute_bounds(idx: int) -> tuple[int, int]:
    if idx < HIST_EXACT_BELOW:
        return idx, idx + 1
    sh = (idx >> HIST_SUB_BITS) - 1
    lower = (_SUB_BUCKETS + (idx & _SUB_MASK)) << sh
    return lower, lower + (1 << sh)


_BOUNDS: Final[tuple[tuple[int, int], ...]] = tuple(_compute_bounds(i) for i in range(HIST_SLOTS))


def bucket_bounds(idx: int) -> tuple[int, int]:
    """Half-open range ``[lo, hi)`` in ns of slot ``idx``.

    The last slot also holds every value beyond its ``hi`` (the clamp).
    """
    idx = operator.index(idx)
    if not 0 <= idx < HIST_SLOTS:
        raise ValueError(f"slot index must be in [0, {HIST_SLOTS}), got {idx}")
    return _BOUNDS[idx]


def _log2_row(v: int) -> int:
    """Row of ``v`` in bcc's log2 histogram: row 1 is ``0 -> 1``, row i ``2**(i-1) -> 2**i-1``."""
    return max(1, v.bit_length())


def _as_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    count = operator.index(value)
    if count < 0:
        raise ValueError(f"{what} must be >= 0, got {count}")
    return count


def _as_nanoseconds(value: object) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        ns = int(value)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        as_float = float(value)
        if not math.isfinite(as_float):
            raise ValueError(f"latency must be a finite number of ns, got {value!r}")
        ns = math.floor(as_float)
    else:
        raise ValueError(f"latency must be a number of ns, got {value!r}")
    if ns < 0:
        raise ValueError(f"latency must be >= 0 ns, got {value!r}")
    return ns


class LogLinearHistogram:
    """Counts of latencies in nanoseconds, in 1024 log-linear slots (``loglinear-k5-ns``).

    Exact below 64 ns; above, 32 linear sub-buckets per power of two (bucket width
    at most 1/32 of its lower bound); slot 1023 also counts every value of 2**36 ns
    or more. See :func:`bucket_index` and :func:`bucket_bounds`.

    A value object: ``counts`` is a tuple that is never changed in place; ``merge``,
    ``+`` and ``subtract`` return new histograms; equal counts mean equal and
    equally hashed histograms.

    Percentiles use the inverted-CDF rank: ``percentile(p)`` falls in the bucket of
    the ``ceil(p * total / 100)``-th smallest sample, where the rank counts the way
    the decimal ``p`` reads (float noise such as ``0.07 * 10000 / 100 ==
    7.000000000000001`` is ignored). Inside that bucket it interpolates linearly by rank between the
    smallest and the largest integer the bucket holds, so the result always lies
    in that bucket and is exact for slots below 64 ns.
    """

    __slots__ = ("_counts", "_cumulative")

    _counts: tuple[int, ...]
    _cumulative: list[int] | None

    def __init__(self, counts: Collection[SupportsIndex]) -> None:
        if len(counts) != HIST_SLOTS:
            raise ValueError(
                f"a {SCHEME} histogram has {HIST_SLOTS} slots, got {len(counts)} counts"
            )
        to_list = getattr(counts, "tolist", None)  # numpy arrays: to Python ints in one go
        plain_ints = [c for c in (to_list() if callable(to_list) else counts) if type(c) is int]
        if len(plain_ints) == HIST_SLOTS and min(plain_ints) >= 0:
            self._counts = tuple(plain_ints)
        else:
            # Slow path: other integer types, or something to report.
            self._counts = tuple(_as_count(c, f"count of slot {i}") for i, c in enumerate(counts))
        self._cumulative = None

    @classmethod
    def _trusted(cls, counts: tuple[int, ...]) -> LogLinearHistogram:
        """Wrap counts already known to be 1024 non-negative ints, skipping the checks."""
        hist = cls.__new__(cls)
        hist._counts = counts
        hist._cumulative = None
        return hist

    # -- constructors ---------------------------------------------------------------

    @classmethod
    def empty(cls) -> LogLinearHistogram:
        """A histogram with no samples."""
        return cls._trusted((0,) * HIST_SLOTS)

    @classmethod
    def from_counts(cls, counts: Collection[SupportsIndex]) -> LogLinearHistogram:
        """From all 1024 slot counts, in slot order (a list, tuple or numpy array)."""
        return cls(counts)

    @classmethod
    def from_values(cls, values_ns: Iterable[SupportsIndex | SupportsFloat]) -> LogLinearHistogram:
        """From raw latencies in ns (ints or floats, numpy scalars too).

        Floats are floored; negative, NaN or infinite values raise ``ValueError``.
        """
        counts = [0] * HIST_SLOTS
        for value in values_ns:
            counts[bucket_index(_as_nanoseconds(value))] += 1
        return cls._trusted(tuple(counts))

    @classmethod
    def from_bpf_items(cls, items: Iterable[tuple[int, int]]) -> LogLinearHistogram:
        """From ``(slot, count)`` pairs as read from a BPF array or hash map.

        Zero counts are skipped; a slot seen twice (per-CPU maps flattened) is summed;
        a slot outside ``[0, 1024)`` raises ``ValueError``.
        """
        counts = [0] * HIST_SLOTS
        for slot, count in items:
            slot = operator.index(slot)
            if not 0 <= slot < HIST_SLOTS:
                raise ValueError(
                    f"BPF histogram slot {slot} is outside [0, {HIST_SLOTS}): the map was "
                    f"not filled by perfcheck_bucket()"
                )
            counts[slot] += _as_count(count, f"BPF count of slot {slot}")
        return cls._trusted(tuple(counts))

    @classmethod
    def from_fio_bins(cls, bins: Mapping[str, int]) -> LogLinearHistogram:
        """From fio's ``--output-format=json+`` ``clat_ns.bins`` / ``lat_ns.bins``.

        Each key is the decimal value fio reports for one of its buckets
        (``plat_idx_to_val`` in fio's ``stat.c``); the count moves to the slot of that
        value. This is exact, not an approximation: fio buckets the same way with 64
        sub-buckets (``FIO_IO_U_PLAT_BITS = 6``). Below 128 ns fio keeps exact values.
        From 128 ns on, a fio bucket of a value with ``msb = m`` spans
        ``2**(m-6)`` ns aligned to its width, and ours for the same ``m`` span
        ``2**(m-5)`` aligned to theirs, so each of ours is the union of two whole fio
        buckets and every value of a fio bucket (its reported value included) lands in
        the same slot. fio itself clamps at about 2**34 ns (its last bucket); that is
        below our clamp at 2**36 ns, so the conversion loses nothing fio kept.
        """
        counts = [0] * HIST_SLOTS
        for key, count in bins.items():
            if not (isinstance(key, str) and key.isascii() and key.isdecimal()):
                raise ValueError(
                    f"fio latency bin key {key!r} is not a decimal number of ns: expected "
                    f"the 'bins' object of clat_ns or lat_ns from fio --output-format=json+"
                )
            counts[bucket_index(int(key))] += _as_count(count, f"fio bin {key!r}")
        return cls._trusted(tuple(counts))

    # -- serialisation --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``{"scheme": "loglinear-k5-ns", "slots": 1024, "buckets": {"<slot>": count}}``.

        ``buckets`` is sparse (non-zero slots only), in numeric slot order.
        """
        return {
            "scheme": SCHEME,
            "slots": HIST_SLOTS,
            "buckets": {str(slot): count for slot, count in self.nonzero_slots()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogLinearHistogram:
        """Inverse of :meth:`to_dict`; anything else raises ``ValueError`` saying what."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a serialised histogram must be an object, got {type(data).__name__}")
        scheme = data.get("scheme")
        if scheme != SCHEME:
            raise ValueError(
                f"histogram scheme is {scheme!r}, expected {SCHEME!r}: "
                f"the data was written by another bucket scheme and cannot be read as this one"
            )
        slots = data.get("slots")
        if slots != HIST_SLOTS:
            raise ValueError(f"histogram 'slots' is {slots!r}, expected {HIST_SLOTS}")
        buckets = data.get("buckets")
        if not isinstance(buckets, Mapping):
            raise ValueError(
                f"histogram 'buckets' must be an object of slot -> count, got {buckets!r}"
            )
        counts = [0] * HIST_SLOTS
        for key, count in buckets.items():
            if not (isinstance(key, str) and key.isascii() and key.isdecimal()):
                raise ValueError(f"histogram bucket key {key!r} is not a slot number")
            slot = int(key)
            if key != str(slot) or slot >= HIST_SLOTS:
                raise ValueError(
                    f"histogram bucket key {key!r} is not a slot number in [0, {HIST_SLOTS})"
                )
            counts[slot] = _as_count(count, f"histogram bucket {key!r}")
        return cls._trusted(tuple(counts))

    # -- content --------------------------------------------------------------------

    @property
    def counts(self) -> tuple[int, ...]:
        """All 1024 slot counts, in slot order."""
        return self._counts

    @property
    def total(self) -> int:
        """Number of samples."""
        return self._cumulative_counts()[-1]

    def nonzero_slots(self) -> list[tuple[int, int]]:
        """``(slot, count)`` of every non-empty slot, in slot order."""
        return [(slot, count) for slot, count in enumerate(self._counts) if count]

    def _cumulative_counts(self) -> list[int]:
        if self._cumulative is None:
            self._cumulative = list(accumulate(self._counts))
        return self._cumulative

    def _require_samples(self, what: str) -> list[int]:
        cumulative = self._cumulative_counts()
        if cumulative[-1] == 0:
            raise ValueError(f"{what} of an empty histogram is undefined")
        return cumulative

    # -- arithmetic -----------------------------------------------------------------

    def merge(self, other: LogLinearHistogram) -> LogLinearHistogram:
        """Sum of both histograms' counts (a new histogram)."""
        if not isinstance(other, LogLinearHistogram):
            raise TypeError(f"cannot merge a LogLinearHistogram with {type(other).__name__}")
        return self._trusted(tuple(map(operator.add, self._counts, other._counts)))

    def __add__(self, other: object) -> LogLinearHistogram:
        if not isinstance(other, LogLinearHistogram):
            return NotImplemented
        return self.merge(other)

    def subtract(self, earlier: LogLinearHistogram) -> LogLinearHistogram:
        """What was counted since ``earlier``, a snapshot of the same cumulative map.

        Raises ``ValueError`` if any slot would go negative, i.e. ``earlier`` is not an
        earlier snapshot of the same map (it was cleared, or belongs to another map).
        """
        if not isinstance(earlier, LogLinearHistogram):
            raise TypeError(f"cannot subtract {type(earlier).__name__} from a LogLinearHistogram")
        diff = tuple(map(operator.sub, self._counts, earlier._counts))
        for slot, count in enumerate(diff):
            if count < 0:
                raise ValueError(
                    f"slot {slot} would go negative ({self._counts[slot]} - "
                    f"{earlier._counts[slot]}): the subtracted histogram is not an earlier "
                    f"snapshot of the same cumulative map"
                )
        return self._trusted(diff)

    # -- statistics -----------------------------------------------------------------

    def percentile(self, pct: float) -> float:
        """Latency in ns at percentile ``pct`` (``0 < pct <= 100``); see the class docstring.

        Raises ``ValueError`` for an empty histogram or ``pct`` out of range.
        """
        if not 0 < pct <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {pct!r}")
        cumulative = self._require_samples("a percentile")
        total = cumulative[-1]
        rank = pct * total / 100
        nearest = round(rank)
        if abs(rank - nearest) <= _RANK_SNAP * rank:
            rank = nearest
        slot = bisect.bisect_left(cumulative, rank)
        below = cumulative[slot - 1] if slot else 0
        lower, upper = _BOUNDS[slot]
        # Spread over the integers the bucket holds, so the result stays inside it.
        fraction = (rank - below) / self._counts[slot]
        return lower + (upper - 1 - lower) * fraction

    def percentiles(self, pcts: Iterable[float]) -> dict[float, float]:
        """``{pct: percentile(pct)}`` for each of ``pcts``."""
        return {pct: self.percentile(pct) for pct in pcts}

    def mean(self) -> float:
        """Approximate mean in ns, each sample taken at its bucket's midpoint.

        The midpoint is that of the integers the bucket holds, so it is exact below 64 ns.
        """
        cumulative = self._require_samples("the mean")
        doubled = sum(
            count * (lower + upper - 1)
            for count, (lower, upper) in zip(self._counts, _BOUNDS, strict=True)
            if count
        )
        return doubled / (2 * cumulative[-1])

    def min_bound(self) -> int:
        """Lower bound in ns of the lowest non-empty bucket (no sample is smaller)."""
        self._require_samples("min_bound")
        first = next(slot for slot, count in enumerate(self._counts) if count)
        return _BOUNDS[first][0]

    def max_bound(self) -> int:
        """Exclusive upper bound in ns of the highest non-empty bucket.

        No sample is as large, unless the top slot (the clamp) is non-empty.
        """
        self._require_samples("max_bound")
        last = max(slot for slot, count in enumerate(self._counts) if count)
        return _BOUNDS[last][1]

    # -- display --------------------------------------------------------------------

    def log2_view(self, unit: str = "usecs", label: str | None = None) -> str:
        """Text in the layout of bcc's ``print_log2_hist``, for readers of biolatency.

        Rows run from the first to the last non-empty power-of-two row. Each of our
        buckets lies inside one power of two of ns, so in ``"nsecs"`` the rows are
        exact. In ``"usecs"``/``"msecs"`` a latency is floored to the unit first (as
        biolatency does) and a bucket straddling a row boundary is counted in the row
        of its midpoint: rows can be off by at most that one bucket at each edge.
        Slot 1023's overflow (>= 2**36 ns) shows in that slot's row. Rows always add
        up to :attr:`total`.
        """
        divisor = _unit_divisor(unit)
        rows = _log2_rows(self, divisor)
        lines = [] if label is None else [label]
        if not rows:
            lines.append(_log2_header(unit, wide=False))
            lines.append(f"{'':5}(no samples)")
            return "\n".join(lines)
        first, last = min(rows), max(rows)
        wide = last > _NARROW_LAST_ROW
        bar_width = _WIDE_BAR_WIDTH if wide else _BAR_WIDTH
        lines.extend(_render_log2(rows, first, last, unit, wide, bar_width))
        return "\n".join(lines)

    # -- value-object protocol -------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogLinearHistogram):
            return NotImplemented
        return self._counts == other._counts

    def __hash__(self) -> int:
        return hash(self._counts)

    def __repr__(self) -> str:
        nonzero = dict(self.nonzero_slots())
        return f"LogLinearHistogram(total={self.total}, nonzero_slots={nonzero})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (LogLinearHistogram, (self._counts,))


def _unit_divisor(unit: str) -> int:
    try:
        return LOG2_VIEW_UNITS[unit]
    except KeyError:
        known = ", ".join(LOG2_VIEW_UNITS)
        raise ValueError(f"unknown log2 view unit {unit!r}; use one of {known}") from None


def _log2_rows(hist: LogLinearHistogram, divisor: int) -> dict[int, int]:
    """bcc log2 row -> count, each bucket placed by its midpoint floored to the unit."""
    rows: dict[int, int] = {}
    for slot, count in hist.nonzero_slots():
        lower, upper = _BOUNDS[slot]
        row = _log2_row((lower + upper - 1) // 2 // divisor)
        rows[row] = rows.get(row, 0) + count
    return rows


def _log2_header(unit: str, *, wide: bool) -> str:
    if wide:
        return f"{'':15}{unit:<29} : count     distribution"
    return f"{'':5}{unit:<19} : count     distribution"


def _render_log2(
    rows: Mapping[int, int], first: int, last: int, unit: str, wide: bool, bar_width: int
) -> list[str]:
    number_width = 20 if wide else 10
    peak = max(rows.values(), default=0)
    lines = [_log2_header(unit, wide=wide)]
    for row in range(first, last + 1):
        low = (1 << row) >> 1
        high = (1 << row) - 1
        if low == high:
            low -= 1
        count = rows.get(row, 0)
        bar = "*" * (bar_width * count // peak) if peak else ""
        lines.append(
            f"{low:>{number_width}} -> {high:<{number_width}} : {count:<8} |{bar:<{bar_width}}|"
        )
    return lines


def side_by_side(
    left: LogLinearHistogram,
    right: LogLinearHistogram,
    left_title: str,
    right_title: str,
    unit: str = "usecs",
) -> str:
    """Two log2 views next to each other over a common row range (e.g. baseline | current).

    Rows span the union of both histograms' non-empty rows; bars are 20 stars wide so
    the pair fits in about 120 columns, and each side is scaled to its own peak.
    """
    divisor = _unit_divisor(unit)
    left_rows = _log2_rows(left, divisor)
    right_rows = _log2_rows(right, divisor)
    every_row = left_rows.keys() | right_rows.keys()
    if every_row:
        first, last = min(every_row), max(every_row)
        wide = last > _NARROW_LAST_ROW
        left_block = _render_log2(left_rows, first, last, unit, wide, _WIDE_BAR_WIDTH)
        right_block = _render_log2(right_rows, first, last, unit, wide, _WIDE_BAR_WIDTH)
    else:
        left_block = right_block = [_log2_header(unit, wide=False), f"{'':5}(no samples)"]
    width = max(len(left_title), *(len(line) for line in left_block))
    lines = [f"{left_title:<{width}}{_SIDE_BY_SIDE_GAP}{right_title}"]
    lines.extend(
        f"{lhs:<{width}}{_SIDE_BY_SIDE_GAP}{rhs}"
        for lhs, rhs in zip(left_block, right_block, strict=True)
    )
    return "\n".join(line.rstrip() for line in lines)


__all__ = [
    "LOG2_VIEW_UNITS",
    "SCHEME",
    "LogLinearHistogram",
    "bucket_bounds",
    "bucket_index",
    "side_by_side",
]
