"""Score verdict rules on recorded sessions: A/A false FAILs and detection of real regressions.

Reads every ``data/*.json.gz`` written by ``record.py`` (or the files given) and needs no
root, fio or BPF: the scorecard can be recomputed from the stored rounds at any time.

How comparisons are made
------------------------

A *session* holds the per-round metric values of one recording of ``randread-4k`` (30
rounds of 0.5 s after a warm-up) under one condition. A comparison pairs a baseline
session with a current session:

- **A/A**: every ordered pair of two different ``A`` sessions (``n * (n - 1)`` pairs for
  ``n`` sessions): same settings on both sides, so any FAIL is false;
- **detection**: every ``A`` session as the baseline against every session of the
  regression (``n_A * n_X`` pairs).

Pairs share sessions, so comparisons are not independent: the rates are descriptive of
these recordings, and the number of distinct sessions bounds how much they generalise.

The baseline side always uses the first ``--baseline-rounds`` rounds of its session (a
stored baseline). The current side uses the first 10 rounds, and the sequential rule may
take more of the same session's rounds, in order, up to 30 -- exactly what the harness
would have measured next.

The rules, each applied to the gated metrics (p50, p90, p99 of ``block.latency.read`` and
``fio.clat.read``, and ``fio.iops.read``); a comparison FAILs when any metric FAILs:

- ``perfcheck``: the gate -- exact one-sided Mann-Whitney per metric, FAIL iff p < alpha and
  the median moved past the metric's threshold (p50 10%, p90 15%, p99 20%, IOPS 10%);
  10 rounds against 10, sequential rounds up to 30 with alpha spent over the looks;
- ``perfcheck, no sequential``: the same on 10 against 10 rounds, one look;
- ``perfcheck + history``: with the baseline's history holding the summaries of the other
  ``A`` sessions (neither side of the comparison): thresholds widen to the measured
  session-to-session spread (perfcheck.stats.history);
- ``perfcheck + history + control``: also the drift control of both sessions
  (perfcheck.stats.drift): a FAIL while the machine's control got slower is INCONCLUSIVE;
- ``perfcheck, shipped thresholds`` (and ``+ history + control``): the same with the
  thresholds ``scenarios/randread-4k.toml`` ships (p50 15%, p90 100%, p99 200%, IOPS 35%),
  set from this machine's measured session-to-session spread: what ``make perfcheck``
  applies;
- ``+ repeat``: a FAIL must repeat against the same baseline in the next session of the
  current side's condition (the recordings' sessions each had a fresh scratch device),
  else it is INCONCLUSIVE: what the harness does by default (``--perfcheck-no-repeat``
  turns it off);
- ``3-session baseline``: the baseline is recorded as a refresh records it by default --
  the most typical (``perfcheck.stats.history.central_session``) of the pair's baseline session
  and the next two A sessions recorded after it -- with the repeat, and optionally the
  history (all A sessions but the current one), the control or the shipped thresholds;
- ``+ Holm``: alpha held for the comparison as a whole instead of per metric (Holm's
  step-down correction over its metrics, ``compare_series(holm=True)``);
- ``median 10%`` (pytest-benchmark's ``--benchmark-compare-fail=median:10%``): the median of
  each side's 10 rounds, FAIL when any metric is more than 10% worse;
- ``LKP ranges``: FAIL when every current round is worse than every baseline round (the
  ranges do not overlap) and the mean moved past the metric's threshold (our thresholds).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import statistics
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from perfcheck.model.control import ControlMeasurement  # noqa: E402
from perfcheck.model.session import SessionSummary  # noqa: E402
from perfcheck.run.ab import abba_sides  # noqa: E402
from perfcheck.stats.drift import check_drift  # noqa: E402
from perfcheck.stats.gate import is_gated  # noqa: E402
from perfcheck.stats.history import HistoryThresholds, central_session  # noqa: E402
from perfcheck.stats.sequential import SequentialPlan, run_sequential  # noqa: E402
from perfcheck.stats.verdict import (  # noqa: E402
    DEFAULT_ALPHA,
    Direction,
    MetricComparison,
    MetricRule,
    Verdict,
    compare_series,
    default_rule,
)
from perfcheck.workloads.scenario import load_scenario, threshold_for  # noqa: E402

DATA_DIR = Path(__file__).resolve().parent / "data"
RESULTS_MD = ROOT / "bench" / "RESULTS.md"
SECTION = "## Detection scorecard"
CONDITIONS = ("A", "bfq", "mq-deadline", "throttle", "cpu30", "cpu70")
CONDITION_TEXT = {
    "A": "A/A (none vs none): false FAIL",
    "bfq": "none -> bfq",
    "mq-deadline": "none -> mq-deadline",
    "throttle": "blkio throttle at 90% of A's IOPS",
    "cpu30": "stress-ng 30% load on fio's CPU",
    "cpu70": "stress-ng 70% load on fio's CPU",
}
INITIAL_ROUNDS = 10
MAX_ROUNDS = 30
#: Most rounds per side an interleaved comparison may use (sequential looks).
MAX_INTERLEAVED = 20
#: Interleaved windows start every ABBA block (4 rounds).
WINDOW_STEP = 4


@dataclass
class Session:
    condition: str
    index: int
    started_at: str
    rounds: list[dict[str, float]]
    control: ControlMeasurement | None
    source: str

    def series(self, first: int) -> dict[str, list[float]]:
        """Gated metric -> its values in the first ``first`` rounds."""
        names = [m for m in self.rounds[0] if is_gated(m)]
        return {m: [r[m] for r in self.rounds[:first]] for m in sorted(names)}

    def medians(self, first: int) -> dict[str, float]:
        """Gated metric -> median of its first ``first`` rounds."""
        return {m: float(statistics.median(v)) for m, v in self.series(first).items()}

    def summary(self) -> SessionSummary:
        return SessionSummary(
            self.started_at, "recorded", INITIAL_ROUNDS, self.medians(INITIAL_ROUNDS)
        )


@dataclass
class Interleaved:
    """A run of rounds of two sides in ABBA order (``record.py --interleaved``)."""

    condition: str
    index: int
    labelled: list[tuple[str, dict[str, float]]]
    source: str = ""


def load_sessions(paths: Iterable[Path]) -> list[Session]:
    return load(paths)[0]


# -- comparisons ------------------------------------------------------------------------------


@dataclass
class Pair:
    """One comparison: a baseline side and a current side, able to take more rounds.

    ``sides(n)`` gives (baseline series, current series) with ``n`` current rounds: the
    baseline's rounds are fixed for a stored baseline and grow alongside for interleaved
    sides. ``max_rounds`` is the most current rounds the recording holds for this pair.
    """

    sides: Callable[[int], tuple[dict[str, list[float]], dict[str, list[float]]]]
    max_rounds: int
    others: list[Session] = field(default_factory=list)
    base_control: ControlMeasurement | None = None
    cur_control: ControlMeasurement | None = None
    #: The same baseline against another session of the current side's condition: what
    #: repeating a FAIL in a fresh session would have measured.
    repeat: Pair | None = None


def session_pair(
    base: Session,
    cur: Session,
    others: list[Session],
    base_rounds: int,
    repeat: Session | None = None,
) -> Pair:
    base_series = base.series(base_rounds)
    return Pair(
        lambda n: (base_series, cur.series(n)),
        min(MAX_ROUNDS, len(cur.rounds)),
        others,
        base.control,
        cur.control,
        session_pair(base, repeat, others, base_rounds) if repeat is not None else None,
    )


def repeat_session(sessions: list[Session], base: Session, cur: Session) -> Session | None:
    """The next session of ``cur``'s condition after it (in recording order, wrapping
    round), other than ``base``: the fresh session a repeated FAIL would measure."""
    same = [s for s in sessions if s.condition == cur.condition]
    start = same.index(cur)
    for step in range(1, len(same)):
        candidate = same[(start + step) % len(same)]
        if candidate is not base:
            return candidate
    return None


def _gated(rounds: Sequence[Mapping[str, float]]) -> dict[str, list[float]]:
    names = sorted(m for m in rounds[0] if is_gated(m))
    return {m: [r[m] for r in rounds] for m in names}


def window_pair(labelled: Sequence[tuple[str, Mapping[str, float]]], start: int) -> Pair:
    """Rounds from ``start`` of an ABBA-ordered run: B judged against A, both sides growing."""

    def sides(per_side: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        chosen = labelled[start : start + 2 * per_side]
        a = [r for side, r in chosen if side == "A"]
        b = [r for side, r in chosen if side == "B"]
        return _gated(a), _gated(b)

    return Pair(sides, min(MAX_INTERLEAVED, (len(labelled) - start) // 2))


# -- the rules ---------------------------------------------------------------------------------


@dataclass
class Decision:
    verdict: Verdict
    current_rounds: int


Rule = Callable[[Pair], Decision]


def _scenario_verdict(comparisons: Sequence[MetricComparison]) -> Verdict:
    verdicts = {c.verdict for c in comparisons}
    if Verdict.FAIL in verdicts:
        return Verdict.FAIL
    if Verdict.INCONCLUSIVE in verdicts:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


def _rules_for(
    metrics: Iterable[str],
    history: HistoryThresholds | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, MetricRule]:
    rules = {}
    for metric in metrics:
        rule = default_rule(metric)
        override = threshold_for(thresholds, metric) if thresholds else None
        if override is not None:
            rule = MetricRule(rule.direction, override)
        if history is not None:
            threshold, _ = history.widen(metric, rule.threshold)
            rule = MetricRule(rule.direction, threshold)
        rules[metric] = rule
    return rules


def perfcheck_rule(
    sequential: bool,
    use_history: bool = False,
    use_control: bool = False,
    thresholds: Mapping[str, float] | None = None,
    holm: bool = False,
) -> Rule:
    def rule(pair: Pair) -> Decision:
        history = None
        if use_history:
            history = HistoryThresholds.from_history([s.summary() for s in pair.others][-20:])
        rules = _rules_for(pair.sides(INITIAL_ROUNDS)[0], history, thresholds)
        taken = [INITIAL_ROUNDS]

        def judge(alpha: float) -> list[MetricComparison]:
            base, cur = pair.sides(taken[0])
            return compare_series(base, cur, rules, alpha, holm=holm)

        def more(rounds: int) -> None:
            taken[0] += rounds

        plan = SequentialPlan(INITIAL_ROUNDS, pair.max_rounds, 5, DEFAULT_ALPHA)
        result = run_sequential(plan, judge, more if sequential else None)
        verdict = _scenario_verdict(result.comparisons)
        if use_control and verdict is Verdict.FAIL:
            drift = check_drift(pair.base_control, pair.cur_control)
            if drift is not None and drift.drifted:
                verdict = Verdict.INCONCLUSIVE
        return Decision(verdict, taken[0])

    return rule


def _worse_by(rule: MetricRule, before: float, after: float) -> float:
    change = (after - before) / abs(before) if before else 0.0
    return change if rule.direction is Direction.HIGHER_IS_WORSE else -change


def median_10_percent(pair: Pair) -> Decision:
    base_series, cur_series = pair.sides(INITIAL_ROUNDS)
    for metric, values in base_series.items():
        rule = default_rule(metric)
        worse = _worse_by(rule, statistics.median(values), statistics.median(cur_series[metric]))
        if worse > 0.10:
            return Decision(Verdict.FAIL, INITIAL_ROUNDS)
    return Decision(Verdict.PASS, INITIAL_ROUNDS)


def lkp_ranges(pair: Pair) -> Decision:
    base_series, cur_series = pair.sides(INITIAL_ROUNDS)
    for metric, values in base_series.items():
        rule = default_rule(metric)
        now = cur_series[metric]
        if rule.direction is Direction.HIGHER_IS_WORSE:
            apart = min(now) > max(values)
        else:
            apart = max(now) < min(values)
        moved = _worse_by(rule, statistics.fmean(values), statistics.fmean(now))
        if apart and moved > rule.threshold:
            return Decision(Verdict.FAIL, INITIAL_ROUNDS)
    return Decision(Verdict.PASS, INITIAL_ROUNDS)


def with_repeat(rule: Rule) -> Rule:
    """``rule``, but a FAIL stands only if the repeat session FAILs too; else INCONCLUSIVE
    (what ``Harness.repeat_fail`` does). Rounds count both sessions."""

    def repeated(pair: Pair) -> Decision:
        first = rule(pair)
        if first.verdict is not Verdict.FAIL or pair.repeat is None:
            return first
        second = rule(pair.repeat)
        rounds = first.current_rounds + second.current_rounds
        verdict = Verdict.FAIL if second.verdict is Verdict.FAIL else Verdict.INCONCLUSIVE
        return Decision(verdict, rounds)

    return repeated


#: The thresholds the shipped scenario sets (scenarios/randread-4k.toml): what
#: `make perfcheck` applies to the recorded workload.
_SHIPPED = load_scenario(ROOT / "scenarios" / "randread-4k.toml")
SHIPPED_THRESHOLDS: dict[str, float] = dict(_SHIPPED.thresholds)

#: What ``perfcheck ab`` applies to the recorded workload: the scenario's [ab_thresholds].
SHIPPED_AB_THRESHOLDS: dict[str, float] = dict(_SHIPPED.ab_thresholds or {})

#: Rules scored on pairs of sessions (a stored baseline against a later run).
SESSION_RULES: dict[str, Rule] = {
    "perfcheck": perfcheck_rule(sequential=True),
    "perfcheck, no sequential": perfcheck_rule(sequential=False),
    "perfcheck + history": perfcheck_rule(sequential=True, use_history=True),
    "perfcheck + history + control": perfcheck_rule(
        sequential=True, use_history=True, use_control=True
    ),
    "perfcheck, shipped thresholds": perfcheck_rule(sequential=True, thresholds=SHIPPED_THRESHOLDS),
    "perfcheck, shipped thresholds + history + control": perfcheck_rule(
        sequential=True, use_history=True, use_control=True, thresholds=SHIPPED_THRESHOLDS
    ),
    "perfcheck + Holm": perfcheck_rule(sequential=True, holm=True),
    "perfcheck + repeat": with_repeat(perfcheck_rule(sequential=True)),
    "perfcheck + repeat + history + control": with_repeat(
        perfcheck_rule(sequential=True, use_history=True, use_control=True)
    ),
    "median 10%": median_10_percent,
    "LKP ranges": lkp_ranges,
}

#: Rules scored with a baseline recorded as a refresh records it by default: the most
#: typical of three sessions (perfcheck.stats.history.central_session), the baseline session of
#: the pair and the next two A sessions recorded after it.
CENTRAL_RULES: dict[str, Rule] = {
    "perfcheck as shipped: 3-session baseline + repeat": with_repeat(
        perfcheck_rule(sequential=True)
    ),
    "3-session baseline + repeat + history": with_repeat(
        perfcheck_rule(sequential=True, use_history=True)
    ),
    "3-session baseline + repeat + history + control": with_repeat(
        perfcheck_rule(sequential=True, use_history=True, use_control=True)
    ),
    "3-session baseline + repeat, shipped thresholds": with_repeat(
        perfcheck_rule(sequential=True, thresholds=SHIPPED_THRESHOLDS)
    ),
    "3-session baseline + repeat + history, shipped thresholds": with_repeat(
        perfcheck_rule(sequential=True, use_history=True, thresholds=SHIPPED_THRESHOLDS)
    ),
}

#: Rules scored on interleaved sides (perfcheck ab): no stored baseline, so no history or
#: control.
INTERLEAVED_RULES: dict[str, Rule] = {
    "perfcheck ab as shipped ([ab_thresholds] + repeat)": with_repeat(
        perfcheck_rule(sequential=True, thresholds=SHIPPED_AB_THRESHOLDS)
    ),
    "perfcheck ab, no repeat": perfcheck_rule(sequential=True, thresholds=SHIPPED_AB_THRESHOLDS),
    "perfcheck ab + repeat, stored-baseline [thresholds]": with_repeat(
        perfcheck_rule(sequential=True, thresholds=SHIPPED_THRESHOLDS)
    ),
    "perfcheck ab, no sequential": perfcheck_rule(sequential=False),
    "perfcheck ab + Holm": perfcheck_rule(sequential=True, holm=True),
    "median 10%": median_10_percent,
    "LKP ranges": lkp_ranges,
}


# -- scoring -----------------------------------------------------------------------------------


@dataclass
class Cell:
    fail: int = 0
    inconclusive: int = 0
    total: int = 0
    rounds: list[int] = field(default_factory=list)

    def add(self, decision: Decision) -> None:
        self.total += 1
        self.fail += decision.verdict is Verdict.FAIL
        self.inconclusive += decision.verdict is Verdict.INCONCLUSIVE
        self.rounds.append(decision.current_rounds)

    def text(self, show_inconclusive: bool) -> str:
        rate = 100.0 * self.fail / self.total if self.total else float("nan")
        out = f"{rate:.1f}% ({self.fail}/{self.total})"
        if show_inconclusive and self.inconclusive:
            out += f", {100.0 * self.inconclusive / self.total:.0f}% inc."
        return out


def pairs(sessions: list[Session], condition: str) -> list[tuple[Session, Session]]:
    a_sessions = [s for s in sessions if s.condition == "A"]
    if condition == "A":
        return list(itertools.permutations(a_sessions, 2))
    others = [s for s in sessions if s.condition == condition]
    return [(a, x) for a in a_sessions for x in others]


def baseline_trio(a_sessions: list[Session], base: Session, exclude: set[int]) -> list[Session]:
    """``base`` and the next two A sessions recorded after it (wrapping round), leaving
    out the comparison's current and repeat sessions (ids in ``exclude``): the three
    sessions a refresh would have measured."""
    start = a_sessions.index(base)
    trio = [base]
    for step in range(1, len(a_sessions)):
        candidate = a_sessions[(start + step) % len(a_sessions)]
        if id(candidate) not in exclude and len(trio) < 3:
            trio.append(candidate)
    return trio


def score_sessions(
    sessions: list[Session],
    base_rounds: int,
    rules: Mapping[str, Rule] = SESSION_RULES,
    central_rules: Mapping[str, Rule] = CENTRAL_RULES,
) -> dict[str, dict[str, Cell]]:
    """Condition -> rule name -> counts, over pairs of sessions."""
    a_sessions = [s for s in sessions if s.condition == "A"]
    table: dict[str, dict[str, Cell]] = {}
    for condition in CONDITIONS:
        found = pairs(sessions, condition)
        if not found:
            continue
        row = {name: Cell() for name in [*rules, *central_rules]}
        for base, cur in found:
            others = [s for s in a_sessions if s is not base and s is not cur]
            repeat = repeat_session(sessions, base, cur)
            pair = session_pair(base, cur, others, base_rounds, repeat)
            for name, rule in rules.items():
                row[name].add(rule(pair))
            if central_rules:
                trio = baseline_trio(a_sessions, base, {id(cur), id(repeat)})
                central = trio[central_session([t.medians(base_rounds) for t in trio])]
                rest = [s for s in a_sessions if s is not cur]  # a refresh adds the trio
                pair = session_pair(central, cur, rest, base_rounds, repeat)
                for name, rule in central_rules.items():
                    row[name].add(rule(pair))
        table[condition] = row
    return table


def _windows(labelled: Sequence[tuple[str, Mapping[str, float]]]) -> list[Pair]:
    last = len(labelled) - 2 * INITIAL_ROUNDS
    return [window_pair(labelled, start) for start in range(0, last + 1, WINDOW_STEP)]


def _swapped(labelled: Sequence[tuple[str, Mapping[str, float]]]) -> list[tuple[str, Any]]:
    return [("B" if side == "A" else "A", r) for side, r in labelled]


def _with_repeats(per_run: list[list[Pair]]) -> list[Pair]:
    """The windows of several runs of one condition, each given as its repeat the window
    at the same place in the next run (wrapping round): what ``perfcheck ab`` measures
    when a FAIL is repeated in a fresh session (a new scratch device)."""
    out: list[Pair] = []
    for number, windows in enumerate(per_run):
        following = per_run[(number + 1) % len(per_run)] if len(per_run) > 1 else []
        for index, window in enumerate(windows):
            if following:
                window.repeat = following[min(index, len(following) - 1)]
            out.append(window)
    return out


def interleaved_pairs(runs: list[Interleaved], sessions: list[Session]) -> dict[str, list[Pair]]:
    """Row label -> windows. A/A comes from AA runs, and from A-only sessions whose rounds
    are labelled in ABBA order (both ways round: each label judged against the other).
    Each window's repeat is the same window of the next run of its condition in the same
    recording."""
    found: dict[str, list[Pair]] = {}
    sources = sorted({r.source for r in runs} | {s.source for s in sessions})

    def repeated(condition: str) -> list[Pair]:
        out: list[Pair] = []
        for source in sources:
            chosen = [r for r in runs if r.condition == condition and r.source == source]
            out += _with_repeats([_windows(run.labelled) for run in chosen])
        return out

    aa = repeated("AA")
    if aa:
        found["AA"] = aa
    split: list[Pair] = []
    for source in sources:
        straight: list[list[Pair]] = []
        swapped: list[list[Pair]] = []
        for session in sessions:
            if session.condition == "A" and session.source == source:
                sides = abba_sides(0, len(session.rounds))
                labelled = list(zip(sides, session.rounds, strict=True))
                straight.append(_windows(labelled))
                swapped.append(_windows(_swapped(labelled)))
        split += _with_repeats(straight) + _with_repeats(swapped)
    if split:
        found["A-split"] = split
    for condition in CONDITIONS[1:]:
        windows = repeated(condition)
        if windows:
            found[condition] = windows
    return found


def score_interleaved(
    found: Mapping[str, list[Pair]], rules: Mapping[str, Rule] = INTERLEAVED_RULES
) -> dict[str, dict[str, Cell]]:
    table: dict[str, dict[str, Cell]] = {}
    for label, windows in found.items():
        row = {name: Cell() for name in rules}
        for pair in windows:
            for name, rule in rules.items():
                row[name].add(rule(pair))
        table[label] = row
    return table


def effect_sizes(sessions: list[Session]) -> dict[str, dict[str, float]]:
    """Condition -> metric -> median over sessions of the session median, relative to A."""
    by_condition: dict[str, dict[str, list[float]]] = {}
    for s in sessions:
        for metric, values in s.series(MAX_ROUNDS).items():
            by_condition.setdefault(s.condition, {}).setdefault(metric, []).append(
                statistics.median(values)
            )
    base = {m: statistics.median(v) for m, v in by_condition.get("A", {}).items()}
    return {
        c: {m: statistics.median(v) / base[m] - 1.0 for m, v in metrics.items() if base.get(m)}
        for c, metrics in by_condition.items()
    }


def interleaved_effects(runs: list[Interleaved]) -> dict[str, dict[str, float]]:
    """Condition -> metric -> median over runs of (median of B rounds / median of A) - 1."""
    out: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        a = _gated([r for side, r in run.labelled if side == "A"])
        b = _gated([r for side, r in run.labelled if side == "B"])
        for metric, values in a.items():
            ratio = statistics.median(b[metric]) / statistics.median(values) - 1.0
            out.setdefault(run.condition, {}).setdefault(metric, []).append(ratio)
    return {c: {m: statistics.median(v) for m, v in ms.items()} for c, ms in out.items()}


SHOWN_METRICS = ("block.latency.read.p50", "block.latency.read.p99", "fio.iops.read")
ROW_TEXT = {
    **CONDITION_TEXT,
    "AA": "A/A interleaved (AA runs): false FAIL",
    "A-split": "A/A (A sessions' rounds split ABBA): false FAIL",
}
AA_ROWS = ("A", "AA", "A-split")


def goal_lines(table: Mapping[str, Mapping[str, Cell]]) -> list[str]:
    """The scorecard's goals, checked per rule: A/A false FAIL <= 1%, bfq always detected,
    and which regressions are detected in >= 80% of comparisons."""
    names = list(next(iter(table.values())).keys())
    lines = ["| goal | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def rate(cell: Cell) -> float:
        return cell.fail / cell.total if cell.total else float("nan")

    aa = [row for label, row in table.items() if label in AA_ROWS]
    cells = []
    for name in names:
        worst = max(rate(row[name]) for row in aa) if aa else float("nan")
        cells.append(f"{'yes' if worst <= 0.01 else 'no'} ({worst * 100:.1f}%)")
    lines.append("| A/A false FAIL <= 1% (worst A/A row) | " + " | ".join(cells) + " |")
    if "bfq" in table:
        cells = [
            f"{'yes' if table['bfq'][n].fail == table['bfq'][n].total else 'no'}"
            f" ({table['bfq'][n].fail}/{table['bfq'][n].total})"
            for n in names
        ]
        lines.append("| none -> bfq detected in every comparison | " + " | ".join(cells) + " |")
    cells = []
    for name in names:
        caught = [c for c in CONDITIONS[1:] if c in table and rate(table[c][name]) >= 0.80]
        cells.append(", ".join(caught) or "none")
    lines.append("| regressions detected in >= 80% | " + " | ".join(cells) + " |")
    return lines


def _effects_table(effects: Mapping[str, Mapping[str, float]], rows: Iterable[str]) -> list[str]:
    lines = ["| condition | " + " | ".join(SHOWN_METRICS) + " |", "|---|" + "---|" * 3]
    for c in rows:
        if c in effects:
            cells = [f"{effects[c].get(m, float('nan')) * 100:+.0f}%" for m in SHOWN_METRICS]
            lines.append(f"| {ROW_TEXT[c]} | " + " | ".join(cells) + " |")
    return lines


def _score_table(table: Mapping[str, Mapping[str, Cell]], first_rule: str) -> list[str]:
    names = list(next(iter(table.values())).keys())
    lines = ["| comparison | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, row in table.items():
        cells = [row[n].text(n.startswith("perfcheck")) for n in names]
        lines.append(f"| {ROW_TEXT[label]} | " + " | ".join(cells) + " |")
    used = [r for row in table.values() for r in row[first_rule].rounds]
    lines += [
        "",
        f"Rounds per side used by `{first_rule}` (sequential looks; a repeat's included): mean"
        f" {statistics.fmean(used):.1f}, max {max(used)}.",
    ]
    return lines


def _load_text(doc: Mapping[str, Any]) -> str:
    load = doc.get("load_average")
    if not isinstance(load, Mapping):
        return "load average not recorded"
    return f"load average {load['min']:.1f} to {load['max']:.1f} ({load.get('source', 'sampled')})"


def _recording_text(doc: Mapping[str, Any], sessions: list[Session]) -> str:
    counts = {c: sum(1 for s in sessions if s.condition == c) for c in CONDITIONS}
    return (
        f"Recorded {doc['recorded_at'][:16].replace('T', ' ')} UTC (`{doc['file']}`),"
        f" {doc['elapsed_s'] / 60:.0f} min of machine time, {_load_text(doc)}:"
        f" {len(sessions)} sessions ({', '.join(f'{c} {n}' for c, n in counts.items())})."
    )


def markdown(
    recordings: Sequence[tuple[Mapping[str, Any], list[Session]]],
    runs: list[Interleaved],
    session_tables: Sequence[Mapping[str, Mapping[str, Cell]]],
    interleaved_table: Mapping[str, Mapping[str, Cell]],
    meta: Mapping[str, Any],
) -> str:
    run_counts = {c: sum(1 for r in runs if r.condition == c) for c in ("AA", *CONDITIONS[1:])}
    seconds = meta["round_seconds"]
    lines = [
        SECTION,
        "",
        "Recomputed by `.venv/bin/python -m bench.detection.score --write` from the rounds"
        " stored in `bench/detection/data/` (recorded by `bench/detection/record.py`: real"
        " fio `randread-4k`, real `block.latency` BPF probe, a fresh scratch loop device per"
        " session, workqueue affinity scope `cpu`, rounds of"
        f" {seconds:g} s) on {meta['machine']} (kernel {meta['kernel']}), a 2-CPU VM shared"
        " with other jobs; each recording below says how loaded the machine was.",
        "",
        "A comparison FAILs when any gated metric FAILs (p50/p90/p99 of `block.latency.read`"
        " and `fio.clat.read`, `fio.iops.read`). Percentages are FAIL rates; `inc.` is the"
        " share left INCONCLUSIVE. The rules are described in `bench/detection/score.py`.",
        "",
        "### Against a stored baseline (one session against another)",
        "",
        f"Each session is a warm-up and {MAX_ROUNDS} rounds; sessions alternate A and a"
        " regression. A/A = every ordered pair of two A sessions of one recording; detection"
        " = every A session as the baseline against every session of the regression. Pairs"
        " share sessions, so they are not independent. The baseline is a session's first"
        f" {INITIAL_ROUNDS} rounds; the current side starts with {INITIAL_ROUNDS} and"
        f" sequential looks take up to {MAX_ROUNDS} ({MAX_ROUNDS * seconds:g} s of fio)."
        " History = summaries of the other A sessions; control = the drift control measured"
        " at each session's start.",
        "",
    ]
    for (doc, sessions), table in zip(recordings, session_tables, strict=True):
        lines += [
            f"#### {doc['recorded_at'][:16].replace('T', ' ')} UTC, {_load_text(doc)}",
            "",
            _recording_text(doc, sessions),
            "",
            "Effect of each condition (median over its sessions of the session median, vs the"
            " A sessions'):",
            "",
            *_effects_table(effect_sizes(sessions), CONDITIONS[1:]),
            "",
            f"Baseline of {INITIAL_ROUNDS} rounds:",
            "",
            *_score_table(table, "perfcheck"),
            "",
            *goal_lines(table),
            "",
        ]
    if runs:
        lines += [
            "### Interleaved (`perfcheck ab`: A and B alternate in one run)",
            "",
            f"{len(runs)} runs ({', '.join(f'{c} {n}' for c, n in run_counts.items())}), each"
            " on a fresh scratch device: warm-up, then rounds of A (scheduler none) and B (the"
            " regression switched on) in ABBA order. A comparison is a window of the run"
            f" starting at an ABBA block boundary (every {WINDOW_STEP} rounds):"
            f" {INITIAL_ROUNDS} rounds per side, sequential looks up to"
            f" {MAX_INTERLEAVED} per side ({MAX_INTERLEAVED * seconds:g} s of fio per side)"
            " while the run has them. Windows of one run overlap, so they are not"
            " independent; the A/A row from A sessions labels their rounds A and B in ABBA"
            " order, both ways round. `+ repeat` (what `perfcheck ab` does by default): a"
            " FAIL stands only if the same window of the next run of its condition (a fresh"
            " scratch device) FAILs too.",
            "",
            "Effect within runs (median over runs of median B / median A):",
            "",
            *_effects_table(interleaved_effects(runs), CONDITIONS[1:]),
            "",
            *_score_table(interleaved_table, "perfcheck ab as shipped ([ab_thresholds] + repeat)"),
            "",
            *goal_lines(interleaved_table),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def write_section(text: str, path: Path = RESULTS_MD) -> None:
    """Replace (or add) the scorecard section of ``path``, leaving other sections alone."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    start = old.find(SECTION + "\n")
    if start < 0:
        new = old.rstrip() + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + ("\n" + old[end + 1 :] if end >= 0 else "")
    path.write_text(new)


