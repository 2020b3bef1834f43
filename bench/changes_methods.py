"""Change-point methods compared on the detection scorecard's recorded sessions and on long
series simulated from their noise (no root, fio or BPF needed).

    .venv/bin/python bench/changes_methods.py [--series 300] [--long-series 6] [--seed 1]

``pelt-mw`` needs ``ruptures`` 1.1.10 (``.venv/bin/pip install ruptures==1.1.10``), which
perfcheck itself does not depend on; without it that method is skipped.

Methods (each returns the indices of the sessions that start a new segment):

- ``rank-binseg``: binary segmentation, permutation test of the largest standardised
  Mann-Whitney z over the splits (the method ``perfcheck changes`` started with);
- ``edivisive-perm``: E-Divisive means (Matteson and James; Apache Otava's
  ``compute_change_points_orig``): the split (and segment end) with the largest energy
  distance q-hat over all current segments, significance by permuting within each
  segment (199 permutations);
- ``otava-default``: Otava's default pipeline (Hunter): E-Divisive in sliding windows of 50
  sessions with a Student t-test of adjacent segments at 10x alpha, then the weakest points
  merged away until every adjacent pair passes the t-test at alpha;
- ``pelt-mw``: a penalised segmentation (``ruptures`` PELT, L2 cost on the logarithm,
  standardised by a robust noise estimate, penalty 3 log n), then the weakest boundary
  merged away until every adjacent pair passes Mann-Whitney at alpha / boundaries;
- ``rank-binseg+tail`` (what ``perfcheck changes`` does): ``rank-binseg`` for the
  inside of the series plus the tail rule of ``perfcheck.stats.changes`` (``tail3``,
  ``tail4``, ``tail-level5e-9``: other thresholds of it) for its last sessions (a step
  just before the newest session, where a split statistic has no power);
- ``tail`` alone, to show what it adds.

Figures, per method, all at alpha 0.01:

- false change points per 100 same-setting metric-sessions (7 gated metrics a session):
  *offline* = one search of the whole series; *online* = searched after every new session
  as CI would, each distinct point ever reported counted once (a point within one session
  of one reported before is the same point). On the recordings (the 20 ``A`` sessions of
  each, and all 120 in time order) and on simulated series (``--long`` sessions, noise =
  the ``A`` sessions' medians relative to their recording's median, resampled in blocks
  of 10 consecutive sessions so drift and outliers stay as recorded; all metrics of a
  session drawn together);
- detection delay: sessions after the step until a change point within one session of it
  appears in any gated metric, searching after every new session (up to 8): the recorded
  bfq step (each recording's 20 ``A`` sessions then its 4 bfq sessions), a simulated
  bfq-sized step (30 resampled sessions, then the same noise times the per-metric bfq effect
  of a random recording: its bfq sessions' median over its ``A`` sessions' median), and a
  simulated 15% step (noise times 1.15 after the step).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.stats import mannwhitneyu, ttest_ind

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.detection.score import INITIAL_ROUNDS, Session, load_sessions  # noqa: E402
from perfcheck.stats import changes  # noqa: E402

DATA = ROOT / "bench" / "detection" / "data"
ALPHA = 0.01
MIN_SIZE = 3
MAX_DELAY = 8
HISTORY = 30
BLOCK = 10

Floats = npt.NDArray[np.float64]
Method = Callable[[Floats], list[int]]


# -- E-Divisive means -------------------------------------------------------------------------


def _qhat_max(
    batch: Floats, min_size: int, window_end: bool
) -> tuple[Floats, npt.NDArray[np.int64]]:
    """Per row of ``batch`` (one ordering of a segment each): the largest E-Divisive q-hat
    over splits tau (and, with ``window_end``, segment ends kappa as Matteson and James
    do), and the tau it is at."""
    p, m = batch.shape
    d = np.abs(batch[:, :, None] - batch[:, None, :])
    s = np.zeros((p, m + 1, m + 1))
    s[:, 1:, 1:] = d.cumsum(axis=1).cumsum(axis=2)
    taus = np.arange(min_size, m - min_size + 1)
    kappas = np.arange(2 * min_size, m + 1) if window_end else np.array([m])
    tau, kappa = np.meshgrid(taus, kappas, indexing="ij")
    valid = kappa - tau >= min_size
    tau, kappa = tau[valid], kappa[valid]

    zero = np.zeros_like(tau)

    def rect(
        a: npt.NDArray[np.int64],
        b: npt.NDArray[np.int64],
        c: npt.NDArray[np.int64],
        e: npt.NDArray[np.int64],
    ) -> Floats:
        return s[:, b, e] - s[:, a, e] - s[:, b, c] + s[:, a, c]  # type: ignore[no-any-return]

    between = rect(zero, tau, tau, kappa)
    within_x = rect(zero, tau, zero, tau) / 2.0
    within_y = rect(tau, kappa, tau, kappa) / 2.0
    n_x, n_y = tau, kappa - tau
    total = n_x + n_y
    q = (
        2.0 / total * between
        - 2.0 * n_y / (total * (n_x - 1)) * within_x
        - 2.0 * n_x / (total * (n_y - 1)) * within_y
    )
    best = np.argmax(q, axis=1)
    return q[np.arange(p), best], tau[best]


def edivisive_perm(
    values: Floats, alpha: float = ALPHA, permutations: int = 199, seed: int = 1
) -> list[int]:
    rng = np.random.default_rng(seed)
    points: list[int] = []
    while True:
        bounds = [0, *points, len(values)]
        segments = [(a, b) for a, b in itertools.pairwise(bounds) if b - a >= 2 * MIN_SIZE]
        if not segments:
            return sorted(points)
        observed = [(_qhat_max(values[np.newaxis, a:b], MIN_SIZE, True), a) for a, b in segments]
        (q_obs, tau_obs), start = max(observed, key=lambda o: o[0][0][0])
        null = np.full(permutations, -np.inf)
        for a, b in segments:
            shuffled = rng.permuted(np.tile(values[a:b], (permutations, 1)), axis=1)
            null = np.maximum(null, _qhat_max(shuffled, MIN_SIZE, True)[0])
        p_value = (1.0 + np.sum(null >= q_obs[0])) / (1.0 + permutations)
        if p_value > alpha:
            return sorted(points)
        points.append(start + int(tau_obs[0]))
        points.sort()


def _ttest_p(left: Floats, right: Floats) -> float:
    if len(left) < 2 or len(right) < 2:
        return 1.0
    result = ttest_ind(left, right)
    p = float(result.pvalue)
    return 1.0 if np.isnan(p) else p


def _adjacent_p(
    values: Floats, points: list[int], test: Callable[[Floats, Floats], float]
) -> list[float]:
    bounds = [0, *points, len(values)]
    return [
        test(values[bounds[i - 1] : bounds[i]], values[bounds[i] : bounds[i + 1]])
        for i in range(1, len(bounds) - 1)
    ]


def _merge(
    values: Floats, points: list[int], alpha: float, test: Callable[[Floats, Floats], float]
) -> list[int]:
    """Drop the weakest boundary until every adjacent pair of segments passes ``test``."""
    points = sorted(points)
    while points:
        p_values = _adjacent_p(values, points, test)
        weakest = int(np.argmax(p_values))
        if p_values[weakest] <= alpha:
            break
        del points[weakest]
    return points


def otava_default(values: Floats, alpha: float = 0.001, window: int = 50) -> list[int]:
    weak_alpha = alpha * 10
    found: set[int] = set()
    start = 0
    while start < len(values):
        end = min(start + window, len(values))
        window_values = values[start:end]
        points: list[int] = []
        while True:
            bounds = [0, *points, len(window_values)]
            best: tuple[float, int] | None = None
            for a, b in itertools.pairwise(bounds):
                if b - a < 2 * MIN_SIZE:
                    continue
                q, tau = _qhat_max(window_values[np.newaxis, a:b], MIN_SIZE, True)
                if best is None or q[0] > best[0]:
                    best = (float(q[0]), a + int(tau[0]))
            if best is None:
                break
            at = best[1]
            bounds = [0, *sorted(points), len(window_values)]
            lo = max(b for b in bounds if b < at)
            hi = min(b for b in bounds if b > at)
            if _ttest_p(window_values[lo:at], window_values[at:hi]) > weak_alpha:
                break
            points.append(at)
            points.sort()
        found.update(start + p for p in points)
        last = max(points) + start if points else 0
        start = max(last, start + window // 2)
        if end == len(values):
            break
    return _merge(values, sorted(found), alpha, _ttest_p)


def _mw_p(left: Floats, right: Floats) -> float:
    return float(mannwhitneyu(left, right, alternative="two-sided").pvalue)


def pelt_mw(values: Floats, alpha: float = ALPHA) -> list[int]:
    import ruptures

    if len(values) < 2 * MIN_SIZE:
        return []
    logs = np.log(np.maximum(values, 1e-12))
    noise = np.median(np.abs(np.diff(logs))) / (0.6745 * np.sqrt(2.0))
    scaled = (logs - np.median(logs)) / max(noise, 1e-9)
    breaks = (
        ruptures.Pelt(model="l2", min_size=MIN_SIZE, jump=1)
        .fit(scaled)
        .predict(pen=3.0 * np.log(len(values)))
    )
    points = [b for b in breaks if b < len(values)]
    if not points:
        return []
    return _merge(values, points, alpha / len(points), _mw_p)


def rank_binseg(values: Floats) -> list[int]:
    return [p.index for p in changes.change_points(values, alpha=ALPHA, tail=False)]


def rank_binseg_tail(values: Floats) -> list[int]:
    return [p.index for p in changes.change_points(values, alpha=ALPHA)]


def tail_only(values: Floats) -> list[int]:
    point = changes.tail_change(values)
    return [] if point is None else [point.index]


def with_tail(threshold: float | None, level: float = changes.TAIL_LEVEL) -> Method:
    def method(values: Floats) -> list[int]:
        found = changes.change_points(
            values, alpha=ALPHA, tail_threshold=threshold, tail_level=level
        )
        return [p.index for p in found]

    return method


def tail_mw(values: Floats, alpha: float = 0.001, window: int = 20) -> int | None:
    """The last k (4-8) sessions against the ``window`` before them, Mann-Whitney,
    Bonferroni over the k's: the longest significant k."""
    n = len(values)
    found = None
    ks = range(4, 9)
    for k in ks:
        reference = values[max(0, n - k - window) : n - k]
        if len(reference) < 8:
            break
        if _mw_p(values[n - k :], reference) * len(ks) <= alpha:
            found = n - k
    return found


