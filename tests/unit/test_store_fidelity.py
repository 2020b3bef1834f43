"""What reaches the results store: every session a recording measured, and the same rows
from a direct run as from an upload of that run's results file (fake probe backend)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from perfcheck.cli import main
from tests.fakeproject import run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

_TABLES = ("perfcheck_sessions", "perfcheck_labels", "perfcheck_metrics", "perfcheck_histograms")


def rows(store: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the store's session tables, in a fixed order; ``stored_at`` left out
    (the time of the append, which differs by nature)."""
    db = sqlite3.connect(store)
    db.row_factory = sqlite3.Row
    try:
        found = {}
        for table in _TABLES:
            listed = [dict(r) for r in db.execute(f"SELECT * FROM {table}")]
            for row in listed:
                row.pop("stored_at", None)
            found[table] = sorted(listed, key=lambda r: json.dumps(r, sort_keys=True))
        return found
    finally:
        db.close()


def git_checkout(directory: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "x")
    return git("rev-parse", "HEAD")


def test_an_update_run_stores_every_session_it_measured(project: pytest.Pytester) -> None:
    store = project.path / "runs.sqlite"
    saved = project.path / "recorded.json"
    result = run(
        project,
        "--perfcheck-update",
        "--perfcheck-baseline-sessions=3",
        f"--perfcheck-store={store}",
        f"--perfcheck-save={saved}",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"perfcheck: 3 session(s) appended to {store}*"])
    db = sqlite3.connect(store)
    stored = db.execute("SELECT session_id, status, source, decision FROM perfcheck_sessions")
    found = stored.fetchall()
    rounds = db.execute("SELECT count(DISTINCT round_values) FROM perfcheck_metrics").fetchone()
    db.close()
    assert len({sid for sid, _, _, _ in found}) == 3
    assert {(status, source) for _, status, source, _ in found} == {("RECORDED", "run")}
    # How each was used: one of the three became the baseline.
    uses = sorted(
        (json.loads(d)["recording"]["session"], json.loads(d)["recording"]["baseline"])
        for _, _, _, d in found
    )
    assert [n for n, _ in uses] == [1, 2, 3]
    assert sum(1 for _, chosen in uses if chosen) == 1
    assert rounds[0] > 3  # three sessions' own round values, not one copied
    # The results file holds all three: uploading it adds none.
    assert main(["upload", str(saved), "--store", str(store)]) == 0
    assert len(rows(store)["perfcheck_sessions"]) == 3


def test_an_uploaded_results_file_stores_the_rows_its_run_stored(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commit = git_checkout(project.path)
    monkeypatch.setenv("PERFCHECK_LABELS", "branch=main")
    direct = project.path / "direct.sqlite"
    saved = project.path / "run.json"
    run(project, "--perfcheck-update").assert_outcomes(passed=1)
    result = run(
        project,
        "--perfcheck",
        "--perfcheck-label",
        "kernel_commit=abc123",
        f"--perfcheck-store={direct}",
        f"--perfcheck-save={saved}",
    )
    result.assert_outcomes(passed=1)
    monkeypatch.delenv("PERFCHECK_LABELS")
    uploaded = project.path / "uploaded.sqlite"
    capsys.readouterr()
    assert main(["upload", str(saved), "--store", str(uploaded)]) == 0
    assert "note" not in capsys.readouterr().out
    ran, sent = rows(direct), rows(uploaded)
    (session,) = ran["perfcheck_sessions"]
    assert session["host"] and len(session["scenario_hash"]) == 64
    assert session["git_commit"] == commit
    # Only where the session came from differs.
    assert [s.pop("source") for s in ran["perfcheck_sessions"]] == ["run"]
    assert [s.pop("source") for s in sent["perfcheck_sessions"]] == ["results-file"]
    assert sent == ran
    assert {r["key"]: r["value"] for r in ran["perfcheck_labels"]} == {
        "branch": "main",
        "kernel_commit": "abc123",
    }


def test_an_older_results_file_uploads_with_unknowns_and_says_so(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = project.path / "run.json"
    run(project, "--perfcheck", "--perfcheck-store=none", f"--perfcheck-save={saved}")
    data = json.loads(saved.read_text())
    # A file written before results schema version 2: no host, commit, labels or hashes.
    data["schema_version"] = 1
    for key in ("host", "git_commit", "labels"):
        data.pop(key)
    for scenario in data["scenarios"].values():
        scenario.pop("scenario_hash")
    old = project.path / "old.json"
    old.write_text(json.dumps(data))
    store = project.path / "s.sqlite"
    assert main(["upload", str(old), "--store", str(store), "--label", "ci=1"]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "note" in line]
    assert len(notes) == 1 and str(old) in notes[0] and "schema version 1" in notes[0]
    (session,) = rows(store)["perfcheck_sessions"]
    assert (session["host"], session["scenario_hash"], session["git_commit"]) == (None,) * 3
