"""Judging a measurement against its baseline, and saying why in words a user can act on."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from perfcheck.errors import BaselineError
from perfcheck.model.histogram import side_by_side
from perfcheck.model.measurement import Measurement, environment_diff
from perfcheck.model.outcome import Status
from perfcheck.stats.drift import DriftCheck
from perfcheck.stats.history import HistoryThresholds, Widening
from perfcheck.stats.history_gate import GATE_BASELINE, GATE_HISTORY, HistoryJudgement
from perfcheck.stats.verdict import (
    DEFAULT_ALPHA,
    MetricComparison,
    MetricRule,
    Verdict,
    compare_series,
    default_rule,
    format_comparison,
    worst,
)
from perfcheck.store.baseline import Baseline

#: Metrics that gate: every histogram percentile, fio's IOPS, iperf3's throughput and a
#: command scenario's wall time, runs per second and own metrics.
#: Bandwidth is stored and shown but not gated (it is IOPS times a fixed block size);
#: so are iperf3's retransmits and mean RTT (the probes' histograms gate RTT).
GATED_PATTERNS: tuple[str, ...] = (
    "*.p50",
    "*.p90",
    "*.p99",
    "fio.iops.*",
    "iperf3.bits_per_second",
    "command.*",
)

ThresholdLookup = Callable[[str], "float | None"]


def is_gated(metric: str) -> bool:
    return any(fnmatch.fnmatchcase(metric, pat) for pat in GATED_PATTERNS)


@dataclass
class ScenarioVerdict:
    """The verdicts of one scenario's metrics against one baseline."""

    name: str
    measurement: Measurement
    baseline: Baseline
    comparisons: list[MetricComparison] = field(default_factory=list)
    #: Looks the sequential rounds took (1: decided on the initial rounds).
    looks: int = 1
    #: Thresholds the baseline's session history widened (perfcheck.stats.history).
    widened: list[Widening] = field(default_factory=list)
    #: The drift control's verdict, when both sides had one (perfcheck.stats.drift).
    drift: DriftCheck | None = None
    #: What the baseline is when it is not a stored file (perfcheck ab's side A).
    baseline_label: str | None = None
    #: What repeating a FAIL in a fresh session showed (perfcheck.run.harness), or None.
    repeat: str | None = None
    #: What the history gate did, when it judged (perfcheck.stats.history_gate); the
    #: ``baseline`` then holds one round per history session, its medians.
    history: HistoryJudgement | None = None

    @property
    def gate(self) -> str:
        """Which gate judged: ``baseline`` (a stored or A/B baseline) or ``history``."""
        return GATE_HISTORY if self.history is not None else GATE_BASELINE

    @property
    def verdict(self) -> Verdict:
        top = worst(self.comparisons)
        return top.verdict if top is not None else Verdict.PASS

    @property
    def worst(self) -> MetricComparison | None:
        return worst(self.comparisons)

    def failing(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.verdict is Verdict.FAIL]

    def inconclusive(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.verdict is Verdict.INCONCLUSIVE]

    def environment_changes(self) -> list[tuple[str, object, object]]:
        """What differs between the baseline's environment and now, probe provenance
        included (``probes.<name>``); the kernel's build string is left out (the release
        says it)."""
        before = _with_provenance(self.baseline.measurement)
        after = _with_provenance(self.measurement)
        return [c for c in environment_diff(before, after) if c[0] != "kernel.version"]

    def attention_lines(self) -> list[str]:
        """Lines that explain a FAIL or INCONCLUSIVE: rounds, drift, widened thresholds,
        environment changes."""
        base = self.baseline
        if self.history is not None:
            return self.history.lines() + self._environment_lines("the newest session")
        rounds = f"{len(base.measurement.rounds)} rounds vs {len(self.measurement.rounds)} now"
        if self.looks > 1:
            rounds += f" after {self.looks} looks (sequential rounds)"
        if self.baseline_label is not None:
            lines = [f"baseline: {self.baseline_label} ({rounds})"]
        else:
            where = base.path if base.path is not None else "(not stored)"
            lines = [f"baseline: {where} (recorded {base.recorded_at}, {rounds})"]
        if self.repeat is not None:
            lines.append(f"repeated in a fresh session: {self.repeat}")
        if self.drift is not None and self.drift.drifted:
            lines.append(f"drift control: {self.drift.text}; FAILs are reported as INCONCLUSIVE")
        if self.widened:
            lines.append("thresholds widened by the baseline's session history:")
            lines += [f"  {w.text()}" for w in self.widened]
        return lines + self._environment_lines("the baseline")

    def _environment_lines(self, since: str) -> list[str]:
        changed = self.environment_changes()
        if not changed:
            return []
        return [f"environment changed since {since}:"] + [
            f"  {k}: {b} -> {a}" for k, b, a in changed
        ]


