"""How ``perfcheck changes`` does on the detection scorecard's recorded sessions, replayed
as time series (no root, fio or BPF needed).

    .venv/bin/python bench/changes_quality.py [--alpha 0.01]

Each session's value is the median of its first 10 rounds (what a default run measures),
per gated metric (p50/p90/p99 of ``block.latency.read`` and ``fio.clat.read``,
``fio.iops.read``). Figures:

- **false change points per 100 same-setting sessions**: per metric, the ``A`` sessions of
  each recording in recorded order (20 a recording, about 4 hours), and all recordings'
  ``A`` sessions in time order (about 16 hours, with the drift between recordings);
- **detection delay**: per recording and regression, the ``A`` sessions followed by that
  regression's sessions (4 a recording), searched after each new session as CI would; a
  step is found at the first post-step session count that gives a change point within one
  session of the step in any gated metric. Issue 16's goals: a bfq-sized step found within
  3 sessions in >= 95% of series; a 15% step within 8 sessions in >= 80% (the recordings
  hold 4 sessions of each regression, so 8 cannot be checked on them).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detection.score import INITIAL_ROUNDS, Session, load_sessions  # noqa: E402
from perfcheck.stats.changes import change_points  # noqa: E402

DATA = ROOT / "bench" / "detection" / "data"


def medians(sessions: list[Session]) -> dict[str, list[float]]:
    series: dict[str, list[float]] = defaultdict(list)
    for session in sessions:
        for metric, value in session.medians(INITIAL_ROUNDS).items():
            series[metric].append(value)
    return dict(series)


def false_points(groups: list[list[Session]], alpha: float) -> tuple[int, int, dict[str, int]]:
    """Change points found in same-setting series: (found, session-series, per metric)."""
    found = 0
    sessions = 0
    by_metric: dict[str, int] = defaultdict(int)
    for group in groups:
        for metric, values in medians(group).items():
            points = change_points(values, alpha=alpha)
            found += len(points)
            by_metric[metric] += len(points)
            sessions += len(values)
    return found, sessions, dict(by_metric)


def detection_delay(before: list[Session], after: list[Session], alpha: float) -> int | None:
    """Post-step sessions needed until a change point lands within one of the step."""
    step = len(before)
    for seen in range(1, len(after) + 1):
        for values in medians(before + after[:seen]).values():
            if any(abs(p.index - step) <= 1 for p in change_points(values, alpha=alpha)):
                return seen
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.01)
    args = parser.parse_args(argv)
    paths = sorted(DATA.glob("sessions-*.json.gz"))
    recordings = [load_sessions([path]) for path in paths]
    a_runs = [[s for s in rec if s.condition == "A"] for rec in recordings]
    found, sessions, by_metric = false_points(a_runs, args.alpha)
    print(f"{len(paths)} recordings, {sum(map(len, a_runs))} A sessions, alpha {args.alpha}")
    print(
        f"false change points, A sessions of each recording: {found} in {sessions}"
        f" metric-sessions = {100.0 * found / sessions:.2f} per 100 sessions"
    )
    print("  per metric: " + ", ".join(f"{m} {n}" for m, n in sorted(by_metric.items())))
    everything = sorted((s for run in a_runs for s in run), key=lambda s: s.started_at)
    found, sessions, by_metric = false_points([everything], args.alpha)
    print(
        f"false change points, all A sessions in time order ({len(everything)}): {found} in"
        f" {sessions} metric-sessions = {100.0 * found / sessions:.2f} per 100 sessions"
    )
    print("  per metric: " + ", ".join(f"{m} {n}" for m, n in sorted(by_metric.items())))
    conditions = sorted({s.condition for rec in recordings for s in rec} - {"A"})
    for condition in conditions:
        delays = []
        for rec, a_run in zip(recordings, a_runs, strict=True):
            after = [s for s in rec if s.condition == condition]
            if after:
                delays.append(detection_delay(a_run, after, args.alpha))
        within3 = sum(1 for d in delays if d is not None and d <= 3)
        shown = ", ".join("-" if d is None else str(d) for d in delays)
        print(
            f"step to {condition}: found within 3 sessions in {within3} of {len(delays)}"
            f" series (sessions needed per series: {shown})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
