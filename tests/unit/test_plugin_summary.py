"""The plugin's run object exists only with --perfcheck; its summary is a pure function."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfcheck.model.outcome import Status
from perfcheck.plugin import RUN_PLUGIN_NAME, summary_lines
from perfcheck.run.harness import Harness
from perfcheck.run.settings import HarnessSettings
from perfcheck.stats.gate import ScenarioOutcome
from tests.records import make_measurement


@pytest.mark.parametrize(("args", "registered"), [((), False), (("--perfcheck",), True)])
def test_the_run_plugin_is_registered_only_with_perfcheck(
    pytester: pytest.Pytester, args: tuple[str, ...], registered: bool
) -> None:
    config = pytester.parseconfigure(*args)
    assert (config.pluginmanager.get_plugin(RUN_PLUGIN_NAME) is not None) is registered


def test_summary_lines_count_the_outcomes_and_say_what_to_do(tmp_path: Path) -> None:
    harness = Harness(HarnessSettings(baseline_dir=tmp_path, machine_class="test-machine"))
    harness.outcomes = [
        ScenarioOutcome("fast", Status.PASS, make_measurement("fast")),
        ScenarioOutcome("new", Status.NO_BASELINE, make_measurement("new")),
    ]
    lines = summary_lines(harness)
    assert lines[0] == "perfcheck: 2 measured on test-machine: 1 NO BASELINE, 1 PASS"
    assert lines[1:] == [
        "perfcheck: no baseline for new: record with --perfcheck-update (see the skip reasons, -rs)"
    ]
    assert summary_lines(harness) == lines  # reading the run changes nothing
