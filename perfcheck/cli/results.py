"""``perfcheck compare``, ``show``, ``refresh`` and ``report``: results for people.

Each command reads results files (``pytest --perfcheck --perfcheck-save FILE``) and
baseline files alike; a file that cannot be read is one line on stderr naming it,
and exit status 2. The statistics are the gate's own (:func:`perfcheck.stats.gate.judge`),
so ``compare`` says exactly what a pytest run would have said.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from perfcheck.errors import BaselineError
from perfcheck.system.processes import run_tempdir

if TYPE_CHECKING:
    from rich.console import Console

    from perfcheck.report.results import Results, ScenarioResult
    from perfcheck.stats.gate import ScenarioVerdict, ThresholdLookup
    from perfcheck.store.baseline import Baseline

#: Exit status of a bad file or a bad request (no such scenario).
EXIT_BAD_INPUT: Final[int] = 2

DEFAULT_REFRESH_ARGS: Final[tuple[str, ...]] = ("scenarios/",)
DEFAULT_BASELINE_DIR: Final[str] = "baselines"
_BASELINE_DIR_OPTION: Final[str] = "--perfcheck-baseline-dir"
_SAVE_OPTION: Final[str] = "--perfcheck-save"


class BadRequest(Exception):
    """A request the files cannot answer (no such scenario, nothing in common)."""


#: The subcommands of this module (see :func:`perfcheck.cli.commands_of`).
COMMANDS: dict[str, str] = {
    "compare": "compare two results or baseline files metric by metric (exit 1 on any FAIL)",
    "show": "percentiles and log2 histograms of a results or baseline file",
    "refresh": "re-record baselines (pytest --perfcheck --perfcheck-update) and show what moved",
    "report": "write a results or baseline file as a self-contained HTML report",
}


def _console() -> Console:
    from perfcheck.cli.console import stdout_console

    return stdout_console()


def _bad_input(message: str) -> int:
    print(f"perfcheck: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _run_guarded(body: Callable[[], int]) -> int:
    """Run a command; an unreadable file or impossible request is one line and exit 2."""
    try:
        return body()
    except (BaselineError, BadRequest) as err:
        return _bad_input(str(err))


def _pick(results: Results, wanted: Sequence[str] | None, label: str) -> list[str]:
    names = sorted(results.scenarios)
    if not wanted:
        return names
    missing = [name for name in wanted if name not in results.scenarios]
    if missing:
        has = ", ".join(names) or "none"
        raise BadRequest(f"{label}: no scenario {', '.join(missing)} in it (it has: {has})")
    return [name for name in names if name in wanted]


# -- compare -------------------------------------------------------------------------------


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", type=Path, metavar="BEFORE", help="results or baseline file")
    parser.add_argument("after", type=Path, metavar="AFTER", help="results or baseline file")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="compare only this scenario (repeatable; default: every scenario in both files)",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        metavar="A",
        help="significance level (default: AFTER's, or 0.01 for a baseline file)",
    )
    parser.add_argument(
        "--html", type=Path, metavar="PATH", help="also write the comparison as an HTML report"
    )


def _as_baseline(results: Results, name: str) -> Baseline:
    from perfcheck.store.baseline import Baseline

    return Baseline(
        scenario=name,
        machine_class=results.machine_class,
        measurement=results.scenarios[name].measurement,
        recorded_at=results.created_at,
        perfcheck_version=results.perfcheck_version,
        path=results.path,
    )


def _threshold_lookup(*sources: Mapping[str, float]) -> Callable[[str], float | None]:
    def lookup(metric: str) -> float | None:
        for source in sources:
            if metric in source:
                return source[metric]
        return None

    return lookup


def compare_results(
    before: Results,
    after: Results,
    scenarios: Sequence[str] | None = None,
    alpha: float | None = None,
) -> tuple[dict[str, ScenarioVerdict], list[str], list[str]]:
    """Judge each scenario of ``after`` against the same scenario of ``before``.

    Thresholds are those the files' own comparisons used (scenario overrides
    included; ``after``'s first), else the defaults. When both files carry a drift
    control, a FAIL while the control moved is INCONCLUSIVE (:mod:`perfcheck.stats.drift`).
    Two single-scenario files (two baselines, say) are compared whatever their names.
    Returns the verdicts by name and the names found only in ``before`` and only in
    ``after``. Raises :class:`BadRequest` when there is nothing to compare.
    """
    from perfcheck.stats.drift import check_drift, downgrade_for_drift
    from perfcheck.stats.gate import judge
    from perfcheck.stats.verdict import DEFAULT_ALPHA

    if alpha is None:
        alpha = after.alpha if after.source_kind == "perfcheck-results" else DEFAULT_ALPHA
    before_names = _pick(before, scenarios, str(before.path or "BEFORE"))
    after_names = _pick(after, scenarios, str(after.path or "AFTER"))
    pairs = [(name, name) for name in after_names if name in before_names]
    if not pairs and len(before.scenarios) == 1 and len(after.scenarios) == 1:
        pairs = [(before_names[0], after_names[0])] if before_names and after_names else []
    if not pairs:
        raise BadRequest(
            f"{before.path} and {after.path} have no scenario in common (before: "
            f"{', '.join(before_names) or 'none'}; after: {', '.join(after_names) or 'none'})"
        )
    lookup = _threshold_lookup(after.thresholds, before.thresholds)
    # Both files' drift controls (--perfcheck-control): a FAIL while the machine itself
    # got slower between the runs is INCONCLUSIVE, as in a pytest run.
    drift = check_drift(before.control, after.control, alpha)
    verdicts = {}
    for before_name, after_name in pairs:
        verdict = judge(
            after_name,
            after.scenarios[after_name].measurement,
            _as_baseline(before, before_name),
            lookup,
            alpha,
        )
        verdict.drift = drift
        verdict.comparisons = downgrade_for_drift(verdict.comparisons, drift)
        verdicts[after_name] = verdict
    paired_before = {b for b, _ in pairs}
    only_before = [n for n in before_names if n not in paired_before]
    only_after = [n for n in after_names if n not in verdicts]
    return verdicts, only_before, only_after


def _status_of(verdict: ScenarioVerdict) -> str:
    return verdict.verdict.value


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two results/baseline files; exit 1 on any FAIL, 2 on bad files."""

    def body() -> int:
        from perfcheck.report.results import comparison_to_json, decision_of, load_results

        if args.alpha is not None and not 0.0 < args.alpha < 1.0:
            raise BadRequest(f"--alpha {args.alpha}: give a number between 0 and 1")
        before = load_results(args.before)
        after = load_results(args.after)
        verdicts, only_before, only_after = compare_results(
            before, after, args.scenario, args.alpha
        )
        failed = any(_status_of(v) == "FAIL" for v in verdicts.values())
        if args.json:
            document = {
                "before": str(args.before),
                "after": str(args.after),
                "verdict": "FAIL" if failed else "PASS",
                "only_before": only_before,
                "only_after": only_after,
                "scenarios": {
                    name: {
                        "verdict": _status_of(v),
                        "comparisons": [comparison_to_json(c) for c in v.comparisons],
                        "decision": decision_of(v),
                    }
                    for name, v in sorted(verdicts.items())
                },
            }
            print(json.dumps(document, indent=2, sort_keys=True))
        else:
            _print_comparison(verdicts, only_before, only_after, args.before, args.after)
        if args.html is not None:
            _write_comparison_report(args.html, before, after, verdicts)
        return 1 if failed else 0

    return _run_guarded(body)


