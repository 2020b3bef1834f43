"""The detection scorecard's interleaved comparisons: windows of ABBA runs, and the repeat
in the next run of the same condition (what ``perfcheck ab`` does with a FAIL)."""

from __future__ import annotations

import random

from bench.detection.score import INTERLEAVED_RULES, Interleaved, Pair, interleaved_pairs
from perfcheck.run.ab import abba_sides
from perfcheck.stats.verdict import Verdict

ROUNDS = 60  # 30 per side, as record.py --interleaved records


def run(condition: str, b_slowdown: float, seed: int, source: str = "r.json.gz") -> Interleaved:
    rng = random.Random(seed)
    labelled = []
    for side in abba_sides(0, ROUNDS):
        factor = b_slowdown if side == "B" else 1.0
        p50 = 6_000 * factor * rng.lognormvariate(0, 0.02)
        labelled.append(
            (
                side,
                {
                    "block.latency.read.p50": p50,
                    "fio.iops.read": 45_000 / factor * rng.lognormvariate(0, 0.02),
                },
            )
        )
    return Interleaved(condition, seed, labelled, source)


SHIPPED = "perfcheck ab as shipped ([ab_thresholds] + repeat)"


def verdicts(rule: str, windows: list[Pair]) -> set[Verdict]:
    return {INTERLEAVED_RULES[rule](pair).verdict for pair in windows}


def test_a_fail_stands_only_when_the_next_run_of_its_condition_fails_too() -> None:
    # Run 1 of "bfq" is slower on B, run 2 is not: its FAILs do not repeat.
    found = interleaved_pairs([run("bfq", 1.5, 1), run("bfq", 1.0, 2)], [])
    first = [w for w in found["bfq"] if w.repeat is not None][:5]
    assert verdicts("perfcheck ab, no repeat", first) == {Verdict.FAIL}
    assert verdicts(SHIPPED, first) == {Verdict.INCONCLUSIVE}
    # Both runs slower on B: the FAIL stands.
    found = interleaved_pairs([run("bfq", 1.5, 3), run("bfq", 1.5, 4)], [])
    assert verdicts(SHIPPED, found["bfq"]) == {Verdict.FAIL}


def test_repeats_stay_within_one_recording_and_one_condition() -> None:
    runs = [
        run("AA", 1.0, 1, "a.json.gz"),
        run("AA", 1.0, 2, "a.json.gz"),
        run("AA", 1.0, 3, "b.json.gz"),
        run("bfq", 1.5, 4, "a.json.gz"),
    ]
    found = interleaved_pairs(runs, [])
    windows_per_run = len(found["AA"]) // 3
    by_run = [found["AA"][i * windows_per_run : (i + 1) * windows_per_run] for i in range(3)]
    # a.json.gz's two AA runs repeat in each other; b's only AA run and the lone bfq run
    # have no other run to repeat in.
    assert by_run[0][0].repeat is by_run[1][0] and by_run[1][0].repeat is by_run[0][0]
    assert all(w.repeat is None for w in by_run[2])
    assert all(w.repeat is None for w in found["bfq"])
