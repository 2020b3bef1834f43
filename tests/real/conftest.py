"""Fixtures the real tests share."""

from __future__ import annotations

import pytest

from perfcheck.system.kernel_config import scratch_io_schedulers
from perfcheck.system.slowdowns import QueueSlowdown, choose_slowdown


@pytest.fixture
def slowdown() -> QueueSlowdown:
    """The real regression this kernel offers, chosen from what its queues list."""
    offered = choose_slowdown(scratch_io_schedulers())
    if offered is None:
        pytest.skip("no blk-mq loop device here: no queue setting can slow one down")
    return offered