#: Environment keys that mean a baseline was recorded on another kernel or machine (the
#: machine class, its key, holds only the architecture, CPU count and model).
FOREIGN_KEYS: tuple[str, ...] = ("kernel.release", "machine.arch", "cpu.count", "cpu.model")
#: Where local baselines go when the stored ones came from elsewhere (ignored by git).
LOCAL_BASELINE_DIR = ".perfcheck/baselines"


def foreign_baseline_notice(verdicts: Sequence[ScenarioVerdict], paths: str) -> list[str]:
    """Lines for the top of a run's summary when stored baselines were recorded on another
    kernel or machine, saying which keys differ and what to do for each intent; empty when
    every baseline was recorded on this kernel. ``paths`` are the run's test paths, for the
    commands shown."""
    stored = [v for v in verdicts if v.baseline_label is None and v.history is None]
    differing: dict[tuple[str, str, str], list[str]] = {}
    for v in stored:
        for key, was, now in v.environment_changes():
            if key in FOREIGN_KEYS and was is not None:
                differing.setdefault((key, str(was), str(now)), []).append(v.name)
    if not differing:
        return []
    what = "kernel" if all(k == "kernel.release" for k, _, _ in differing) else "kernel/machine"
    lines = [f"perfcheck: baselines recorded on another {what} than this run's:"]
    for (key, was, now), names in sorted(differing.items()):
        lines.append(f"  {key}: {was} -> {now} ({len(names)} of {len(stored)} scenarios)")
    lines += [
        "  comparing kernels or machines? this run is the answer: each verdict is this"
        " machine against the baseline's.",
        "  just trying perfcheck? record baselines here first, then compare with them:",
        f"    pytest --perfcheck-update --perfcheck-baseline-dir={LOCAL_BASELINE_DIR} {paths}",
        f"    pytest --perfcheck --perfcheck-baseline-dir={LOCAL_BASELINE_DIR} {paths}",
    ]
    return lines


def _with_provenance(measurement: Measurement) -> dict[str, object]:
    flat: dict[str, object] = dict(measurement.environment)
    for probe, events in measurement.provenance.items():
        flat[f"probes.{probe}"] = ", ".join(events)
    return flat


def check_provenance(name: str, measurement: Measurement, baseline: Baseline) -> None:
    """Refuse to compare histograms that different probe points produced (one-line error)."""
    where = baseline.path if baseline.path is not None else "the baseline"
    for probe in sorted(baseline.measurement.provenance.keys() & measurement.provenance.keys()):
        before = baseline.measurement.provenance[probe]
        now = measurement.provenance[probe]
        if list(before) != list(now):
            raise BaselineError(
                f"{name}: probe {probe} measured {', '.join(before) or 'nothing'} in {where}"
                f" but {', '.join(now) or 'nothing'} now; these histograms are not comparable:"
                " re-record the baseline with --perfcheck-update on this machine"
            )


def rule_for(metric: str, thresholds: ThresholdLookup | None) -> MetricRule:
    """The metric's default rule with the scenario's threshold for it, when it sets one."""
    rule = default_rule(metric)
    override = thresholds(metric) if thresholds is not None else None
    if override is not None:
        rule = MetricRule(direction=rule.direction, threshold=override)
    return rule


#: Environment keys of what a scenario's ``[target]`` asked for (perfcheck.system.filesystems):
#: a measurement on another filesystem, or one made or mounted with other options, is another
#: scenario, never compared (the kernel's own defaults may change, and are compared).
INCOMPARABLE_KEYS: tuple[str, ...] = (
    "target.filesystem",
    "target.filesystem.mkfs_options",
    "target.filesystem.mount_options",
)


def check_comparable(name: str, measurement: Measurement, baseline: Baseline) -> None:
    """Refuse to compare a measurement with a baseline of another filesystem target
    (raw counts as none; one-line error)."""
    where = baseline.path if baseline.path is not None else "the baseline"
    for key in INCOMPARABLE_KEYS:
        before = baseline.measurement.environment.get(key)
        now = measurement.environment.get(key)
        if before != now:
            raise BaselineError(
                f"{name}: {key} is {_shown(before)} in {where} but {_shown(now)} now; these"
                " measurements are not comparable: re-record the baseline with"
                " --perfcheck-update"
            )


