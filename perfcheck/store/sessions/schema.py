"""The results store's tables: one schema for SQLite and PostgreSQL, versioned.

``perfcheck_meta`` holds ``kind`` (:data:`STORE_KIND`) and ``schema_version``; a store
whose version is newer than :data:`SCHEMA_VERSION` is refused, never written. Every
table is prefixed ``perfcheck_`` so a PostgreSQL database can hold other things too.
JSON documents are stored as text, the same on both databases; times are ISO 8601 UTC
text (``2026-12-04T16:00:00Z``), which sorts in time order.

- ``perfcheck_sessions``: one row per session (see :class:`~.records.StoredSession`).
- ``perfcheck_labels``: its labels, a row per key, to filter on.
- ``perfcheck_metrics``: per metric its median, per-round values and verdict.
- ``perfcheck_histograms``: per series the histogram of all rounds merged.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_VERSION: Final[int] = 1
STORE_KIND: Final[str] = "perfcheck-results-store"
TABLE_PREFIX: Final[str] = "perfcheck_"

metadata = MetaData()

meta = Table(
    "perfcheck_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

sessions = Table(
    "perfcheck_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("recorded_at", String(40), nullable=False),
    Column("stored_at", String(40), nullable=False),
    Column("scenario", String(200), nullable=False),
    Column("scenario_hash", String(64)),
    Column("machine_class", String(200), nullable=False),
    Column("host", String(255)),
    Column("kernel_release", String(200), nullable=False),
    Column("git_commit", String(64)),
    Column("status", String(32), nullable=False),
    Column("source", String(32), nullable=False),
    Column("rounds", Integer, nullable=False),
    Column("perfcheck_version", String(64), nullable=False),
    Column("environment", Text, nullable=False),
    Column("provenance", Text, nullable=False),
    Column("decision", Text),
    Index("perfcheck_sessions_series", "scenario", "machine_class", "recorded_at"),
    Index("perfcheck_sessions_time", "recorded_at"),
)


def _session_and(key: str) -> tuple[Column[str], Column[str]]:
    """The primary key of a row per session and ``key`` (a metric, a histogram series)."""
    return _session_id(), Column(key, String(200), primary_key=True)


def _session_id() -> Column[str]:
    """The key that ties a row to its session; deleting the session deletes the row."""
    return Column(
        "session_id",
        String(64),
        ForeignKey("perfcheck_sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    )


labels = Table(
    "perfcheck_labels",
    metadata,
    _session_id(),
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
    Index("perfcheck_labels_key_value", "key", "value"),
)

metrics = Table(
    "perfcheck_metrics",
    metadata,
    *_session_and("metric"),
    Column("median", Float, nullable=False),
    #: JSON list of per-round values; NULL when only the median was kept.
    Column("round_values", Text),
    Column("verdict", String(16)),
    Column("change", Float),
    Column("p_value", Float),
    Index("perfcheck_metrics_metric", "metric"),
)

histograms = Table(
    "perfcheck_histograms",
    metadata,
    *_session_and("series"),
    #: ``LogLinearHistogram.to_dict()`` as JSON: sparse bucket counts, values in ns.
    Column("histogram", Text, nullable=False),
)
