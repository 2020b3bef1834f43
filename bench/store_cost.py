"""What the results store costs: appending a session, and ``perfcheck history`` on a store
of many sessions; SQLite, and PostgreSQL beside it (a private server, as in the tests).

    .venv/bin/python bench/store_cost.py [--sessions 10000] [--appends 50] [--repeats 5]

Goals (issue 16): appending a session <= 50 ms on SQLite; ``perfcheck history`` on 10,000
sessions <= 1 s (``perfcheck changes`` is timed beside it, without a goal). The store is
filled with made-up sessions of the shape a real run stores (7 metrics, 2 merged
histograms, 5 rounds, 2 labels), 8 scenarios. Appends are timed one transaction each (as
a run stores them), on the filled store; ``history`` is timed as a whole command (a new
process: start-up, imports, query, table) and as the query and table alone. Prints
medians with min..max and the number of runs, and the load average: on a shared machine
other work stretches wall times, so the command's own CPU time is printed too.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfcheck.report.history import history_table  # noqa: E402
from perfcheck.run.sessions import sessions_from_results  # noqa: E402
from perfcheck.store.sessions.records import SOURCE_RUN, StoredSession  # noqa: E402
from perfcheck.store.sessions.sqlstore import StoreLocation, open_store, store_location  # noqa: E402
from tests import pgserver  # noqa: E402
from tests.storedata import make_results  # noqa: E402

SCENARIOS = [f"scenario-{n}" for n in range(8)]


def made_sessions(count: int, start: int = 0) -> Iterator[StoredSession]:
    """``count`` distinct sessions: a few measured variants, stamped at distinct times."""
    variants = [make_results(SCENARIOS, seed=seed) for seed in range(4)]
    made = 0
    minute = start
    while made < count:
        results = variants[minute % len(variants)]
        day, rest = divmod(minute, 24 * 60)
        results.created_at = (
            f"2026-{1 + day // 28:02d}-{1 + day % 28:02d}T{rest // 60:02d}:{rest % 60:02d}:00Z"
        )
        labels = {"build": str(minute), "branch": "main"}
        for session in sessions_from_results(results, source=SOURCE_RUN, labels=labels):
            if made == count:
                return
            yield session
            made += 1
        minute += 1


def fill(location: StoreLocation, count: int) -> float:
    started = time.perf_counter()
    with open_store(location) as store:
        batch: list[StoredSession] = []
        for session in made_sessions(count):
            batch.append(session)
            if len(batch) == 500:
                with store.transaction(write=True) as conn:
                    for item in batch:
                        store.append_in(conn, item)
                batch = []
        if batch:
            with store.transaction(write=True) as conn:
                for item in batch:
                    store.append_in(conn, item)
    return time.perf_counter() - started


def timed(action: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return times


def show(name: str, seconds: list[float], goal: float | None = None) -> None:
    ms = [s * 1000 for s in seconds]
    verdict = ""
    if goal is not None:
        verdict = "  goal met" if statistics.median(ms) <= goal * 1000 else "  GOAL MISSED"
        verdict = f"  (goal <= {goal * 1000:.0f} ms){verdict}"
    print(
        f"  {name}: median {statistics.median(ms):.1f} ms, {min(ms):.1f}..{max(ms):.1f} ms,"
        f" {len(ms)} runs{verdict}",
        flush=True,
    )


def measure(label: str, url: str, args: argparse.Namespace, sqlite: bool) -> None:
    location = store_location(url, Path.cwd())
    assert location is not None
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{label}: {location.display} (load average {load} on {os.cpu_count()} CPUs)", flush=True)
    filled = fill(location, args.sessions)
    print(f"  filled with {args.sessions} sessions in {filled:.1f} s (500 per transaction)")
    fresh = list(made_sessions(args.appends, start=10_000_000))
    with open_store(location) as store:
        times = []
        for session in fresh:
            started = time.perf_counter()
            store.append(session)
            times.append(time.perf_counter() - started)
    show("append one session (one transaction)", times, 0.05 if sqlite else None)
    more = list(made_sessions(args.repeats * 2, start=20_000_000))

    def open_append_close() -> None:
        with open_store(location) as store:
            store.append(more.pop())

    show("open + append + close (as a run does)", timed(open_append_close, args.repeats))

    def query_and_table() -> None:
        from rich.console import Console

        with open_store(location, create=False) as store:
            series = store.series()
        Console(file=io.StringIO(), width=250).print(history_table(series, True, "bench"))

    show("history query + table, in process", timed(query_and_table, args.repeats))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "perfcheck", "history", "--store", url]

    cpu: list[float] = []

    def whole_command() -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)

    show(f"perfcheck history on {args.sessions} sessions", timed(whole_command, args.repeats), 1.0)
    # On a shared machine other work stretches wall time; the command's own CPU time is
    # what it costs when it has a CPU to itself (a lower bound of its wall time).
    show("  its CPU time (user + system)", cpu)
    changes = [sys.executable, "-m", "perfcheck", "changes", "--store", url]

    def changes_command() -> None:
        subprocess.run(changes, check=True, stdout=subprocess.DEVNULL, env=env)

    show(f"perfcheck changes on {args.sessions} sessions", timed(changes_command, args.repeats))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--appends", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="perfcheck-store-bench-") as tmp:
        measure("SQLite", str(Path(tmp) / "results.sqlite"), args, sqlite=True)
    reason = pgserver.missing_reason()
    if reason is not None:
        print(f"PostgreSQL: not measured: {reason}")
        return 0
    import psycopg

    with pgserver.private_server() as socket_dir:
        with contextlib.closing(
            psycopg.connect(dbname="postgres", user="postgres", host=socket_dir, autocommit=True)
        ) as conn:
            conn.execute("CREATE DATABASE bench")
        measure("PostgreSQL", f"postgresql://postgres@/bench?host={socket_dir}", args, False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