def _shown(value: object) -> str:
    return "absent (raw device)" if value is None else repr(value)


def judge(
    name: str,
    measurement: Measurement,
    baseline: Baseline,
    thresholds: ThresholdLookup | None = None,
    alpha: float = DEFAULT_ALPHA,
    holm: bool = False,
) -> ScenarioVerdict:
    """Compare every gated metric present in both; ``thresholds`` overrides defaults, and
    the baseline's session history may widen them (:mod:`perfcheck.stats.history`). With
    ``holm``, alpha holds for the scenario as a whole
    (:func:`~perfcheck.stats.verdict.compare_series`).

    Raises a one-line ``BaselineError`` when a probe's provenance differs from the
    baseline's, or its filesystem target (:data:`INCOMPARABLE_KEYS`).
    """
    check_provenance(name, measurement, baseline)
    check_comparable(name, measurement, baseline)
    base_series = {k: v for k, v in baseline.measurement.metric_series().items() if is_gated(k)}
    cur_series = {k: v for k, v in measurement.metric_series().items() if is_gated(k)}
    history = HistoryThresholds.from_history(
        baseline.history, kernel=baseline.measurement.environment.get("kernel.release")
    )
    rules: dict[str, MetricRule] = {}
    widened: list[Widening] = []
    for metric in sorted(base_series.keys() & cur_series.keys()):
        rule = rule_for(metric, thresholds)
        threshold, widening = history.widen(metric, rule.threshold)
        if widening is not None:
            widened.append(widening)
            rule = MetricRule(direction=rule.direction, threshold=threshold)
        rules[metric] = rule
    comparisons = compare_series(base_series, cur_series, rules, alpha, holm=holm)
    return ScenarioVerdict(name, measurement, baseline, comparisons, widened=widened)


def _series_of(metric: str) -> str:
    return metric.rsplit(".", 1)[0]


def failure_text(result: ScenarioVerdict, refresh_command: str, hint: str | None = None) -> str:
    """The failure message of a regressed (or, under --perfcheck-strict, inconclusive)
    scenario: metrics, files, environment, fix, histograms. ``hint`` replaces the
    refresh line (for comparisons without a stored baseline)."""
    failing = result.failing()
    others = result.inconclusive()
    if failing:
        lines = [
            f"perfcheck: {result.name} regressed: {len(failing)} of {len(result.comparisons)}"
            " metrics FAIL",
        ]
        lines += [f"  {format_comparison(c)}" for c in failing]
        if others:
            lines.append("  also inconclusive:")
            lines += [f"    {format_comparison(c)}" for c in others]
    else:
        lines = [
            f"perfcheck: {result.name} is inconclusive: {len(others)} of"
            f" {len(result.comparisons)} metrics INCONCLUSIVE",
        ]
        lines += [f"  {format_comparison(c)}" for c in others]
    lines += result.attention_lines()
    lines.append(hint or f"if this change is intended, refresh the baseline: {refresh_command}")
    lines += histogram_sections(result, [_series_of(c.metric) for c in failing or others])
    return "\n".join(lines)


def histogram_sections(result: ScenarioVerdict, series: Sequence[str]) -> list[str]:
    base_hists = result.baseline.measurement.merged_histograms()
    cur_hists = result.measurement.merged_histograms()
    out: list[str] = []
    for name in dict.fromkeys(series):
        if name in base_hists and name in cur_hists:
            out.append(f"\n{name}, all rounds merged (counts per log2 bucket):")
            out.append(side_by_side(base_hists[name], cur_hists[name], "baseline", "current"))
    return out


@dataclass
class ScenarioOutcome:
    """What happened to one scenario (or perfcheck-using test) in this run."""

    name: str
    status: Status
    measurement: Measurement
    verdict: ScenarioVerdict | None = None
    baseline_path: Path | None = None
    #: How a recording was made (which of several sessions became the baseline), or why
    #: the history gate did not judge (too few sessions: the stored baseline did).
    note: str | None = None
    #: A baseline from several sessions: the others, in the order measured, and the
    #: position (1-based, among all of them) of ``measurement``, the one recorded.
    other_sessions: list[Measurement] = field(default_factory=list)
    baseline_session: int | None = None


def status_of(verdict: ScenarioVerdict) -> Status:
    return {
        Verdict.PASS: Status.PASS,
        Verdict.FAIL: Status.FAIL,
        Verdict.INCONCLUSIVE: Status.INCONCLUSIVE,
    }[verdict.verdict]
