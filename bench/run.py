"""Run every benchmark in turn (``make bench``); pass --quick for a short pass.

Each benchmark is a script in this directory that prints its own figures; this runner
only sequences them and reports which failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (script, arguments for a normal run, arguments for --quick)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("harness_cost.py", [], ["--sessions", "3", "--rounds", "5"]),
    ("overhead.py", [], ["--quick"]),
    # The probe's cost at QD1, toggled under one fio run (overhead.py cannot resolve 1%).
    (
        "toggle.py",
        ["--setting", "qd1", "--setting", "saturating"],
        ["--setting", "qd1", "--seconds", "15"],
    ),
    # Does the loop-device noise control (workqueue affinity scope) steady rounds here?
    ("affinity_scope.py", ["--pairs", "12"], ["--pairs", "2", "--rounds", "3"]),
    # Where the wait for a request tag shows: fio, block.bio_latency, block.queue_latency.
    ("tag_wait.py", [], ["--repeats", "1", "--seconds", "1"]),
    # Does the drift control follow the machine's drift of the disk path?
    ("control_tracking.py", ["--minutes", "10"], ["--minutes", "2"]),
    # The results store: appending a session, perfcheck history on 10,000 sessions.
    ("store_cost.py", [], ["--sessions", "2000", "--appends", "20", "--repeats", "3"]),
    # perfcheck changes replayed on the scorecard's recorded sessions.
    ("changes_quality.py", [], []),
    # The detection scorecard, recomputed from the recorded rounds in detection/data/
    # (recording new ones takes 20-40 minutes: python -m bench.detection.record).
    ("detection/score.py", [], []),
]


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    failed = []
    for script, normal, short in BENCHMARKS:
        path = HERE / script
        if not path.exists():
            continue
        print(f"== {script}", flush=True)
        code = subprocess.call([sys.executable, str(path), *(short if quick else normal)])
        if code != 0:
            failed.append(f"{script} (exit {code})")
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
