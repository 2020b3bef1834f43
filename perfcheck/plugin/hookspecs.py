"""Hooks perfcheck adds to pytest."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from perfcheck.run.harness import Harness


@pytest.hookspec
def pytest_perfcheck_harness(config: pytest.Config, harness: Harness) -> None:
    """Called once the run's :class:`~perfcheck.run.harness.Harness` exists, before any
    measurement. A conftest may replace its ``probe_factory``, ``target_factory`` or
    ``workload_factory``, for example with fakes in fast tests of a plugin built on
    perfcheck: ``perfcheck.run.fake.use_fakes(harness, lambda rnd, i: 10_000)``
    replaces all three."""
