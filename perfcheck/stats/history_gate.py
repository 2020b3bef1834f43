"""The history gate: a session judged against the recent sessions of its series in the
results store, instead of against one stored baseline (``--perfcheck-gate history``).

A series is one scenario (same scenario and job files: same content hash) on one machine
class; its unit is the **session**, not the round: each stored session gives one median
per metric. Rounds of one session agree more than sessions do (see
:mod:`perfcheck.stats.history`), so a run judged by its rounds against one baseline
session meets session-to-session noise it cannot see; judged against twenty sessions, it
meets that noise head on.

The rule, per gated metric, with ``n`` history sessions (the newest ``window``, at least
:data:`MIN_HISTORY`) and the metric's scenario threshold ``t``:

- **What the history predicts.** Its sessions' median and their robust relative spread,
  ``1.4826 * MAD / |median|``. A new session is *outside* the history when its median is
  worse than the history's median by more than the **limit**
  ``max(t, 3 * spread * sqrt(1 + 1/n))``: three robust standard deviations of one new
  session around an estimated centre, and never less than the threshold the stored
  baseline gate uses. Only worse counts; faster sessions pass.
- **Suspect, then confirmed.** One session outside the history is SUSPECT, never a FAIL
  by itself. The harness measures further fresh sessions (a new scratch device each)
  until there are :func:`sessions_to_confirm` of them, and the new sessions' medians are
  tested against the history's with the gate's own test: one-sided exact Mann-Whitney U
  at alpha, and a change past the limit (:func:`perfcheck.stats.verdict.compare_metric`,
  sessions in place of rounds). FAIL needs both; a move past the limit that the sessions
  cannot confirm is INCONCLUSIVE; a suspect the further sessions do not bear out (an
  outlying session) ends PASS. With 20 history sessions 3 new ones can reach
  ``p = 1/C(23, 3) = 1/1771``; with 5, 4 are needed (``1/C(9, 4) = 1/126``).
- **Where the step is.** After the confirming sessions, change points
  (:mod:`perfcheck.stats.changes`, at :data:`LOCATE_ALPHA`) are searched in the history
  followed by the new sessions. When the last change point at or before the new sessions
  is a step to worse with at least :data:`MIN_HISTORY` sessions before it, the sessions
  after it (stored ones and new) are what is tested against those before it, and a FAIL
  names the first session after it (its time, id, kernel, commit, labels: which build
  changed this); otherwise the new sessions are tested against the whole history and a
  FAIL is this run's step. A step already in the history keeps FAILing runs until its
  sessions are the majority of the window (the history's median then sits after it, and
  a new session is no longer suspect): by then it is the series' new normal.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from perfcheck.stats.changes import change_points
from perfcheck.stats.history import SPREAD_FACTOR, relative_spread
from perfcheck.stats.verdict import (
    MIN_ROUNDS,
    Direction,
    MetricComparison,
    MetricRule,
    Verdict,
    can_ever_fail,
    compare_series,
)
from perfcheck.store.sessions.records import RecentSession

#: History sessions of a series needed before the history judges; fewer: the stored baseline.
MIN_HISTORY: Final[int] = 5
#: Newest sessions of a series the history gate reads (``--perfcheck-history-sessions``).
DEFAULT_WINDOW: Final[int] = 20
#: Significance a change point needs to say where a confirmed step starts; the FAIL itself
#: is decided by the sessions' own test at the gate's alpha, on either side of it.
LOCATE_ALPHA: Final[float] = 0.05
#: Most sessions one run measures to confirm a suspect.
MAX_CONFIRM_SESSIONS: Final[int] = 6

GATE_BASELINE: Final[str] = "baseline"
GATE_HISTORY: Final[str] = "history"
GATES: Final[tuple[str, ...]] = (GATE_BASELINE, GATE_HISTORY)


@dataclass(frozen=True)
class MetricHistory:
    """One metric's session medians in the history, oldest first, and its scenario rule;
    ``sessions`` are their positions in the history (sessions without the metric are left
    out)."""

    metric: str
    values: tuple[float, ...]
    rule: MetricRule
    sessions: tuple[int, ...] = ()

    @property
    def spread(self) -> float:
        """Robust relative spread of the sessions (0 when it cannot be measured)."""
        return relative_spread(self.values) or 0.0

    @property
    def limit(self) -> float:
        """How much worse than the history's median a session may be and still fit."""
        n = len(self.values)
        return max(self.rule.threshold, SPREAD_FACTOR * self.spread * math.sqrt(1.0 + 1.0 / n))


