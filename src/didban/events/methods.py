"""The block detectors compared on the benchmark, behind one signature.

Each takes blocked and total counts (series × buckets) and returns ``Episode`` s:

* ``cusum`` — the chosen one (``detector.detect_blocks``): a two-state CUSUM on the
  over-dispersion-scaled Bernoulli log-likelihood ratio.
* ``window`` — a windowed beta-binomial test: the blocked share of the last ``recent``
  buckets against the ``reference`` buckets before them, a z statistic whose variance is
  inflated by the same beta-binomial factor; a change needs ``z`` beyond ``z_crit`` and a
  share difference of at least ``min_diff``.
* ``ooni`` — OONI's production detector as event-detection.md §4.1 describes it (hourly
  median of the per-measurement blocked score, two-sided CUSUM with ``mu0 = 0``,
  ``mu1 = 0.7``, ``h = 3.5``, empty hours skipped), written from that description, for
  reference.

docs/events.md "Comparison of methods" gives their figures on ``bench/events_detect.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from didban.events.detector import (
    CHANGED,
    NORMAL,
    UNKNOWN,
    BlockParams,
    Episode,
    Matrix,
    bracket,
    cusum,
    detect_blocks,
)

BlockDetector = Callable[[Matrix, Matrix], list[Episode]]


@dataclass(frozen=True)
class WindowParams:
    recent: int = 3  # buckets in the window under test
    reference: int = 24  # buckets before it
    z_crit: float = 4.0
    min_diff: float = 0.3
    rho: float = 0.1
    look_share: float = 0.35


def _window_sums(x: Matrix, width: int, end_offset: int) -> Matrix:
    """Sum of ``x`` over buckets [t - end_offset - width + 1, t - end_offset] for every t."""
    c = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1)], axis=1)
    t = np.arange(x.shape[1])
    hi = np.clip(t - end_offset + 1, 0, x.shape[1])
    lo = np.clip(t - end_offset - width + 1, 0, x.shape[1])
    out: Matrix = c[:, hi] - c[:, lo]
    return out


def window_test(blocked: Matrix, total: Matrix, p: WindowParams | None = None) -> list[Episode]:
    p = p or WindowParams()
    k_r = _window_sums(blocked, p.recent, 0)
    n_r = _window_sums(total, p.recent, 0)
    k_b = _window_sums(blocked, p.reference, p.recent)
    n_b = _window_sums(total, p.reference, p.recent)
    with np.errstate(all="ignore"):
        share_r = np.where(n_r > 0, k_r / n_r, np.nan)
        share_b = np.where(n_b > 0, k_b / n_b, np.nan)
        pooled = (k_r + k_b) / np.maximum(n_r + n_b, 1)
        eff_r = n_r / (1 + np.maximum(n_r / p.recent - 1, 0) * p.rho)
        eff_b = n_b / (1 + np.maximum(n_b / p.reference - 1, 0) * p.rho)
        var = pooled * (1 - pooled) * (1 / np.maximum(eff_r, 1e-9) + 1 / np.maximum(eff_b, 1e-9))
        z = (share_r - share_b) / np.sqrt(var + 1e-4)
    observed = total > 0
    looks = observed & (blocked > p.look_share * total)
    n_series, n_buckets = blocked.shape
    state = np.full(n_series, UNKNOWN, dtype=np.int8)
    open_ep: dict[int, Episode] = {}
    done: list[Episode] = []
    for t in range(n_buckets):
        ok = ~np.isnan(z[:, t]) & ~np.isnan(share_b[:, t]) & observed[:, t]
        if not ok.any():
            continue
        first = ok & (state == UNKNOWN) & (n_b[:, t] > 0)
        state = np.where(first, np.where(share_b[:, t] >= 0.5, CHANGED, NORMAL), state).astype(
            np.int8
        )
        diff = share_r[:, t] - share_b[:, t]
        up = ok & (state == NORMAL) & (z[:, t] > p.z_crit) & (diff >= p.min_diff)
        down = ok & (state == CHANGED) & (z[:, t] < -p.z_crit) & (-diff >= p.min_diff)
        for i in np.flatnonzero(up).tolist():
            start = max(0, t - p.recent + 1)
            before, after = bracket(observed[i], looks[i], start, t)
            open_ep[i] = Episode(i, after, before, t, None, None, 1.0 + float(z[i, t]) / 10, False)
        for i in np.flatnonzero(down).tolist():
            start = max(0, t - p.recent + 1)
            before, after = bracket(observed[i], ~looks[i], start, t)
            ep = open_ep.pop(i, None)
            if ep is None:
                ep = Episode(i, None, 0, 0, None, None, 1.0, True)
            ep.resolved_before, ep.resolved_after = before, after
            done.append(ep)
        state = np.where(up, CHANGED, np.where(down, NORMAL, state)).astype(np.int8)
    done.extend(open_ep.values())
    done.sort(key=lambda e: (e.series, e.onset_before))
    return done


OONI_MU1: Final = 0.7
OONI_H: Final = 3.5


def ooni_median_cusum(blocked: Matrix, total: Matrix) -> list[Episode]:
    observed = total > 0
    with np.errstate(all="ignore"):
        share = np.where(observed, blocked / np.maximum(total, 1), 0.0)
    median = np.where(share > 0.5, 1.0, np.where(share == 0.5, 0.5, 0.0))
    llr = np.where(observed, median - OONI_MU1 / 2, 0.0)
    return cusum(llr, observed, observed & (median >= 0.5), OONI_H)


METHODS: Final[dict[str, BlockDetector]] = {
    "cusum": lambda k, n: detect_blocks(k, n, BlockParams()),
    "window": lambda k, n: window_test(k, n),
    "ooni": ooni_median_cusum,
}
