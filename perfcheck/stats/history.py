"""Baseline history: how much whole sessions differ, not just rounds within one.

Rounds within one session agree more than sessions do: a loop device, a page cache,
a CPU's clock and the host's other tenants settle into a state that lasts for a run
and is different the next time. The Mann-Whitney test on rounds only knows
within-session noise, so a baseline recorded hours ago can differ from today's run
by more than its threshold without any change to the code under test.

A baseline therefore keeps a bounded history (:data:`MAX_SESSIONS`, newest kept) of
**session summaries**: per gated metric the median of that session's rounds, plus
the number of rounds, when it was measured, the kernel release and how it got there
(``refresh``: a baseline was recorded; ``record``: a passing run added with
``--perfcheck-record``).

The rule
--------

For a metric with at least :data:`MIN_SESSIONS` summaries recorded on the baseline's
kernel release, the session-to-session spread is measured robustly::

    spread = 1.4826 * MAD(session medians) / |median(session medians)|

(1.4826 * MAD estimates the standard deviation for normal data and ignores a
minority of odd sessions). The difference between two sessions -- the baseline's and
today's -- then has a spread of ``sqrt(2) * spread``, and the metric's threshold
becomes::

    threshold = max(scenario threshold, 3 * sqrt(2) * spread)

a prediction interval of three robust standard deviations for the difference of two
sessions. The threshold only ever widens; FAIL still also needs p < alpha on the
rounds. With fewer sessions the scenario's threshold is used unchanged.

A refresh adds a summary of each session it measured, except when every one of them
FAILs against the old baseline (performance changed for real; sessions that disagree
show the machine's session-to-session noise, which is what the history is for), or when
it ran on another kind of target (:data:`TARGET_FACTS` differ, e.g. a scratch device
prepared another way): then the history restarts from the new recording, so sessions of
the old performance do not inflate the spread.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import scipy.stats

from perfcheck.model.session import SessionSummary

#: Sessions kept in a baseline's history (the newest).
MAX_SESSIONS = 20
#: Sessions needed before the history widens thresholds.
MIN_SESSIONS = 5
#: Robust standard deviations of a session difference that still count as noise.
SPREAD_FACTOR = 3.0
#: MAD -> standard deviation for normal data.
MAD_TO_SD = 1.4826

#: Fresh sessions a recording measures; the most typical becomes the baseline.
DEFAULT_BASELINE_SESSIONS = 3

#: Environment facts that say what the workload ran on; sessions on another target are
#: not the same population.
TARGET_FACTS: tuple[str, ...] = ("target.kind", "target.model")


def same_target(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether two measurements' environments describe the same kind of target."""
    return all(old.get(key) == new.get(key) for key in TARGET_FACTS)


def appended(history: Sequence[SessionSummary], summary: SessionSummary) -> list[SessionSummary]:
    """``history`` plus ``summary``, keeping the newest :data:`MAX_SESSIONS`."""
    return [*history, summary][-MAX_SESSIONS:]


def relative_spread(values: Sequence[float]) -> float | None:
    """``1.4826 * MAD / |median|`` of ``values``; None for fewer than two or a zero median."""
    if len(values) < 2:
        return None
    center = statistics.median(values)
    if center == 0.0:
        return None
    mad = statistics.median(abs(v - center) for v in values)
    return MAD_TO_SD * mad / abs(center)


def session_threshold(spread: float) -> float:
    """The relative change two sessions may differ by as noise: ``3 * sqrt(2) * spread``."""
    return SPREAD_FACTOR * math.sqrt(2.0) * spread


@dataclass(frozen=True)
class Widening:
    """A threshold the history widened: from the scenario's to the sessions' spread."""

    metric: str
    threshold: float
    widened_to: float
    spread: float
    sessions: int

    def text(self) -> str:
        return (
            f"{self.metric}: threshold {self.threshold * 100:g}% -> {self.widened_to * 100:.1f}%"
            f" (sessions differ by {self.spread * 100:.1f}% robust SD over {self.sessions}"
            " sessions)"
        )


@dataclass(frozen=True)
class HistoryThresholds:
    """Per-metric session spreads of a baseline's history, ready to widen thresholds."""

    spreads: Mapping[str, tuple[float, int]] = field(default_factory=dict)

    @classmethod
    def from_history(
        cls, history: Sequence[SessionSummary], kernel: str | None = None
    ) -> HistoryThresholds:
        """Spreads of every metric with :data:`MIN_SESSIONS` or more sessions (on ``kernel``
        when given: sessions of another kernel say nothing about this one's noise)."""
        sessions = [s for s in history if kernel is None or s.kernel == kernel]
        values: dict[str, list[float]] = {}
        for session in sessions:
            for metric, median in session.medians.items():
                values.setdefault(metric, []).append(median)
        spreads: dict[str, tuple[float, int]] = {}
        for metric, medians in values.items():
            if len(medians) < MIN_SESSIONS:
                continue
            spread = relative_spread(medians)
            if spread is not None:
                spreads[metric] = (spread, len(medians))
        return cls(spreads)

    def widen(self, metric: str, threshold: float) -> tuple[float, Widening | None]:
        """The threshold to use for ``metric`` and, when the history widened it, why."""
        found = self.spreads.get(metric)
        if found is None:
            return threshold, None
        spread, sessions = found
        wider = session_threshold(spread)
        if wider <= threshold:
            return threshold, None
        return wider, Widening(metric, threshold, wider, spread, sessions)


def session_distances(sessions: Sequence[Mapping[str, float]]) -> list[float]:
    """How far each session sits from the middle of the others: per metric the sessions
    are ranked by their median (ties share their average rank), and a session's distance
    is how far its ranks are from the middle rank, summed over the metrics all sessions
    have."""
    if not sessions:
        return []
    common = set(sessions[0]).intersection(*sessions[1:])
    middle = (len(sessions) + 1) / 2  # ranks run from 1
    distance = [0.0] * len(sessions)
    for metric in sorted(common):
        ranks = scipy.stats.rankdata([s[metric] for s in sessions], method="average")
        for index, rank in enumerate(ranks):
            distance[index] += abs(float(rank) - middle)
    return distance


def central_session(sessions: Sequence[Mapping[str, float]]) -> int:
    """Index of the most typical of several sessions of one scenario, given each one's
    per-metric medians: the least :func:`session_distances` (ties: the earliest).

    A refresh records a baseline from several fresh sessions and keeps this one. A
    session that ran faster or slower than the others throughout -- the usual outlier on
    a shared machine -- ranks at an end on every metric and is not chosen, whichever
    side it is on.
    """
    if not sessions:
        raise ValueError("central_session needs at least one session")
    distance = session_distances(sessions)
    return min(range(len(sessions)), key=lambda i: (distance[i], i))
