"""The rich console the CLI prints tables on.

At a terminal, tables fit its width. Piped (``perfcheck probes | grep block.queue_latency``,
a CI log), rich would wrap them at 80 columns and split names across lines, so nothing is
wrapped for width: tables take the width their cells need and stop there.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

#: Width of a piped console: wider than any line perfcheck prints, so none is wrapped.
PIPED_WIDTH: Final[int] = 10_000


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def stdout_console() -> Console:
    """A console on stdout: the terminal's width, or unwrapped when piped. Tables printed
    on it should use ``expand=stdout_is_terminal()`` and headings :func:`heading`."""
    from rich.console import Console

    return Console(highlight=False, width=None if stdout_is_terminal() else PIPED_WIDTH)


def heading(console: Console, title: Text) -> None:
    """A rule across the terminal, or the title alone on its line when piped."""
    if stdout_is_terminal():
        console.rule(title)
    else:
        console.print(title)
