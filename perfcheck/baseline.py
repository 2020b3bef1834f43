"""Baselines: one reviewable JSON file per scenario and machine class.

A baseline lives at ``<root>/<machine_class>/<scenario>.json`` and holds the
measurement it was recorded from (per-round histograms and scalars, the
environment, the probe points), plus ``schema_version``, ``kind``, ``scenario``,
``machine_class``, ``recorded_at`` (ISO 8601, UTC) and ``perfcheck_version``.
Thresholds are not stored: they belong to the scenario, so tightening one never
needs a re-recording.

Files are written for review: UTF-8, keys in a fixed order (sorted; keys that
are decimal numbers, such as histogram bucket indices, in numeric order), one
value per line, trailing newline. The same baseline always gives the same bytes.

Every file is checked on load against the JSON schema (draft 2020-12) of its
version: ``perfcheck/schemas/baseline-v2.json`` for files written now, which adds
``history`` (summaries of earlier sessions, :mod:`perfcheck.history`) and ``control``
(the drift-control measurement, :mod:`perfcheck.drift`) to version 1. Version 1 files
are still read, checked against ``baseline-v1.json``, as version 2 with an empty
history and no control; they are written back as version 2 on the next refresh.
Any problem -- unreadable, too large, truncated, not JSON, an unknown schema
version, a schema violation -- is a one-line ``BaselineError`` naming the file,
what is wrong and how to fix it.

During a pytest run new baselines are queued in ``BaselineStore`` and written
once at session end, each atomically (temporary file, fsync, rename), so an
interrupted run never leaves a half-written baseline behind.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.exceptions

from perfcheck import __version__
from perfcheck.drift import ControlMeasurement
from perfcheck.errors import BaselineError
from perfcheck.history import SessionSummary
from perfcheck.measurement import Measurement

SCHEMA_VERSION = 2
#: Schema versions this perfcheck reads; older ones are migrated on load.
READABLE_SCHEMA_VERSIONS = (1, 2)
BASELINE_KIND = "perfcheck-baseline"
#: Larger files are refused before parsing; real baselines are a few hundred KiB.
MAX_BASELINE_BYTES = 64 * 1024 * 1024
MAX_NAME_LENGTH = 128

REFRESH_HINT = "re-record it with `perfcheck refresh` or `pytest --perfcheck --perfcheck-update`"
RESTORE_HINT = f"restore it from version control or {REFRESH_HINT}"


def _schema_resource(version: int) -> str:
    return f"schemas/baseline-v{version}.json"


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_DECIMAL_KEY_RE = re.compile(r"[0-9]+")
_MAX_MESSAGE_CHARS = 160


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a scenario or machine-class name (a path part), or None."""
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long, at most {MAX_NAME_LENGTH} are allowed"
    if not _NAME_RE.fullmatch(name):
        return "must start with a letter or digit and contain only letters, digits, '.', '_', '-'"
    if ".." in name:
        return "must not contain '..'"
    return None


