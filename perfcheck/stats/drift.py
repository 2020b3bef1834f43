"""Drift control: is the machine itself slower than when the baseline was recorded?

A baseline recorded hours ago may be judged on a machine that has since become
slower for reasons the change under test has nothing to do with: a noisy
neighbour on the host, a CPU running at a lower clock, a busy CPU. Then every
scenario looks worse, and a FAIL would blame the change.

With ``--perfcheck-control`` (ini ``perfcheck_control = true``) perfcheck runs a
**control measurement** once per run, before the first scenario: a fixed
CPU + memory workload that no I/O or network change can affect (a strided walk
over a 4 MiB buffer and a CRC over it, in C code called from Python), timed on
each CPU in turn, pinned there, in interleaved rounds (:data:`CONTROL_ROUNDS` per
CPU after one warm-up pass). Its per-round values (nanoseconds per pass, metric
``control.cpu<N>.ns``) are stored in every baseline the run records.

When a comparison runs and both sides have a control, each CPU's control is
compared like a gated metric, with the alternative "slower now":

- the machine **drifted** when, on some CPU, the control's median is more than
  :data:`CONTROL_MIN_SLOWDOWN` (10%) slower *and* a one-sided exact Mann-Whitney
  test on its rounds gives p < alpha (it moved beyond its own round-to-round noise);
- then every metric that would FAIL becomes INCONCLUSIVE, with the reason "machine
  is X% slower than when the baseline was recorded" (X from the CPU that slowed
  most). PASS and INCONCLUSIVE verdicts are left alone, and a faster machine changes
  nothing: a regression measured on a faster machine is still a regression.

Nothing here knows pytest or bcc.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from perfcheck.model.control import ControlMeasurement

if TYPE_CHECKING:  # the verdict imports scipy; baselines load without it
    from perfcheck.stats.verdict import MetricComparison

#: The significance level of the control's test (the gate's default).
DEFAULT_ALPHA = 0.01

#: Smallest slowdown of the control that counts as machine drift.
CONTROL_MIN_SLOWDOWN = 0.10


@dataclass(frozen=True)
class DriftCheck:
    """The control's verdict: did the machine get slower between baseline and now?"""

    comparisons: list[MetricComparison] = field(default_factory=list)
    #: Relative slowdown of the CPU that slowed most (0.25 = 25% slower); 0 if none.
    slowdown: float = 0.0
    drifted: bool = False
    #: Why the control could not be compared (different workload, no common CPU), or "".
    skipped: str = ""

    @property
    def text(self) -> str:
        """``machine is 23% slower than when the baseline was recorded (control on CPU 1)``."""
        if not self.drifted:
            return ""
        worst = max(self.comparisons, key=lambda c: c.worse_by)
        cpu = worst.metric.split(".")[1].removeprefix("cpu")
        return (
            f"machine is {self.slowdown * 100:.0f}% slower than when the baseline was"
            f" recorded (control workload on CPU {cpu})"
        )


def check_drift(
    baseline: ControlMeasurement | None,
    current: ControlMeasurement | None,
    alpha: float = DEFAULT_ALPHA,
) -> DriftCheck | None:
    """Compare the controls; None when either side has none (no control, no drift check)."""
    from perfcheck.stats.verdict import Direction, MetricRule, Verdict, compare_metric

    if baseline is None or current is None:
        return None
    if baseline.workload != current.workload:
        return DriftCheck(
            skipped=f"control workloads differ ({baseline.workload} vs {current.workload})"
        )
    base_series = baseline.metric_series()
    cur_series = current.metric_series()
    common = sorted(base_series.keys() & cur_series.keys())
    if not common:
        return DriftCheck(skipped="the controls share no CPU")
    rule = MetricRule(Direction.HIGHER_IS_WORSE, CONTROL_MIN_SLOWDOWN)
    comparisons = [
        compare_metric(name, base_series[name], cur_series[name], rule, alpha) for name in common
    ]
    drifted_ones = [c for c in comparisons if c.verdict is Verdict.FAIL]
    slowdown = max((c.worse_by for c in drifted_ones), default=0.0)
    return DriftCheck(comparisons, slowdown=slowdown, drifted=bool(drifted_ones))


def downgrade_for_drift(
    comparisons: Sequence[MetricComparison], drift: DriftCheck | None
) -> list[MetricComparison]:
    """FAILs become INCONCLUSIVE when the machine drifted; everything else is unchanged."""
    from dataclasses import replace

    from perfcheck.stats.verdict import Verdict

    if drift is None or not drift.drifted:
        return list(comparisons)
    out = []
    for c in comparisons:
        if c.verdict is Verdict.FAIL:
            c = replace(
                c,
                verdict=Verdict.INCONCLUSIVE,
                rounds_needed=None,
                reason=f"{c.reason}; but the {drift.text}, so it is not blamed on the change",
            )
        out.append(c)
    return out