def _print_comparison(
    verdicts: Mapping[str, ScenarioVerdict],
    only_before: Sequence[str],
    only_after: Sequence[str],
    before_path: Path,
    after_path: Path,
) -> None:
    from rich.table import Table
    from rich.text import Text

    from perfcheck.model.measurement import environment_diff
    from perfcheck.report.html import threshold_text, verdict_text
    from perfcheck.stats.verdict import format_value
    from perfcheck.text import change_text

    console = _console()
    table = Table(title=f"perfcheck compare: {before_path} -> {after_path}")
    for column in ("scenario", "metric"):
        table.add_column(column, no_wrap=True)
    for column in ("before", "after", "change", "p-value", "threshold"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("verdict")
    styles = {"FAIL": "bold red", "INCONCLUSIVE": "yellow", "PASS": "green"}
    for name, verdict in sorted(verdicts.items()):
        for c in verdict.comparisons:
            table.add_row(
                Text(name),
                Text(c.metric),
                format_value(c.metric, c.baseline_median),
                format_value(c.metric, c.current_median),
                change_text(c.change),
                f"{c.p_value:.3g}",
                threshold_text(c),
                Text(verdict_text(c), style=styles.get(c.verdict.value, "")),
            )
    console.print(table)
    for name, verdict in sorted(verdicts.items()):
        status = _status_of(verdict)
        line = Text(f"{name}: ")
        line.append(status, style=styles.get(status, ""))
        worst = verdict.worst
        if not verdict.comparisons:
            line.append(" (no metric measured on both sides)")
        elif worst is not None:
            line.append(f" -- {worst.metric}: {worst.reason}")
        console.print(line)
        changed = environment_diff(
            verdict.baseline.measurement.environment, verdict.measurement.environment
        )
        for key, was, now in changed:
            console.print(Text(f"  environment {key}: {was} -> {now}"))
        drift = verdict.drift
        if drift is not None:
            note = drift.text or (
                f"not compared ({drift.skipped})" if drift.skipped else "the machine's speed held"
            )
            console.print(Text(f"  drift control: {note}"))
    for label, names in (("only in BEFORE", only_before), ("only in AFTER", only_after)):
        if names:
            console.print(Text(f"{label} (not compared): {', '.join(names)}"))


def _write_comparison_report(
    path: Path, before: Results, after: Results, verdicts: Mapping[str, ScenarioVerdict]
) -> None:
    from perfcheck.model.outcome import Status
    from perfcheck.report.html import write_report
    from perfcheck.report.results import Results, ScenarioResult, decision_of

    scenarios = {
        name: ScenarioResult(
            name=name,
            status=Status(_status_of(v)),
            measurement=v.measurement,
            baseline=v.baseline,
            baseline_path=v.baseline.path,
            comparisons=list(v.comparisons),
            decision=decision_of(v),
        )
        for name, v in verdicts.items()
    }
    combined = Results(
        scenarios,
        after.machine_class,
        alpha=next((c.alpha for v in verdicts.values() for c in v.comparisons), after.alpha),
        created_at=after.created_at,
        perfcheck_version=after.perfcheck_version,
        path=after.path,
    )
    write_report(path, combined, title=f"perfcheck compare: {before.path} -> {after.path}")
    print(f"perfcheck: report written to {path}", file=sys.stderr)


# -- show ----------------------------------------------------------------------------------


def add_show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="results or baseline file")
    parser.add_argument(
        "--scenario", action="append", metavar="NAME", help="show only this scenario (repeatable)"
    )
    parser.add_argument(
        "--unit",
        choices=("nsecs", "usecs", "msecs"),
        default="usecs",
        help="unit of the log2 histogram views (default: usecs)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the percentiles (nanoseconds), per-round values and verdicts as JSON",
    )


