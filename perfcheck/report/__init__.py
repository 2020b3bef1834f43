"""What a run tells: the results file (``--perfcheck-save``) and the HTML report. Loads no
workload, namespace or probe code, so results can be read on any machine.
"""
