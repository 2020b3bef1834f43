"""Rules that were tried against stored baselines and not adopted, scored on the recorded
sessions: a baseline made of the middle of three sessions, and a FAIL that must repeat in
one or two more fresh sessions. Prints one line per recording, rule and condition.

``.venv/bin/python -m bench.detection.variants [FILES...]`` (default: every sessions file
in ``data/``). Comparisons are sampled (``--samples``, seeded), so rates carry a few
points of sampling error; see ``bench/RESULTS.md`` for what they showed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.detection import score as sc  # noqa: E402
from perfcheck.stats.verdict import Verdict  # noqa: E402

Series = dict[str, list[float]]


def middle_of(sessions: list[sc.Session]) -> Series:
    """Per metric, the baseline rounds of the session whose median is the middle one."""
    out: Series = {}
    for metric in sessions[0].series(sc.INITIAL_ROUNDS):
        ranked = sorted(
            sessions, key=lambda s: statistics.median(s.series(sc.INITIAL_ROUNDS)[metric])
        )
        out[metric] = ranked[len(ranked) // 2].series(sc.INITIAL_ROUNDS)[metric]
    return out


def fails(rule: sc.Rule, base: Series, current: sc.Session) -> bool:
    pair = sc.Pair(lambda n: (base, current.series(n)), min(sc.MAX_ROUNDS, len(current.rounds)))
    return rule(pair).verdict is Verdict.FAIL


def score_file(path: Path, samples: int, seed: int) -> None:
    sessions, _, _ = sc.load([path])
    a_sessions = [s for s in sessions if s.condition == "A"]
    rule = sc.perfcheck_rule(sequential=True)
    rng = random.Random(seed)
    for condition in sc.CONDITIONS:
        others = [s for s in sessions if s.condition == condition]
        if condition != "A" and len(others) < 3:
            continue
        counts = dict.fromkeys(("single", "middle3", "repeat1", "repeat2", "middle3+repeat1"), 0)
        for _ in range(samples):
            if condition == "A":
                picked = rng.sample(a_sessions, 6)
                trio, currents = picked[:3], picked[3:]
            else:
                trio, currents = rng.sample(a_sessions, 3), rng.sample(others, 3)
            single = [fails(rule, trio[0].series(sc.INITIAL_ROUNDS), c) for c in currents]
            middle = middle_of(trio)
            first_middle = fails(rule, middle, currents[0])
            counts["single"] += single[0]
            counts["repeat1"] += single[0] and single[1]
            counts["repeat2"] += single[0] and single[1] and single[2]
            counts["middle3"] += first_middle
            counts["middle3+repeat1"] += first_middle and fails(rule, middle, currents[1])
        rates = "  ".join(f"{k} {100.0 * v / samples:5.1f}%" for k, v in counts.items())
        print(f"{path.name}  {condition:12s} {rates}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--samples", type=int, default=250)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    files = args.files or sorted(sc.DATA_DIR.glob("sessions-*.json.gz"))
    files = [f for f in files if "quick" not in f.name]
    if not files:
        print(f"variants: no sessions in {sc.DATA_DIR}", file=sys.stderr)
        return 2
    for path in files:
        score_file(path, args.samples, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