def cmd_show(args: argparse.Namespace) -> int:
    """Percentiles, per-round percentiles and log2 views of every histogram in FILE."""

    def body() -> int:
        from perfcheck.report.results import load_results

        results = load_results(args.file)
        names = _pick(results, args.scenario, str(args.file))
        if args.json:
            document = {
                "file": str(args.file),
                "kind": results.source_kind,
                "machine_class": results.machine_class,
                "created_at": results.created_at,
                "scenarios": {name: _show_json(results.scenarios[name]) for name in names},
            }
            print(json.dumps(document, indent=2, sort_keys=True))
            return 0
        console = _console()
        for name in names:
            _show_scenario(console, results, results.scenarios[name], args.unit)
        return 0

    return _run_guarded(body)


def _show_json(result: ScenarioResult) -> dict[str, object]:
    """What ``show`` prints of one scenario, as data: latencies in nanoseconds."""
    from perfcheck.model.histogram import LogLinearHistogram
    from perfcheck.report.results import comparison_to_json, series_percentiles

    def percentiles(histograms: Mapping[str, LogLinearHistogram]) -> dict[str, object]:
        out: dict[str, object] = {}
        for series, hist in sorted(histograms.items()):
            if hist.total:
                values: dict[str, object] = dict(series_percentiles(hist))
                values["count"] = hist.total
                out[series] = values
        return out

    measurement = result.measurement
    return {
        "status": result.status.value,
        "comparisons": [comparison_to_json(c) for c in result.comparisons],
        "merged_ns": percentiles(measurement.merged_histograms()),
        "rounds": [
            {
                "round": rnd.index + 1,
                "series_ns": percentiles(rnd.histograms),
                "scalars": dict(sorted(rnd.scalars.items())),
            }
            for rnd in measurement.rounds
        ],
    }


