"""``perfcheck upload``: results files (CI artifacts) and baseline files into a store.

Every file is read and checked before anything is stored, so a bad file stores nothing;
then each session goes in its own transaction, skipped when its id is stored already, so
uploading a file twice, or a file whose run stored its sessions itself, adds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from perfcheck.report.results import MAX_RESULTS_BYTES, RECREATE_HINT, Results
from perfcheck.run.sessions import sessions_from_baseline, sessions_from_results
from perfcheck.store.baseline import BASELINE_KIND, MAX_BASELINE_BYTES, Baseline, read_json_file
from perfcheck.store.sessions.records import SOURCE_RESULTS_FILE, StoredSession


@dataclass(frozen=True)
class FileSessions:
    path: Path
    kind: str
    sessions: list[StoredSession]
    #: What the file could not tell the store, one line; None when it told everything.
    note: str | None = None


def read_sessions(path: Path, labels: Mapping[str, str] | None = None) -> FileSessions:
    """The sessions a results file or a baseline file holds; BaselineError naming the file."""
    data = read_json_file(
        path,
        noun="results or baseline file",
        max_bytes=max(MAX_RESULTS_BYTES, MAX_BASELINE_BYTES),
        fix=RECREATE_HINT,
    )
    if isinstance(data, dict) and data.get("kind") == BASELINE_KIND:
        baseline = Baseline.from_dict(data, path=path)
        return FileSessions(path, "baseline", sessions_from_baseline(baseline, labels))
    results = Results.from_dict(data, path=path)
    sessions = sessions_from_results(results, source=SOURCE_RESULTS_FILE, labels=labels)
    note = None
    if results.schema_version < 2:
        note = (
            f"{path}: note: results schema version {results.schema_version} carries no host,"
            " git commit, labels or scenario hash; stored as unknown (null)"
        )
    return FileSessions(path, "results", sessions, note)


def read_all(paths: Sequence[Path], labels: Mapping[str, str] | None = None) -> list[FileSessions]:
    return [read_sessions(path, labels) for path in paths]
