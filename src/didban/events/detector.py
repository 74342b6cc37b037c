"""Change detection over a dense grid: a two-sided, two-state CUSUM on count log-likelihood ratios.

A pure function of the grid (no state kept between runs), vectorised over series: one
pass over the buckets updates every series at once. Each bucket contributes a
log-likelihood ratio ``llr`` (positive: evidence for the *changed* state — blocked, silent)
and is *observed* when it carries evidence at all. In the normal state an upward CUSUM
``s_up = max(0, s_up + llr)`` runs; crossing ``threshold`` declares the change; in the
changed state a downward CUSUM ``s_dn = max(0, s_dn - llr)`` runs and declares the return.
A series starts in an unknown state with both sums running: the first crossing sets its
initial state silently (a target blocked since before the window yields no block event,
only an ``unblock`` if it ends) — the warm-up of OONI's detector (event-detection.md §4.1).

Two likelihoods feed the engine (docs/events.md "Method"):

* ``bernoulli_llr`` — blocked among (blocked + ok) verdicts: ``k·log(p1/p0) +
  (n−k)·log((1−p1)/(1−p0))``, divided by the beta-binomial variance inflation
  ``1 + (n−1)·rho`` so that a bucket's evidence saturates near ``1/rho`` measurements
  (over-dispersion: one probe's ten measurements are not ten independent ones). Hours with
  no verdict are not observed.
* ``volume_llr`` — measurements per bucket against the same bucket of the day over the
  previous 7 days (median): a Poisson drop ratio ``x·log f + b·(1−f)`` with the
  negative-binomial inflation ``1 + rho·b``. A bucket with ``b`` below ``min_expected`` is
  not observed; an expected bucket with nothing in it is evidence (a shutdown speaks).

The onset bracket comes from the data, not the statistic: ``onset_before`` is the first
bucket in the changed run that itself looks changed, ``onset_after`` the last observed
bucket before it that looked normal (the same for the resolution).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

UNKNOWN: Final = 0
NORMAL: Final = 1
CHANGED: Final = 2
MAX_STRENGTH: Final = 50.0
LOOKS_SILENT: Final = 0.25  # a bucket looks silent below this share of its baseline


@dataclass(frozen=True)
class BlockParams:
    p_normal: float = 0.1  # share of blocked verdicts still called normal (H0)
    p_changed: float = 0.6  # share under a block (H1); the break-even share is ~0.31
    rho: float = 0.1  # over-dispersion: a bucket weighs at most ~1/rho measurements
    threshold: float = 6.0  # CUSUM threshold (log-likelihood-ratio units)


@dataclass(frozen=True)
class VolumeParams:
    drop: float = 0.2  # H1: the volume falls to this share of its baseline
    rho: float = 0.1  # negative-binomial over-dispersion
    threshold: float = 6.0
    min_expected: float = 3.0  # a bucket is expected only with this many measurements
    history_days: int = 7


@dataclass
class Episode:
    """One stretch of a series in the changed state, in bucket indices."""

    series: int
    onset_after: int | None  # last normal-looking observed bucket before the change
    onset_before: int  # first changed-looking bucket
    detected: int  # bucket in which the statistic crossed the threshold
    resolved_after: int | None  # last changed-looking bucket before the return
    resolved_before: int | None  # first normal-looking bucket of the return (None: ongoing)
    strength: float  # peak of the statistic over the episode ÷ threshold
    initial: bool  # the series started in the changed state (no onset in the window)


def cusum(
    llr: Matrix,
    observed: Mask,
    changed_look: Mask,
    threshold: float,
    start_state: int = UNKNOWN,
) -> list[Episode]:
    """Run the two-state CUSUM over every row of ``llr`` (series × buckets)."""
    n_series = llr.shape[0]
    state = np.full(n_series, start_state, dtype=np.int8)
    s_up = np.zeros(n_series)
    s_dn = np.zeros(n_series)
    up_start = np.full(n_series, -1, dtype=np.int64)
    dn_start = np.full(n_series, -1, dtype=np.int64)
    hold = np.zeros(n_series)  # the up-statistic kept running through a changed episode
    peak = np.zeros(n_series)
    open_ep: dict[int, Episode] = {}
    done: list[Episode] = []
    active = np.flatnonzero(observed.any(axis=0))
    for t in active:
        obs = observed[:, t]
        lt = llr[:, t]
        up_on = obs & (state != CHANGED)
        dn_on = obs & (state != NORMAL)
        new_up = np.where(up_on, np.maximum(0.0, s_up + lt), s_up)
        up_start = np.where(up_on & (s_up == 0) & (new_up > 0), t, up_start)
        up_start = np.where(new_up == 0, -1, up_start)
        s_up = new_up
        new_dn = np.where(dn_on, np.maximum(0.0, s_dn - lt), s_dn)
        dn_start = np.where(dn_on & (s_dn == 0) & (new_dn > 0), t, dn_start)
        dn_start = np.where(new_dn == 0, -1, dn_start)
        s_dn = new_dn
        in_changed = obs & (state == CHANGED)
        hold = np.where(in_changed, np.maximum(0.0, hold + lt), hold)
        peak = np.maximum(peak, np.where(in_changed, hold, 0.0))
        fire_up = up_on & (s_up > threshold) & ~(dn_on & (s_dn > s_up))
        fire_dn = dn_on & (s_dn > threshold) & ~fire_up
        if not (fire_up.any() or fire_dn.any()):
            continue
        for i in np.flatnonzero(fire_up).tolist():
            before, after = bracket(observed[i], changed_look[i], int(up_start[i]), int(t))
            open_ep[i] = Episode(
                i, after, before, int(t), None, None, 0.0, initial=bool(state[i] == UNKNOWN)
            )
        for i in np.flatnonzero(fire_dn).tolist():
            ep = open_ep.pop(i, None)
            if ep is None:  # the series' initial state was normal: nothing to close
                continue
            before, after = bracket(observed[i], ~changed_look[i], int(dn_start[i]), int(t))
            ep.resolved_before, ep.resolved_after = before, after
            ep.strength = float(min(max(peak[i], threshold) / threshold, MAX_STRENGTH))
            done.append(ep)
        fired = fire_up | fire_dn
        hold = np.where(fire_up, s_up, np.where(fired, 0.0, hold))
        peak = np.where(fire_up, s_up, np.where(fired, 0.0, peak))
        state = np.where(fire_up, CHANGED, np.where(fire_dn, NORMAL, state)).astype(np.int8)
        s_up = np.where(fired, 0.0, s_up)
        s_dn = np.where(fired, 0.0, s_dn)
        up_start = np.where(fired, -1, up_start)
        dn_start = np.where(fired, -1, dn_start)
    for i, ep in open_ep.items():
        ep.strength = float(min(max(peak[i], threshold) / threshold, MAX_STRENGTH))
        done.append(ep)
    done.sort(key=lambda e: (e.series, e.onset_before))
    return done


def bracket(observed: Mask, looks: Mask, start: int, detected: int) -> tuple[int, int | None]:
    """(first bucket of the last run of changed-looking observed buckets up to
    ``detected`` — unobserved buckets do not break a run; not before ``start`` —, the
    last observed bucket before it that does not look changed)."""
    start = max(start, 0)
    seen = np.flatnonzero(observed[start : detected + 1]) + start
    hits = np.flatnonzero(looks[seen])
    if hits.size == 0:
        before = int(seen[0]) if seen.size else start
    else:
        j = int(hits[-1])
        while j > 0 and looks[seen[j - 1]]:
            j -= 1
        before = int(seen[j])
    calm = np.flatnonzero(observed[:before] & ~looks[:before])
    return before, (int(calm[-1]) if calm.size else None)


def bernoulli_llr(blocked: Matrix, total: Matrix, p: BlockParams) -> tuple[Matrix, Mask, Mask]:
    """(llr, observed, looks-changed) for blocked-of-total counts."""
    a = np.log(p.p_changed / p.p_normal)
    b = np.log((1 - p.p_changed) / (1 - p.p_normal))
    inflation = 1.0 + np.maximum(total - 1.0, 0.0) * p.rho
    llr = (blocked * a + (total - blocked) * b) / inflation
    observed = total > 0
    mid = (p.p_normal + p.p_changed) / 2
    looks = observed & (blocked > mid * total)
    return llr, observed, looks


def baseline(counts: Matrix, step: timedelta, history_days: int = 7) -> Matrix:
    """Expected count per bucket: the median of the same bucket of the day over the
    previous ``history_days`` days (previous ``history_days`` buckets for daily or longer
    buckets; the previous 30 buckets, without a daily cycle, when the grid spans less than
    a day). NaN where no history exists."""
    day = timedelta(days=1)
    n_series, n_buckets = counts.shape
    if step >= day:
        lags = list(range(1, history_days + 1))
    elif day % step == timedelta(0) and n_buckets > day // step:
        per_day = day // step
        lags = [d * per_day for d in range(1, history_days + 1)]
    else:  # less than a day of history (the lab's minutes): the recent buckets
        lags = list(range(1, 31))
    stack = np.full((len(lags), n_series, n_buckets), np.nan)
    for j, lag in enumerate(lags):
        if lag < n_buckets:
            stack[j, :, lag:] = counts[:, : n_buckets - lag]
    out = np.full((n_series, n_buckets), np.nan)
    have = (~np.isnan(stack)).sum(axis=0)
    enough = have >= max(1, len(lags) // 7)
    if enough.any():
        with np.errstate(all="ignore"):
            med = np.nanmedian(stack[:, enough], axis=0)
        out[enough] = med
    return out


def volume_llr(counts: Matrix, expected: Matrix, p: VolumeParams) -> tuple[Matrix, Mask, Mask]:
    """(llr, observed, looks-changed) for a volume series against its expected counts."""
    b = np.nan_to_num(expected, nan=0.0)
    observed = b >= p.min_expected
    llr = (counts * np.log(p.drop) + b * (1.0 - p.drop)) / (1.0 + p.rho * b)
    llr = np.where(observed, llr, 0.0)
    looks = observed & (counts < LOOKS_SILENT * b)
    return llr, observed, looks


def detect_blocks(blocked: Matrix, total: Matrix, p: BlockParams | None = None) -> list[Episode]:
    p = p or BlockParams()
    llr, observed, looks = bernoulli_llr(blocked, total, p)
    return cusum(llr, observed, looks, p.threshold)


def detect_drops(counts: Matrix, step: timedelta, p: VolumeParams | None = None) -> list[Episode]:
    """Shutdown and outage episodes in volume series (the normal state is assumed at the
    start: volume is only judged against its own history)."""
    p = p or VolumeParams()
    expected = baseline(counts, step, p.history_days)
    llr, observed, looks = volume_llr(counts, expected, p)
    return cusum(llr, observed, looks, p.threshold, start_state=NORMAL)


@dataclass(frozen=True)
class RatioParams:
    """IODA's rule (event-detection.md §2.3): alert when a value falls below ``critical`` ×
    the median of its recent history; return when it is back above ``recovery`` ×
    (hysteresis); while alerting, the history is fed the prediction, not the value
    (IODA's inpainting), so an outage does not drag its own baseline down."""

    history: timedelta = timedelta(hours=24)
    critical: float = 0.5
    recovery: float = 0.8
    min_points: int = 2  # consecutive points beyond a threshold before it counts
    warmup_points: int = 6


def ioda_params(signal: str) -> RatioParams:
    """IODA's per-datasource windows and critical fractions, chosen by the column's name."""
    name = signal.lower()
    if "bgp" in name:
        return RatioParams(timedelta(hours=24), 0.5)
    if any(w in name for w in ("telescope", "darknet", "ibr", "merit", "ucsd")):
        return RatioParams(timedelta(days=7), 0.1, 0.25)
    if any(w in name for w in ("active", "probing", "ping")):
        return RatioParams(timedelta(days=7), 0.5)
    return RatioParams(timedelta(hours=24), 0.5)


def ratio_drops(values: npt.NDArray[np.float64], step: timedelta, p: RatioParams) -> list[Episode]:
    """Drop episodes of one signal (NaN: no value). ``series`` is 0 in every episode."""
    history: list[float] = []
    keep = max(1, p.history // step)
    out: list[Episode] = []
    ep: Episode | None = None
    run_start = -1
    run = 0
    last_normal: int | None = None
    last_low: int | None = None
    lowest = 1.0
    for t, x in enumerate(values):
        if x != x:
            continue
        if len(history) < p.warmup_points:
            history.append(float(x))
            last_normal = t
            continue
        ref = float(np.median(history[-keep:]))
        ratio = x / ref if ref > 0 else 1.0
        feed = float(x)
        if ep is None:
            if ratio < p.critical:
                if run == 0:
                    run_start, after = t, last_normal
                run += 1
                feed = ref
                lowest = min(lowest, ratio)
                if run >= p.min_points:
                    ep = Episode(0, after, run_start, t, None, None, 1.0, False)
                    last_low, run = t, 0
            else:
                run, lowest, last_normal = 0, 1.0, t
        else:
            lowest = min(lowest, ratio)
            if ratio >= p.recovery:
                if run == 0:
                    run_start = t
                run += 1
                if run >= p.min_points:
                    ep.resolved_before, ep.resolved_after = run_start, last_low
                    ep.strength = _drop_strength(lowest, p.critical)
                    out.append(ep)
                    ep, run, lowest, last_normal = None, 0, 1.0, t
                else:
                    feed = ref
            else:
                run, last_low, feed = 0, t, ref
        history.append(feed)
        if len(history) > 4 * keep:
            del history[: len(history) - keep]
    if ep is not None:
        ep.strength = _drop_strength(lowest, p.critical)
        out.append(ep)
    return out


def _drop_strength(lowest: float, critical: float) -> float:
    """1 at the critical fraction, rising as the signal falls towards zero (max 4)."""
    depth = (1.0 - max(lowest, 0.0)) / max(1.0 - critical, 1e-9)
    return float(min(max(1.0, 1.0 + 3.0 * (depth - 1.0) / max(critical, 1e-9)), 4.0))