def metric_histories(
    history: Sequence[Mapping[str, float]], rules: Mapping[str, MetricRule]
) -> dict[str, MetricHistory]:
    """Each metric of ``rules`` that at least :data:`MIN_HISTORY` of the ``history``
    sessions' medians (oldest first) hold, as a :class:`MetricHistory`."""
    out: dict[str, MetricHistory] = {}
    for metric, rule in sorted(rules.items()):
        having = tuple(i for i, s in enumerate(history) if metric in s and math.isfinite(s[metric]))
        if len(having) >= MIN_HISTORY:
            values = tuple(history[i][metric] for i in having)
            out[metric] = MetricHistory(metric, values, rule, having)
    return out


def sessions_to_confirm(history_sessions: int, alpha: float) -> int:
    """New sessions whose exact test against ``history_sessions`` can reach alpha: the
    fewest from :data:`~perfcheck.stats.verdict.MIN_ROUNDS` up (at most
    :data:`MAX_CONFIRM_SESSIONS`)."""
    sessions = MIN_ROUNDS
    while sessions < MAX_CONFIRM_SESSIONS and not can_ever_fail(history_sessions, sessions, alpha):
        sessions += 1
    return sessions


def judge_sessions(
    histories: Mapping[str, MetricHistory],
    current: Mapping[str, Sequence[float]],
    alpha: float,
    holm: bool = False,
) -> list[MetricComparison]:
    """The new sessions' medians (``current``, per metric, one or more) against each
    metric's history, at its :attr:`~MetricHistory.limit` (see the module docstring)."""
    # The limit to 0.1%, as reports show it.
    rules = {m: MetricRule(h.rule.direction, round(h.limit, 3)) for m, h in histories.items()}
    history_values = {m: h.values for m, h in histories.items()}
    compared = compare_series(history_values, current, rules, alpha, holm=holm)
    return [_in_sessions(c, histories[c.metric]) for c in compared]


def is_suspect(comparisons: Sequence[MetricComparison]) -> bool:
    """Whether some metric is worse than its history allows (FAIL or INCONCLUSIVE)."""
    return any(c.verdict is not Verdict.PASS for c in comparisons)


def _in_sessions(c: MetricComparison, history: MetricHistory) -> MetricComparison:
    """``c`` with its reason in sessions (its samples are session medians, not rounds)."""
    moved = f"{abs(c.worse_by) * 100.0:.1f}% {'worse' if c.worse_by > 0 else 'better'}"
    limit = c.rule.threshold * 100.0
    if c.rule.threshold > history.rule.threshold:
        past = (
            f"the {limit:.1f}% limit (3 robust SDs of the history's sessions;"
            f" threshold {history.rule.threshold * 100.0:g}%)"
        )
    else:
        past = f"the {limit:g}% threshold"
    sessions = f"{len(c.current)} session{'s' if len(c.current) > 1 else ''}"
    against = f"{sessions}' median {moved} than that of the {len(c.baseline)} before them"
    if c.verdict is Verdict.FAIL:
        reason = f"{against}, past {past}, and the sessions confirm it (p={c.p_value:.2g})"
    elif c.verdict is Verdict.INCONCLUSIVE:
        reason = f"{against}, past {past}, but {sessions} cannot confirm it (p={c.p_value:.2g})"
    else:
        reason = f"{against}, within {past}"
    return replace(c, reason=reason, rounds_needed=None)


def _worse(change: float, direction: Direction) -> bool:
    return change > 0 if direction is Direction.HIGHER_IS_WORSE else change < 0


def judge_confirmed(
    histories: Mapping[str, MetricHistory],
    current: Mapping[str, Sequence[float]],
    alpha: float,
    holm: bool = False,
) -> tuple[list[MetricComparison], dict[str, int | None]]:
    """After the confirming sessions: per metric, where its step is (:func:`step_start` in
    the history followed by the new sessions), and the sessions after the step judged
    against the history before it, when at least :data:`MIN_HISTORY` sessions precede it;
    else the new sessions against the whole history. Returns the comparisons and each
    metric's step (an index in history + new sessions, or None)."""
    before: dict[str, MetricHistory] = {}
    after: dict[str, Sequence[float]] = {}
    steps: dict[str, int | None] = {}
    for metric, h in histories.items():
        new = list(current.get(metric, ()))
        if not new:
            continue
        values = [*h.values, *new]
        at = step_start(values, len(h.values), h.rule.direction)
        if at is not None:
            at = first_outside(values, at, len(h.values), h)
        steps[metric] = at
        if at is not None and at >= MIN_HISTORY:
            before[metric] = replace(h, values=h.values[:at], sessions=h.sessions[:at])
            after[metric] = values[at:]
        else:
            before[metric], after[metric] = h, new
    return judge_sessions(before, after, alpha, holm), steps


