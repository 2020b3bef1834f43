"""The ``perfcheck`` command line: one function ``cmd_<name>(args) -> int`` per subcommand.

To add a subcommand, write its ``cmd_<name>`` and ``add_<name>_arguments`` functions in a
CLI module and its help line in that module's ``COMMANDS``. Subcommands import what they need
inside their function, so ``perfcheck --help`` stays fast and never imports bcc.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import ModuleType

from perfcheck import __version__
from perfcheck.cli import ab as cli_ab
from perfcheck.cli import probe as cli_probe
from perfcheck.cli import results as cli_results
from perfcheck.cli import store as cli_store
from perfcheck.errors import PerfcheckError


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
    from perfcheck.system import doctor

    checks = doctor.run_checks()
    ok = doctor.required_checks_pass(checks)
    if args.json:
        document = {"ok": ok, "checks": [asdict(check) for check in checks]}
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0 if ok else 1

    from rich.table import Table
    from rich.text import Text

    from perfcheck.cli.console import stdout_console, stdout_is_terminal

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


def commands_of(module: ModuleType) -> list[Subcommand]:
    """The subcommands a CLI module declares in ``COMMANDS`` (name -> help line), each run by
    its ``cmd_<name>`` with the options of its ``add_<name>_arguments``."""
    commands: dict[str, str] = module.COMMANDS
    return [
        Subcommand(
            name, line, getattr(module, f"add_{name}_arguments"), getattr(module, f"cmd_{name}")
        )
        for name, line in commands.items()
    ]


#: What this module runs itself.
COMMANDS: dict[str, str] = {
    "doctor": "check that this machine can run perfcheck (root, bcc, headers, tracefs, tools)",
}

# The one place subcommands are registered: the results commands (each exits 2 on an
# unreadable file), interleaved A/B runs, the results store's, the probe commands.
SUBCOMMANDS: tuple[Subcommand, ...] = tuple(
    command
    for module in (sys.modules[__name__], cli_results, cli_ab, cli_store, cli_probe)
    for command in commands_of(module)
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
