"""What happened to a scenario in a run, as every report shows it."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    RECORDED = "RECORDED"
    NO_BASELINE = "NO BASELINE"


#: What a scenario is whose measurement stopped on an error (its command failed, its
#: output could not be read): not a status of a verdict, since there is none.
ERROR = "ERROR"
