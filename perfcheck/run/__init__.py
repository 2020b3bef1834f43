"""One run: its resources (target, namespace, probe session, drift control), the judging of
each scenario (:class:`~perfcheck.run.harness.Harness`), measuring a scenario, interleaved
A/B comparisons and the fake backend tests inject.
"""
