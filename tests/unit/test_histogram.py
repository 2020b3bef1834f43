"""LogLinearHistogram: bucket scheme, arithmetic, percentiles, conversions, log2 view."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from perfcheck.model.bpf_layout import HIST_EXACT_BELOW, HIST_SLOTS, HIST_SUB_BITS
from perfcheck.model.histogram import (
    SCHEME,
    LogLinearHistogram,
    bucket_bounds,
    bucket_index,
    side_by_side,
)

CLAMP_NS = 2**36  # first value past the nominal range of the last slot
U64_MAX = 2**64 - 1

# -- strategies ---------------------------------------------------------------------------

latencies = st.one_of(
    st.integers(0, 200),  # exact region and the first linear groups
    st.integers(0, 10**7),  # up to 10 ms, where disks and networks live
    st.integers(0, CLAMP_NS - 1),  # the whole unclamped range
)
any_u64 = st.integers(0, U64_MAX)

histograms = st.lists(
    st.tuples(st.integers(0, HIST_SLOTS - 1), st.integers(1, 10**9)), max_size=40
).map(LogLinearHistogram.from_bpf_items)
non_empty_histograms = histograms.filter(lambda h: h.total > 0)

# Percentiles as people write them: up to three decimals, so the rank rule below is exact.
PCT_SCALE = 1000
pct_thousandths = st.integers(1, 100 * PCT_SCALE)


def true_rank(pct_thousandths: int, total: int) -> int:
    """1-based rank of the sample at that percentile: ceil(pct * total / 100), exactly."""
    return -(-pct_thousandths * total // (100 * PCT_SCALE))


# -- bucket scheme ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "slot"),
    [
        (0, 0),
        (1, 1),
        (63, 63),
        (64, 64),
        (65, 64),
        (66, 65),
        (127, 95),
        (128, 96),
        (1000, 190),
        (CLAMP_NS - 1, 1023),
        (CLAMP_NS, 1023),
        (U64_MAX, 1023),
    ],
)
def test_bucket_index_examples(value: int, slot: int) -> None:
    assert bucket_index(value) == slot


def test_scheme_constants_agree() -> None:
    assert (HIST_SUB_BITS, HIST_SLOTS, HIST_EXACT_BELOW) == (5, 1024, 64)
    assert bucket_bounds(0) == (0, 1)
    assert bucket_bounds(190) == (992, 1008)
    assert bucket_bounds(HIST_SLOTS - 1) == (CLAMP_NS - 2**30, CLAMP_NS)


def test_bucket_index_rejects_negative_and_non_integers() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        bucket_index(-1)
    with pytest.raises(TypeError):
        bucket_index(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("slot", [-1, HIST_SLOTS])
def test_bucket_bounds_rejects_slots_out_of_range(slot: int) -> None:
    with pytest.raises(ValueError, match="slot index"):
        bucket_bounds(slot)


def test_buckets_tile_the_range_without_gaps() -> None:
    previous_upper = 0
    for slot in range(HIST_SLOTS):
        lower, upper = bucket_bounds(slot)
        assert lower == previous_upper
        assert bucket_index(lower) == slot
        assert bucket_index(upper - 1) == slot
        previous_upper = upper
    assert previous_upper == CLAMP_NS


def test_exact_below_64_then_at_most_one_32nd_wide() -> None:
    for slot in range(HIST_SLOTS):
        lower, upper = bucket_bounds(slot)
        if slot < HIST_EXACT_BELOW:
            assert (lower, upper) == (slot, slot + 1)
        else:
            assert (upper - lower) * 32 <= lower
            # So the midpoint is within 1/64 (~1.6%) of anything in the bucket.
            assert (upper - lower) / 2 / lower <= 1 / 64


def test_every_bucket_lies_inside_one_power_of_two() -> None:
    for slot in range(HIST_SLOTS):
        lower, upper = bucket_bounds(slot)
        assert lower.bit_length() == (upper - 1).bit_length()


@given(any_u64, any_u64)
def test_bucket_index_is_monotone(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert bucket_index(low) <= bucket_index(high)


@given(any_u64.filter(lambda v: v < U64_MAX))
def test_bucket_index_steps_by_at_most_one(v: int) -> None:
    assert bucket_index(v + 1) - bucket_index(v) in (0, 1)


@given(latencies)
def test_bucket_bounds_contain_the_value(v: int) -> None:
    lower, upper = bucket_bounds(bucket_index(v))
    assert lower <= v < upper


@given(st.integers(CLAMP_NS, U64_MAX))
def test_values_past_the_range_are_clamped_into_the_last_slot(v: int) -> None:
    assert bucket_index(v) == HIST_SLOTS - 1


# -- construction -------------------------------------------------------------------------


def test_from_values_floors_floats_and_rejects_bad_values() -> None:
    hist = LogLinearHistogram.from_values([63.9, 64.0, 0.2, np.float32(5.5), np.int64(7)])
    assert hist.nonzero_slots() == [(0, 1), (5, 1), (7, 1), (63, 1), (64, 1)]
    for bad in (-1, -0.5, math.nan, math.inf, "12"):
        with pytest.raises(ValueError, match="latency"):
            LogLinearHistogram.from_values([bad])  # type: ignore[list-item]


def test_from_bpf_items_skips_zeros_sums_repeats_and_checks_slots() -> None:
    hist = LogLinearHistogram.from_bpf_items([(3, 0), (5, 2), (5, 3), (1023, 1)])
    assert hist.nonzero_slots() == [(5, 5), (1023, 1)]
    for bad_slot in (-1, HIST_SLOTS):
        with pytest.raises(ValueError, match="outside"):
            LogLinearHistogram.from_bpf_items([(bad_slot, 1)])
    with pytest.raises(ValueError, match=">= 0"):
        LogLinearHistogram.from_bpf_items([(4, -1)])


def test_from_counts_checks_length_and_signs() -> None:
    counts = [0] * HIST_SLOTS
    counts[7] = 4
    assert LogLinearHistogram.from_counts(counts).nonzero_slots() == [(7, 4)]
    assert LogLinearHistogram.from_counts(np.array(counts, dtype=np.uint64)).total == 4
    with pytest.raises(ValueError, match="1024 slots"):
        LogLinearHistogram.from_counts([0] * 1023)
    counts[9] = -1
    with pytest.raises(ValueError, match="slot 9"):
        LogLinearHistogram.from_counts(counts)


def test_value_semantics() -> None:
    first = LogLinearHistogram.from_values([1, 100, 100])
    second = LogLinearHistogram.from_bpf_items([(1, 1), (bucket_index(100), 2)])
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second, LogLinearHistogram.empty()}) == 2
    assert isinstance(first.counts, tuple)
    assert pickle.loads(pickle.dumps(first)) == first
    assert first != LogLinearHistogram.empty()
    assert "total=3" in repr(first)


# -- arithmetic ---------------------------------------------------------------------------


@given(histograms, histograms)
def test_merge_adds_counts_and_commutes(a: LogLinearHistogram, b: LogLinearHistogram) -> None:
    merged = a.merge(b)
    assert merged.counts == tuple(x + y for x, y in zip(a.counts, b.counts, strict=True))
    assert merged.total == a.total + b.total
    assert merged == b.merge(a) == a + b


@given(histograms, histograms, histograms)
def test_merge_is_associative(
    a: LogLinearHistogram, b: LogLinearHistogram, c: LogLinearHistogram
) -> None:
    assert (a + b) + c == a + (b + c)


@given(histograms)
def test_empty_is_the_identity_of_merge(a: LogLinearHistogram) -> None:
    assert a + LogLinearHistogram.empty() == a


@given(histograms, histograms)
def test_subtract_undoes_merge(a: LogLinearHistogram, b: LogLinearHistogram) -> None:
    assert (a + b).subtract(a) == b
    assert (a + b).subtract(b) == a


@given(histograms, non_empty_histograms)
def test_subtracting_a_later_snapshot_is_an_error(
    a: LogLinearHistogram, b: LogLinearHistogram
) -> None:
    with pytest.raises(ValueError, match="not an earlier snapshot"):
        a.subtract(a + b)


def test_merge_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        LogLinearHistogram.empty().merge([0] * HIST_SLOTS)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        LogLinearHistogram.empty() + 1


# -- percentiles --------------------------------------------------------------------------


@given(st.lists(latencies, min_size=1, max_size=300), pct_thousandths)
def test_percentile_lies_in_the_bucket_of_the_true_rank_value(
    values: list[int], pct_k: int
) -> None:
    pct = pct_k / PCT_SCALE
    hist = LogLinearHistogram.from_values(values)
    ordered = np.sort(np.array(values, dtype=np.uint64))
    true_value = int(ordered[true_rank(pct_k, len(values)) - 1])
    slot = bucket_index(true_value)
    lower, upper = bucket_bounds(slot)

    estimate = hist.percentile(pct)

    assert lower <= estimate <= upper - 1
    assert bucket_index(math.floor(estimate)) == slot


@given(st.lists(latencies, min_size=1, max_size=300), pct_thousandths)
def test_rank_rule_is_numpys_inverted_cdf_away_from_whole_ranks(
    values: list[int], pct_k: int
) -> None:
    # numpy's inverted_cdf is the same rule; at whole ranks its float arithmetic can
    # land on the next sample (e.g. p55 of 100 samples), which ours does not.
    assume((pct_k * len(values)) % (100 * PCT_SCALE) != 0)
    pct = pct_k / PCT_SCALE
    numpy_value = int(np.percentile(np.array(values), pct, method="inverted_cdf"))
    lower, upper = bucket_bounds(bucket_index(numpy_value))
    assert lower <= LogLinearHistogram.from_values(values).percentile(pct) <= upper - 1


def test_percentile_at_a_whole_rank_is_not_moved_by_float_noise() -> None:
    hist = LogLinearHistogram.from_values(range(50))
    assert hist.percentile(10) == 4.0  # rank 5 -> the 5th smallest, 4
    many = LogLinearHistogram.from_values(range(10_000))
    assert many.percentile(0.07) == 6.0  # 0.07 * 10000 / 100 is 7.000000000000001 in floats
    big = LogLinearHistogram.from_values([1] * 999 + [60])
    assert big.percentile(99.9) == 1.0  # 99.9 * 1000 / 100 is rank 999, not 1000
    assert big.percentile(100) == 60.0


@given(non_empty_histograms, pct_thousandths, pct_thousandths)
def test_percentiles_are_monotone_in_pct(hist: LogLinearHistogram, p: int, q: int) -> None:
    low, high = sorted((p / PCT_SCALE, q / PCT_SCALE))
    assert hist.percentile(low) <= hist.percentile(high)


@given(non_empty_histograms)
def test_percentile_100_is_the_top_of_the_last_non_empty_bucket(hist: LogLinearHistogram) -> None:
    last_slot = hist.nonzero_slots()[-1][0]
    assert hist.percentile(100) == bucket_bounds(last_slot)[1] - 1
    assert hist.percentiles([50, 100]) == {50: hist.percentile(50), 100: hist.percentile(100)}


def test_percentile_is_exact_in_the_exact_region() -> None:
    hist = LogLinearHistogram.from_values([5] * 10 + [40] * 10)
    assert hist.percentiles([1, 50, 50.001, 100]) == {1: 5.0, 50: 5.0, 50.001: 40.0, 100: 40.0}


def test_percentile_interpolates_by_rank_inside_a_bucket() -> None:
    slot = bucket_index(1000)  # [992, 1008)
    hist = LogLinearHistogram.from_bpf_items([(slot, 4)])
    assert hist.percentile(25) == pytest.approx(992 + 15 * 0.25)
    assert hist.percentile(100) == 1007


@pytest.mark.parametrize("pct", [0, -1, 100.0001, math.nan])
def test_percentile_rejects_out_of_range(pct: float) -> None:
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        LogLinearHistogram.from_values([1]).percentile(pct)


def test_statistics_of_an_empty_histogram_are_errors() -> None:
    empty = LogLinearHistogram.empty()
    assert empty.total == 0
    for statistic in (lambda: empty.percentile(50), empty.mean, empty.min_bound, empty.max_bound):
        with pytest.raises(ValueError, match="empty histogram"):
            statistic()


# -- mean and bounds ----------------------------------------------------------------------


def test_mean_is_exact_in_the_exact_region() -> None:
    assert LogLinearHistogram.from_values([1, 2, 3, 10]).mean() == 4.0


@given(st.lists(latencies, min_size=1, max_size=200))
def test_mean_and_bounds_bracket_the_samples(values: list[int]) -> None:
    hist = LogLinearHistogram.from_values(values)
    true_mean = sum(values) / len(values)
    # Each sample moves to its bucket's midpoint: at most 1/64 of itself.
    assert abs(hist.mean() - true_mean) <= true_mean / 64 + 1e-9 * true_mean + 1e-9
    assert hist.min_bound() <= min(values)
    assert max(values) < hist.max_bound()
    assert bucket_index(hist.min_bound()) == bucket_index(min(values))
    assert bucket_index(hist.max_bound() - 1) == bucket_index(max(values))


# -- serialisation ------------------------------------------------------------------------


@given(histograms)
def test_dict_round_trip_is_exact(hist: LogLinearHistogram) -> None:
    data = hist.to_dict()
    assert LogLinearHistogram.from_dict(data) == hist
    assert LogLinearHistogram.from_dict(json.loads(json.dumps(data))) == hist
    keys = list(data["buckets"])
    assert keys == [str(k) for k in sorted(int(k) for k in keys)]
    assert 0 not in data["buckets"].values()


def test_to_dict_layout() -> None:
    hist = LogLinearHistogram.from_bpf_items([(100, 1), (9, 2), (64, 3)])
    assert hist.to_dict() == {
        "scheme": "loglinear-k5-ns",
        "slots": 1024,
        "buckets": {"9": 2, "64": 3, "100": 1},
    }
    assert list(hist.to_dict()["buckets"]) == ["9", "64", "100"]
    assert SCHEME == "loglinear-k5-ns"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"scheme": "log2-us", "slots": 1024, "buckets": {}}, "scheme is 'log2-us'"),
        ({"slots": 1024, "buckets": {}}, "scheme is None"),
        ({"scheme": SCHEME, "slots": 512, "buckets": {}}, "'slots' is 512"),
        ({"scheme": SCHEME, "slots": 1024, "buckets": [1, 2]}, "'buckets' must be an object"),
        ({"scheme": SCHEME, "slots": 1024, "buckets": {"1024": 1}}, "not a slot number"),
        ({"scheme": SCHEME, "slots": 1024, "buckets": {"-1": 1}}, "not a slot number"),
        ({"scheme": SCHEME, "slots": 1024, "buckets": {"07": 1}}, "not a slot number"),
        ({"scheme": SCHEME, "slots": 1024, "buckets": {"x": 1}}, "not a slot number"),
        ({"scheme": SCHEME, "slots": 1024, "buckets": {"7": -1}}, "must be >= 0"),
        ({"scheme": SCHEME, "slots": 1024, "buckets": {"7": 1.5}}, "must be an integer"),
        ({"scheme": SCHEME, "slots": 1024, "buckets": {"7": True}}, "must be an integer"),
        ([], "must be an object"),
    ],
)
def test_from_dict_rejects_malformed_data(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        LogLinearHistogram.from_dict(data)  # type: ignore[arg-type]


# -- fio json+ bins -----------------------------------------------------------------------
# fio's percentile buckets, written out here from fio's stat.c description
# (plat_val_to_idx / plat_idx_to_val): exact below 2 * 64, then 64 sub-buckets per
# power of two, 29 groups, the last bucket clamped.

FIO_PLAT_BITS = 6
FIO_PLAT_VAL = 1 << FIO_PLAT_BITS
FIO_PLAT_NR = 29 * FIO_PLAT_VAL


def fio_index(value: int) -> int:
    msb = value.bit_length() - 1 if value else 0
    if msb <= FIO_PLAT_BITS:
        return value
    error_bits = msb - FIO_PLAT_BITS
    index = ((error_bits + 1) << FIO_PLAT_BITS) + ((value >> error_bits) & (FIO_PLAT_VAL - 1))
    return min(index, FIO_PLAT_NR - 1)


def fio_bucket(index: int) -> tuple[int, int]:
    """Half-open ns range of fio bucket ``index`` (nominal, for the clamped last one)."""
    if index < 2 * FIO_PLAT_VAL:
        return index, index + 1
    error_bits = (index >> FIO_PLAT_BITS) - 1
    lower = (1 << (error_bits + FIO_PLAT_BITS)) + ((index % FIO_PLAT_VAL) << error_bits)
    return lower, lower + (1 << error_bits)


def fio_reported_value(index: int) -> int:
    """The bin key fio prints: the bucket's mean, base + (k + 0.5) * 2**error_bits."""
    lower, upper = fio_bucket(index)
    return lower if upper - lower == 1 else lower + (upper - lower) // 2


