"""One perfcheck run: its shared resources (:mod:`perfcheck.run.resources`), the
baseline store, and the judging of each scenario.

Nothing here knows pytest; :mod:`perfcheck.plugin` maps options onto
:class:`~perfcheck.run.settings.HarnessSettings` and items onto :meth:`Harness.check`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from perfcheck import __version__
from perfcheck.errors import BaselineError
from perfcheck.model.measurement import Measurement, RoundResult
from perfcheck.model.outcome import Status
from perfcheck.model.session import SOURCE_RECORD, SOURCE_REFRESH, summarize
from perfcheck.report.results import Results
from perfcheck.run.resources import RunResources
from perfcheck.run.sessions import SeriesHistory
from perfcheck.stats.drift import check_drift, downgrade_for_drift
from perfcheck.stats.gate import (
    ScenarioOutcome,
    ScenarioVerdict,
    is_gated,
    judge,
    rule_for,
    status_of,
)
from perfcheck.stats.history import (
    appended,
    central_session,
    same_target,
)
from perfcheck.stats.history_gate import (
    GATE_HISTORY,
    MIN_HISTORY,
    HistoryJudgement,
    MetricHistory,
    comparable,
    is_suspect,
    judge_confirmed,
    judge_sessions,
    metric_histories,
    sessions_to_confirm,
)
from perfcheck.stats.sequential import (
    SequentialPlan,
    run_sequential,
)
from perfcheck.stats.verdict import MetricComparison, Verdict
from perfcheck.store.baseline import Baseline, BaselineStore
from perfcheck.store.sessions.records import RecentSession
from perfcheck.system import environment
from perfcheck.text import utc_timestamp

ThresholdLookup = Callable[[str], "float | None"]
#: Measures a scenario anew: its measurement, and how to add rounds to it.
MeasureAgain = Callable[[], tuple[Measurement, Callable[[int], None] | None]]


@dataclass
class Harness(RunResources):
    """One perfcheck run: its resources (:class:`RunResources`), the baseline store, and
    the judging of each scenario: record it, or compare it with its baseline, with
    sequential rounds, the drift control and a FAIL repeated in a fresh session."""

    outcomes: list[ScenarioOutcome] = field(default_factory=list)
    #: Where the history gate reads each scenario's series (set with the results store).
    history_source: SeriesHistory | None = None
    #: Scenarios whose measurement stopped on a workload error (ERROR), with the error.
    errors: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.store = BaselineStore(self.settings.baseline_dir)
        self.machine_class = environment.machine_class(self.settings.machine_class)

    # -- judging ----------------------------------------------------------------------

    def results(self) -> Results:
        """This run's outcomes as a results file holds them (--perfcheck-save, the report)."""
        results = Results.from_outcomes(
            self.outcomes,
            self.machine_class,
            alpha=self.settings.alpha,
            update=self.settings.update,
        )
        results.control = self.measured_control
        results.errors = dict(self.errors)
        return results

    def sequential_plan(self, initial: int) -> SequentialPlan:
        return SequentialPlan(
            initial=initial,
            max_rounds=max(initial, self.settings.max_rounds),
            batch=self.settings.batch,
            alpha=self.settings.alpha,
        )

    def check(
        self,
        name: str,
        measurement: Measurement,
        thresholds: ThresholdLookup | None = None,
        measure_more: Callable[[int], None] | None = None,
        measure_again: MeasureAgain | None = None,
    ) -> ScenarioOutcome:
        """Record the measurement (update mode) or judge it: against the recent sessions of
        its series under the history gate, when there are enough, else its baseline.

        ``measure_more(n)`` appends n current rounds to ``measurement``; with it, an
        INCONCLUSIVE verdict gets more rounds (perfcheck.stats.sequential) before it stands.
        ``measure_again()`` measures the scenario anew (its measurement, and how to add
        rounds to it); with it, a FAIL must repeat in a fresh session before it stands
        (:meth:`repeat_fail`).
        """
        measurement.scenario = name
        if self.settings.update:
            path = self.store.path_for(name, self.machine_class)
            sessions = self._sessions_to_record(name, measurement, measure_again)
            chosen = central_session([_medians(m) for m in sessions])
            measurement = sessions[chosen]
            others = [m for i, m in enumerate(sessions) if i != chosen]
            self.store.queue(self._recorded(name, measurement, thresholds, others))
            note = None
            if len(sessions) > 1:
                note = (
                    f"baseline from session {chosen + 1} of {len(sessions)} fresh sessions"
                    " (the most typical; all of them added to its history)"
                )
            outcome = ScenarioOutcome(
                name, Status.RECORDED, measurement, baseline_path=path, note=note
            )
            if others:
                # Every session measured reaches the results store, not only the chosen one.
                outcome.other_sessions, outcome.baseline_session = others, chosen + 1
        else:
            outcome = self._judged(name, measurement, thresholds, measure_more, measure_again)
        self.outcomes.append(outcome)
        return outcome

    def _judged(
        self,
        name: str,
        measurement: Measurement,
        thresholds: ThresholdLookup | None,
        measure_more: Callable[[int], None] | None,
        measure_again: MeasureAgain | None,
    ) -> ScenarioOutcome:
        """The measurement judged by the history gate, when it is asked for and the series
        has history enough, else against the stored baseline (saying why in its note)."""
        note = None
        if self.settings.gate == GATE_HISTORY:
            history, note = self._history_of(name, measurement)
            if history is not None:
                verdict = self.decide_history(name, measurement, history, thresholds, measure_again)
                return ScenarioOutcome(name, status_of(verdict), measurement, verdict)
        path = self.store.path_for(name, self.machine_class)
        baseline = self.store.load(name, self.machine_class)
        if baseline is None:
            if note is not None:
                note = f"{note.rsplit(';', 1)[0]}; no stored baseline either"
            return ScenarioOutcome(name, Status.NO_BASELINE, measurement, None, path, note)
        verdict = self.decide(name, measurement, baseline, thresholds, measure_more)
        if verdict.verdict is Verdict.FAIL and measure_again is not None:
            verdict = self.repeat_fail(verdict, thresholds, measure_again)
            measurement = verdict.measurement
        outcome = ScenarioOutcome(name, status_of(verdict), measurement, verdict, path, note)
        if self.settings.record and outcome.status is Status.PASS:
            self._queue_history(baseline, measurement)
        return outcome

    def _history_of(
        self, name: str, measurement: Measurement
    ) -> tuple[list[RecentSession] | None, str | None]:
        """The series' recent sessions when there are enough, else None and why not."""
        source = self.history_source
        if source is None:
            return None, "history gate: no results store; judged against the stored baseline"
        window = self.settings.history_window
        history = comparable(
            source.recent(name, self.machine_class, window), measurement.provenance
        )
        if len(history) >= MIN_HISTORY:
            return history, None
        return None, (
            f"history gate: {len(history)} session(s) of its series on {self.machine_class}"
            f" in {source.location.display} ({MIN_HISTORY} needed); judged against the stored"
            " baseline"
        )

    def decide_history(
        self,
        name: str,
        measurement: Measurement,
        history: list[RecentSession],
        thresholds: ThresholdLookup | None,
        measure_again: MeasureAgain | None,
    ) -> ScenarioVerdict:
        """``measurement``'s session judged against the series' ``history`` (see
        perfcheck.stats.history_gate): when it is outside, fresh sessions are measured to
        confirm it, and a FAIL names the first session after the step."""
        source = self.history_source
        assert source is not None
        alpha, holm = self.settings.alpha, self.settings.holm
        first = _medians(measurement)
        rules = {metric: rule_for(metric, thresholds) for metric in first}
        histories = metric_histories([s.medians for s in history], rules)
        current = {metric: [first[metric]] for metric in histories if metric in first}
        comparisons = judge_sessions(histories, current, alpha, holm)
        judgement = HistoryJudgement(
            history, self.settings.history_window, source.location.display, labels=source.labels
        )
        if is_suspect(comparisons):
            judgement.suspect = [c.metric for c in comparisons if c.verdict is not Verdict.PASS]
            if measure_again is not None and self.settings.repeat_fails:
                medians = [first]
                for _ in range(sessions_to_confirm(len(history), alpha) - 1):
                    self.fresh_session()
                    again, _more = measure_again()
                    again.scenario = name
                    medians.append(_medians(again))
                judgement.new_sessions = len(medians)
                current = {
                    metric: [m[metric] for m in medians if metric in m] for metric in current
                }
                comparisons, steps = judge_confirmed(histories, current, alpha, holm)
                for c in comparisons:
                    if c.verdict is Verdict.FAIL:
                        h, at = histories[c.metric], steps.get(c.metric)
                        stored = at is not None and at < len(h.values)
                        judgement.steps[c.metric] = (
                            history[h.sessions[at]] if at is not None and stored else None
                        )
        baseline = _history_baseline(name, self.machine_class, history, histories)
        return ScenarioVerdict(
            name,
            measurement,
            baseline,
            comparisons,
            baseline_label=judgement.lines()[0],
            history=judgement,
        )

    def _sessions_to_record(
        self, name: str, first: Measurement, measure_again: MeasureAgain | None
    ) -> list[Measurement]:
        """``first`` and, for a baseline from several sessions, that many more measured
        each in a fresh session (new scratch device, restarted network scenario).

        One session can be an outlier throughout on a shared machine (bench/RESULTS.md:
        a few sessions in twenty run 1.5-2x faster or slower), and a baseline recorded in
        one would make every later run FAIL or hide a regression; the most typical of
        three is rarely one."""
        sessions = [first]
        if measure_again is None:
            return sessions
        for _ in range(self.settings.baseline_sessions - 1):
            self.fresh_session()
            measurement, _more = measure_again()
            measurement.scenario = name
            sessions.append(measurement)
        return sessions

    def repeat_fail(
        self,
        first: ScenarioVerdict,
        thresholds: ThresholdLookup | None,
        measure_again: MeasureAgain,
    ) -> ScenarioVerdict:
        """A FAIL stands only if a fresh session FAILs too; else it is INCONCLUSIVE.

        Sessions of one machine differ more than rounds of one session (bench/RESULTS.md:
        on the shared VM a few sessions in twenty run 1.5-2x faster or slower throughout),
        so a stored-baseline FAIL is first measured again from a new start: a new scratch
        device, a restarted network scenario. The repeat's verdict is the one reported
        when it FAILs as well. Off with ``--perfcheck-no-repeat``.
        """

        def judge_again() -> ScenarioVerdict:
            measurement, more = measure_again()
            measurement.scenario = first.name
            return self.decide(first.name, measurement, first.baseline, thresholds, more)

        return self.confirm_fail(first, judge_again)

    def confirm_fail(
        self, first: ScenarioVerdict, judge_again: Callable[[], ScenarioVerdict]
    ) -> ScenarioVerdict:
        """The rule of :meth:`repeat_fail` with any way of judging again:
        ``judge_again()`` runs in a fresh session (:meth:`fresh_session`) and judges the
        scenario anew (against its stored baseline, or ``perfcheck ab``'s two sides
        measured again)."""
        if not self.settings.repeat_fails or first.verdict is not Verdict.FAIL:
            return first
        self.fresh_session()
        second = judge_again()
        rounds = f"{len(first.measurement.rounds)} + {len(second.measurement.rounds)} rounds"
        if second.verdict is Verdict.FAIL:
            second.repeat = f"FAILed again ({rounds}): the first session's FAIL stands"
            return second
        top = second.worst
        there = f"{top.metric}: {top.reason}" if top is not None else "every metric PASSed"
        first.repeat = f"did not FAIL again ({rounds}; {there}), so the FAIL is INCONCLUSIVE"
        first.comparisons = [
            replace(
                c,
                verdict=Verdict.INCONCLUSIVE,
                rounds_needed=None,
                reason=f"{c.reason}; but a fresh session did not FAIL again",
            )
            if c.verdict is Verdict.FAIL
            else c
            for c in first.comparisons
        ]
        return first

    def decide(
        self,
        name: str,
        measurement: Measurement,
        baseline: Baseline,
        thresholds: ThresholdLookup | None = None,
        measure_more: Callable[[int], None] | None = None,
    ) -> ScenarioVerdict:
        """Sequential looks, then the drift control's say: the verdict of one comparison."""
        last: list[ScenarioVerdict] = []

        def look(alpha: float) -> list[MetricComparison]:
            last[:] = [judge(name, measurement, baseline, thresholds, alpha, self.settings.holm)]
            return last[0].comparisons

        result = run_sequential(self.sequential_plan(len(measurement.rounds)), look, measure_more)
        verdict = last[0]
        verdict.looks = result.looks
        drift = check_drift(baseline.control, self.control_measurement(), self.settings.alpha)
        verdict.drift = drift
        verdict.comparisons = downgrade_for_drift(verdict.comparisons, drift)
        return verdict

    def _recorded(
        self,
        name: str,
        measurement: Measurement,
        thresholds: ThresholdLookup | None,
        others: list[Measurement] | None = None,
    ) -> Baseline:
        """A new baseline, carrying the old one's history plus this session and the
        ``others`` measured with it (see perfcheck.stats.history: a recording whose sessions
        all FAIL against the old one, or that ran on another kind of target, restarts
        the history)."""
        new = Baseline.record(measurement, self.machine_class)
        new.control = self.control_measurement()
        try:
            old = self.store.load(name, self.machine_class)
        except BaselineError:
            old = None  # an unreadable old baseline is being replaced: its history is lost
        sessions = [*(others or []), measurement]
        history = []
        if old is not None and same_target(old.measurement.environment, measurement.environment):
            try:
                # Performance moved only if every new session FAILs against the old
                # baseline: sessions of one refresh that disagree show session noise.
                moved = all(
                    judge(name, s, old, thresholds, self.settings.alpha).verdict is Verdict.FAIL
                    for s in sessions
                )
                if not moved:
                    history = list(old.history)
            except BaselineError:
                pass  # other probe points: the old sessions measured something else
        for session in sessions:
            summary = summarize(session, new.recorded_at, SOURCE_REFRESH, _gated(session))
            history = appended(history, summary)
        new.history = history
        return new

    def _queue_history(self, baseline: Baseline, measurement: Measurement) -> None:
        summary = summarize(measurement, utc_timestamp(), SOURCE_RECORD, _gated(measurement))
        baseline.history = appended(baseline.history, summary)
        self.store.queue(baseline)

    def flush(self) -> list[Path]:
        """Write queued baselines (atomically); called once, at the end of a good run."""
        return self.store.flush()

    def discard(self) -> None:
        self.store.discard()


def _history_baseline(
    name: str,
    machine_class: str,
    history: list[RecentSession],
    histories: Mapping[str, MetricHistory],
) -> Baseline:
    """The history as a baseline: one round per session, holding its medians, and the
    newest session's environment and probe points (what a verdict's environment diff and
    the reports compare with)."""
    newest = history[-1]
    rounds = [
        RoundResult(
            index=i,
            duration_s=0.0,
            scalars={m: s.medians[m] for m in histories if m in s.medians},
        )
        for i, s in enumerate(history)
    ]
    measurement = Measurement(name, rounds, dict(newest.environment), dict(newest.provenance))
    return Baseline(name, machine_class, measurement, newest.recorded_at, __version__)


def _medians(measurement: Measurement) -> dict[str, float]:
    """Median of each gated metric's rounds: what sessions are compared by."""
    return dict(summarize(measurement, "", SOURCE_REFRESH, _gated(measurement)).medians)


def _gated(measurement: Measurement) -> list[str]:
    return [m for m in measurement.metric_series() if is_gated(m)]
