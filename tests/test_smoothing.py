"""The One Euro filter of the reported weights (facecap.smoothing) and the tracker's use of it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from facecap import Tracker, TrackerConfig
from facecap.formats import load_rig
from facecap.smoothing import OneEuro, WeightFilter
from facecap.synth import SyntheticActor, head_motion


def _reference(xs, ts, p: OneEuro, fps=30.0):
    """The published algorithm (Casiez et al. 2012), one scalar channel, written out plainly."""

    def alpha(cutoff, dt):
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff) / dt)

    out, x_hat, dx_hat, t_prev = [], None, 0.0, None
    for x, t in zip(xs, ts, strict=True):
        if x_hat is None:
            x_hat, t_prev = x, t
        else:
            dt = t - t_prev if 0 < t - t_prev <= 1 else 1 / fps
            t_prev = t
            dx_hat = dx_hat + alpha(p.d_cutoff_hz, dt) * ((x - x_hat) / dt - dx_hat)
            x_hat = x_hat + alpha(p.min_cutoff_hz + p.beta * abs(dx_hat), dt) * (x - x_hat)
        out.append(x_hat)
    return np.array(out)


def test_filter_matches_the_published_algorithm_per_channel():
    rng = np.random.default_rng(0)
    n = 90
    ts = np.arange(n) / 30.0
    ts[40] = ts[39]  # a repeated timestamp and one going back use 1/fps
    ts[60] = ts[59] - 0.01
    X = np.clip(np.cumsum(rng.normal(0, 0.05, (n, 5)), 0) + rng.normal(0, 0.02, (n, 5)), 0, 1)
    p = OneEuro(min_cutoff_hz=0.8, beta=3.0, d_cutoff_hz=2.0)
    f = WeightFilter(p)
    got = np.array([f(x, t) for x, t in zip(X, ts, strict=True)])
    for c in range(5):
        np.testing.assert_allclose(got[:, c], _reference(X[:, c], ts, p), rtol=1e-12, atol=1e-12)


def test_filter_smooths_a_still_signal_and_follows_a_step():
    ratios, lags = [], []
    for seed in range(20):  # over noise draws, not one
        rng = np.random.default_rng(seed)
        x = np.r_[np.full(60, 0.2), np.full(30, 0.8)][:, None] + rng.normal(0, 0.03, (90, 1))
        f = WeightFilter()
        y = np.array([f(v, i / 30.0) for i, v in enumerate(x)])[:, 0]
        ratios.append(np.abs(np.diff(y[10:60])).mean() / np.abs(np.diff(x[10:60, 0])).mean())
        lags.append(next(i for i in range(60, 90) if y[i] >= 0.2 + 0.9 * 0.6) - 60)
    assert np.median(ratios) < 0.3 and max(ratios) < 0.5
    assert np.median(lags) <= 3 and max(lags) <= 5


def test_filter_reset_and_bad_input():
    f = WeightFilter()
    f(np.zeros(3), 0.0)
    assert f(np.ones(3), 1 / 30)[0] < 1  # filtered
    f.reset()
    np.testing.assert_array_equal(f(np.ones(3), 2 / 30), np.ones(3))  # afresh: passes as it is
    np.testing.assert_array_equal(f(np.full(3, np.nan), 3 / 30), np.full(3, np.nan))  # NaN: no state kept
    np.testing.assert_array_equal(f(np.zeros(3), 4 / 30), np.zeros(3))
    for bad in ({"min_cutoff_hz": 0}, {"beta": -1}, {"d_cutoff_hz": float("nan")}):
        with pytest.raises(ValueError, match="OneEuro"):
            OneEuro(**bad)


def test_tracker_reports_smoothed_weights_and_fits_from_its_own():
    """The smoother changes what is reported, never the fit: the fit's weights are the same bits as an
    unsmoothed tracker's on the same frames; a lost face resets it."""
    rig = load_rig()
    n = 30
    R, t = head_motion(n, fps=30, seed=5, max_angle_deg=15, max_pitch_deg=8, distance_m=0.6)
    W = np.zeros((n, 52))
    W[:, 24] = np.linspace(0, 0.6, n)  # a shape opening through the clip
    frames = [f for f, _ in SyntheticActor(rig, camera="d415", seed=5).frames(W, R, t, fps=30)]
    plain = Tracker(rig, frames[0].depth_intrinsics, TrackerConfig.for_camera("d415"))
    smooth = Tracker(rig, frames[0].depth_intrinsics, TrackerConfig.for_camera("d415", smoothing=OneEuro()))
    reported, raw = [], []
    for f in frames:
        a, b = plain.track(f), smooth.track(f)
        assert a.tracked and b.tracked
        np.testing.assert_array_equal(smooth.w, plain.w)
        reported.append(b.weights)
        raw.append(a.weights)
    reported, raw = np.array(reported), np.array(raw)
    assert np.abs(reported - raw).max() > 1e-3
    assert np.abs(np.diff(reported, axis=0)).mean() < np.abs(np.diff(raw, axis=0)).mean()
    gone = replace(frames[-1], depth=np.zeros_like(frames[-1].depth), timestamp=frames[-1].timestamp + 0.1)
    assert not smooth.track(gone).tracked and smooth._smoother._x is None
