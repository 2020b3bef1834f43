"""``perfcheck compare``, ``show``, ``report`` and ``refresh``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from perfcheck import cli
from perfcheck.cli.results import (
    describe_refresh,
    refresh_command,
    scenario_thresholds,
    snapshot_baselines,
)
from perfcheck.model.control import ControlMeasurement
from perfcheck.model.outcome import Status
from perfcheck.report.results import Results, write_results
from perfcheck.stats.gate import ScenarioOutcome
from tests.fakeproject import FAKE_CONFTEST, SCENARIO
from tests.records import make_baseline, make_measurement, make_results, write_baseline, write_run


def control(scale: float) -> ControlMeasurement:
    """A drift control whose passes took ``scale`` x a steady reference (8 rounds a CPU)."""
    values = [1000.0 + 3 * i for i in range(8)]
    return ControlMeasurement({cpu: [v * scale for v in values] for cpu in (0, 1)})


def one_error_line(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert str(path) in lines[0]
    return lines[0]


# -- compare -------------------------------------------------------------------------------


def test_compare_fails_on_a_regression(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = write_run(tmp_path / "before.json", 1.0, seed=1)
    after = write_run(tmp_path / "after.json", 1.5, seed=2)
    assert cli.main(["compare", str(before), str(after)]) == 1
    out = capsys.readouterr().out
    assert "block.latency.read.p99" in out
    assert "fio.iops.read" in out
    row = next(line for line in out.splitlines() if "block.latency.read.p50" in line)
    assert "FAIL" in row and "+10%" in row and "+" in row
    assert "randread-4k: FAIL" in out


def test_compare_downgrades_a_fail_when_the_machine_drifted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = write_run(tmp_path / "before.json", 1.0, seed=1, control=control(1.0))
    slower_machine = write_run(tmp_path / "after.json", 1.5, seed=2, control=control(1.4))
    assert cli.main(["compare", str(before), str(slower_machine)]) == 0
    out = capsys.readouterr().out
    assert "randread-4k: INCONCLUSIVE" in out
    assert "drift control: machine is 40% slower" in out

    assert cli.main(["compare", "--json", str(before), str(slower_machine)]) == 0
    document = json.loads(capsys.readouterr().out)
    drift = document["scenarios"]["randread-4k"]["decision"]["drift"]
    assert drift["drifted"] is True and abs(drift["slowdown"] - 0.4) < 1e-9

    # The same machine speed: the regression stands.
    steady = write_run(tmp_path / "steady.json", 1.5, seed=2, control=control(1.0))
    assert cli.main(["compare", str(before), str(steady)]) == 1
    out = capsys.readouterr().out
    assert "randread-4k: FAIL" in out
    assert "drift control: the machine's speed held" in out

    # The control survives the file round trip; a file without one compares as before.
    loaded = Results.from_dict(json.loads(slower_machine.read_text())).control
    assert loaded is not None and loaded.rounds == control(1.4).rounds
    plain = write_run(tmp_path / "plain.json", 1.5, seed=2)
    assert cli.main(["compare", str(before), str(plain)]) == 1
    assert "drift control" not in capsys.readouterr().out


def side_file(tmp_path: Path, kind: str, scale: float, seed: int) -> Path:
    """A results (``run``) or ``baseline`` file of randread-4k at ``scale`` x the latency."""
    if kind == "baseline":
        return write_baseline(tmp_path / f"baselines-{seed}", scale, seed=seed)
    return write_run(tmp_path / f"run-{seed}.json", scale, seed=seed)


@pytest.mark.parametrize(
    ("before", "after", "status"),
    [
        (("run", 1.0, 1), ("run", 1.0, 2), 0),  # no change
        (("run", 1.0, 1), ("run", 0.6, 3), 0),  # an improvement is no failure either
        # Baseline files on either side.
        (("baseline", 1.0, 1), ("run", 1.5, 2), 1),
        (("run", 1.5, 2), ("baseline", 1.0, 1), 0),  # the other way is faster
        (("baseline", 1.0, 1), ("baseline", 1.5, 3), 1),
    ],
)
def test_compare_exits_1_on_a_fail_only(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    before: tuple[str, float, int],
    after: tuple[str, float, int],
    status: int,
) -> None:
    left, right = side_file(tmp_path, *before), side_file(tmp_path, *after)
    assert cli.main(["compare", str(left), str(right)]) == status
    assert f"randread-4k: {'FAIL' if status else 'PASS'}" in capsys.readouterr().out


def test_compare_two_single_baselines_of_different_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = write_baseline(tmp_path / "a", 1.0, seed=1, name="old-name")
    after = write_baseline(tmp_path / "b", 1.0, seed=2, name="new-name")
    assert cli.main(["compare", str(before), str(after)]) == 0
    assert "new-name: PASS" in capsys.readouterr().out


def test_compare_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = write_run(tmp_path / "before.json", 1.0, seed=1)
    after = write_run(tmp_path / "after.json", 1.5, seed=2)
    assert cli.main(["compare", "--json", str(before), str(after)]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["verdict"] == "FAIL"
    scenario = document["scenarios"]["randread-4k"]
    assert scenario["verdict"] == "FAIL"
    by_metric = {c["metric"]: c for c in scenario["comparisons"]}
    p50 = by_metric["block.latency.read.p50"]
    assert p50["verdict"] == "FAIL"
    assert p50["change"] == pytest.approx(0.5, abs=0.1)
    assert p50["threshold"] == 0.10
    assert 0 < p50["p_value"] < 0.01
    assert document["only_before"] == document["only_after"] == []


def test_compare_uses_the_thresholds_the_run_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A scenario whose own thresholds tolerate +80%: its results file says so.
    outcome = ScenarioOutcome("randread-4k", Status.RECORDED, make_measurement(scale=1.5, seed=2))
    loose = Results.from_outcomes([outcome], "m")
    from perfcheck.stats.gate import judge

    verdict = judge(
        "randread-4k",
        outcome.measurement,
        make_baseline(make_measurement(seed=1)),
        lambda metric: 0.8,
    )
    loose.scenarios["randread-4k"].comparisons = list(verdict.comparisons)
    after = tmp_path / "after.json"
    write_results(after, loose)
    before = write_run(tmp_path / "before.json", 1.0, seed=1)
    assert cli.main(["compare", str(before), str(after)]) == 0
    assert "+80%" in capsys.readouterr().out


def test_compare_scenario_filter_and_missing_scenarios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = tmp_path / "before.json"
    write_results(before, make_results(tmp_path))
    after = tmp_path / "after.json"
    write_results(after, make_results(tmp_path))
    assert cli.main(["compare", "--scenario", "same", str(before), str(after)]) == 0
    out = capsys.readouterr().out
    assert "same: PASS" in out and "slower" not in out

    assert cli.main(["compare", "--scenario", "nope", str(before), str(after)]) == 2
    assert "no scenario nope" in one_error_line(capsys, before)

    lonely = write_run(tmp_path / "lonely.json", 1.0, seed=1, name="lonely")
    assert cli.main(["compare", str(before), str(lonely)]) == 2
    assert "no scenario in common" in one_error_line(capsys, before)


def test_compare_names_scenarios_found_on_one_side_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    both = tmp_path / "both.json"
    write_results(both, make_results(tmp_path))
    single = write_run(tmp_path / "single.json", 1.0, seed=1, name="same")
    assert cli.main(["compare", str(both), str(single)]) == 0
    out = capsys.readouterr().out
    assert "only in BEFORE (not compared): missing, recorded, slower" in out


@pytest.mark.parametrize(
    "content",
    [
        '{"kind": "perfcheck-results", "schema_version": 9}',
        '{"kind": "perfcheck-results", "schema_version": 1',
        "not json",
        '{"kind": "perfcheck-baseline", "schema_version": 1}',
        '{"kind": "spreadsheet"}',
    ],
)
@pytest.mark.parametrize("side", ["before", "after"])
def test_compare_bad_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, side: str
) -> None:
    good = write_run(tmp_path / "good.json", 1.0, seed=1)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    args = [str(bad), str(good)] if side == "before" else [str(good), str(bad)]
    assert cli.main(["compare", *args]) == 2
    one_error_line(capsys, bad)


def test_compare_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_run(tmp_path / "good.json", 1.0, seed=1)
    assert cli.main(["compare", str(good), str(tmp_path / "none.json")]) == 2
    assert "no such results or baseline file" in one_error_line(capsys, tmp_path / "none.json")


@pytest.mark.parametrize("command", ["compare-before", "compare-after", "show", "report"])
def test_a_fifo_is_refused_not_waited_on(tmp_path: Path, command: str) -> None:
    """Opening a FIFO waits for a writer: the command hung (in a run, with the host lock)."""
    good = write_run(tmp_path / "good.json", 1.0, seed=1)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    args = {
        "compare-before": ["compare", str(fifo), str(good)],
        "compare-after": ["compare", str(good), str(fifo)],
        "show": ["show", str(fifo)],
        "report": ["report", str(fifo), "-o", str(tmp_path / "r.html")],
    }[command]
    proc = subprocess.run(
        [sys.executable, "-m", "perfcheck", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"perfcheck: {fifo}: is a FIFO, not a regular file; ")


def test_compare_bad_usage_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["compare", str(tmp_path / "only-one.json")])
    assert info.value.code == 2
    good = write_run(tmp_path / "good.json", 1.0, seed=1)
    assert cli.main(["compare", "--alpha", "3", str(good), str(good)]) == 2
    capsys.readouterr()


def test_compare_html_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = write_run(tmp_path / "before.json", 1.0, seed=1)
    after = write_run(tmp_path / "after.json", 1.5, seed=2)
    page = tmp_path / "cmp.html"
    assert cli.main(["compare", "--html", str(page), str(before), str(after)]) == 1
    text = page.read_text()
    assert "block.latency.read: latency histogram, baseline vs current" in text
    assert '<span class="pc-verdict fail">FAIL</span>' in text
    capsys.readouterr()


# -- show ----------------------------------------------------------------------------------


def test_show_percentiles_rounds_and_log2_views(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    write_results(path, make_results(tmp_path))
    assert cli.main(["show", str(path), "--scenario", "slower"]) == 0
    out = capsys.readouterr().out
    assert "slower: FAIL, 5 measured rounds" in out
    assert "missing" not in out
    for header in ("samples", "p50", "p90", "p99", "p99.9"):
        assert header in out
    rows = [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in out.splitlines()
        if "│" in line
    ]
    series_rows = [row for row in rows if "block.latency.read" in row]
    merged, *per_round = series_rows
    assert merged[:2] == ["block.latency.read", "2000"]  # 5 rounds x 400 samples
    assert [row[0] for row in per_round] == ["1", "2", "3", "4", "5"]
    assert all(row[2] == "400" for row in per_round)
    assert "fio.iops.read" in out
    assert out.count("usecs               : count     distribution") == 2
    assert "block.latency.read.p50:" in out and "FAIL" in out


def test_show_a_baseline_file_in_nanoseconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_baseline(tmp_path, 1.0, seed=1)
    assert cli.main(["show", "--unit", "nsecs", str(path)]) == 0
    out = capsys.readouterr().out
    assert "randread-4k: baseline recorded" in out
    assert "nsecs" in out


def test_show_bad_file_or_scenario_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert cli.main(["show", str(bad)]) == 2
    one_error_line(capsys, bad)
    good = write_run(tmp_path / "good.json", 1.0, seed=1)
    assert cli.main(["show", str(good), "--scenario", "x"]) == 2
    one_error_line(capsys, good)


# -- report --------------------------------------------------------------------------------


def test_report_writes_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.json"
    write_results(path, make_results(tmp_path))
    out = tmp_path / "html" / "report.html"
    assert cli.main(["report", str(path), "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    text = out.read_text()
    for name in ("slower", "same", "recorded", "missing"):
        assert f'id="scenario-{name}"' in text


def test_report_bad_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "perfcheck-results", "schema_version": 3}')
    out = tmp_path / "report.html"
    assert cli.main(["report", str(bad), "-o", str(out)]) == 2
    assert "schema_version 3" in one_error_line(capsys, bad)
    assert not out.exists()


# -- refresh -------------------------------------------------------------------------------


def test_refresh_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    save = tmp_path / "s.json"
    head = [sys.executable, "-m", "pytest", "--perfcheck", "--perfcheck-update"]
    assert refresh_command([], save) == [*head, "--perfcheck-save", str(save), "scenarios/"]
    assert refresh_command(["--", "-k", "rand"], save)[-3:] == ["-k", "rand", "scenarios/"]
    assert refresh_command(["mine", "-k", "x"], save)[-3:] == ["mine", "-k", "x"]
    assert refresh_command(["mine/test_a.py::test_b"], save)[-1] == "mine/test_a.py::test_b"
    own = refresh_command(["--perfcheck-save=keep.json", "mine"], save)
    assert str(save) not in own and "--perfcheck-save=keep.json" in own


def test_describe_refresh_shows_what_moved(tmp_path: Path) -> None:
    root = tmp_path / "baselines"
    old = write_baseline(root, 1.0, seed=1)
    untouched = write_baseline(root, 1.0, seed=1, name="untouched")
    before = snapshot_baselines(root)
    write_baseline(root, 1.5, seed=2)
    added = write_baseline(root, 1.0, seed=3, name="added")
    after = snapshot_baselines(root)
    lines = describe_refresh(before, after, root)
    text = "\n".join(lines)
    assert untouched.name not in text
    blocks: dict[str, list[str]] = {}
    for line in lines:
        if not line.startswith(" "):
            current = blocks.setdefault(line.split(":", 1)[0], [line])
        else:
            current.append(line)
    [changed] = [b for name, b in blocks.items() if name.endswith(old.name)]
    assert changed[0].endswith(", 5 -> 5 rounds")
    p99 = next(line for line in changed if "block.latency.read.p99" in line)
    assert "us ->" in p99 and "+" in p99 and p99.rstrip().endswith("FAIL")
    iops = next(line for line in changed if "fio.iops.read" in line)
    assert "IOPS ->" in iops and "-" in iops.split("->")[1]
    assert not any("p90" in line for line in lines)
    [new] = [b for name, b in blocks.items() if name.endswith(added.name)]
    assert new[0].endswith("new baseline, 5 rounds")
    assert any("block.latency.read.p50" in line and "us" in line for line in new)
    assert len(blocks) == 2
    assert describe_refresh(after, after, root) == [f"no baseline changed under {root}"]


def test_describe_refresh_judges_with_the_scenario_thresholds(tmp_path: Path) -> None:
    root = tmp_path / "baselines"
    write_baseline(root, 1.0, seed=1)
    before = snapshot_baselines(root)
    write_baseline(root, 1.5, seed=2)
    after = snapshot_baselines(root)

    def wide(metric: str) -> float | None:
        return 2.0 if metric.endswith(".p99") else None

    lines = describe_refresh(before, after, root, {"randread-4k": wide})
    p99 = next(line for line in lines if "block.latency.read.p99" in line)
    assert p99.rstrip().endswith("PASS")  # FAIL against the default +20% (previous test)
    other = describe_refresh(before, after, root, {"another-scenario": wide})
    assert next(line for line in other if "read.p99" in line).rstrip().endswith("FAIL")


def test_scenario_thresholds_come_from_the_named_scenario_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "reads.fio").write_text("[reads]\nrw=randread\nbs=4k\n")
    (scenarios / "reads.toml").write_text(
        'probes = ["block.latency"]\n[workload]\nkind = "fio"\njob = "reads.fio"\n'
        '[thresholds]\n"*.p99" = 0.5\n'
    )
    (scenarios / "broken.toml").write_text("probes = [\n")
    (tmp_path / "pyproject.toml").write_text("[tool.x]\n")  # not in scenarios/: not read
    for args in (
        [str(scenarios)],
        [str(tmp_path)],
        [str(scenarios / "reads.toml"), "-k", "reads"],
    ):
        found = scenario_thresholds(["--perfcheck", *args])
        assert list(found) == ["reads"]
        assert found["reads"]("block.latency.read.p99") == 0.5
        assert found["reads"]("fio.iops.read") is None
    assert scenario_thresholds(["-k", "reads", str(tmp_path / "absent")]) == {}


def test_refresh_end_to_end(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Runs pytest for real (fake probes): record, then a slower refresh shows what moved."""
    pytester.makeconftest(FAKE_CONFTEST)
    scenarios = pytester.mkdir("scenarios")
    (scenarios / "reads.fio").write_text("[reads]\nrw=randread\nbs=4k\n")
    (scenarios / "fake-reads.toml").write_text(SCENARIO)
    monkeypatch.setenv("PERFCHECK_MACHINE_CLASS", "fake-machine")

    assert cli.main(["refresh", "--", "-p", "no:cacheprovider"]) == 0
    out = capfd.readouterr().out
    assert "fake-reads.json: new baseline, 5 rounds" in out
    path = pytester.path / "baselines" / "fake-machine" / "fake-reads.json"
    assert path.is_file()

    monkeypatch.setenv("FAKE_SLOWDOWN", "1.5")
    assert cli.main(["refresh", "--", "-p", "no:cacheprovider"]) == 0
    out = capfd.readouterr().out
    moved = out.split("what moved", 1)[1]
    p50 = next(line for line in moved.splitlines() if "block.latency.read.p50" in line)
    change = float(p50.split("%")[0].split()[-1])
    assert math.isclose(change, 50.0, abs_tol=8.0)

    # A failing pytest run: its exit code is refresh's.
    (scenarios / "broken.toml").write_text("nonsense = [")
    assert cli.main(["refresh", "--", "-p", "no:cacheprovider"]) == 1
    capfd.readouterr()