def fio_bins_of(values: Sequence[int]) -> dict[str, int]:
    per_index = Counter(fio_index(v) for v in values)
    return {str(fio_reported_value(i)): n for i, n in sorted(per_index.items())}


def test_fio_model_is_self_consistent() -> None:
    assert fio_reported_value(2 * FIO_PLAT_VAL) == 129  # 128 + 0.5 * 2
    assert fio_bucket(FIO_PLAT_NR - 1)[1] == 2**34
    previous_upper = 0
    for index in range(FIO_PLAT_NR):
        lower, upper = fio_bucket(index)
        assert lower == previous_upper
        assert fio_index(lower) == fio_index(upper - 1) == index
        assert fio_index(fio_reported_value(index)) == index
        previous_upper = upper


def test_every_fio_bucket_lies_inside_one_of_ours() -> None:
    for index in range(FIO_PLAT_NR):
        lower, upper = fio_bucket(index)
        slot = bucket_index(fio_reported_value(index))
        # Our buckets are intervals, so both ends in one slot means all values are.
        assert bucket_index(lower) == bucket_index(upper - 1) == slot


@given(st.lists(st.integers(0, 2**34 - 1), max_size=200))
def test_fio_bins_convert_exactly(values: list[int]) -> None:
    assert LogLinearHistogram.from_fio_bins(fio_bins_of(values)) == (
        LogLinearHistogram.from_values(values)
    )


