"""The ``perfcheck`` command line: one function ``cmd_<name>(args) -> int`` per subcommand.

To add a subcommand, write its ``cmd_<name>`` and an ``add_<name>_arguments`` function and
add one :class:`Subcommand` row to :data:`SUBCOMMANDS`. Subcommands import what they need
inside their function, so ``perfcheck --help`` stays fast and never imports bcc.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from perfcheck import __version__, cli_ab, cli_probe, cli_results
from perfcheck.errors import PerfcheckError
from perfcheck.resultstore import cli_store


@dataclass(frozen=True)
class Subcommand:
    """A ``perfcheck <name>`` subcommand: its help line, its options and what it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the checks as JSON instead of a table",
    )


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check this machine; exit 0 only when every required check passes."""
    from perfcheck import doctor

    checks = doctor.run_checks()
    ok = doctor.required_checks_pass(checks)
    if args.json:
        document = {"ok": ok, "checks": [asdict(check) for check in checks]}
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0 if ok else 1

    from rich.table import Table
    from rich.text import Text

    from perfcheck.console import stdout_console, stdout_is_terminal

    table = Table(title="perfcheck doctor", expand=stdout_is_terminal())
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    # Paths in details must stay whole, so fold long ones instead of cutting them short.
    table.add_column("detail", ratio=3, overflow="fold")
    table.add_column("fix", ratio=2, overflow="fold")
    for check in checks:
        if check.ok:
            status = Text("ok", style="green")
        elif check.required:
            status = Text("FAIL", style="bold red")
        else:
            status = Text("missing", style="yellow")
        # Text(...) rather than str: details hold paths and brackets that are not markup.
        table.add_row(Text(check.name), status, Text(check.detail), Text(check.fix))
    console = stdout_console()
    console.print(table)
    failed = [check.name for check in checks if check.required and not check.ok]
    if failed:
        console.print(
            Text(f"{len(failed)} required check(s) failed: {', '.join(failed)}", style="red")
        )
        return 1
    console.print(Text("all required checks pass", style="green"))
    return 0


# The one place subcommands are registered.
SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand(
        name="doctor",
        help="check that this machine can run perfcheck (root, bcc, headers, tracefs, tools)",
        add_arguments=add_doctor_arguments,
        run=cmd_doctor,
    ),
    # Results commands (perfcheck/cli_results.py); each exits 2 on an unreadable file.
    Subcommand(
        name="compare",
        help="compare two results or baseline files metric by metric (exit 1 on any FAIL)",
        add_arguments=cli_results.add_compare_arguments,
        run=cli_results.cmd_compare,
    ),
    Subcommand(
        name="show",
        help="percentiles and log2 histograms of a results or baseline file",
        add_arguments=cli_results.add_show_arguments,
        run=cli_results.cmd_show,
    ),
    Subcommand(
        name="refresh",
        help="re-record baselines (pytest --perfcheck --perfcheck-update) and show what moved",
        add_arguments=cli_results.add_refresh_arguments,
        run=cli_results.cmd_refresh,
    ),
    Subcommand(
        name="report",
        help="write a results or baseline file as a self-contained HTML report",
        add_arguments=cli_results.add_report_arguments,
        run=cli_results.cmd_report,
    ),
    Subcommand(
        name="ab",
        help="compare two set-ups (commands A and B) measured alternately in one run",
        add_arguments=cli_ab.add_ab_arguments,
        run=cli_ab.cmd_ab,
    ),
    # Results store commands (perfcheck/resultstore/cli_store.py).
    Subcommand(
        name="upload",
        help="add results files and baseline files' sessions to the results store",
        add_arguments=cli_store.add_upload_arguments,
        run=cli_store.cmd_upload,
    ),
    Subcommand(
        name="history",
        help="each series in the results store: a table with a trend sparkline",
        add_arguments=cli_store.add_history_arguments,
        run=cli_store.cmd_history,
    ),
    Subcommand(
        name="changes",
        help="change points per scenario, metric and machine class in the results store",
        add_arguments=cli_store.add_changes_arguments,
        run=cli_store.cmd_changes,
    ),
    # Probe commands (perfcheck/cli_probe.py).
    Subcommand(
        name="probes",
        help="the probe catalog: events, filters, and which probes can load on this machine",
        add_arguments=cli_probe.add_probes_arguments,
        run=cli_probe.cmd_probes,
    ),
    Subcommand(
        name="probe",
        help="run one probe like a bcc tool: log2 histogram and percentiles per interval",
        add_arguments=cli_probe.add_probe_arguments,
        run=cli_probe.cmd_probe,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfcheck",
        description="Performance-regression checks for the Linux storage and network stacks.",
    )
    parser.add_argument("--version", action="version", version=f"perfcheck {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        subparser = subparsers.add_parser(
            subcommand.name, help=subcommand.help, description=subcommand.help
        )
        subcommand.add_arguments(subparser)
        subparser.set_defaults(run=subcommand.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``perfcheck`` with ``argv`` (default: the process's arguments); return the exit code.

    0 success, 1 a check or comparison failed or a :class:`PerfcheckError` (one line on
    stderr), 2 usage error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except PerfcheckError as err:
        print(f"perfcheck: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader left (`perfcheck probes | head`): stop quietly, and keep Python's
        # final flush of stdout from failing again on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
