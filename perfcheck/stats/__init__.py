"""Judging: per-metric verdicts on rounds, sequential rounds, session history, the drift
judgement and the gate that compares a scenario's measurement with its baseline. Reads
records, never the machine.
"""
