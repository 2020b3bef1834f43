"""The toggling overhead benchmark's arithmetic: ABBA blocks and the median's interval."""

from __future__ import annotations

import pytest

from bench.toggle import Result, abba_ratios


def test_each_abba_block_gives_attached_over_detached() -> None:
    rates = [(False, 100.0), (True, 90.0), (True, 94.0), (False, 104.0)]
    assert abba_ratios(rates) == pytest.approx([184.0 / 204.0])
    # A block is whole or dropped; drift within a block cancels out in ABBA order.
    drifting = [(False, 100.0), (True, 110.0), (True, 120.0), (False, 130.0), (False, 1.0)]
    assert abba_ratios(drifting) == pytest.approx([1.0])
    assert abba_ratios([]) == []


def test_the_interval_holds_the_median_and_narrows_with_more_blocks() -> None:
    few = Result("c", "qd1", [0.96, 0.98, 0.97, 1.0, 0.95, 0.99, 0.97], 1.0)
    low, high = few.interval()
    assert low <= few.median() <= high
    many = Result("c", "qd1", few.blocks * 20, 1.0)
    low_many, high_many = many.interval()
    assert high_many - low_many < high - low