def _show_scenario(console: Console, results: Results, result: ScenarioResult, unit: str) -> None:
    from rich.table import Table
    from rich.text import Text

    from perfcheck.cli.console import heading
    from perfcheck.report.html import latency_text
    from perfcheck.report.results import DISPLAY_PERCENTILES, percentile_label, series_percentiles
    from perfcheck.stats.verdict import format_comparison, format_value

    measurement = result.measurement
    if results.source_kind == "perfcheck-results":
        header = f"{result.name}: {result.status.value}, {len(measurement.rounds)} measured rounds"
    else:
        header = (
            f"{result.name}: baseline recorded {results.created_at} on {results.machine_class},"
            f" {len(measurement.rounds)} measured rounds"
        )
    heading(console, Text(header))
    for c in result.comparisons:
        console.print(Text(f"  {format_comparison(c)}"))
    labels = [percentile_label(p) for p in DISPLAY_PERCENTILES]
    merged = {k: h for k, h in sorted(measurement.merged_histograms().items()) if h.total}
    table = Table(title="percentiles, all rounds merged", title_justify="left")
    table.add_column("series", no_wrap=True)
    for column in ("samples", *labels):
        table.add_column(column, justify="right", no_wrap=True)
    for series, hist in merged.items():
        values = series_percentiles(hist)
        table.add_row(
            Text(series),
            str(int(values["count"])),
            *(latency_text(values[label]) for label in labels),
        )
    console.print(table)

    rounds = Table(title="per round", title_justify="left")
    rounds.add_column("round", justify="right")
    rounds.add_column("series", no_wrap=True)
    for column in ("samples", *labels):
        rounds.add_column(column, justify="right", no_wrap=True)
    for rnd in measurement.rounds:
        for series, hist in sorted(rnd.histograms.items()):
            if not hist.total:
                continue
            values = series_percentiles(hist)
            rounds.add_row(
                str(rnd.index + 1),
                Text(series),
                str(hist.total),
                *(latency_text(values[label]) for label in labels),
            )
    console.print(rounds)
    scalar_names = sorted({k for rnd in measurement.rounds for k in rnd.scalars})
    if scalar_names:
        scalars = Table(title="scalars per round", title_justify="left")
        scalars.add_column("round", justify="right")
        for scalar in scalar_names:
            scalars.add_column(scalar, justify="right", no_wrap=True)
        for rnd in measurement.rounds:
            scalars.add_row(
                str(rnd.index + 1),
                *(
                    format_value(s, rnd.scalars[s]) if s in rnd.scalars else "-"
                    for s in scalar_names
                ),
            )
        console.print(scalars)
    for series, hist in merged.items():
        console.print(Text(f"\n{series}, all {len(measurement.rounds)} rounds merged:"))
        console.print(Text(hist.log2_view(unit)))
    console.print()


# -- report --------------------------------------------------------------------------------


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="results or baseline file")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("perfcheck-report.html"),
        metavar="PATH",
        help="HTML file to write (default: perfcheck-report.html)",
    )
    parser.add_argument("--title", default="perfcheck report", help="title of the page")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="the results store the trend plots read: a SQLite file or postgresql://..., or"
        " 'none' (default $PERFCHECK_STORE, else .perfcheck/results.sqlite in the current"
        " directory)",
    )
    parser.add_argument(
        "--trend-sessions",
        type=int,
        default=50,
        metavar="N",
        help="sessions in each trend plot (default 50)",
    )


def cmd_report(args: argparse.Namespace) -> int:
    """Write FILE's scenarios as one self-contained HTML report, with each scenario's trend
    from the results store."""

    def body() -> int:
        from perfcheck.report.html import write_report
        from perfcheck.report.results import load_results
        from perfcheck.report.trend import load_trends
        from perfcheck.store.sessions import StoreError
        from perfcheck.store.sessions.sqlstore import store_location

        if not 2 <= args.trend_sessions <= 10_000:
            raise BadRequest(f"--trend-sessions {args.trend_sessions}: give 2 to 10000")
        results = load_results(args.file)
        try:
            location = store_location(args.store or os.environ.get("PERFCHECK_STORE"), Path.cwd())
        except StoreError as exc:
            raise BadRequest(str(exc)) from None
        trends = load_trends(
            results, location, args.trend_sessions, off_reason="--store none: no history to plot"
        )
        try:
            write_report(args.output, results, title=args.title, trends=trends)
        except OSError as exc:
            raise BadRequest(
                f"{args.output}: cannot write the report ({exc.strerror or exc});"
                " check that its directory is writable"
            ) from exc
        print(f"perfcheck: report written to {args.output}")
        return 0

    return _run_guarded(body)


