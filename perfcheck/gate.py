"""Judging a measurement against its baseline, and saying why in words a user can act on."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from perfcheck import environment
from perfcheck.baseline import Baseline
from perfcheck.histogram import side_by_side
from perfcheck.measurement import Measurement
from perfcheck.verdict import (
    DEFAULT_ALPHA,
    MetricComparison,
    MetricRule,
    Verdict,
    compare_series,
    default_rule,
    format_comparison,
    worst,
)

#: Metrics that gate: every histogram percentile and the workload's IOPS. Bandwidth is
#: stored and shown but not gated (it is IOPS times a fixed block size).
GATED_PATTERNS: tuple[str, ...] = ("*.p50", "*.p90", "*.p99", "fio.iops.*")

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


def judge(
    name: str,
    measurement: Measurement,
    baseline: Baseline,
    thresholds: ThresholdLookup | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> ScenarioVerdict:
    """Compare every gated metric present in both; ``thresholds`` overrides defaults."""
    base_series = {k: v for k, v in baseline.measurement.metric_series().items() if is_gated(k)}
    cur_series = {k: v for k, v in measurement.metric_series().items() if is_gated(k)}
    rules: dict[str, MetricRule] = {}
    for metric in base_series.keys() & cur_series.keys():
        rule = default_rule(metric)
        override = thresholds(metric) if thresholds is not None else None
        if override is not None:
            rule = MetricRule(direction=rule.direction, threshold=override)
        rules[metric] = rule
    comparisons = compare_series(base_series, cur_series, rules, alpha)
    return ScenarioVerdict(name, measurement, baseline, comparisons)


def _series_of(metric: str) -> str:
    return metric.rsplit(".", 1)[0]


def failure_text(result: ScenarioVerdict, refresh_command: str) -> str:
    """The failure message of a regressed scenario: metrics, files, fix, histograms."""
    failing = result.failing()
    lines = [
        f"perfcheck: {result.name} regressed: {len(failing)} of {len(result.comparisons)}"
        " metrics FAIL",
    ]
    lines += [f"  {format_comparison(c)}" for c in failing]
    others = result.inconclusive()
    if others:
        lines.append("  also inconclusive:")
        lines += [f"    {format_comparison(c)}" for c in others]
    base = result.baseline
    lines.append(
        f"baseline: {base.path} (recorded {base.recorded_at},"
        f" {len(base.measurement.rounds)} rounds vs {len(result.measurement.rounds)} now)"
    )
    changed = environment.diff(base.measurement.environment, result.measurement.environment)
    changed = [c for c in changed if c[0] not in ("kernel.version",)]
    if changed:
        lines.append("environment changed since the baseline:")
        lines += [f"  {k}: {b} -> {a}" for k, b, a in changed]
    lines.append(f"if this change is intended, refresh the baseline: {refresh_command}")
    lines += histogram_sections(result, [_series_of(c.metric) for c in failing])
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
