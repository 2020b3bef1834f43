"""Where baselines are kept: the store, the JSON format and its schemas. Reads and writes
records of ``perfcheck.model`` only.
"""
