"""Open a results store (SQLite file or PostgreSQL database), append sessions, query series.

One code path for both databases, through SQLAlchemy Core; PostgreSQL through psycopg 3.
Each session is appended in one transaction (the session row, its labels, metrics and
histograms, or nothing), and only if its id is not stored yet: a retried upload, or a
results file uploaded after its run already stored it, adds nothing. Writers on one SQLite
file take the write lock at the start of their transaction and wait for each other
(:data:`SQLITE_BUSY_SECONDS`); on PostgreSQL, ``INSERT ... ON CONFLICT DO NOTHING`` makes
concurrent uploads of one session store it once.

Every failure is a :class:`~perfcheck.store.sessions.StoreError`: one line naming the file or
URL (password hidden) and what to do.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
import sqlalchemy.exc
from sqlalchemy.engine import URL, Connection, Engine

from perfcheck.store.sessions import StoreError
from perfcheck.store.sessions import schema as s
from perfcheck.store.sessions.records import RecentSession, StoredSession

#: The default store, relative to the rootdir (pytest) or the current directory (CLI).
DEFAULT_STORE_PATH: Final[str] = ".perfcheck/results.sqlite"
#: Values of ``--perfcheck-store`` that switch the store off.
OFF_VALUES: Final[frozenset[str]] = frozenset({"none", "off"})
#: How long a SQLite writer waits for another to finish.
SQLITE_BUSY_SECONDS: Final[float] = 60.0
#: How long to wait for a PostgreSQL server to answer a connection.
CONNECT_SECONDS: Final[int] = 10
# Serialises schema creation between fleet members creating one store at once.
_SCHEMA_LOCK_KEY: Final[int] = 0x70657266636B
_FIX_ARG = "give another with --perfcheck-store / --store, or --perfcheck-store=none"


@dataclass(frozen=True)
class StoreLocation:
    """Where a store is: a SQLAlchemy URL, and how to name it in messages."""

    url: URL
    display: str
    path: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.path is not None


def store_location(text: str | None, root: Path) -> StoreLocation | None:
    """``--perfcheck-store`` / ``--store`` value -> location; None when switched off.

    None or "" -> :data:`DEFAULT_STORE_PATH` under ``root``; ``none``/``off`` -> None;
    ``postgresql://user@host/db`` (or ``postgres://``) -> PostgreSQL through psycopg;
    ``sqlite:///path`` or a plain path (relative to ``root``) -> a SQLite file.
    """
    text = (text or "").strip()
    if text.lower() in OFF_VALUES:
        return None
    if not text:
        text = DEFAULT_STORE_PATH
    if "://" not in text:
        path = Path(text).expanduser()
        path = path if path.is_absolute() else root / path
        return StoreLocation(URL.create("sqlite", database=str(path)), str(path), path)
    try:
        url = sa.make_url(text)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise StoreError(f"store URL {text!r}: cannot be parsed ({exc})") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise StoreError(f"store URL {text!r}: give a file, e.g. sqlite:///results.sqlite")
        path = Path(url.database).expanduser()
        path = path if path.is_absolute() else root / path
        return StoreLocation(URL.create("sqlite", database=str(path)), str(path), path)
    if backend in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
        shown = url.set(drivername="postgresql").render_as_string(hide_password=True)
        return StoreLocation(url, shown)
    raise StoreError(
        f"store URL {url.render_as_string(hide_password=True)!r}: perfcheck stores results in"
        " a SQLite file (a path or sqlite:///path) or PostgreSQL (postgresql://...)"
    )


@dataclass(frozen=True)
class AppendCount:
    added: int = 0
    present: int = 0


@dataclass(frozen=True)
class SeriesPoint:
    """One session's value in a series."""

    session_id: str
    recorded_at: str
    median: float
    status: str
    kernel_release: str
    host: str | None
    git_commit: str | None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Series:
    """A scenario's metric on one machine class: its last sessions, oldest first."""

    scenario: str
    metric: str
    machine_class: str
    sessions: int
    points: list[SeriesPoint] = field(default_factory=list)