# -- refresh -------------------------------------------------------------------------------


def add_refresh_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--baseline-dir",
        type=Path,
        metavar="DIR",
        help=f"baseline directory to review (default: the {_BASELINE_DIR_OPTION} among the"
        f" pytest arguments, else {DEFAULT_BASELINE_DIR}/); also passed on to pytest",
    )
    parser.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        metavar="PYTEST_ARGS",
        help="arguments for pytest (default: scenarios/); put pytest options after `--`,"
        " e.g. perfcheck refresh -- -k randread --perfcheck-rounds 8",
    )


def _option_value(args: Sequence[str], option: str) -> str | None:
    """Last value of ``option`` in ``args`` (``--opt VALUE`` or ``--opt=VALUE``)."""
    value: str | None = None
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
    return value


def pytest_args_or_default(pytest_args: Sequence[str], default: Sequence[str]) -> list[str]:
    """The pytest arguments given after the sub-command (a leading ``--`` dropped), plus
    ``default`` when none of them names a test path."""
    args = list(pytest_args)
    if args[:1] == ["--"]:
        args = args[1:]
    names_a_path = any(
        not arg.startswith("-") and (Path(arg.split("::", 1)[0]).exists() or "::" in arg)
        for arg in args
    )
    return args if names_a_path else [*args, *default]


def refresh_command(pytest_args: Sequence[str], save_path: Path) -> list[str]:
    """The pytest command line ``perfcheck refresh`` runs."""
    args = pytest_args_or_default(pytest_args, DEFAULT_REFRESH_ARGS)
    command = [sys.executable, "-m", "pytest", "--perfcheck", "--perfcheck-update"]
    if _option_value(args, _SAVE_OPTION) is None:
        command += [_SAVE_OPTION, str(save_path)]
    return command + args


def snapshot_baselines(root: Path) -> dict[Path, bytes]:
    """Every ``*.json`` under ``root`` (resolved path -> content); empty if there is none."""
    if not root.is_dir():
        return {}
    # Only regular files: reading a FIFO named like a baseline would wait forever.
    return {
        path.resolve(): path.read_bytes() for path in sorted(root.rglob("*.json")) if path.is_file()
    }


def _baseline_from_bytes(path: Path, content: bytes) -> Baseline | None:
    from perfcheck.store.baseline import Baseline

    try:
        return Baseline.from_dict(json.loads(content.decode("utf-8")), path=path)
    except (BaselineError, ValueError):
        return None


def _moved_metric(metric: str) -> bool:
    return metric.endswith((".p50", ".p99")) or ".iops." in metric


def scenario_thresholds(pytest_args: Sequence[str]) -> dict[str, ThresholdLookup]:
    """Each scenario's ``[thresholds]`` lookup, by scenario name, from the scenario files
    that the pytest arguments name, or that the directories they name hold (``*.toml`` in
    a ``scenarios/`` directory, as the plugin collects them). A file that does not load is
    left out: the pytest run itself reports it."""
    from perfcheck.errors import ScenarioError
    from perfcheck.workloads.scenario import SCENARIO_DIR_NAME, discover_scenarios, load_scenario

    found: dict[str, ThresholdLookup] = {}
    for arg in pytest_args:
        path = Path(arg.split("::", 1)[0])
        if arg.startswith("-") or not path.exists():
            continue
        if not path.is_dir():
            files = [path] if path.suffix == ".toml" else []
        else:
            dirs = [path] if path.name == SCENARIO_DIR_NAME else path.rglob(SCENARIO_DIR_NAME)
            files = [f for d in sorted(dirs) if d.is_dir() for f in discover_scenarios(d)]
        for file in files:
            try:
                scenario = load_scenario(file)
            except ScenarioError:
                continue
            found[scenario.name] = scenario.threshold_for
    return found


