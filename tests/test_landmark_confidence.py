"""Per-landmark confidence from temporal consistency (facecap.landmark_confidence) and its use on
colour-only frames."""

import numpy as np
import pytest

from facecap import Frame, Tracker, TrackerConfig, arkit, load_rig, pose
from facecap.landmark_confidence import TemporalConfidence, acceleration_energy
from facecap.landmarks import RGB_LANDMARKS


def _tracks(n=60, L=40, seed=0, jitter=(0.3, 3.0), bad=(0, 1, 2)):
    """Points on a moving head (a common accelerating translation), each with its own jitter (px)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 300, (L, 2))
    sd = np.full(L, jitter[0])
    sd[list(bad)] = jitter[1]
    t = np.arange(n)[:, None]
    head = np.concatenate([0.05 * t**2, 3.0 * np.sin(t / 5.0)], 1)  # pixels
    return base[None] + head[:, None] + rng.normal(0, 1, (n, L, 2)) * sd[None, :, None]


def test_acceleration_energy_is_the_second_difference_less_the_heads():
    u = _tracks(n=3, jitter=(0.0, 0.0))
    np.testing.assert_allclose(acceleration_energy(*u), 0.0, atol=1e-18)  # the head's acceleration: none left
    u[2, 5] += [3.0, 4.0]
    u[1, 7] = np.nan
    e = acceleration_energy(*u)
    assert e[7] == 0.0 and e[5] == pytest.approx(25.0, rel=0.05) and np.sum(e > 1e-6) == 1


def test_jittery_points_weigh_less_and_the_steady_ones_fully():
    tc = TemporalConfidence()
    assert tc.confidences(np.ones(40, bool)) is None
    for uv in _tracks():
        tc.update(uv)
    c = tc.confidences(np.ones(40, bool))
    assert c.shape == (40,) and (c[:3] <= 0.25).all() and np.median(c[3:]) > 0.9
    assert c.min() >= tc.floor


def test_one_fast_move_barely_lowers_a_point():
    """A blink or a jaw drop is one fast move, not jitter: the running energy takes it clipped."""
    u = _tracks(jitter=(0.3, 0.3), bad=())
    u[40:, 9] += [0.0, 12.0]  # a 12 px jump that stays
    tc = TemporalConfidence()
    for uv in u:
        tc.update(uv)
    assert tc.confidences(np.ones(40, bool))[9] > 0.6


def test_repeats_gaps_and_shapes():
    u = _tracks(n=5)
    tc = TemporalConfidence()
    for uv in u[:3]:
        tc.update(uv)
        tc.update(uv)  # a stale detection reused: ignored
    first = tc.confidences(np.ones(40, bool)).copy()
    tc.gap()  # a frame without a face: two new detections give no acceleration yet
    tc.update(u[3])
    tc.update(u[4])
    np.testing.assert_array_equal(tc.confidences(np.ones(40, bool)), first)
    tc.update(np.zeros((30, 2)))  # another number of points: starts over
    assert tc.confidences(np.ones(30, bool)) is None
    with pytest.raises(ValueError):
        TemporalConfidence(rate=0.0)
    still = TemporalConfidence(rate=1.0)  # points that never move: all equal, never NaN
    for k in range(5):
        still.update(np.full((30, 2), 100.0) + (k % 2) * 1e-9)
    np.testing.assert_array_equal(still.confidences(np.zeros(30, bool)), np.ones(30))


def test_colour_only_fit_leans_on_the_steady_landmarks():
    """Colour-only frames of a held expression whose landmarks are the projected truth with 0.5 px
    noise, except 12 lip and lid points that jitter by 4 px: with the temporal confidence the weights
    jitter far less (measured 0.0032 against 0.0077 a frame, medians of 3 seeds) and are as near the
    truth (MAE 0.059 either way: a held expression's error here is the prior's shrinkage)."""
    from facecap.synth import SyntheticActor, simulated_landmarks

    rig = load_rig()
    w = np.zeros(52)
    for k, v in {"jawOpen": 0.3, "mouthSmileLeft": 0.4, "browInnerUp": 0.3}.items():
        w[arkit.INDEX[k]] = v
    R, t = pose.from_euler(0.1, -0.05, 0.0), np.array([0.0, 0.0, 0.6])
    scored = [k for k, n in enumerate(arkit.ARKIT_NAMES) if not n.startswith("eyeLook") and n != "tongueOut"]
    res = {True: [], False: []}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        actor = SyntheticActor(rig, camera="d415", distance=0.6, seed=seed)
        f = actor.render(w, R, t)
        truth = np.full((478, 2), np.nan)
        truth[rig.landmark_ids] = simulated_landmarks(actor.ground_truth(w, R, t), pixel_sigma=0.0)
        bad = rng.choice(np.array(RGB_LANDMARKS), 12, replace=False)
        sd = np.full(478, 0.5)
        sd[bad] = 4.0
        for on in (True, False):
            tr = Tracker(rig=rig, config=TrackerConfig.for_camera("d415", landmark_consistency=on))
            W = []
            for i in range(60):
                frame = Frame(
                    depth=None, depth_intrinsics=f.depth_intrinsics, color=f.color, timestamp=i / 30
                )
                uv = truth + np.random.default_rng(1000 * seed + i).normal(0, 1, (478, 2)) * sd[:, None]
                W.append(tr.track(frame, landmarks=uv).weights)
            W = np.array(W)[30:]
            res[on].append((np.abs(W - w)[:, scored].mean(), np.abs(np.diff(W, axis=0))[:, scored].mean()))
    on, off = np.median(res[True], axis=0), np.median(res[False], axis=0)
    assert on[1] < 0.6 * off[1] and on[0] < off[0] + 0.003, (on, off)
