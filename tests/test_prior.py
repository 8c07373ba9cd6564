"""The expression prior: fitted from real takes, shipped reproducibly, and what it does to the fit."""

from dataclasses import replace

import numpy as np
import pytest
from conftest import LIVELINK_TAKES, check_on_other_numeric_stack, shared_path

from facecap import Tracker, TrackerConfig, arkit, metrics
from facecap.fit import FitParams
from facecap.prior import ExpressionPrior, fit_prior, load_prior


def test_fit_prior_recovers_mean_and_covariance():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(52, 52)) * 0.02
    X = np.clip(0.3 + rng.normal(size=(20000, 52)) @ A, 0, 1)
    X[::50] = np.nan  # face-lost rows are skipped
    p = fit_prior([X[:7000], X[7000:]])
    ok = np.isfinite(X).all(1)
    assert np.allclose(p.mean, X[ok].mean(0))
    assert np.allclose(p.covariance, np.cov(X[ok].T) + 1e-3 * np.eye(52), atol=1e-12)
    assert p.meta["frames"] == ok.sum()
    assert np.allclose(p.precision @ p.covariance, np.eye(52), atol=1e-8)


def test_prior_input_errors(tmp_path):
    with pytest.raises(ValueError, match="at least 52 frames"):
        fit_prior(np.zeros((10, 52)))
    with pytest.raises(ValueError, match=r"\(52,\) mean"):
        ExpressionPrior(np.zeros(51), np.eye(52))
    with pytest.raises(ValueError, match="finite"):
        ExpressionPrior(np.zeros(52), np.full((52, 52), np.nan))
    bad = tmp_path / "x.npz"
    np.savez(bad, foo=np.zeros(3))
    with pytest.raises(ValueError, match="not a facecap expression prior"):
        load_prior(bad)
    (tmp_path / "y.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable prior"):
        load_prior(tmp_path / "y.npz")
    with pytest.raises(FileNotFoundError, match="build_prior"):
        load_prior(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="prior must be"):
        Tracker(config=TrackerConfig(prior="nonsense"))


def test_save_load_round_trip(tmp_path):
    p = fit_prior(np.random.default_rng(1).random((200, 52)), meta={"takes": ["a"]})
    q = load_prior(p.save(tmp_path / "p.npz"))
    assert np.array_equal(p.mean, q.mean) and np.array_equal(p.covariance, q.covariance) and p.meta == q.meta


def test_shipped_prior_matches_a_fresh_build_on_another_numeric_stack():
    shared_path("arkit_blendshape_takes")
    out = check_on_other_numeric_stack("build_prior")
    assert out.returncode == 0, out.stderr
    assert load_prior().meta["takes"] == sorted(LIVELINK_TAKES)


def test_prior_from_other_takes_lowers_the_error_on_a_held_out_take():
    """The ICT head tracked with its own rig, driven by one real take; the prior fitted on the other six."""
    from facecap.facekit import load_ict_facekit
    from facecap.livelink import read_csv
    from facecap.synth import SyntheticActor, head_motion

    rig = load_ict_facekit(shared_path("ict_facekit"))
    takes = [read_csv(shared_path("arkit_blendshape_takes", n)) for n in LIVELINK_TAKES]
    held_out = 1
    others = [np.asarray(t.weights)[np.asarray(t.tracked)] for i, t in enumerate(takes) if i != held_out]
    prior = fit_prior(others)
    take = takes[held_out]
    W = np.clip(np.nan_to_num(np.asarray(take.weights)[np.asarray(take.tracked)][200:290:3]), 0, 1)
    R, t = head_motion(len(W), seed=3, max_angle_deg=20, max_pitch_deg=10)
    frames = [f for f, _ in SyntheticActor(rig, camera="d415", seed=3).frames(W, R, t)]
    vis = [arkit.INDEX[n] for n in metrics.DEPTH_VISIBLE]
    mae = {}
    with_prior = TrackerConfig.for_camera("d415", prior=prior, fit=replace(FitParams(), lambda_s=0.25))
    for name, cfg in (("l1", TrackerConfig.for_camera("d415")), ("prior", with_prior)):
        tr = Tracker(rig=rig, intrinsics=frames[0].depth_intrinsics, config=cfg)
        est = np.array([tr.track(f).weights for f in frames])
        mae[name] = float(np.abs(est - W)[5:, vis].mean())
    assert mae["prior"] < 0.8 * mae["l1"], mae
