"""The detector on constructed series with known changepoints: brackets, silence, statelessness."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from didban.events import detector
from didban.events.detector import BlockParams, detect_blocks, detect_drops

HOUR = timedelta(hours=1)


def _series(rng: np.random.Generator, n: int, rate: float, p: list[tuple[int, float]]):
    """Counts at ``rate`` an hour; blocked share ``p`` from each (bucket, share) on."""
    total = rng.poisson(rate, n).astype(float)
    share = np.full(n, 0.02)
    for start, value in p:
        share[start:] = value
    blocked = rng.binomial(total.astype(int), share).astype(float)
    return blocked[None, :], total[None, :]


def test_block_onset_and_end_are_bracketed() -> None:
    rng = np.random.default_rng(1)
    k, n = _series(rng, 200, 10, [(120, 0.95), (170, 0.02)])
    (ep,) = detect_blocks(k, n)
    assert ep.onset_after == 119 and ep.onset_before == 120
    assert 120 <= ep.detected <= 121
    assert ep.resolved_after == 169 and ep.resolved_before == 170
    assert not ep.initial


def test_sparse_series_waits_for_evidence_and_keeps_the_bracket() -> None:
    total = np.zeros((1, 100))
    total[0, ::3] = 1  # one measurement every three hours
    blocked = np.zeros_like(total)
    blocked[0, 60:] = total[0, 60:]
    (ep,) = detect_blocks(blocked, total)
    assert ep.onset_after == 57 and ep.onset_before == 60  # the last ok and the first blocked
    assert ep.detected > 60  # one measurement is not enough
    assert ep.resolved_before is None


def test_empty_hours_between_normal_and_blocked_widen_the_bracket() -> None:
    total = np.full((1, 60), 10.0)
    total[0, 30:40] = 0  # nobody measured for ten hours
    blocked = np.zeros_like(total)
    blocked[0, 40:] = 10
    (ep,) = detect_blocks(blocked, total)
    assert (ep.onset_after, ep.onset_before) == (29, 40)


def test_permanently_blocked_target_is_no_event_and_its_unblock_is() -> None:
    rng = np.random.default_rng(2)
    k, n = _series(rng, 150, 8, [(0, 0.95)])
    (ep,) = detect_blocks(k, n)  # its initial state, not a change
    assert ep.initial and ep.onset_after is None and ep.resolved_before is None
    k, n = _series(rng, 150, 8, [(0, 0.95), (90, 0.02)])
    (ep,) = detect_blocks(k, n)
    assert ep.initial and ep.resolved_after == 89 and ep.resolved_before == 90


def test_partial_block_below_a_third_is_not_a_block_above_half_is() -> None:
    rng = np.random.default_rng(3)
    k, n = _series(rng, 300, 20, [(100, 0.2)])
    assert detect_blocks(k, n) == []
    k, n = _series(rng, 300, 20, [(100, 0.6)])
    assert [e.onset_before for e in detect_blocks(k, n)] == [100]


def test_over_dispersion_one_bad_hour_of_many_measurements_is_not_a_block() -> None:
    """A binomial test on 1,000 measurements an hour calls one odd hour significant; the
    beta-binomial scaling caps what one hour can weigh."""
    total = np.full((1, 100), 1000.0)
    blocked = np.full_like(total, 20.0)
    blocked[0, 50] = 450  # one probe farm behind a broken network for an hour
    episodes = detect_blocks(blocked, total)
    assert all(e.strength < 2 for e in episodes)  # a blip at most: confidence below 0.5
    bare = detect_blocks(blocked, total, BlockParams(rho=0.0))
    assert [e.strength > 10 for e in bare] == [True]


def test_silence_where_measurements_were_expected_is_a_drop() -> None:
    rng = np.random.default_rng(4)
    hours = np.arange(24 * 10)
    rate = 20 * (1 + 0.5 * np.sin(2 * np.pi * (hours % 24) / 24))
    counts = rng.poisson(rate).astype(float)[None, :]
    counts[0, 200:212] = 0  # a twelve-hour shutdown
    (ep,) = detect_drops(counts, HOUR)
    assert (ep.onset_after, ep.onset_before) == (199, 200)
    assert ep.detected <= 201
    assert (ep.resolved_after, ep.resolved_before) == (211, 212)


def test_night_time_lows_are_not_outages() -> None:
    rng = np.random.default_rng(5)
    hours = np.arange(24 * 14)
    rate = 30 * np.where((hours % 24) < 6, 0.1, 1.0)  # nights at a tenth of the day
    counts = rng.poisson(rate).astype(float)[None, :]
    assert detect_drops(counts, HOUR) == []


def test_stateless_same_grid_same_answer_and_late_data_only_adds() -> None:
    rng = np.random.default_rng(6)
    k, n = _series(rng, 240, 12, [(100, 0.95), (150, 0.02), (200, 0.95)])
    once = detect_blocks(k, n)
    again = detect_blocks(k.copy(), n.copy())
    assert once == again and [e.onset_before for e in once] == [100, 200]
    prefix = detect_blocks(k[:, :160], n[:, :160])  # a run made at hour 160
    assert [(e.onset_after, e.onset_before, e.resolved_before) for e in prefix] == [
        (once[0].onset_after, once[0].onset_before, once[0].resolved_before)
    ]


def test_many_series_are_detected_together() -> None:
    rng = np.random.default_rng(7)
    rows = [_series(rng, 120, 10, [(40 + 10 * i, 0.95)]) for i in range(5)]
    k = np.vstack([r[0] for r in rows])
    n = np.vstack([r[1] for r in rows])
    eps = detect_blocks(k, n)
    assert [(e.series, e.onset_before) for e in eps] == [(i, 40 + 10 * i) for i in range(5)]


def test_ioda_ratio_rule_with_inpainting() -> None:
    values = np.full(300, 1000.0)
    values[150:180] = 30.0  # drop to 3 %
    values[200] = np.nan
    (ep,) = detector.ratio_drops(values, timedelta(minutes=5), detector.ioda_params("BGP"))
    assert (ep.onset_after, ep.onset_before) == (149, 150)
    assert (ep.resolved_after, ep.resolved_before) == (179, 180)
    assert ep.strength > 3