def safe_name(name: str) -> str:
    """Return ``name`` if it is safe as a single path component, else raise ValueError.

    >>> safe_name("randread-4k")
    'randread-4k'
    """
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"name {_short_repr(name)} {problem}")
    return name


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 UTC timestamp as stored in ``recorded_at``, e.g. ``2024-05-01T12:00:00Z``."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Baseline:
    """A stored measurement of one scenario on one machine class."""

    scenario: str
    machine_class: str
    measurement: Measurement
    recorded_at: str
    perfcheck_version: str
    path: Path | None = None
    #: Summaries of earlier sessions, oldest first (see perfcheck.history).
    history: list[SessionSummary] = field(default_factory=list)
    #: Drift control measured in the session the rounds come from (see perfcheck.drift).
    control: ControlMeasurement | None = None

    @classmethod
    def record(cls, measurement: Measurement, machine_class: str) -> Baseline:
        """A new baseline from ``measurement``, stamped with the current time and version."""
        return cls(
            scenario=measurement.scenario,
            machine_class=machine_class,
            measurement=measurement,
            recorded_at=utc_timestamp(),
            perfcheck_version=__version__,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": BASELINE_KIND,
            "scenario": self.scenario,
            "machine_class": self.machine_class,
            "recorded_at": self.recorded_at,
            "perfcheck_version": self.perfcheck_version,
            "measurement": self.measurement.to_dict(),
            "history": [s.to_dict() for s in self.history],
            "control": None if self.control is None else self.control.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> Baseline:
        """Validate ``data`` (parsed JSON) against the schema and build the baseline.

        Raises ``BaselineError`` naming ``path`` (or "baseline data") on any problem.
        A version 1 document is read as version 2 with an empty history and no control.
        """
        where = str(path) if path is not None else "baseline data"
        check_baseline_data(data, where)
        try:
            measurement = Measurement.from_dict(data["measurement"])
            history = [SessionSummary.from_dict(s) for s in data.get("history", [])]
            control_data = data.get("control")
            control = None if control_data is None else ControlMeasurement.from_dict(control_data)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise BaselineError(
                f"{where}: inconsistent measurement ({_one_line(str(exc))}); {RESTORE_HINT}"
            ) from exc
        if measurement.scenario != data["scenario"]:
            raise BaselineError(
                f"{where}: records scenario {data['scenario']!r} but its measurement is of "
                f"{measurement.scenario!r}; {RESTORE_HINT}"
            )
        return cls(
            scenario=data["scenario"],
            machine_class=data["machine_class"],
            measurement=measurement,
            recorded_at=data["recorded_at"],
            perfcheck_version=data["perfcheck_version"],
            path=path,
            history=history,
            control=control,
        )


@cache
def _load_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    resource = resources.files("perfcheck").joinpath(_schema_resource(version))
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


@cache
def _baseline_validator(version: int = SCHEMA_VERSION) -> jsonschema.Draft202012Validator:
    schema = _load_schema(version)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def baseline_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) baselines are checked against, as a fresh copy."""
    return copy.deepcopy(_load_schema())


def check_baseline_data(data: Any, where: str) -> None:
    """Raise a one-line ``BaselineError`` unless ``data`` is a valid baseline document."""
    if not isinstance(data, dict):
        raise BaselineError(
            f"{where}: not a baseline (top level is a JSON {_json_type(data)}, "
            f"expected an object); {RESTORE_HINT}"
        )
    kind = data.get("kind")
    if isinstance(kind, str) and kind != BASELINE_KIND:
        raise BaselineError(
            f"{where}: is a {_short_repr(kind)} file, not a {BASELINE_KIND}; "
            f"point perfcheck at the baseline directory or {REFRESH_HINT}"
        )
    version = data.get("schema_version")
    # A version that is not an int is reported by the current schema's const.
    schema_version = SCHEMA_VERSION
    if isinstance(version, int) and not isinstance(version, bool):
        if version not in READABLE_SCHEMA_VERSIONS:
            newer = version > SCHEMA_VERSION
            fix = f"upgrade perfcheck, or {REFRESH_HINT}" if newer else REFRESH_HINT
            readable = " and ".join(str(v) for v in READABLE_SCHEMA_VERSIONS)
            raise BaselineError(
                f"{where}: unknown schema_version {version} (this perfcheck reads {readable});"
                f" {fix}"
            )
        schema_version = version
    validator = _baseline_validator(schema_version)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        raise BaselineError(
            f"{where}: schema violation at JSON path {_json_path(error)}: "
            f"{_describe_violation(error)}; {RESTORE_HINT}"
        )


def load_baseline_file(path: Path) -> Baseline:
    """Read, parse and validate one baseline file; every problem is a ``BaselineError``."""
    data = read_json_file(
        path, noun="baseline file", max_bytes=MAX_BASELINE_BYTES, fix=RESTORE_HINT
    )
    return Baseline.from_dict(data, path=path)


def dump_json(data: Mapping[str, Any]) -> str:
    """Serialise ``data`` in the stable, review-friendly form baselines are stored in.

    Keys are sorted (decimal keys numerically, before other keys), one value per
    line, no NaN or infinity, trailing newline. Raises TypeError/ValueError for
    values JSON cannot encode.
    """
    return json.dumps(_in_key_order(data), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see the old or the new file, never half.

    The text is serialised completely before anything touches the disk; it is then
    written to a temporary file in the same directory, fsynced, renamed over
    ``path`` and the directory is fsynced. On any failure the temporary file is
    removed and ``path`` is left as it was.
    """
    payload = dump_json(data).encode("utf-8")
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as tmp_file:
            tmp_file.write(payload)
            tmp_file.flush()
            os.fsync(tmp_file.fileno())
        # mkstemp creates 0600; baselines are shared files.
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)


