"""Benchmarks: scripts run with .venv/bin/python bench/<name>.py (see bench/run.py)."""