def test_fio_bins_example() -> None:
    bins = {"5": 2, "129": 3, "1012": 1}  # 1012 is fio's value of [1008, 1016)
    hist = LogLinearHistogram.from_fio_bins(bins)
    assert hist.nonzero_slots() == [(5, 2), (bucket_index(128), 3), (bucket_index(1008), 1)]


@pytest.mark.parametrize("key", ["12.5", "-3", "abc", "", " 7", "١٢"])
def test_fio_bins_reject_keys_that_are_not_ns_values(key: str) -> None:
    with pytest.raises(ValueError, match="fio latency bin key"):
        LogLinearHistogram.from_fio_bins({key: 1})


# -- log2 view ----------------------------------------------------------------------------

ROW = re.compile(r"(\d+) -> (\d+)\s+: (\d+)\s+\|(\**)\s*\|")


def parse_rows(text: str) -> list[tuple[int, int, int]]:
    return [(int(lo), int(hi), int(n)) for lo, hi, n, _ in ROW.findall(text)]


def test_log2_view_nsecs_text() -> None:
    hist = LogLinearHistogram.from_values([0, 1, 5, 5, 100, 100, 100, 1500])
    assert hist.log2_view("nsecs") == "\n".join(
        [
            "     nsecs               : count     distribution",
            "         0 -> 1          : 2        |**************************              |",
            "         2 -> 3          : 0        |                                        |",
            "         4 -> 7          : 2        |**************************              |",
            "         8 -> 15         : 0        |                                        |",
            "        16 -> 31         : 0        |                                        |",
            "        32 -> 63         : 0        |                                        |",
            "        64 -> 127        : 3        |****************************************|",
            "       128 -> 255        : 0        |                                        |",
            "       256 -> 511        : 0        |                                        |",
            "       512 -> 1023       : 0        |                                        |",
            "      1024 -> 2047       : 1        |*************                           |",
        ]
    )