class BaselineStore:
    """Baselines under ``root``, one file per ``<machine_class>/<scenario>.json``.

    Writes are queued with :meth:`queue` and written at session end by
    :meth:`flush`, so a run that fails halfway can :meth:`discard` them.

    >>> store = BaselineStore(Path("baselines"))
    >>> store.path_for("randread-4k", "nvme-x86_64")
    PosixPath('baselines/nvme-x86_64/randread-4k.json')
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._queued: dict[Path, Baseline] = {}

    def path_for(self, scenario: str, machine_class: str) -> Path:
        for what, name in (("scenario", scenario), ("machine class", machine_class)):
            problem = name_problem(name)
            if problem is not None:
                raise BaselineError(
                    f"{what} name {_short_repr(name)} {problem}; it is used as a file name "
                    f"under {self.root}, rename it"
                )
        return self.root / machine_class / f"{scenario}.json"

    def load(self, scenario: str, machine_class: str) -> Baseline | None:
        """The stored baseline, or None when there is none for this scenario and machine class."""
        path = self.path_for(scenario, machine_class)
        if not path.exists() and not path.is_symlink():
            return None
        baseline = load_baseline_file(path)
        if (baseline.scenario, baseline.machine_class) != (scenario, machine_class):
            raise BaselineError(
                f"{path}: records scenario {baseline.scenario!r} on machine class "
                f"{baseline.machine_class!r}, but is stored as scenario {scenario!r} on "
                f"{machine_class!r}; move it back or {REFRESH_HINT}"
            )
        return baseline

    def queue(self, baseline: Baseline) -> None:
        """Remember ``baseline`` to be written by :meth:`flush`; a later one for the same
        scenario and machine class replaces an earlier one."""
        path = self.path_for(baseline.scenario, baseline.machine_class)
        self._queued.pop(path, None)
        self._queued[path] = baseline

    @property
    def pending(self) -> list[Baseline]:
        """Queued baselines, in the order they were queued."""
        return list(self._queued.values())

    def discard(self) -> None:
        """Drop every queued baseline without writing it."""
        self._queued.clear()

    def flush(self) -> list[Path]:
        """Write every queued baseline (each atomically) and return the paths written.

        Every baseline is serialised and validated before the first file is written,
        so one unencodable measurement does not leave the others half-updated.
        """
        payloads: list[tuple[Path, Baseline, dict[str, Any]]] = []
        for path, baseline in self._queued.items():
            data = baseline.to_dict()
            try:
                text = dump_json(data)
            except (TypeError, ValueError) as exc:
                raise BaselineError(
                    f"{path}: cannot record scenario {baseline.scenario!r}: a measured value "
                    f"cannot be stored as JSON ({_one_line(str(exc))}); "
                    "fix the measurement and run again"
                ) from exc
            # Never write a file that load() would refuse.
            check_baseline_data(json.loads(text), f"{path} (not written)")
            payloads.append((path, baseline, data))
        written: list[Path] = []
        for path, baseline, data in payloads:
            try:
                write_json_atomic(path, data)
            except OSError as exc:
                raise BaselineError(
                    f"{path}: cannot write baseline ({exc.strerror or exc}); "
                    "check that the baseline directory is writable"
                ) from exc
            baseline.path = path
            del self._queued[path]
            written.append(path)
        return written


def read_json_file(path: Path, *, noun: str, max_bytes: int, fix: str) -> Any:
    """Read one JSON document strictly: size-limited, UTF-8, finite numbers only, no key
    twice in an object, bounded nesting. Every problem is a one-line ``BaselineError``
    naming ``path``, what is wrong, and ``fix``. Shared by baseline and results files."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it would hang the run,
        # which holds the host lock); whatever is not a regular file is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        kind = _file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            os.close(fd)
            raise BaselineError(f"{path}: is {kind}, not a regular file; {fix}")
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise BaselineError(f"{path}: no such file; {fix}") from exc
    except OSError as exc:
        raise BaselineError(
            f"{path}: cannot read {noun} ({exc.strerror or exc}); check its permissions"
        ) from exc
    if len(raw) > max_bytes:
        raise BaselineError(
            f"{path}: larger than {max_bytes // (1024 * 1024)} MiB, not a {noun}; {fix}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BaselineError(
            f"{path}: not UTF-8 text (bad byte at offset {exc.start}); {fix}"
        ) from exc
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys_object,
        )
    except json.JSONDecodeError as exc:
        # A cut inside a string is reported where the string starts: still a truncation.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            what = f"truncated: the JSON ends early at line {exc.lineno}:{exc.colno}"
        else:
            what = f"not valid JSON at line {exc.lineno}:{exc.colno} ({exc.msg})"
        raise BaselineError(f"{path}: {what}; {fix}") from exc
    except ValueError as exc:
        # Non-finite numbers, duplicate keys, integers beyond Python's digit limit.
        raise BaselineError(f"{path}: not valid JSON ({_one_line(str(exc))}); {fix}") from exc
    except RecursionError as exc:
        raise BaselineError(f"{path}: not a {noun} (JSON nested too deeply); {fix}") from exc


