"""Repository-level pytest configuration.

perfcheck's plugin is loaded through its ``pytest11`` entry point, so nothing is
registered here. This file marks the repository root for pytest (so ``tests`` is
importable as a package) and keeps the benchmark scripts out of collection: they are
run by ``make bench``, not as tests.
"""

collect_ignore = ["bench", "build", "results"]
