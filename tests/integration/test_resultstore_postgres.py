"""The results store on a real PostgreSQL server (private, started for these tests), and
concurrent uploads on PostgreSQL and SQLite: every session stored exactly once."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from perfcheck.report.results import write_results
from perfcheck.run.sessions import sessions_from_results
from perfcheck.store.sessions import StoreError
from perfcheck.store.sessions.records import SOURCE_RUN
from perfcheck.store.sessions.sqlstore import open_store, store_location
from tests import pgserver
from tests.storedata import make_results

pytestmark = [
    pytest.mark.realpostgres,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres_socket_dir() -> Iterator[str]:
    """A private PostgreSQL server for the session (see tests/pgserver.py).

    Example::

        def test_x(postgres_url):
            store = open_store(store_location(postgres_url, Path.cwd()))
    """
    reason = pgserver.missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with pgserver.private_server() as socket_dir:
        yield socket_dir


@pytest.fixture
def postgres_url(postgres_socket_dir: str) -> str:
    """A new, empty database on the private server, as a store URL."""
    name = f"perfcheck_test_{next(_databases)}"
    with psycopg.connect(
        dbname="postgres", user="postgres", host=postgres_socket_dir, autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@/{name}?host={postgres_socket_dir}"


def _sql(url: str, socket_dir: str, statement: str) -> list[tuple[object, ...]]:
    name = url.split("/")[3].split("?")[0]
    with psycopg.connect(dbname=name, user="postgres", host=socket_dir, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def test_append_read_back_and_idempotent(postgres_url: str, tmp_path: Path) -> None:
    location = store_location(postgres_url, tmp_path)
    assert location is not None and not location.is_sqlite
    made = sessions_from_results(
        make_results(["a", "b"]), source=SOURCE_RUN, labels={"kernel": "abc"}
    )
    with open_store(location) as store:
        assert store.append_all(made).added == 2
        assert store.append_all(made).present == 2
        assert store.count() == 2
        (series,) = store.series(scenario="b", metric="fio.clat.read.p50", labels={"kernel": "abc"})
    assert series.points[0].session_id == made[1].session_id
    assert series.points[0].median == made[1].metrics["fio.clat.read.p50"].median


def test_newer_schema_and_foreign_tables_are_refused(
    postgres_url: str, postgres_socket_dir: str, tmp_path: Path
) -> None:
    location = store_location(postgres_url, tmp_path)
    assert location is not None
    open_store(location).close()
    _sql(postgres_url, postgres_socket_dir,
         "UPDATE perfcheck_meta SET value = '7' WHERE key = 'schema_version'")  # fmt: skip
    with pytest.raises(StoreError, match="schema version 7 is newer than this perfcheck"):
        open_store(location)
    _sql(postgres_url, postgres_socket_dir, "DROP TABLE perfcheck_meta")
    with pytest.raises(StoreError, match="not a perfcheck results store"):
        open_store(location)


def test_unreachable_server_is_one_line_naming_the_url(tmp_path: Path) -> None:
    url = f"postgresql://ci:secret@/perf?host={tmp_path}"  # no server listens there
    location = store_location(url, tmp_path)
    assert location is not None
    with pytest.raises(StoreError) as err:
        open_store(location)
    text = str(err.value)
    assert "\n" not in text and "secret" not in text
    assert text.startswith("postgresql://ci:***@/perf") and "cannot connect" in text


# -- concurrency -------------------------------------------------------------------------------


def _results_files(tmp_path: Path, files: int, per_file: int) -> list[Path]:
    paths = []
    for n in range(files):
        path = tmp_path / f"run-{n}.json"
        names = [f"s{n}-{i}" for i in range(per_file)]
        write_results(path, make_results(names, seed=n, created_at=f"2026-12-04T10:{n:02d}:00Z"))
        paths.append(path)
    return paths


def _upload(files: list[Path], store: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "perfcheck", "upload", *map(str, files), "--store", store]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_all(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        _out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err


def _check_exactly_once(url: str, tmp_path: Path, expected: int) -> None:
    location = store_location(url, tmp_path)
    assert location is not None
    with open_store(location, create=False) as store:
        ids = store.session_ids()
        series = store.series(metric="fio.iops.read", last=1)
    assert len(ids) == len(set(ids)) == expected
    # Each session complete: every one has its metric rows.
    assert sum(s.sessions for s in series) == expected


def test_eight_uploaders_and_their_retries_store_each_session_once(
    postgres_url: str, tmp_path: Path
) -> None:
    files = _results_files(tmp_path, 8, 50)
    # Each file uploaded by two processes at once (an upload and its retry), 16 in all.
    _wait_all([_upload([path], postgres_url) for path in files for _ in range(2)])
    _check_exactly_once(postgres_url, tmp_path, 400)
    # A later retry of everything adds nothing.
    retry = subprocess.run(
        [sys.executable, "-m", "perfcheck", "upload", *map(str, files), "--store", postgres_url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "0 added, 400 already there" in retry.stdout
    _check_exactly_once(postgres_url, tmp_path, 400)


def test_two_sqlite_writers_and_retries_store_each_session_once(tmp_path: Path) -> None:
    files = _results_files(tmp_path, 8, 50)
    store = str(tmp_path / "shared.sqlite")
    # Two writers at once, each uploading its half and then retrying the other's.
    _wait_all([_upload(files[:4] + files[4:], store), _upload(files[4:] + files[:4], store)])
    _check_exactly_once(store, tmp_path, 400)
