"""``perfcheck upload`` and ``perfcheck history``: the commands over the results store."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from perfcheck.errors import BaselineError

STORE_ENV = "PERFCHECK_STORE"


def _label(text: str) -> tuple[str, str]:
    from perfcheck.resultstore.records import parse_label

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
    from perfcheck.resultstore import StoreError
    from perfcheck.resultstore.sqlstore import store_location

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
    parser.add_argument(
        "--label",
        action="append",
        type=_label,
        default=[],
        metavar="KEY=VALUE",
        help="label the uploaded sessions (repeatable; also $PERFCHECK_LABELS='k=v,k2=v2')",
    )


def cmd_upload(args: argparse.Namespace) -> int:
    """Every file is read first (a bad one stores nothing); then one transaction per session,
    skipped when its id is stored already. Exit 0, 1 on a store error, 2 on a bad file."""
    from perfcheck.resultstore.records import labels_from_env
    from perfcheck.resultstore.sqlstore import StoreLocation, open_store
    from perfcheck.resultstore.upload import read_all

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
            print(
                f"{item.path}: {count.added} session(s) added, {count.present} already there"
                f" ({item.kind} file)"
            )
    print(f"perfcheck upload: {added} added, {present} already there, in {location.display}")
    return 0


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", help="only this scenario")
    parser.add_argument("--metric", help="only this metric, e.g. fio.clat.read.p50")
    parser.add_argument("--machine-class", help="only this machine class")
    parser.add_argument(
        "--label",
        action="append",
        type=_label,
        default=[],
        metavar="KEY=VALUE",
        help="only sessions with this label (repeatable: all must match)",
    )
    parser.add_argument(
        "--last",
        type=int,
        default=30,
        metavar="N",
        help="sessions shown per series, newest last (default 30)",
    )
    parser.add_argument("--json", action="store_true", help="print the series as JSON")
    _add_store_argument(parser)


def cmd_history(args: argparse.Namespace) -> int:
    """Exit 0 with series shown, 1 when nothing matched or on a store error."""
    from perfcheck.resultstore.history_view import history_json, history_table
    from perfcheck.resultstore.sqlstore import StoreLocation, open_store

    if not 1 <= args.last <= 10_000:
        print(f"perfcheck history: --last {args.last}: give 1 to 10000", file=sys.stderr)
        return 2
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
    if args.json:
        print(json.dumps(history_json(series, location.display), indent=1, sort_keys=True))
        return 0 if series else 1
    if not series:
        print(f"perfcheck history: no sessions match in {location.display}", file=sys.stderr)
        return 1
    from rich.console import Console

    tty = sys.stdout.isatty()
    # Piped: as wide as the table needs, so identifiers stay whole on one line.
    console = Console(highlight=False, width=None if tty else 10_000)
    title = f"{location.display}: last {args.last} sessions per series"
    console.print(history_table(series, whole_ids=not tty, title=title))
    return 0