def with_tail_mw(alpha: float) -> Method:
    def method(values: Floats) -> list[int]:
        found = [p.index for p in changes.change_points(values, alpha=ALPHA)]
        if found and found[-1] >= len(values) - 8:
            return found
        extra = tail_mw(values, alpha)
        if extra is None:
            return found
        return [p for p in found if p < extra - 1] + [extra]

    return method


METHODS: dict[str, Method] = {
    "rank-binseg": rank_binseg,
    "edivisive-perm": edivisive_perm,
    "otava-default": otava_default,
    "pelt-mw": pelt_mw,
    "tail": tail_only,
    "rank-binseg+tail": rank_binseg_tail,
    "rank-binseg+tail3": with_tail(3.0),
    "rank-binseg+tail4": with_tail(4.0),
    "rank-binseg+tail-level5e-9": with_tail(None, 4.9e-9),
    "rank-binseg+tail+mw.001": with_tail_mw(0.001),
    "rank-binseg+tail+mw.01": with_tail_mw(0.01),
}


# -- series -----------------------------------------------------------------------------------


def metric_matrix(sessions: Sequence[Session]) -> tuple[list[str], Floats]:
    """(metrics, sessions x metrics) of session medians."""
    rows = [s.medians(INITIAL_ROUNDS) for s in sessions]
    metrics = sorted(rows[0])
    return metrics, np.array([[r[m] for m in metrics] for r in rows], dtype=np.float64)