def test_log2_view_usecs_text_with_label() -> None:
    hist = LogLinearHistogram.from_values([3_000, 3_500, 70_000])
    assert hist.log2_view(label="block.latency.read") == "\n".join(
        [
            "block.latency.read",
            "     usecs               : count     distribution",
            "         2 -> 3          : 2        |****************************************|",
            "         4 -> 7          : 0        |                                        |",
            "         8 -> 15         : 0        |                                        |",
            "        16 -> 31         : 0        |                                        |",
            "        32 -> 63         : 0        |                                        |",
            "        64 -> 127        : 1        |********************                    |",
        ]
    )


def test_log2_view_msecs_text() -> None:
    hist = LogLinearHistogram.from_values([1_500_000] * 3 + [12_000_000])
    assert hist.log2_view("msecs") == "\n".join(
        [
            "     msecs               : count     distribution",
            "         0 -> 1          : 3        |****************************************|",
            "         2 -> 3          : 0        |                                        |",
            "         4 -> 7          : 0        |                                        |",
            "         8 -> 15         : 1        |*************                           |",
        ]
    )


def test_log2_view_places_a_bucket_straddling_a_row_edge_by_its_midpoint() -> None:
    # Slot [1998848, 2031616) ns straddles 2 ms; its midpoint, 2.015 ms, is in row 2 -> 3.
    assert bucket_bounds(bucket_index(2_000_000)) == (1_998_848, 2_031_616)
    for value in (2_000_000, 1_999_000):
        rows = parse_rows(LogLinearHistogram.from_values([value]).log2_view("msecs"))
        assert rows == [(2, 3, 1)]


