"""``perfcheck ab``: the command line of interleaved A/B comparisons (:mod:`perfcheck.run.ab`).

It runs ``pytest --perfcheck --perfcheck-ab-a=A --perfcheck-ab-b=B [PYTEST_ARGS]``; the
plugin does the rest. Kept apart from :mod:`perfcheck.run.ab` so that ``perfcheck --help``
imports nothing heavy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence

from perfcheck.cli.results import pytest_args_or_default

DEFAULT_AB_ARGS = ("scenarios/",)


#: The subcommands of this module (see :func:`perfcheck.cli.commands_of`).
COMMANDS: dict[str, str] = {
    "ab": "compare two set-ups (commands A and B) measured alternately in one run",
}


def _run(command: list[str]) -> int:
    return subprocess.run(command, check=False).returncode


def add_ab_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--a", required=True, metavar="CMD", help="set-up command of side A")
    parser.add_argument(
        "--b", required=True, metavar="CMD", help="set-up command of side B (judged against A)"
    )
    parser.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        metavar="PYTEST_ARGS",
        help="arguments for pytest (default: scenarios/); put pytest options after `--`,"
        " e.g. perfcheck ab --a 'echo none > /sys/block/$PERFCHECK_DISK/queue/scheduler'"
        " --b 'echo bfq > /sys/block/$PERFCHECK_DISK/queue/scheduler' -- -k randread",
    )


def ab_command(a: str, b: str, pytest_args: Sequence[str]) -> list[str]:
    """The pytest command line ``perfcheck ab`` runs."""
    args = pytest_args_or_default(pytest_args, DEFAULT_AB_ARGS)
    return [
        sys.executable,
        "-m",
        "pytest",
        "--perfcheck",
        f"--perfcheck-ab-a={a}",
        f"--perfcheck-ab-b={b}",
        *args,
    ]


def cmd_ab(
    args: argparse.Namespace,
    run: Callable[[list[str]], int] = _run,
) -> int:
    """Run the scenarios with A and B interleaved; pytest's exit status (1: B regressed)."""
    command = ab_command(args.a, args.b, args.pytest_args)
    print(f"perfcheck ab: {' '.join(command[1:])}", flush=True)
    return run(command)