def offline_points(method: Method, matrix: Floats) -> list[int]:
    return [p for j in range(matrix.shape[1]) for p in method(matrix[:, j])]


def offline_false(method: Method, matrix: Floats) -> int:
    return len(offline_points(method, matrix))


def online_points(method: Method, values: Floats, first: int = 2 * MIN_SIZE) -> list[int]:
    """Distinct change points reported when searching after every new session."""
    seen: list[int] = []
    for end in range(first, len(values) + 1):
        for point in method(values[:end]):
            if all(abs(point - s) > 1 for s in seen):
                seen.append(point)
    return seen


def online_all(method: Method, matrix: Floats) -> list[int]:
    return [p for j in range(matrix.shape[1]) for p in online_points(method, matrix[:, j])]


def online_false(method: Method, matrix: Floats) -> int:
    return len(online_all(method, matrix))


def at_boundary(points: list[int], boundaries: list[int]) -> int:
    return sum(1 for p in points if any(abs(p - b) <= 1 for b in boundaries))


def delay(method: Method, before: Floats, after: Floats) -> int | None:
    """Sessions after the step until some metric reports a point within one of it."""
    step = len(before)
    for seen in range(1, len(after) + 1):
        series = np.vstack([before, after[:seen]])
        for j in range(series.shape[1]):
            if any(abs(p - step) <= 1 for p in method(series[:, j])):
                return seen
    return None


