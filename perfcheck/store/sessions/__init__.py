"""The results store: every run's sessions, kept over time, for trends and change points.

``pytest --perfcheck`` appends each scenario's session to a store at the end of the run:
a SQLite file (``.perfcheck/results.sqlite`` under the rootdir) by default, or a
PostgreSQL database a fleet shares (``--perfcheck-store postgresql://...``). ``perfcheck
upload`` adds results and baseline files kept elsewhere; ``perfcheck history`` reads it.

Modules: :mod:`.records` (what a stored session holds, built from results and baselines;
no database code), :mod:`.schema` (the tables, one versioned schema for both databases),
:mod:`.sqlstore` (opening, appending, querying), :mod:`.upload`, :mod:`.history_view` and
:mod:`.cli_store` (the commands). Importing this package imports no database library:
SQLAlchemy and psycopg are imported when a store is opened.
"""

from __future__ import annotations

from perfcheck.errors import PerfcheckError


class StoreError(PerfcheckError):
    """The results store cannot be opened, read or written (one line naming its URL)."""