def _one_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    text = lines[0] if lines else type(original).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class ResultStore:
    """An open store. ``open_store`` makes one; use it as a context manager."""

    def __init__(self, location: StoreLocation, engine: Engine) -> None:
        self.location = location
        self.engine = engine
        self._write = False

    # -- opening ---------------------------------------------------------------------

    def _check_schema(self, create: bool) -> None:
        where = self.location.display
        with self.transaction(write=create) as conn:
            if create and not self.location.is_sqlite:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
            tables = set(sa.inspect(conn).get_table_names())
            if s.meta.name in tables:
                rows = dict(conn.execute(sa.select(s.meta.c.key, s.meta.c.value)).all())
                self._check_meta(rows)
                return
            ours = sorted(t for t in tables if t.startswith(s.TABLE_PREFIX))
            if ours or (self.location.is_sqlite and tables):
                shown = ", ".join(sorted(ours or tables)[:5])
                raise StoreError(
                    f"{where}: not a perfcheck results store (it holds tables {shown} but no"
                    f" {s.meta.name}); {_FIX_ARG}"
                )
            if not create:
                raise StoreError(
                    f"{where}: no perfcheck results store there yet (empty database); run"
                    " pytest --perfcheck or perfcheck upload first"
                )
            s.metadata.create_all(conn)
            conn.execute(
                sa.insert(s.meta),
                [
                    {"key": "kind", "value": s.STORE_KIND},
                    {"key": "schema_version", "value": str(s.SCHEMA_VERSION)},
                    {"key": "created_at", "value": utc_timestamp()},
                ],
            )

    def _check_meta(self, rows: Mapping[str, str]) -> None:
        where = self.location.display
        if rows.get("kind") != s.STORE_KIND:
            raise StoreError(
                f"{where}: not a perfcheck results store ({s.meta.name} kind is"
                f" {rows.get('kind')!r}); {_FIX_ARG}"
            )
        try:
            version = int(rows.get("schema_version", ""))
        except ValueError:
            raise StoreError(
                f"{where}: unreadable schema_version {rows.get('schema_version')!r}; {_FIX_ARG}"
            ) from None
        if version > s.SCHEMA_VERSION:
            raise StoreError(
                f"{where}: results store schema version {version} is newer than this perfcheck"
                f" reads ({s.SCHEMA_VERSION}); upgrade perfcheck"
            )
        if version < s.SCHEMA_VERSION:
            raise StoreError(
                f"{where}: results store schema version {version} is older than any this"
                f" perfcheck reads ({s.SCHEMA_VERSION}); {_FIX_ARG}"
            )

    @contextmanager
    def transaction(self, write: bool = False) -> Iterator[Connection]:
        """One transaction; every database error becomes a one-line StoreError."""
        self._write = write
        try:
            with self.engine.begin() as conn:
                yield conn
        except StoreError:
            raise
        except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, OSError) as exc:
            raise _store_error(self.location, exc) from None
        finally:
            self._write = False

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> Any:
        # Only the store's own dialect: importing the other one costs a quarter second.
        if self.location.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)

    def append(self, session: StoredSession) -> bool:
        """Store ``session`` in one transaction; False if its id was stored already."""
        with self.transaction(write=True) as conn:
            return self.append_in(conn, session)

    def append_in(self, conn: Connection, session: StoredSession) -> bool:
        """Store ``session`` in the caller's transaction; False if its id was stored already."""
        row = _session_row(session)
        # RETURNING says whether the row went in (rowcount is not dependable here).
        stmt = (
            self._insert(s.sessions)
            .values(row)
            .on_conflict_do_nothing(index_elements=["session_id"])
            .returning(s.sessions.c.session_id)
        )
        if conn.execute(stmt).first() is None:
            return False
        sid = session.session_id
        if session.labels:
            conn.execute(
                sa.insert(s.labels),
                [
                    {"session_id": sid, "key": k, "value": v}
                    for k, v in sorted(session.labels.items())
                ],
            )
        if session.metrics:
            conn.execute(
                sa.insert(s.metrics),
                [
                    {
                        "session_id": sid,
                        "metric": m.metric,
                        "median": m.median,
                        "round_values": None if m.rounds is None else json.dumps(m.rounds),
                        "verdict": m.verdict,
                        "change": m.change,
                        "p_value": m.p_value,
                    }
                    for m in session.metrics.values()
                ],
            )
        if session.histograms:
            conn.execute(
                sa.insert(s.histograms),
                [
                    {"session_id": sid, "series": k, "histogram": _json(v)}
                    for k, v in sorted(session.histograms.items())
                ],
            )
        return True

    def append_all(self, sessions: Iterable[StoredSession]) -> AppendCount:
        added = present = 0
        for session in sessions:
            if self.append(session):
                added += 1
            else:
                present += 1
        return AppendCount(added, present)

    # -- reading ---------------------------------------------------------------------

    def count(self) -> int:
        with self.transaction() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(s.sessions)).scalar_one()
            )

    def session_ids(self) -> list[str]:
        with self.transaction() as conn:
            return list(conn.execute(sa.select(s.sessions.c.session_id)).scalars().all())

    def series(
        self,
        scenario: str | None = None,
        metric: str | None = None,
        machine_class: str | None = None,
        labels: Mapping[str, str] | None = None,
        last: int = 30,
    ) -> list[Series]:
        """Each (scenario, metric, machine class) series, sorted by scenario and metric.

        ``sessions`` counts the scenario's sessions on that machine class that match the
        filters (``labels``: all of them; ``metric``: those that measured it); the points
        are the metric's values in the newest ``last`` of them, oldest first. Sessions are
        picked per scenario and machine class through their index, never by ranking every
        metric row (on 10,000 sessions that took 0.8 s on SQLite).
        """
        ss, sm, sl = s.sessions, s.metrics, s.labels
        conditions: list[Any] = []
        if scenario is not None:
            conditions.append(ss.c.scenario == scenario)
        if machine_class is not None:
            conditions.append(ss.c.machine_class == machine_class)
        if metric is not None:
            conditions.append(
                sa.exists().where(sm.c.session_id == ss.c.session_id, sm.c.metric == metric)
            )
        for key, value in (labels or {}).items():
            alias = sl.alias()
            conditions.append(
                sa.exists().where(
                    alias.c.session_id == ss.c.session_id,
                    alias.c.key == key,
                    alias.c.value == value,
                )
            )
        groups_query = (
            sa.select(ss.c.scenario, ss.c.machine_class, sa.func.count())
            .where(*conditions)
            .group_by(ss.c.scenario, ss.c.machine_class)
            .order_by(ss.c.scenario, ss.c.machine_class)
        )
        columns = _naming_columns()
        result: list[Series] = []
        with self.transaction() as conn:
            for group_scenario, group_class, count in conn.execute(groups_query):
                newest = conn.execute(
                    sa.select(*columns)
                    .where(
                        *conditions,
                        ss.c.scenario == group_scenario,
                        ss.c.machine_class == group_class,
                    )
                    .order_by(ss.c.recorded_at.desc(), ss.c.session_id.desc())
                    .limit(max(1, last))
                ).all()
                chosen = list(reversed(newest))
                ids = [row.session_id for row in chosen]
                values_query = sa.select(sm.c.session_id, sm.c.metric, sm.c.median).where(
                    sm.c.session_id.in_(ids)
                )
                if metric is not None:
                    values_query = values_query.where(sm.c.metric == metric)
                medians: dict[str, dict[str, float]] = {}
                for sid, name, median in conn.execute(values_query):
                    medians.setdefault(name, {})[sid] = float(median)
                session_labels: dict[str, dict[str, str]] = {}
                label_rows = sa.select(sl.c.session_id, sl.c.key, sl.c.value).where(
                    sl.c.session_id.in_(ids)
                )
                for sid, key, value in conn.execute(label_rows):
                    session_labels.setdefault(sid, {})[key] = value
                for name in sorted(medians):
                    by_session = medians[name]
                    result.append(
                        Series(
                            scenario=group_scenario,
                            metric=name,
                            machine_class=group_class,
                            sessions=int(count),
                            points=[
                                SeriesPoint(
                                    session_id=row.session_id,
                                    recorded_at=row.recorded_at,
                                    median=by_session[row.session_id],
                                    status=row.status,
                                    kernel_release=row.kernel_release,
                                    host=row.host,
                                    git_commit=row.git_commit,
                                    labels=dict(
                                        sorted(session_labels.get(row.session_id, {}).items())
                                    ),
                                )
                                for row in chosen
                                if row.session_id in by_session
                            ],
                        )
                    )
        return result

    def recent_sessions(
        self,
        scenario: str,
        machine_class: str,
        scenario_hash: str | None,
        last: int,
    ) -> list[RecentSession]:
        """The newest ``last`` sessions of one series, oldest first: this scenario, with
        this content hash (another scenario file or job is another series; None matches
        sessions stored without one), on this machine class."""
        ss, sm, sl = s.sessions, s.metrics, s.labels
        same_hash = (
            ss.c.scenario_hash.is_(None)
            if scenario_hash is None
            else ss.c.scenario_hash == scenario_hash
        )
        with self.transaction() as conn:
            rows = conn.execute(
                sa.select(*_naming_columns(), ss.c.environment, ss.c.provenance)
                .where(ss.c.scenario == scenario, ss.c.machine_class == machine_class, same_hash)
                .order_by(ss.c.recorded_at.desc(), ss.c.session_id.desc())
                .limit(max(1, last))
            ).all()
            ids = [row.session_id for row in rows]
            medians: dict[str, dict[str, float]] = {}
            for sid, metric, median in conn.execute(
                sa.select(sm.c.session_id, sm.c.metric, sm.c.median).where(sm.c.session_id.in_(ids))
            ):
                medians.setdefault(sid, {})[metric] = float(median)
            labels: dict[str, dict[str, str]] = {}
            for sid, key, value in conn.execute(
                sa.select(sl.c.session_id, sl.c.key, sl.c.value).where(sl.c.session_id.in_(ids))
            ):
                labels.setdefault(sid, {})[key] = value
        return [
            RecentSession(
                session_id=row.session_id,
                recorded_at=row.recorded_at,
                status=row.status,
                kernel_release=row.kernel_release,
                host=row.host,
                git_commit=row.git_commit,
                labels=dict(sorted(labels.get(row.session_id, {}).items())),
                medians=medians.get(row.session_id, {}),
                environment=json.loads(row.environment),
                provenance=json.loads(row.provenance),
            )
            for row in reversed(rows)
        ]


