"""``python -m perfcheck``: the same command line as the ``perfcheck`` script."""

from __future__ import annotations

from perfcheck.cli import main

raise SystemExit(main())
