"""The settings of one perfcheck run, as the plugin (or a CLI command) maps its options."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from perfcheck.stats.history import DEFAULT_BASELINE_SESSIONS
from perfcheck.stats.history_gate import DEFAULT_WINDOW, GATE_BASELINE
from perfcheck.stats.sequential import DEFAULT_BATCH, DEFAULT_MAX_ROUNDS
from perfcheck.stats.verdict import DEFAULT_ALPHA


class MissingBaseline(StrEnum):
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class HarnessSettings:
    baseline_dir: Path
    update: bool = False
    target: Path | None = None
    allow_destructive: bool = False
    scheduler: str | None = None
    #: Block-queue attributes set on the target after the scheduler (--perfcheck-queue).
    queue: tuple[tuple[str, str], ...] = ()
    rounds: int | None = None
    seconds: float | None = None
    missing: MissingBaseline = MissingBaseline.SKIP
    machine_class: str | None = None
    alpha: float = DEFAULT_ALPHA
    scratch_size_mib: int = 512
    #: Noise control for loop-device targets (see perfcheck.system.knobs).
    tune: bool = True
    #: Fail instead of falling back to workload-only metrics when BPF probes cannot start.
    require_bpf: bool = False
    #: Sequential rounds: cap on the current side's rounds, and rounds added per look.
    max_rounds: int = DEFAULT_MAX_ROUNDS
    batch: int = DEFAULT_BATCH
    #: INCONCLUSIVE fails the test (--perfcheck-strict).
    strict: bool = False
    #: Alpha per scenario, not per metric: Holm's correction (--perfcheck-holm).
    holm: bool = False
    #: A FAIL must repeat in a fresh session before it stands (--perfcheck-no-repeat).
    repeat_fails: bool = True
    #: Add passing sessions to their baseline's history (--perfcheck-record).
    record: bool = False
    #: A recording measures this many fresh sessions and keeps the most typical one as the
    #: baseline, all of them going into its history (--perfcheck-baseline-sessions).
    baseline_sessions: int = DEFAULT_BASELINE_SESSIONS
    #: Measure the drift control once per run (--perfcheck-control).
    control: bool = False
    #: Interleaved A/B: the set-up commands of sides A and B (perfcheck.run.ab).
    ab_commands: tuple[str, str] | None = None
    #: What a scenario is judged against: its stored baseline, or the recent sessions of
    #: its series in the results store (--perfcheck-gate; perfcheck.stats.history_gate).
    gate: str = GATE_BASELINE
    #: Newest sessions of a series the history gate reads (--perfcheck-history-sessions).
    history_window: int = DEFAULT_WINDOW
