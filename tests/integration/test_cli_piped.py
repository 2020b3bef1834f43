"""CLI output read by another program: names stay whole when stdout is a pipe, every
listing command has ``--json``, and a reader that stops early ends the command quietly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from perfcheck import cli
from tests.records import write_run

ROOT = Path(__file__).resolve().parents[2]


def piped(*args: str) -> subprocess.CompletedProcess[str]:
    """``perfcheck ARGS`` with stdout a pipe, as under ``| grep``."""
    return subprocess.run(
        [sys.executable, "-m", "perfcheck", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "80"},
    )


def test_probes_piped_to_grep_finds_every_probe_name_whole() -> None:
    """``perfcheck probes | grep block.queue_latency`` found nothing: the 80-column table
    split the name into ``block.queue_la`` / ``tency``."""
    names = [row["name"] for row in json.loads(piped("probes", "--json").stdout)]
    assert "block.queue_latency" in names
    out = piped("probes").stdout
    for name in names:
        assert f"│ {name} " in out, f"{name} is not whole in piped output"
    for row in json.loads(piped("probes", "--json").stdout):
        for event in row["events"]:
            assert event.split(":")[-1] in out


def test_doctor_piped_keeps_check_names_and_details_whole() -> None:
    document = json.loads(piped("doctor", "--json").stdout)
    out = piped("doctor").stdout
    for check in document["checks"]:
        line = next((line for line in out.splitlines() if f"│ {check['name']} " in line), None)
        assert line is not None, f"check {check['name']} is not whole in piped output"
        assert check["detail"].splitlines()[0] in line


def test_show_has_json_with_whole_series_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_run(tmp_path / "r.json", 1.0, seed=1)
    assert cli.main(["show", "--json", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    scenario = document["scenarios"]["randread-4k"]
    assert document["kind"] == "perfcheck-results" and scenario["status"] == "RECORDED"
    merged = scenario["merged_ns"]["block.latency.read"]
    assert merged["count"] == 2000 and 0 < merged["p50"] <= merged["p99"]
    assert [r["round"] for r in scenario["rounds"]] == [1, 2, 3, 4, 5]
    assert "fio.iops.read" in scenario["rounds"][0]["scalars"]


@pytest.mark.parametrize("command", ["probes", "probes --json", "doctor"])
def test_a_reader_that_stops_early_gets_no_traceback(command: str) -> None:
    proc = subprocess.run(
        f"{sys.executable} -m perfcheck {command} | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
