"""Small text helpers shared by every layer: one-line messages, clipped values, timestamps.

Error messages in perfcheck are one line that names the file or option at fault; these
keep a value quoted from user input (a TOML string, a JSON key, a tool's stderr) from
breaking that rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime

#: A terminal colour sequence, as tools print them even into pipes.
ANSI_ESCAPE_RE = re.compile(r"\x1b\[[0-9;]*m")
#: Longest quoted text in a one-line message.
MAX_MESSAGE_CHARS = 160
#: Longest quoted value (a repr) in a one-line message.
MAX_VALUE_CHARS = 60


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` with runs of whitespace (newlines included) as single spaces, clipped.

    >>> one_line("no such\\n  file", 10)
    'no such...'
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clipped_repr(value: object) -> str:
    """``repr(value)`` on one line, at most :data:`MAX_VALUE_CHARS` characters."""
    return one_line(repr(value), MAX_VALUE_CHARS)


#: Type names JSON and TOML share; each format adds its own (``number``, ``float``, ...).
COMMON_TYPE_NAMES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (str, "string"),
    (list, "array"),
)


def type_name(value: object, names: Sequence[tuple[type, str]]) -> str:
    """What a file format calls ``value``'s type: the name of the first type in ``names``
    it is an instance of (list ``bool`` before ``int``), else Python's name for it."""
    return next((name for kind, name in names if isinstance(value, kind)), type(value).__name__)


def change_text(change: float) -> str:
    """A relative change as a signed percentage, ``+inf%`` off a zero baseline.

    >>> change_text(0.123), change_text(-math.inf)
    ('+12.3%', '-inf%')
    """
    if math.isinf(change):
        return "+inf%" if change > 0 else "-inf%"
    return f"{change * 100.0:+.1f}%"


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 UTC timestamp as stored in ``recorded_at``, e.g. ``2024-05-01T12:00:00Z``."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
