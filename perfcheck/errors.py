"""Errors that reach the user as one line: what is at fault and how to fix it."""

from __future__ import annotations


class PerfcheckError(Exception):
    """Base of every error perfcheck reports to a user.

    ``str(err)`` is a single line naming the file or capability at fault and the fix.
    """


class CapabilityError(PerfcheckError):
    """A machine capability is missing (root, bcc, kernel headers, tracefs, a tool)."""


class BaselineError(PerfcheckError):
    """A baseline or results file is missing, corrupted, or of another schema version."""


class ScenarioError(PerfcheckError):
    """A scenario file is malformed (unknown key, wrong type, bad value)."""


class TargetError(PerfcheckError):
    """The workload target cannot be used (missing, unsafe to write, busy)."""


class WorkloadError(PerfcheckError):
    """A workload tool failed (non-zero exit, unparsable output)."""


class ProbeError(PerfcheckError):
    """A probe failed to compile or attach, or its counts disagree with the workload's."""