def resample(noise: list[Floats], length: int, rng: np.random.Generator) -> Floats:
    """``length`` sessions of relative noise: blocks of consecutive recorded sessions."""
    rows: list[Floats] = []
    while sum(len(r) for r in rows) < length:
        rec = noise[int(rng.integers(len(noise)))]
        start = int(rng.integers(len(rec) - BLOCK + 1))
        rows.append(rec[start : start + BLOCK])
    return np.vstack(rows)[:length]


def summary(delays: list[int | None]) -> str:
    n = len(delays)
    within3 = sum(1 for d in delays if d is not None and d <= 3)
    within8 = sum(1 for d in delays if d is not None and d <= 8)
    found = sorted(d for d in delays if d is not None)
    med = f"median {found[len(found) // 2]}" if found else "none found"
    return f"<=3: {share(within3, n)} <=8: {share(within8, n)} ({med}, {n} series)"


def share(count: int, n: int) -> str:
    """``count`` of ``n`` as a percentage with its 95% Wilson interval."""
    from scipy.stats import binomtest

    interval = binomtest(count, n).proportion_ci(0.95, method="wilson")
    return f"{100.0 * count / n:5.1f}% [{100 * interval.low:.0f}-{100 * interval.high:.0f}]"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=100, help="simulated series per figure")
    parser.add_argument("--long", type=int, default=300, help="sessions per long series")
    parser.add_argument("--long-series", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--no-online-long", action="store_true")
    args = parser.parse_args(argv)
    recordings = [load_sessions([p]) for p in sorted(DATA.glob("sessions-*.json.gz"))]
    a_runs = [[s for s in rec if s.condition == "A"] for rec in recordings]
    bfq_runs = [[s for s in rec if s.condition == "bfq"] for rec in recordings]
    metrics, _ = metric_matrix(a_runs[0])
    a_mats = [metric_matrix(run)[1] for run in a_runs]
    bfq_mats = [metric_matrix(run)[1] for run in bfq_runs]
    everything = sorted((s for run in a_runs for s in run), key=lambda s: s.started_at)
    all_mat = metric_matrix(everything)[1]
    noise = [m / np.median(m, axis=0) for m in a_mats]
    # Recordings are in time order; the fifth was the first on filled scratch devices.
    edges = list(np.cumsum([len(run) for run in a_runs])[:-1])
    fill = edges[3]
    bfq_effect = [
        np.median(b, axis=0) / np.median(a, axis=0) for a, b in zip(a_mats, bfq_mats, strict=True)
    ]
    print(f"{len(recordings)} recordings, {len(everything)} A sessions, {len(metrics)} metrics")
    print("bfq effect per recording (median ratio, per metric):")
    for effect in bfq_effect:
        print(
            "  "
            + " ".join(
                f"{m.split('.', 1)[1]} {e - 1:+.0%}" for m, e in zip(metrics, effect, strict=True)
            )
        )
    for name in args.methods.split(","):
        method = METHODS[name]
        if name == "pelt-mw" and importlib.util.find_spec("ruptures") is None:
            print(f"\n== {name}: skipped, ruptures is not installed")
            continue
        began = time.monotonic()
        # Separate streams: the step series stay the same whatever --long-series is.
        rng = np.random.default_rng([args.seed, 1])
        step_rng = np.random.default_rng([args.seed, 2])
        metric_sessions = sum(m.size for m in a_mats)
        per_rec_off_each = [offline_false(method, m) for m in a_mats]
        per_rec_on_each = [online_false(method, m) for m in a_mats]
        per_rec_off = sum(per_rec_off_each)
        per_rec_on = sum(per_rec_on_each)
        all_off_points = offline_points(method, all_mat)
        all_on_points = online_all(method, all_mat)
        all_off = len(all_off_points)
        all_on = len(all_on_points)
        longs = [resample(noise, args.long, rng) for _ in range(args.long_series)]
        long_ms = sum(m.size for m in longs)
        long_off = sum(offline_false(method, m) for m in longs)
        long_on = None if args.no_online_long else sum(online_false(method, m) for m in longs)
        rec_delays = [delay(method, a, b) for a, b in zip(a_mats, bfq_mats, strict=True)]
        sim_bfq = []
        sim_15 = []
        for _ in range(args.series):
            series = resample(noise, HISTORY + MAX_DELAY, step_rng)
            effect = bfq_effect[int(step_rng.integers(len(bfq_effect)))]
            sim_bfq.append(delay(method, series[:HISTORY], series[HISTORY:] * effect))
            sim_15.append(delay(method, series[:HISTORY], series[HISTORY:] * 1.15))
        print(f"\n== {name} ({time.monotonic() - began:.0f} s)")
        print(
            f"false per 100 metric-sessions, offline / online: recordings"
            f" {100 * per_rec_off / metric_sessions:.2f} / {100 * per_rec_on / metric_sessions:.2f}"
            f" ({metric_sessions}); all A in time order {100 * all_off / all_mat.size:.2f} /"
            f" {100 * all_on / all_mat.size:.2f} ({all_mat.size}); simulated"
            f" {args.long_series}x{args.long} {100 * long_off / long_ms:.2f} / "
            + ("-" if long_on is None else f"{100 * long_on / long_ms:.2f}")
            + f" ({long_ms})"
        )
        print(
            f"  per recording, offline {per_rec_off_each} online {per_rec_on_each};"
            f" time order: at the recording 4->5 boundary (scratch fill) offline"
            f" {at_boundary(all_off_points, [fill])} online {at_boundary(all_on_points, [fill])},"
            f" at any recording boundary {at_boundary(all_off_points, edges)} /"
            f" {at_boundary(all_on_points, edges)}"
        )
        shown = ", ".join("-" if d is None else str(d) for d in rec_delays)
        print(f"recorded bfq step: {summary(rec_delays)} [{shown}]")
        print(f"simulated bfq step: {summary(sim_bfq)}")
        print(f"simulated 15% step: {summary(sim_15)}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
