"""Detection scorecard: how often each verdict rule cries wolf, and how often it catches
real, injected regressions, on rounds recorded with real fio and the real BPF probe.

``record.py`` records sessions of rounds into ``data/*.json.gz``; ``score.py`` computes the
scorecard from them (no machine needed); ``python -m bench.detection`` does both.
"""
