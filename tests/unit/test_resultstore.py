"""The results store on SQLite: locations, schema checks, idempotent appends, upload,
history, and the plugin appending every run's sessions (fake probe backend)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from perfcheck.cli import main
from perfcheck.report.history import sparkline
from perfcheck.report.results import write_results
from perfcheck.run.sessions import sessions_from_results
from perfcheck.stats.history import SessionSummary
from perfcheck.store.baseline import Baseline, write_json_atomic
from perfcheck.store.sessions import StoreError
from perfcheck.store.sessions.records import SOURCE_RUN, labels_from_env, parse_label
from perfcheck.store.sessions.sqlstore import open_store, store_location
from tests.fakeproject import FAKE_CONFTEST, run
from tests.storedata import make_results

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def sessions(names: list[str], seed: int = 1, created_at: str = "2026-12-04T10:00:00Z") -> list:
    return sessions_from_results(
        make_results(names, seed, created_at), source=SOURCE_RUN, labels={"build": "7"}
    )


def test_locations(tmp_path: Path) -> None:
    default = store_location(None, tmp_path)
    assert default is not None and default.path == tmp_path / ".perfcheck/results.sqlite"
    assert store_location("none", tmp_path) is None
    assert store_location("OFF", tmp_path) is None
    plain = store_location("x/r.sqlite", tmp_path)
    assert plain is not None and plain.path == tmp_path / "x/r.sqlite"
    url = store_location(f"sqlite:///{tmp_path}/a.sqlite", tmp_path)
    assert url is not None and url.path == tmp_path / "a.sqlite"
    pg = store_location("postgresql://ci:secret@db.example/perf", tmp_path)
    assert pg is not None and not pg.is_sqlite
    assert "secret" not in pg.display and pg.display.startswith("postgresql://ci:***@")
    assert pg.url.drivername == "postgresql+psycopg"
    with pytest.raises(StoreError, match="mysql"):
        store_location("mysql://x/y", tmp_path)


def test_labels_from_option_text_and_environment() -> None:
    assert parse_label("kernel_commit=1a2b") == ("kernel_commit", "1a2b")
    for bad in ("novalue", "=x", "k=", "bad key=1", "k=a\nb"):
        with pytest.raises(ValueError, match="label"):
            parse_label(bad)
    assert labels_from_env({"PERFCHECK_LABELS": "a=1, b=two,"}) == {"a": "1", "b": "two"}
    with pytest.raises(ValueError, match=r"\$PERFCHECK_LABELS"):
        labels_from_env({"PERFCHECK_LABELS": "a=1,oops"})


def test_append_is_idempotent_and_reads_back(tmp_path: Path) -> None:
    location = store_location(str(tmp_path / "r.sqlite"), tmp_path)
    assert location is not None
    made = sessions(["a", "b"])
    with open_store(location) as store:
        first = store.append_all(made)
        again = store.append_all(made)
        assert (first.added, first.present) == (2, 0)
        assert (again.added, again.present) == (0, 2)
        assert store.count() == 2
        series = store.series(scenario="a", metric="fio.iops.read")
    assert len(series) == 1 and series[0].sessions == 1
    point = series[0].points[0]
    assert point.median == made[0].metrics["fio.iops.read"].median
    assert point.labels == {"build": "7"}
    db = sqlite3.connect(tmp_path / "r.sqlite")
    (rounds,) = db.execute(
        "SELECT round_values FROM perfcheck_metrics WHERE metric = 'fio.iops.read' AND"
        " session_id = ?",
        (made[0].session_id,),
    ).fetchone()
    assert json.loads(rounds) == list(made[0].metrics["fio.iops.read"].rounds)
    (hist,) = db.execute(
        "SELECT histogram FROM perfcheck_histograms WHERE series = 'block.latency.read' AND"
        " session_id = ?",
        (made[0].session_id,),
    ).fetchone()
    assert json.loads(hist) == made[0].histograms["block.latency.read"]
    db.close()


def test_a_session_that_cannot_be_stored_leaves_nothing(tmp_path: Path) -> None:
    location = store_location(str(tmp_path / "r.sqlite"), tmp_path)
    assert location is not None
    bad = sessions(["a"])[0]
    bad.histograms["broken"] = {"x": float("nan")}  # JSON refuses NaN: fails mid-session
    with open_store(location) as store:
        with pytest.raises(ValueError):
            store.append(bad)
        assert store.count() == 0
        db = sqlite3.connect(tmp_path / "r.sqlite")
        assert db.execute("SELECT count(*) FROM perfcheck_metrics").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM perfcheck_labels").fetchone() == (0,)
        db.close()


def test_corrupt_file_is_one_line_naming_it_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    path.write_bytes(b"this is not a database\n" * 100)
    before = path.read_bytes()
    location = store_location(str(path), tmp_path)
    assert location is not None
    with pytest.raises(StoreError) as err:
        open_store(location)
    text = str(err.value)
    assert "\n" not in text and str(path) in text and "not a readable SQLite database" in text
    assert path.read_bytes() == before


def test_foreign_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER)")
    db.commit()
    db.close()
    location = store_location(str(path), tmp_path)
    assert location is not None
    with pytest.raises(StoreError, match=r"other\.sqlite: not a perfcheck results store"):
        open_store(location)
    db = sqlite3.connect(path)
    tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    db.close()
    assert tables == [("customers",)]


def test_newer_schema_is_refused_and_nothing_written(tmp_path: Path) -> None:
    location = store_location(str(tmp_path / "r.sqlite"), tmp_path)
    assert location is not None
    open_store(location).close()
    db = sqlite3.connect(tmp_path / "r.sqlite")
    db.execute("UPDATE perfcheck_meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match=r"r\.sqlite: results store schema version 99 is newer"):
        open_store(location)
    db = sqlite3.connect(tmp_path / "r.sqlite")
    assert db.execute("SELECT count(*) FROM perfcheck_sessions").fetchone() == (0,)
    db.close()


def test_reading_never_creates_a_store(tmp_path: Path) -> None:
    location = store_location(str(tmp_path / "none-yet.sqlite"), tmp_path)
    assert location is not None
    with pytest.raises(StoreError, match="no results store there"):
        open_store(location, create=False)
    assert not (tmp_path / "none-yet.sqlite").exists()


def test_values_shown_as_the_gate_shows_them() -> None:
    from perfcheck.report.history import format_value as shown
    from perfcheck.stats.verdict import format_value

    cases = [
        ("block.latency.read.p50", 9012.0),
        ("x.p99_9", 123.0),
        ("x.p90", 1.5e6),
        ("x.p99", 2.5e9),
        ("fio.iops.read", 35312.0),
        ("fio.iops.write", 312.0),
        ("fio.bw_bytes.read", 1.26e8),
        ("iperf3.bits_per_second", 9.41e9),
        ("other", 1.23456),
    ]
    for metric, value in cases:
        assert shown(metric, value) == format_value(metric, value)


def test_sparkline() -> None:
    assert sparkline([]) == ""
    assert sparkline([1, 1, 1]) == "▄▄▄"
    assert sparkline([0, 7]) == "▁█"
    assert len(sparkline(list(range(30)))) == 30


# -- the commands ----------------------------------------------------------------------------


def test_upload_results_and_baseline_files_idempotently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results_file = tmp_path / "run.json"
    write_results(results_file, make_results(["a", "b"], seed=3))
    baseline = Baseline.record(make_results(["c"]).scenarios["c"].measurement, "x86_64-2cpu-test")
    baseline.history = [
        SessionSummary(f"2026-12-0{day}T00:00:00Z", "6.18", 5, {"fio.iops.read": 1000.0 + day})
        for day in (1, 2, 3)
    ]
    baseline_file = tmp_path / "c.json"
    write_json_atomic(baseline_file, baseline.to_dict())
    store = str(tmp_path / "s.sqlite")
    args = ["upload", str(results_file), str(baseline_file), "--store", store, "--label", "ci=1"]
    assert main(args) == 0
    assert "5 added, 0 already there" in capsys.readouterr().out
    assert main(args) == 0
    assert "0 added, 5 already there" in capsys.readouterr().out
    # A bad file among good ones: nothing stored, one line naming it.
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    fresh = str(tmp_path / "fresh.sqlite")
    assert main(["upload", str(results_file), str(bad), "--store", fresh]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "nothing was stored" in err
    assert not Path(fresh).exists()
    # history: the baseline's three sessions in time order, whole ids when piped.
    assert main(["history", "c", "--store", store, "--json", "--label", "ci=1"]) == 0
    data = json.loads(capsys.readouterr().out)
    (series,) = data["series"]
    assert series["sessions"] == 3
    assert [p["median"] for p in series["points"]] == [1001.0, 1002.0, 1003.0]
    assert main(["history", "--store", store, "--metric", "fio.iops.read"]) == 0
    out = capsys.readouterr().out
    assert "▁▅█" in out  # c's three sessions, rising
    ids = {p["session_id"] for p in series["points"]}
    assert any(i in out for i in ids)  # whole, since stdout is not a terminal
    assert main(["history", "nosuch", "--store", store]) == 1


def test_history_on_a_missing_store_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "perfcheck", "history", "--store", str(tmp_path / "x.sqlite")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "x.sqlite: no results store there" in done.stderr


# -- the plugin ------------------------------------------------------------------------------


def test_every_run_appends_to_the_default_store(
    project: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERFCHECK_LABELS", "branch=main,build=41")
    monkeypatch.delenv("PERFCHECK_STORE", raising=False)
    saved = project.path / "run.json"
    result = run(
        project, "--perfcheck", "--perfcheck-label", "build=42", f"--perfcheck-save={saved}"
    )
    store = project.path / ".perfcheck" / "results.sqlite"
    result.stdout.fnmatch_lines([f"perfcheck: 1 session(s) appended to {store}; see perfcheck*"])
    db = sqlite3.connect(store)
    row = db.execute(
        "SELECT session_id, scenario, scenario_hash, status, source, host, git_commit"
        " FROM perfcheck_sessions"
    ).fetchone()
    labels = dict(db.execute("SELECT key, value FROM perfcheck_labels").fetchall())
    metrics = db.execute("SELECT count(*) FROM perfcheck_metrics").fetchone()[0]
    db.close()
    scenarios = project.path / "scenarios"
    files = [scenarios / "fake-reads.toml", scenarios / "reads.fio"]
    digest = hashlib.sha256(b"".join(f.read_bytes() + b"\0" for f in files)).hexdigest()
    assert row[1:5] == ("fake-reads", digest, "NO BASELINE", "run")
    assert row[5] and row[6] is None  # a host; no git checkout here
    assert labels == {"branch": "main", "build": "42"}
    assert metrics > 5
    # The results file of that run holds the same session: uploading it adds nothing.
    monkeypatch.chdir(project.path)
    assert main(["upload", str(saved)]) == 0
    db = sqlite3.connect(store)
    assert db.execute("SELECT count(*) FROM perfcheck_sessions").fetchone() == (1,)
    db.close()
    # Switched off: nothing appended.
    result = run(project, "--perfcheck", "--perfcheck-store=none")
    assert "appended" not in result.stdout.str()
    db = sqlite3.connect(store)
    assert db.execute("SELECT count(*) FROM perfcheck_sessions").fetchone() == (1,)
    db.close()


def test_a_named_store_that_cannot_be_opened_stops_the_run_before_measuring(
    project: pytest.Pytester,
) -> None:
    project.makefile(".sqlite", bad="garbage " * 200)
    bad = project.path / "bad.sqlite"
    result = run(project, "--perfcheck", f"--perfcheck-store={bad}")
    result.stderr.fnmatch_lines(
        [f"ERROR: --perfcheck-store: {bad}: not a readable SQLite database*"]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "fake-reads" not in result.stdout.str()


def test_a_store_that_breaks_during_the_run_fails_it_in_one_line(
    project: pytest.Pytester,
) -> None:
    # The store is fine when the run starts and corrupt by its end.
    store = project.path / "store.sqlite"
    project.makeconftest(
        FAKE_CONFTEST
        + textwrap.dedent(
            f"""
            import pytest

            @pytest.hookimpl(tryfirst=True)
            def pytest_sessionfinish(session):
                open({str(store)!r}, "wb").write(b"garbage " * 200)
            """
        )
    )
    result = run(project, "--perfcheck", f"--perfcheck-store={store}")
    result.stdout.fnmatch_lines(
        [f"perfcheck: --perfcheck-store failed: {store}: not a readable SQLite database*"]
    )
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR


def test_bad_label_is_a_usage_error(project: pytest.Pytester) -> None:
    result = run(project, "--perfcheck", "--perfcheck-label", "nope")
    result.stderr.fnmatch_lines(["*label 'nope': give KEY=VALUE*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
