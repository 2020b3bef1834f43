"""Results files: built from a run's outcomes, written atomically, validated on load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfcheck.errors import BaselineError
from perfcheck.model.histogram import LogLinearHistogram
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.model.outcome import Status
from perfcheck.report.results import (
    RESULTS_KIND,
    Results,
    ScenarioResult,
    comparison_from_json,
    comparison_to_json,
    load_results,
    percentile_properties,
    results_schema,
    summary_table,
    write_results,
)
from perfcheck.stats.gate import ScenarioOutcome, judge
from perfcheck.store.baseline import BaselineStore
from tests.records import make_baseline, make_measurement, make_results

# -- round trip ----------------------------------------------------------------------------


def test_written_results_load_back_equal(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    path = tmp_path / "out" / "results.json"
    write_results(path, results)
    loaded = load_results(path)
    assert loaded.to_dict() == results.to_dict()
    assert loaded.path == path
    assert loaded.source_kind == RESULTS_KIND
    assert {n: s.status for n, s in loaded.scenarios.items()} == {
        "slower": Status.FAIL,
        "same": Status.PASS,
        "recorded": Status.RECORDED,
        "missing": Status.NO_BASELINE,
    }
    slower = loaded.scenarios["slower"]
    assert slower.baseline is not None
    assert slower.baseline.path == tmp_path / "baselines" / "test-machine" / "slower.json"
    assert slower.comparisons == results.scenarios["slower"].comparisons
    assert loaded.scenarios["recorded"].baseline is None


def test_file_is_sorted_reviewable_json(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(path, make_results(tmp_path))
    text = path.read_text()
    data = json.loads(text)
    assert data["schema_version"] == 2
    assert data["kind"] == "perfcheck-results"
    assert list(data) == sorted(data)
    assert list(data["scenarios"]["slower"]) == sorted(data["scenarios"]["slower"])
    assert text.endswith("\n")
    assert not list(tmp_path.glob(".results.json.*"))  # no temporary file left behind


def test_infinite_change_is_stored_as_text_and_read_back(tmp_path: Path) -> None:
    zero = [LogLinearHistogram.from_values([0] * 50) for _ in range(5)]
    busy = [LogLinearHistogram.from_values([5_000] * 50) for _ in range(5)]

    def measurement(hists: list[LogLinearHistogram]) -> Measurement:
        rounds = [RoundResult(i, 1.0, {"block.latency.read": h}) for i, h in enumerate(hists)]
        return Measurement("zero", rounds)

    verdict = judge("zero", measurement(busy), make_baseline(measurement(zero)))
    [p50] = [c for c in verdict.comparisons if c.metric.endswith(".p50")]
    assert p50.change == math.inf
    outcome = ScenarioOutcome("zero", Status.FAIL, measurement(busy), verdict, None)
    path = tmp_path / "r.json"
    write_results(path, Results.from_outcomes([outcome], "m"))
    stored = json.loads(path.read_text())["scenarios"]["zero"]["comparisons"]
    assert {c["change"] for c in stored} == {"+inf"}
    loaded = load_results(path).scenarios["zero"].comparisons
    assert all(c.change == math.inf and c.worse_by == math.inf for c in loaded)


@given(
    base=st.lists(st.floats(0, 1e9), min_size=1, max_size=8),
    cur=st.lists(st.floats(0, 1e9), min_size=1, max_size=8),
    threshold=st.floats(0, 5),
)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_comparison_json_round_trip(base: list[float], cur: list[float], threshold: float) -> None:
    from perfcheck.stats.verdict import compare_metric, default_rule

    rule = default_rule("x.p99")
    comparison = compare_metric(
        "x.p99", base, cur, type(rule)(rule.direction, threshold), alpha=0.05
    )
    data = json.loads(json.dumps(comparison_to_json(comparison), allow_nan=False))
    assert comparison_from_json(data) == comparison


def test_scenario_checked_twice_keeps_its_last_outcome() -> None:
    first = ScenarioOutcome("a", Status.RECORDED, make_measurement("a", seed=1))
    second = ScenarioOutcome("a", Status.NO_BASELINE, make_measurement("a", seed=2))
    results = Results.from_outcomes([first, second], "m")
    assert results.scenarios["a"].status is Status.NO_BASELINE


def test_a_baseline_file_reads_as_one_recorded_scenario(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.queue(make_baseline(make_measurement("seqread-1m")))
    [path] = store.flush()
    results = load_results(path)
    assert results.source_kind == "perfcheck-baseline"
    assert list(results.scenarios) == ["seqread-1m"]
    scenario = results.scenarios["seqread-1m"]
    assert scenario.status is Status.RECORDED
    assert scenario.baseline_path == path
    assert len(scenario.measurement.rounds) == 5


def test_thresholds_used_by_a_run_are_kept(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    assert results.thresholds["block.latency.read.p99"] == 0.20
    assert results.thresholds["fio.iops.read"] == 0.10


# -- bad files: one line naming the file ---------------------------------------------------


def _valid_document(tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "valid.json"
    write_results(path, make_results(tmp_path))
    data: dict[str, object] = json.loads(path.read_text())
    return data


def _corrupt(data: dict[str, object], change: str) -> str:
    scenarios = data["scenarios"]
    assert isinstance(scenarios, dict)
    if change == "version":
        data["schema_version"] = 3
        return json.dumps(data)
    if change == "kind":
        data["kind"] = "something-else"
        return json.dumps(data)
    if change == "status":
        scenarios["same"]["status"] = "MAYBE"
        return json.dumps(data)
    if change == "change-text":
        scenarios["slower"]["comparisons"][0]["change"] = "lots"
        return json.dumps(data)
    if change == "name-mismatch":
        scenarios["same"]["name"] = "other"
        scenarios["same"]["measurement"]["scenario"] = "other"
        return json.dumps(data)
    if change == "measurement-mismatch":
        scenarios["same"]["name"] = "other"
        return json.dumps(data)
    if change == "nan":
        return json.dumps(data).replace('"alpha": 0.01', '"alpha": NaN', 1)
    if change == "duplicate-key":
        return json.dumps(data).replace('"update": false', '"update": false, "update": true', 1)
    if change == "negative-iops":
        scenarios["same"]["measurement"]["rounds"][0]["scalars"]["fio.iops.read"] = -1e308
        return json.dumps(data)
    if change == "truncated":
        return json.dumps(data)[:500]
    if change == "not-json":
        return "results: yes\n"
    if change == "array":
        return "[]"
    raise AssertionError(change)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("version", "schema_version 3"),
        ("kind", "neither a perfcheck results file nor a baseline"),
        ("status", "scenarios/same/status"),
        ("change-text", "comparisons/0/change"),
        ("name-mismatch", "named 'other' inside"),
        ("measurement-mismatch", "holds a measurement of 'same'"),
        ("nan", "NaN"),
        ("duplicate-key", "'update' appears twice"),
        ("negative-iops", "rounds/0/scalars/fio.iops.read: -1e+308 is less than the minimum of 0"),
        ("truncated", "truncated"),
        ("not-json", "not valid JSON"),
        ("array", "not a perfcheck results file"),
    ],
)
def test_bad_file_is_one_line_naming_it(tmp_path: Path, change: str, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(_corrupt(_valid_document(tmp_path), change))
    with pytest.raises(BaselineError) as info:
        load_results(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for path, expected in (
        (tmp_path / "none.json", "no such results or baseline file"),
        (tmp_path, "directory"),
    ):
        with pytest.raises(BaselineError, match=expected):
            load_results(path)


def test_unstorable_value_is_refused_and_nothing_written(tmp_path: Path) -> None:
    measurement = make_measurement("nan")
    measurement.rounds[0].scalars["fio.iops.read"] = math.nan
    results = Results.from_outcomes([ScenarioOutcome("nan", Status.RECORDED, measurement)], "m")
    path = tmp_path / "r.json"
    with pytest.raises(BaselineError, match="cannot be stored as JSON"):
        write_results(path, results)
    assert list(tmp_path.iterdir()) == []


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(results_schema())


# -- derived views -------------------------------------------------------------------------


def test_percentile_properties_are_whole_nanoseconds_per_series() -> None:
    measurement = make_measurement(samples=100)
    properties = dict(percentile_properties(measurement))
    assert properties["perfcheck.merged.block.latency.read.count"] == "500"
    merged = measurement.merged_histograms()["block.latency.read"]
    assert float(properties["perfcheck.merged.block.latency.read.p99_ns"]) == pytest.approx(
        merged.percentile(99), abs=0.5
    )
    assert {name.rsplit(".", 1)[-1] for name in properties} == {
        "count",
        "p50_ns",
        "p90_ns",
        "p99_ns",
        "p99_9_ns",
    }


def test_summary_table_lines_up_and_names_the_worst_metric(tmp_path: Path) -> None:
    results = make_results(tmp_path)
    lines = summary_table(results.scenarios.values())
    header, *rows = lines
    assert header[0] is None
    assert header[1].split() == ["scenario", "verdict", "worst", "metric", "change", "p-value"]
    by_name = {text.split()[0]: (status, text) for status, text in rows}
    status, slower = by_name["slower"]
    assert status is Status.FAIL
    worst = results.scenarios["slower"].worst
    assert worst is not None and worst.metric in slower and "+" in slower
    assert by_name["recorded"][1].split()[1:] == ["RECORDED", "-", "-", "-"]
    assert by_name["missing"][1].split()[1:3] == ["NO", "BASELINE"]
    # Columns line up: every row's verdict starts where the header's does.
    column = header[1].index("verdict")
    assert all(text[column - 2 : column] == "  " and text[column] != " " for _, text in rows)


def test_most_moved_is_the_worst_for_a_pass(tmp_path: Path) -> None:
    result: ScenarioResult = make_results(tmp_path).scenarios["same"]
    assert result.worst is None
    moved = result.most_moved()
    assert moved is not None
    assert moved.worse_by == max(c.worse_by for c in result.comparisons)