def _naming_columns() -> tuple[sa.Column[Any], ...]:
    """A session's columns that name it in a series: id, time, status, kernel, host, commit."""
    ss = s.sessions
    return (
        ss.c.session_id,
        ss.c.recorded_at,
        ss.c.status,
        ss.c.kernel_release,
        ss.c.host,
        ss.c.git_commit,
    )


def utc_timestamp() -> str:
    # Not perfcheck.store.baseline's: importing that module imports scipy, a second of start-up.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _session_row(session: StoredSession) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "recorded_at": session.recorded_at,
        "stored_at": utc_timestamp(),
        "scenario": session.scenario,
        "scenario_hash": session.scenario_hash,
        "machine_class": session.machine_class,
        "host": session.host,
        "kernel_release": session.kernel_release,
        "git_commit": session.git_commit,
        "status": session.status,
        "source": session.source,
        "rounds": session.rounds,
        "perfcheck_version": session.perfcheck_version,
        "environment": _json(session.environment),
        "provenance": _json(session.provenance),
        "decision": None if session.decision is None else _json(session.decision),
    }


def _store_error(location: StoreLocation, exc: BaseException) -> StoreError:
    where = location.display
    reason = _one_line(exc)
    if location.is_sqlite:
        if "not a database" in reason or "malformed" in reason:
            return StoreError(
                f"{where}: not a readable SQLite database ({reason}); move it away (a new"
                f" store is created on the next run) or {_FIX_ARG}"
            )
        return StoreError(f"{where}: SQLite error: {reason}")
    if isinstance(exc, sqlalchemy.exc.OperationalError) and "connect" in reason.lower():
        return StoreError(
            f"{where}: cannot connect to the PostgreSQL server ({reason}); check that it runs"
            " and the URL (host, port, user, database)"
        )
    return StoreError(f"{where}: PostgreSQL error: {reason}")


