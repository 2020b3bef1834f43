"""What a scenario, machine class or baseline may be called: one safe path component."""

from __future__ import annotations

import re

from perfcheck.text import clipped_repr

MAX_NAME_LENGTH = 128
#: A metric whose name has one of these parts says itself which way is better, e.g. a
#: command's own ``command.higher_is_better.tps``; the gate reads its direction from it.
HIGHER_IS_BETTER_PART = "higher_is_better"
LOWER_IS_BETTER_PART = "lower_is_better"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a scenario or machine-class name (a path part), or None."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long, at most {MAX_NAME_LENGTH} are allowed"
    if not _NAME_RE.fullmatch(name):
        return "must start with a letter or digit and contain only letters, digits, '.', '_', '-'"
    if ".." in name:
        return "must not contain '..'"
    return None


def safe_name(name: str) -> str:
    """Return ``name`` if it is safe as a single path component, else raise ValueError.

    >>> safe_name("randread-4k")
    'randread-4k'
    """
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"name {clipped_repr(name)} {problem}")
    return name


def baseline_name_for(text: str) -> str:
    """A test id made into a baseline name (file-name safe, readable)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return name[:MAX_NAME_LENGTH] or "unnamed"