def _file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO", "a directory", ...), or None for a regular one."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number these files can hold")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _unique_keys_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A botched merge can leave a key twice; json would silently keep the last.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"key {_short_repr(key)} appears twice in one object")
        result[key] = value
    return result


def _key_order(key: str) -> tuple[int, int, str]:
    if _DECIMAL_KEY_RE.fullmatch(key):
        return (0, int(key), key)
    return (1, 0, key)


def _in_key_order(value: Any) -> Any:
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"keys must be strings, got {type(key).__name__} {key!r}")
        return {k: _in_key_order(value[k]) for k in sorted(value, key=_key_order)}
    if isinstance(value, list | tuple):
        return [_in_key_order(item) for item in value]
    return value


def _fsync_directory(directory: Path) -> None:
    # Makes the rename durable; some file systems cannot fsync a directory.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _json_path(error: jsonschema.exceptions.ValidationError) -> str:
    parts = [_printable(part) for part in error.absolute_path]
    if "propertyNames" in error.absolute_schema_path:
        # The offending key itself, which jsonschema leaves out of the path.
        parts.append(_printable(error.instance))
    return "/".join(parts) if parts else "(top level)"


def _printable(part: object) -> str:
    """A path part as text that keeps the message on one line (keys may hold newlines)."""
    text = str(part)
    return text if text.isprintable() else repr(text)


def _describe_violation(error: jsonschema.exceptions.ValidationError) -> str:
    instance = error.instance
    if error.validator == "type":
        expected = error.validator_value
        if isinstance(expected, list):
            expected = " or ".join(str(e) for e in expected)
        if isinstance(instance, dict | list):
            return f"expected {expected}, got {_short_repr(instance)}"
        return f"expected {expected}, got {_json_type(instance)} {_short_repr(instance)}"
    if error.validator == "const":
        return f"expected {error.validator_value!r}, got {_short_repr(instance)}"
    if error.validator == "minimum":
        return f"{_short_repr(instance)} is below the minimum {error.validator_value}"
    if error.validator == "maximum":
        return f"{_short_repr(instance)} is above the maximum {error.validator_value}"
    if error.validator == "pattern":
        # Schema descriptions say in words what the pattern means.
        meaning = error.schema.get("description") if isinstance(error.schema, dict) else None
        if meaning:
            return f"{_short_repr(instance)} is not {meaning}"
    if error.validator == "minItems" and isinstance(instance, list):
        return f"needs at least {error.validator_value} item(s), got {len(instance)}"
    return _one_line(error.message)


def _short_repr(value: object) -> str:
    if isinstance(value, dict):
        return f"an object with {len(value)} key(s)"
    if isinstance(value, list):
        return f"an array of {len(value)} item(s)"
    text = _one_line(repr(value))
    if len(text) > 60:
        text = text[:57] + "..."
    return text


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[: _MAX_MESSAGE_CHARS - 3] + "..."
    return text