def test_log2_view_switches_to_wide_rows_like_bcc() -> None:
    hist = LogLinearHistogram.from_values([2**35, 2**35 + 5])
    assert hist.log2_view("nsecs") == "\n".join(
        [
            "               nsecs                         : count     distribution",
            "         34359738368 -> 68719476735          : 2        |********************|",
        ]
    )


def test_log2_view_of_an_empty_histogram_says_so() -> None:
    assert "(no samples)" in LogLinearHistogram.empty().log2_view()


def test_log2_view_rejects_unknown_units() -> None:
    with pytest.raises(ValueError, match="nsecs, usecs, msecs"):
        LogLinearHistogram.from_values([1]).log2_view("seconds")


@settings(max_examples=50)
@given(st.lists(latencies, min_size=1, max_size=200), st.sampled_from(["nsecs", "usecs", "msecs"]))
def test_log2_view_rows_add_up_to_total(values: list[int], unit: str) -> None:
    hist = LogLinearHistogram.from_values(values)
    rows = parse_rows(hist.log2_view(unit))
    assert sum(n for _, _, n in rows) == hist.total == len(values)
    assert rows[0][2] > 0 and rows[-1][2] > 0
    assert all(next_lo == hi + 1 for (_, hi, _), (next_lo, _, _) in itertools.pairwise(rows))


