"""``perfcheck upload`` and ``perfcheck history``: the commands over the results store."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from perfcheck.errors import BaselineError

if TYPE_CHECKING:
    from perfcheck.store.sessions.sqlstore import Series, StoreLocation

STORE_ENV = "PERFCHECK_STORE"


#: The subcommands of this module (see :func:`perfcheck.cli.commands_of`).
COMMANDS: dict[str, str] = {
    "upload": "add results files and baseline files' sessions to the results store",
    "history": "each series in the results store: a table with a trend sparkline",
    "changes": "change points per scenario, metric and machine class in the results store",
}


def _label(text: str) -> tuple[str, str]:
    from perfcheck.store.sessions.records import parse_label

    try:
        return parse_label(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        help="the results store: a SQLite file or postgresql://user@host/db (default"
        f" ${STORE_ENV}, else .perfcheck/results.sqlite in the current directory)",
    )


def _location(args: argparse.Namespace) -> object:
    from perfcheck.store.sessions import StoreError
    from perfcheck.store.sessions.sqlstore import store_location

    location = store_location(args.store or os.environ.get(STORE_ENV), Path.cwd())
    if location is None:
        raise StoreError("--store none: give a store to read or write")
    return location


def add_upload_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="results files (--perfcheck-save) or baseline files (their history sessions)",
    )
    _add_store_argument(parser)
    _add_label_option(
        parser, "label the uploaded sessions (repeatable; also $PERFCHECK_LABELS='k=v,k2=v2')"
    )


def cmd_upload(args: argparse.Namespace) -> int:
    """Every file is read first (a bad one stores nothing); then one transaction per session,
    skipped when its id is stored already. Exit 0, 1 on a store error, 2 on a bad file."""
    from perfcheck.run.upload import read_all
    from perfcheck.store.sessions.records import labels_from_env
    from perfcheck.store.sessions.sqlstore import StoreLocation, open_store

    try:
        labels = {**labels_from_env(), **dict(args.label)}
    except ValueError as exc:
        print(f"perfcheck upload: {exc}", file=sys.stderr)
        return 2
    location = _location(args)
    assert isinstance(location, StoreLocation)
    try:
        files = read_all(args.files, labels)
    except BaselineError as exc:
        print(f"perfcheck upload: {exc}; nothing was stored", file=sys.stderr)
        return 2
    added = present = 0
    with open_store(location, create=True) as store:
        for item in files:
            count = store.append_all(item.sessions)
            added, present = added + count.added, present + count.present
            if item.note is not None:
                print(item.note)
            print(
                f"{item.path}: {count.added} session(s) added, {count.present} already there"
                f" ({item.kind} file)"
            )
    print(f"perfcheck upload: {added} added, {present} already there, in {location.display}")
    return 0


def _add_label_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--label", action="append", type=_label, default=[], metavar="KEY=VALUE", help=help_text
    )


def _add_series_filters(parser: argparse.ArgumentParser) -> None:
    """The options that pick series: scenario, metric, machine class, labels."""
    parser.add_argument("scenario", nargs="?", help="only this scenario")
    parser.add_argument("--metric", help="only this metric, e.g. fio.clat.read.p50")
    parser.add_argument("--machine-class", help="only this machine class")
    _add_label_option(parser, "only sessions with this label (repeatable: all must match)")


def _add_last_json_store(
    parser: argparse.ArgumentParser, last: int, last_help: str, printed: str
) -> None:
    parser.add_argument(
        "--last", type=int, default=last, metavar="N", help=f"{last_help} (default {last})"
    )
    parser.add_argument("--json", action="store_true", help=f"print {printed} as JSON")
    _add_store_argument(parser)


def _matching_series(args: argparse.Namespace) -> tuple[StoreLocation, list[Series]]:
    """The store the options name, and its series that match the filters (``--last``
    sessions each)."""
    from perfcheck.store.sessions.sqlstore import StoreLocation, open_store

    location = _location(args)
    assert isinstance(location, StoreLocation)
    with open_store(location, create=False) as store:
        series = store.series(
            scenario=args.scenario,
            metric=args.metric,
            machine_class=args.machine_class,
            labels=dict(args.label),
            last=args.last,
        )
    return location, series


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    _add_series_filters(parser)
    _add_last_json_store(parser, 30, "sessions shown per series, newest last", "the series")


def cmd_history(args: argparse.Namespace) -> int:
    """Exit 0 with series shown, 1 when nothing matched or on a store error."""
    from perfcheck.report.history import history_json, history_table

    if not 1 <= args.last <= 10_000:
        print(f"perfcheck history: --last {args.last}: give 1 to 10000", file=sys.stderr)
        return 2
    location, series = _matching_series(args)
    if args.json:
        print(json.dumps(history_json(series, location.display), indent=1, sort_keys=True))
        return 0 if series else 1
    if not series:
        print(f"perfcheck history: no sessions match in {location.display}", file=sys.stderr)
        return 1
    from perfcheck.cli.console import stdout_console, stdout_is_terminal

    tty = stdout_is_terminal()
    console = stdout_console()  # piped: as wide as the table needs, identifiers whole
    title = f"{location.display}: last {args.last} sessions per series"
    console.print(history_table(series, whole_ids=not tty, title=title))
    return 0


#: As perfcheck.stats.changes.DEFAULT_ALPHA, which imports numpy (0.2 s of start-up).
CHANGES_ALPHA = 0.01


def add_changes_arguments(parser: argparse.ArgumentParser) -> None:
    _add_series_filters(parser)
    parser.add_argument(
        "--since",
        metavar="TIME",
        help="only change points whose first session after is at or after TIME (UTC, e.g."
        " 2026-12-01 or 2026-12-01T12:00:00Z)",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=CHANGES_ALPHA,
        help=f"significance level of each split's permutation test (default {CHANGES_ALPHA})",
    )
    parser.add_argument(
        "--min-change",
        type=float,
        default=0.0,
        metavar="F",
        help="only changes of the median by at least this fraction (e.g. 0.1 for 10%%)",
    )
    _add_last_json_store(
        parser, 500, "sessions searched per series, the newest", "the change points"
    )


def _since_text(text: str) -> str:
    """``2026-12-01`` or a full ISO time -> the stored form, which sorts as text."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give a date or time, e.g. 2026-12-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_changes(args: argparse.Namespace) -> int:
    """Exit 0 (with or without change points), 1 when no sessions match or on a store
    error, 2 on bad usage."""
    from perfcheck.report.history import changes_json, changes_table
    from perfcheck.stats.changes import change_points

    problems = []
    if not 0 < args.alpha < 1:
        problems.append(f"--alpha {args.alpha}: give a level between 0 and 1, e.g. 0.01")
    if not 6 <= args.last <= 100_000:
        problems.append(f"--last {args.last}: give 6 to 100000 sessions")
    if args.min_change < 0:
        problems.append(f"--min-change {args.min_change}: give a fraction >= 0")
    since = None
    if args.since is not None:
        try:
            since = _since_text(args.since)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        print(f"perfcheck changes: {problems[0]}", file=sys.stderr)
        return 2
    location, series = _matching_series(args)
    if not series:
        print(f"perfcheck changes: no sessions match in {location.display}", file=sys.stderr)
        return 1
    found = []
    for item in series:
        for point in change_points([p.median for p in item.points], alpha=args.alpha):
            if abs(point.change) < args.min_change:
                continue
            if since is not None and item.points[point.index].recorded_at < since:
                continue
            found.append((item, point))
    if args.json:
        print(json.dumps(changes_json(found, location.display), indent=1, sort_keys=True))
        return 0
    searched = f"{len(series)} series, the newest {args.last} sessions of each"
    if not found:
        print(f"perfcheck changes: no change points in {searched} ({location.display})")
        return 0
    from perfcheck.cli.console import stdout_console, stdout_is_terminal

    tty = stdout_is_terminal()
    console = stdout_console()
    title = f"{location.display}: {len(found)} change point(s) in {searched}"
    console.print(changes_table(found, whole_ids=not tty, title=title))
    return 0