def describe_refresh(
    before: Mapping[Path, bytes],
    after: Mapping[Path, bytes],
    shown_root: Path,
    thresholds: Mapping[str, ThresholdLookup] | None = None,
) -> list[str]:
    """Lines saying, per new or changed baseline file, what moved: p50/p99/IOPS medians,
    judged with the scenario's ``thresholds`` where given (else the defaults)."""
    from perfcheck.model.measurement import environment_diff
    from perfcheck.stats.gate import judge
    from perfcheck.stats.verdict import format_value
    from perfcheck.text import change_text

    lines: list[str] = []
    cwd = Path.cwd()
    for path in sorted(after):
        if before.get(path) == after[path]:
            continue
        shown = os.path.relpath(path, cwd) if path.is_relative_to(cwd) else str(path)
        new = _baseline_from_bytes(path, after[path])
        if new is None:
            lines.append(f"{shown}: changed, but is not a readable baseline now")
            continue
        old = _baseline_from_bytes(path, before[path]) if path in before else None
        if old is None:
            state = "new baseline" if path not in before else "replaces an unreadable file"
            lines.append(f"{shown}: {state}, {len(new.measurement.rounds)} rounds")
            for metric, values in new.measurement.metric_series().items():
                if _moved_metric(metric):
                    ordered = sorted(values)
                    lines.append(
                        f"  {metric:<34} {format_value(metric, ordered[len(values) // 2])}"
                    )
            continue
        lines.append(
            f"{shown}: {old.recorded_at} -> {new.recorded_at},"
            f" {len(old.measurement.rounds)} -> {len(new.measurement.rounds)} rounds"
        )
        try:
            verdict = judge(
                new.scenario, new.measurement, old, (thresholds or {}).get(new.scenario)
            )
        except BaselineError as exc:  # another filesystem target or other probe points
            lines.append(f"  not compared with the old baseline: {exc}")
            continue
        for c in verdict.comparisons:
            if not _moved_metric(c.metric):
                continue
            lines.append(
                f"  {c.metric:<34} {format_value(c.metric, c.baseline_median):>12} ->"
                f" {format_value(c.metric, c.current_median):>12}  {change_text(c.change):>8}"
                f"  {c.verdict.value}"
            )
        for key, was, now in environment_diff(
            old.measurement.environment, new.measurement.environment
        ):
            lines.append(f"  environment {key}: {was} -> {now}")
    if not lines:
        lines.append(f"no baseline changed under {shown_root}")
    return lines


def cmd_refresh(args: argparse.Namespace) -> int:
    """Re-record baselines with pytest, then print what moved in each changed one."""
    pytest_args = list(args.pytest_args)
    if args.baseline_dir is not None:
        pytest_args = [_BASELINE_DIR_OPTION, str(args.baseline_dir), *pytest_args]
    named = _option_value(pytest_args, _BASELINE_DIR_OPTION)
    root = Path(named) if named is not None else Path(DEFAULT_BASELINE_DIR)
    before = snapshot_baselines(root)
    with run_tempdir("refresh") as scratch:
        save_path = Path(scratch) / "results.json"
        command = refresh_command(pytest_args, save_path)
        print(f"perfcheck refresh: {' '.join(command[1:])}", flush=True)
        code = subprocess.run(command, check=False).returncode
        written = _recorded_paths(Path(_option_value(command, _SAVE_OPTION) or save_path))
    after = snapshot_baselines(root)
    print(
        "\nperfcheck refresh: what moved (medians of the rounds, old -> new; the verdict is the"
        " new rounds judged against the old baseline, with the scenario's thresholds as the"
        " run widens them)"
    )
    for line in describe_refresh(before, after, root, scenario_thresholds(command)):
        print(line)
    elsewhere = sorted(p for p in written if not p.is_relative_to(root.resolve()))
    if elsewhere:
        print(
            f"perfcheck refresh: {len(elsewhere)} baseline(s) were written outside {root}"
            f" ({', '.join(str(p) for p in elsewhere)}): pass --baseline-dir to review them"
        )
    return code


def _recorded_paths(save_path: Path) -> list[Path]:
    from perfcheck.model.outcome import Status
    from perfcheck.report.results import load_results

    if not save_path.exists():
        return []
    try:
        results = load_results(save_path)
    except BaselineError:
        return []
    return [
        s.baseline_path.resolve()
        for s in results.scenarios.values()
        if s.status is Status.RECORDED and s.baseline_path is not None
    ]
