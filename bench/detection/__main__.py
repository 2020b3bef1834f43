"""``python -m bench.detection [--quick] [--score-only]``: record sessions, then score them.

Recording needs root, fio, stress-ng and BPF and takes about 20 minutes (``--quick``: one
session per condition, 6 rounds, about 1.5 minutes, written to a ``*-quick`` file that the
scorecard ignores). Scoring reads every non-quick file in ``data/`` and rewrites the
"Detection scorecard" section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import sys

from bench.detection import record, score


def main(argv: list[str]) -> int:
    score_only = "--score-only" in argv
    rest = [a for a in argv if a != "--score-only"]
    if not score_only:
        code = record.main(rest)
        if code != 0:
            return code
        if "--quick" in rest:
            return 0
    return score.main(["--write"])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