def _engine(location: StoreLocation) -> Engine:
    if location.is_sqlite:
        engine = sa.create_engine(
            location.url,
            connect_args={"timeout": SQLITE_BUSY_SECONDS},
            poolclass=sa.pool.NullPool,
        )
        return engine
    return sa.create_engine(
        location.url,
        connect_args={"connect_timeout": CONNECT_SECONDS},
        poolclass=sa.pool.NullPool,
    )


def _sqlite_transactions(store: ResultStore) -> None:
    """pysqlite's own transaction handling defers BEGIN and never takes the write lock up
    front, so two writers can deadlock on the upgrade; begin explicitly instead."""

    @sa.event.listens_for(store.engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
        finally:
            cursor.close()

    @sa.event.listens_for(store.engine, "begin")
    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if store._write else "BEGIN")


def open_store(location: StoreLocation, create: bool = True) -> ResultStore:
    """Open the store at ``location``, creating its schema on first use when ``create``.

    Reading (``create=False``) never creates anything: a missing file or an empty
    database is a StoreError.
    """
    if location.path is not None:
        if not create and not location.path.is_file():
            raise StoreError(
                f"{location.display}: no results store there; run pytest --perfcheck (which"
                " creates it) or give --store"
            )
        if create:
            try:
                location.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{location.display}: cannot create its directory ({exc.strerror or exc});"
                    f" {_FIX_ARG}"
                ) from None
    try:
        engine = _engine(location)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"{location.display}: cannot open the store ({_one_line(exc)})") from None
    store = ResultStore(location, engine)
    if location.is_sqlite:
        _sqlite_transactions(store)
    try:
        store._check_schema(create)
    except BaseException:
        store.close()
        raise
    return store


def append_sessions(location: StoreLocation, sessions: Sequence[StoredSession]) -> AppendCount:
    """Open (creating if need be), append each session in its own transaction, close."""
    with open_store(location, create=True) as store:
        return store.append_all(sessions)