def step_start(values: Sequence[float], new_from: int, direction: Direction) -> int | None:
    """Index in ``values`` (history, then ``values[new_from:]``, the new sessions) of the
    first session after the step the new sessions sit behind, when the last change point
    at or before ``new_from`` is a step to worse; None when there is none."""
    points = [p for p in change_points(values, alpha=LOCATE_ALPHA) if p.index <= new_from]
    if not points or not _worse(points[-1].change, direction):
        return None
    return points[-1].index


def first_outside(values: Sequence[float], at: int, new_from: int, history: MetricHistory) -> int:
    """``at`` moved forward past sessions that are not themselves outside what the sessions
    before them predict (their median and limit; the whole history's while fewer than
    :data:`MIN_HISTORY` precede them): the session a step is named at must show it. A
    rank statistic can place a step one session early, when the last session before it is
    the slowest of its segment; at ``new_from`` the step is the new sessions'."""
    sign = 1.0 if history.rule.direction is Direction.HIGHER_IS_WORSE else -1.0
    while at < new_from:
        before = history
        if at >= MIN_HISTORY:
            before = replace(history, values=tuple(values[:at]), sessions=())
        center = statistics.median(before.values)
        if center != 0 and sign * (values[at] - center) / abs(center) > before.limit:
            return at
        at += 1
    return at


@dataclass
class HistoryJudgement:
    """What the history gate did with one scenario, for reports."""

    #: History sessions read (the newest of the series, oldest first).
    sessions: list[RecentSession]
    window: int
    where: str
    #: New sessions measured (1: the first was not suspect, or could not be confirmed).
    new_sessions: int = 1
    #: Metrics the first session was outside the history on.
    suspect: list[str] = field(default_factory=list)
    #: Metric -> the first session after its step (a stored one), or None: this run's.
    steps: dict[str, RecentSession | None] = field(default_factory=dict)
    #: This run's labels, to name it when the step is this run's.
    labels: dict[str, str] = field(default_factory=dict)

    def this_run(self) -> str:
        labels = ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"this run ({labels})" if labels else "this run"

    def lines(self) -> list[str]:
        """What the summary and a failure say about the history's judgement."""
        first, last = self.sessions[0].recorded_at, self.sessions[-1].recorded_at
        lines = [
            f"history: the last {len(self.sessions)} sessions of this series (window"
            f" {self.window}; {first} to {last}) in {self.where}, {self.new_sessions} now"
        ]
        if self.suspect:
            more = self.new_sessions - 1
            lines.append(
                f"suspect: the first session was outside the history on"
                f" {', '.join(self.suspect)}; {more} fresh session(s) measured to confirm it"
            )
        named: dict[str, list[str]] = {}
        for metric, session in sorted(self.steps.items()):
            text = session.names() if session is not None else self.this_run()
            named.setdefault(text, []).append(metric)
        for text, metrics in named.items():
            lines.append(f"step first seen in: {text} [{', '.join(metrics)}]")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": len(self.sessions),
            "window": self.window,
            "store": self.where,
            "first_recorded_at": self.sessions[0].recorded_at,
            "last_recorded_at": self.sessions[-1].recorded_at,
            "new_sessions": self.new_sessions,
            "suspect": list(self.suspect),
            "steps": [
                {
                    "metric": metric,
                    "session_id": None if s is None else s.session_id,
                    "recorded_at": None if s is None else s.recorded_at,
                    "labels": dict(self.labels) if s is None else dict(s.labels),
                    "this_run": s is None,
                }
                for metric, s in sorted(self.steps.items())
            ],
        }


#: What a history-gate FAIL tells to do (in place of refreshing a baseline).
HISTORY_HINT: Final[str] = (
    "the history gate FAILs this series until the step is most of its window; to judge"
    " against the stored baseline instead: --perfcheck-gate baseline"
)


def comparable(
    history: Sequence[RecentSession], provenance: Mapping[str, Sequence[str]]
) -> list[RecentSession]:
    """The sessions whose probes measured what this run's did (the same events for every
    probe both have): histograms of other probe points are another series."""
    return [
        s
        for s in history
        if all(
            list(s.provenance[p]) == list(provenance[p]) for p in s.provenance.keys() & provenance
        )
    ]