def load(paths: Iterable[Path]) -> tuple[list[Session], list[Interleaved], list[dict[str, Any]]]:
    sessions: list[Session] = []
    runs: list[Interleaved] = []
    docs: list[dict[str, Any]] = []
    for path in sorted(paths):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            document = json.load(fh)
        document["file"] = path.name
        docs.append(document)
        for raw in document["sessions"]:
            if raw.get("mode") == "interleaved":
                labelled = [
                    (r["side"], {k: v for k, v in r.items() if k != "side"})
                    for r in raw["sequence"]
                ]
                runs.append(Interleaved(raw["condition"], int(raw["index"]), labelled, path.name))
            else:
                control = raw.get("control")
                sessions.append(
                    Session(
                        condition=raw["condition"],
                        index=int(raw["index"]),
                        started_at=raw["started_at"],
                        rounds=raw["rounds"],
                        control=None if control is None else ControlMeasurement.from_dict(control),
                        source=path.name,
                    )
                )
    return sessions, runs, docs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="data files (default: data/*.json.gz)")
    parser.add_argument("--write", action="store_true", help=f"update {RESULTS_MD.name}")
    args = parser.parse_args(argv)
    files = args.files or sorted(p for p in DATA_DIR.glob("*.json.gz") if "quick" not in p.name)
    if not files:
        print(f"score: no data in {DATA_DIR}; record some with record.py", file=sys.stderr)
        return 2
    sessions, runs, docs = load(files)
    meta = {
        "machine": ", ".join(sorted({d["machine_class"] for d in docs})),
        "kernel": ", ".join(sorted({d["kernel"] for d in docs})),
        "round_seconds": docs[0]["round_seconds"],
    }
    # Each recording is scored on its own: sessions of a loaded afternoon and of a quiet
    # evening are different machines as far as noise goes.
    recordings = [
        (doc, [s for s in sessions if s.source == doc["file"]])
        for doc in docs
        if any(s.source == doc["file"] for s in sessions)
    ]
    session_tables = [score_sessions(group, INITIAL_ROUNDS) for _, group in recordings]
    interleaved_table = score_interleaved(interleaved_pairs(runs, sessions)) if runs else {}
    text = markdown(recordings, runs, session_tables, interleaved_table, meta)
    print(text)
    if args.write:
        write_section(text)
        print(f"score: written to {RESULTS_MD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