@settings(max_examples=50)
@given(st.lists(latencies, min_size=1, max_size=200))
def test_log2_view_in_nsecs_is_exact(values: list[int]) -> None:
    rows = parse_rows(LogLinearHistogram.from_values(values).log2_view("nsecs"))
    for lower, upper, count in rows:
        assert count == sum(1 for v in values if lower <= v <= upper)


# -- side by side -------------------------------------------------------------------------


def test_side_by_side_shares_the_row_range() -> None:
    baseline = LogLinearHistogram.from_values([3_000] * 4 + [5_000])
    current = LogLinearHistogram.from_values([20_000] * 2)
    text = side_by_side(baseline, current, "baseline", "current")
    lines = text.splitlines()
    assert lines[0].startswith("baseline") and lines[0].endswith("current")
    assert lines[1].count("usecs") == 2
    row_lines = lines[2:]
    assert len(row_lines) == 4  # 2 -> 3 up to 16 -> 31, on both sides
    for line in row_lines:
        (left_lo, left_hi, _, _), (right_lo, right_hi, _, _) = ROW.findall(line)
        assert (left_lo, left_hi) == (right_lo, right_hi)
    left_counts = [int(ROW.findall(line)[0][2]) for line in row_lines]
    right_counts = [int(ROW.findall(line)[1][2]) for line in row_lines]
    assert left_counts == [4, 1, 0, 0]
    assert right_counts == [0, 0, 0, 2]
    assert all(len(line) <= 120 for line in lines)


def test_side_by_side_text() -> None:
    left = LogLinearHistogram.from_values([1, 1])
    right = LogLinearHistogram.from_values([2])
    header = "     nsecs               : count     distribution"
    left_rows = [
        "         0 -> 1          : 2        |********************|",
        "         2 -> 3          : 0        |                    |",
    ]
    right_rows = [
        "         0 -> 1          : 0        |                    |",
        "         2 -> 3          : 1        |********************|",
    ]
    width = len(left_rows[0])  # 58: each side is a log2 view with 20-star bars
    gap = "   "
    expected = [f"{'before':<{width}}{gap}after", f"{header:<{width}}{gap}{header}"]
    expected += [f"{lhs}{gap}{rhs}" for lhs, rhs in zip(left_rows, right_rows, strict=True)]
    assert side_by_side(left, right, "before", "after", unit="nsecs") == "\n".join(expected)


def test_side_by_side_with_an_empty_side() -> None:
    text = side_by_side(LogLinearHistogram.empty(), LogLinearHistogram.from_values([7]), "a", "b")
    rows = [ROW.findall(line) for line in text.splitlines()[2:]]
    assert [(r[0][2], r[1][2]) for r in rows] == [("0", "1")]
    both_empty = side_by_side(LogLinearHistogram.empty(), LogLinearHistogram.empty(), "a", "b")
    assert both_empty.count("(no samples)") == 2
