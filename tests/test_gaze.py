"""Eye gaze from the iris landmarks: the solver, its signs, blinks, and the real MediaPipe model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from facecap import arkit
from facecap.formats import load_rig
from facecap.gaze import BLINK_APERTURE, OPEN_APERTURE, GazeSolver, eye_aperture, refine_iris
from facecap.synth import SyntheticActor
from facecap.tracker import Tracker, TrackerConfig, gaze_from_weights

I = arkit.INDEX


@pytest.fixture(scope="module")
def rig():
    return load_rig()


def _weights(**kw):
    w = np.zeros(52, np.float32)
    for k, v in kw.items():
        w[I[k]] = v
    return w


def _true_uv(rig, actor, w):
    truth = actor.ground_truth(w, *actor.frontal_pose)
    uv = np.full((478, 2), np.nan)
    uv[rig.landmark_ids] = truth.landmarks_2d
    return uv, truth


@pytest.mark.parametrize(
    "look",
    [
        {"eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5, "eyeLookDownLeft": 0.3, "eyeLookDownRight": 0.3},
        {"eyeLookInLeft": 0.6, "eyeLookOutRight": 0.6, "eyeLookUpLeft": 0.4, "eyeLookUpRight": 0.4},
        {"eyeLookOutLeft": 0.2, "eyeLookOutRight": 0.7},
    ],
)
def test_solver_recovers_the_eye_turn_from_exact_landmarks(rig, look):
    """The rig's own iris points, projected: the eyeLook weights come back; the rest is left alone."""
    actor = SyntheticActor(rig, "d415", distance=0.6, noise=False)
    w = _weights(jawOpen=0.3, mouthSmileLeft=0.4, **look)
    uv, truth = _true_uv(rig, actor, w)
    intr = actor.camera.intrinsics
    got, solved, open_ = GazeSolver(rig).solve(
        uv, truth.rotation, truth.translation, w.astype(np.float64), (intr.fx, intr.fy, intr.cx, intr.cy)
    )
    assert open_ == {"Left": True, "Right": True}
    eyelook = [I[n] for n in arkit.ARKIT_NAMES if n.startswith("eyeLook")]
    np.testing.assert_allclose(got[eyelook], w[eyelook], atol=0.02)
    rest = np.setdiff1d(np.arange(52), eyelook)
    np.testing.assert_array_equal(got[rest], w[rest])


def test_gaze_signs_follow_the_conventions(rig):
    """Both eyes turned toward the subject's left and down: yaw > 0 and pitch > 0 for each eye (the
    facecap.pose convention that the sinks document); the mirror image flips yaw only. The rig's own
    landmarks are exact, so they are not refined on the render (whose vertex-coloured iris is off by
    up to 0.7 px)."""
    actor = SyntheticActor(rig, "d415", distance=0.6, noise=False)
    for sign, look in ((1, {"eyeLookOutLeft": 0.6, "eyeLookInRight": 0.6}),
                       (-1, {"eyeLookInLeft": 0.6, "eyeLookOutRight": 0.6})):  # fmt: skip
        w = _weights(eyeLookDownLeft=0.3, eyeLookDownRight=0.3, **look)
        frame = actor.render(w, index=0)
        uv, _ = _true_uv(rig, actor, w)
        tr = Tracker(rig=rig, config=TrackerConfig.for_camera("d415", refine_iris=False))
        state = tr.track(frame, landmarks=uv)
        assert state.tracked
        yaw, pitch = np.degrees(state.gaze[:, 0]), np.degrees(state.gaze[:, 1])
        assert (sign * yaw > 15).all() and (sign * yaw < 21).all(), yaw  # 0.6 of a 30 deg turn
        assert (pitch > 6).all() and (pitch < 12).all(), pitch


def test_a_closed_eye_keeps_its_last_gaze(rig):
    actor = SyntheticActor(rig, "d415", distance=0.6, noise=False)
    solver = GazeSolver(rig)
    intr = actor.camera.intrinsics
    k = (intr.fx, intr.fy, intr.cx, intr.cy)
    w_open = _weights(eyeLookOutLeft=0.5, eyeLookInRight=0.5)
    uv, truth = _true_uv(rig, actor, w_open)
    assert eye_aperture(uv, "Left") > 2 * BLINK_APERTURE
    _, prev, _ = solver.solve(uv, truth.rotation, truth.translation, w_open.astype(np.float64), k)
    # the left eye closes; its iris points (as a detector would report them) jump
    w_shut = _weights(eyeBlinkLeft=1.0)
    uv2, truth2 = _true_uv(rig, actor, w_shut)
    assert eye_aperture(uv2, "Left") < BLINK_APERTURE < eye_aperture(uv2, "Right")
    uv2[473:478] += 6.0
    got, solved, open_ = solver.solve(uv2, truth2.rotation, truth2.translation, w_shut.astype(np.float64), k,
                                      previous=prev)  # fmt: skip
    assert open_ == {"Left": False, "Right": True}
    assert solved["Left"] == prev["Left"]
    assert got[I["eyeLookOutLeft"]] == pytest.approx(0.5, abs=0.02)
    assert got[I["eyeLookInRight"]] == pytest.approx(0.0, abs=0.02)  # the open eye follows its iris


def test_a_half_closed_eye_is_trusted_in_proportion(rig):
    actor = SyntheticActor(rig, "d415", distance=0.6, noise=False)
    solver = GazeSolver(rig)
    intr = actor.camera.intrinsics
    k = (intr.fx, intr.fy, intr.cx, intr.cy)
    # a lid halfway between closed and open (by MediaPipe's lid points)
    for blink in np.linspace(0.3, 0.9, 13):
        w = _weights(eyeBlinkLeft=blink)
        uv, truth = _true_uv(rig, actor, w)
        ap = eye_aperture(uv, "Left")
        if 0.3 < (ap - BLINK_APERTURE) / (OPEN_APERTURE - BLINK_APERTURE) < 0.7:
            break
    else:
        pytest.fail("no eyeBlink value gives a half-closed lid")
    c = (ap - BLINK_APERTURE) / (OPEN_APERTURE - BLINK_APERTURE)
    uv[473:478, 0] += 5.0  # the iris points wander sideways under the closing lid
    R, t, w = truth.rotation, truth.translation, w.astype(np.float64)
    _, free, _ = solver.solve(uv, R, t, w, k)
    _, held, open_ = solver.solve(uv, R, t, w, k, previous={"Left": (-0.4, 0.1)})
    assert open_["Left"]
    assert abs(free["Left"][0] + 0.4) > 0.2  # the wandering iris alone would move the gaze
    expect = c * np.array(free["Left"]) + (1 - c) * np.array([-0.4, 0.1])
    np.testing.assert_allclose(held["Left"], expect, atol=0.02)


def test_missing_iris_landmarks(rig):
    actor = SyntheticActor(rig, "d415", distance=0.6, noise=False)
    w = _weights(eyeLookOutLeft=0.5)
    uv, truth = _true_uv(rig, actor, w)
    uv[468:478] = np.nan  # a 468-point detection: no iris
    intr = actor.camera.intrinsics
    got, solved, open_ = GazeSolver(rig).solve(uv, truth.rotation, truth.translation, w.astype(np.float64),
                                               (intr.fx, intr.fy, intr.cx, intr.cy))  # fmt: skip
    assert open_ == {"Left": False, "Right": False} and solved == {}
    np.testing.assert_array_equal(got, w)  # nothing known: the depth fit's weights stand


def test_rig_without_iris_landmarks_is_refused_and_the_tracker_does_without(rig):
    import dataclasses

    keep = rig.landmark_ids < 468
    bare = dataclasses.replace(rig, landmark_ids=rig.landmark_ids[keep],
                               landmark_tris=rig.landmark_tris[keep],
                               landmark_bary=rig.landmark_bary[keep])  # fmt: skip
    with pytest.raises(ValueError, match="iris"):
        GazeSolver(bare)
    assert Tracker(rig=bare)._gaze is None


def test_real_mediapipe_reads_the_direction_of_the_eyes(rig):
    """MediaPipe on the synthetic actor's colour render (iris colours): the gaze read from its iris
    landmarks points the way the eyes turned, for each eye."""
    from facecap.landmark_stream import detect_landmarks
    from facecap.landmarks import FaceLandmarker

    model = shared_path("mediapipe_face_landmarker", "face_landmarker.task")
    actor = SyntheticActor(rig, "d415", distance=0.6, seed=1)
    with FaceLandmarker(model, blendshapes=False) as lm:
        for sign, look in ((1, {"eyeLookOutLeft": 0.8, "eyeLookInRight": 0.8}),
                           (-1, {"eyeLookInLeft": 0.8, "eyeLookOutRight": 0.8})):  # fmt: skip
            frame = actor.render(_weights(**look), index=0)
            uv, why = detect_landmarks(lm, frame)
            assert uv is not None and why is None
            state = Tracker(rig=rig, config=TrackerConfig.for_camera("d415")).track(frame, landmarks=uv)
            yaw = np.degrees(state.gaze[:, 0])
            assert (sign * yaw > 8).all(), yaw  # truth 24 deg


def test_landmark_weights_default_to_the_lid_contours(rig):
    """By default only the lid contours enter the fit, at weight 1 for a generic rig and
    ``ACTOR_LID_WEIGHT`` for a calibrated actor; weights are checked at the boundary."""
    import dataclasses

    from facecap.landmarks import EYE_CONTOURS
    from facecap.tracker import ACTOR_LID_WEIGHT

    tr = Tracker(rig=rig)
    assert set(np.flatnonzero(tr._lmk_weight)) == set(EYE_CONTOURS) and len(EYE_CONTOURS) == 32
    uv = np.zeros((478, 2))
    _, conf, *_ = tr._prepare_landmarks(uv, None)
    ids = tr._lmk[0]
    assert (conf[np.isin(ids, EYE_CONTOURS)] == 1).all() and (conf[~np.isin(ids, EYE_CONTOURS)] == 0).all()
    assert Tracker(rig=rig, config=TrackerConfig(landmark_weights=np.ones(478)))._lmk_weight.all()
    actor = dataclasses.replace(rig, meta={**rig.meta, "calibration": {"date": "2026-12-07"}})
    np.testing.assert_array_equal(Tracker(rig=actor)._lmk_weight, ACTOR_LID_WEIGHT * tr._lmk_weight)
    assert 0 < ACTOR_LID_WEIGHT < 1
    ones = TrackerConfig(landmark_weights=np.ones(478))
    assert Tracker(rig=actor, config=ones)._lmk_weight.all()  # given weights are the caller's, actor or not
    with pytest.raises(ValueError, match="landmark_weights"):
        Tracker(rig=rig, config=TrackerConfig(landmark_weights=np.ones(10)))
    with pytest.raises(ValueError, match="landmark_weights"):
        Tracker(rig=rig, config=TrackerConfig(landmark_weights=np.full(478, 2.0)))


def _drawn_eye(centre, r=6.0, size=80, noise=3.0, seed=0):
    """(size, size) float32 grey image of one open eye (skin 150, white 220, an iris of radius ``r``
    with a pupil at ``centre``, the lids clipping the iris top and bottom), 4x supersampled, with
    Gaussian noise; the eye opening is an almond 30 x 14 px around the image centre."""
    s = 4
    y, x = (np.mgrid[0 : size * s, 0 : size * s] + 0.5) / s - 0.5
    m = size / 2
    img = np.full(x.shape, 150.0)
    opening = ((x - m) / 15.0) ** 2 + ((y - m) / 7.0) ** 2 <= 1.0
    img[opening] = 220.0
    d = np.hypot(x - centre[0], y - centre[1])
    img[opening & (d <= r)] = 70.0
    img[opening & (d <= 0.4 * r)] = 20.0
    img = img.reshape(size, s, size, s).mean(axis=(1, 3))
    return (img + np.random.default_rng(seed).normal(0, noise, img.shape)).astype(np.float32)


def _mediapipe_like(centre, r):
    """(478, 2) landmarks: the subject's right iris (468-472) at ``centre`` with rim points ``r`` away,
    every other point NaN (the left eye is then left alone)."""
    uv = np.full((478, 2), np.nan)
    uv[468] = centre
    uv[469:473] = np.asarray(centre) + r * np.array([[1, 0], [0, -1], [-1, 0], [0, 1]])
    return uv


def _ring_reference(img, centres, ring):
    """NumPy reference of the ring_samples kernel: bilinear samples (K, M)."""
    p = centres[:, None] + ring[None]
    x, y = p[..., 0], p[..., 1]
    xi, yi = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - xi, y - yi
    v = (img[yi, xi] * (1 - fx) * (1 - fy) + img[yi, xi + 1] * fx * (1 - fy)
         + img[yi + 1, xi] * (1 - fx) * fy + img[yi + 1, xi + 1] * fx * fy)  # fmt: skip
    return v


def test_ring_samples_kernel_matches_its_reference():
    from facecap._kernels import ring_samples

    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (40, 50)).astype(np.float32)
    centres = rng.uniform(12, 28, (30, 2))
    ring = rng.uniform(-8, 8, (44, 2))
    np.testing.assert_allclose(
        ring_samples(img, centres, ring), _ring_reference(img, centres, ring), atol=1e-3
    )


def test_refine_iris_finds_the_iris_edge():
    """A drawn eye (lids over the iris top and bottom, noise) seen by a detector whose iris centre is
    off by up to a third of the radius and whose radius is off by -5..+8 %: the refined centre is
    within a fraction of a pixel of the true one, over 40 random eyes."""
    rng = np.random.default_rng(7)
    before, after = [], []
    for seed in range(40):
        true = np.array([40.0, 40.0]) + rng.uniform(-5, 5, 2) * (1.0, 0.4)
        img = _drawn_eye(true, r=6.0, seed=seed)
        guess = true + rng.uniform(-2.0, 2.0, 2)
        uv = _mediapipe_like(guess, 6.0 * rng.uniform(0.95, 1.08))
        out = refine_iris(img, uv)
        assert out.dtype == np.float32 and out.shape == (478, 2)
        np.testing.assert_allclose(out[469:473] - out[468], uv[469:473] - uv[468], atol=1e-4)  # moved as one
        assert np.isnan(out[473:478]).all() and np.isnan(out[:468]).all()  # the rest untouched
        before.append(np.linalg.norm(guess - true))
        after.append(np.linalg.norm(out[468] - true))
    assert np.median(before) > 1.0
    assert np.median(after) < 0.25 and np.max(after) < 0.6, (np.median(after), np.max(after))


def test_refine_iris_keeps_mediapipe_where_the_image_shows_no_iris():
    """No dark disc with white around it (a flat patch, noise, a closed eye) or an eye at the image's
    edge: MediaPipe's points are kept. Bad input is refused."""
    uv = _mediapipe_like((40.0, 40.0), 6.0)
    flat = np.full((80, 80), 120, np.float32)

    def noise(seed):
        return np.random.default_rng(seed).normal(120, 10, (80, 80)).astype(np.float32)

    closed = np.full((80, 80), 150, np.float32)  # skin, with the dark line of the lashes across
    closed[39:41, 25:56] = 60.0
    for img in (flat, closed):
        np.testing.assert_array_equal(refine_iris(img, uv)[468:473], uv[468:473].astype(np.float32))
    moved = [np.linalg.norm(refine_iris(noise(s), uv)[468] - uv[468]) for s in range(20)]
    assert np.median(moved) < 0.1 and np.mean(moved) < 0.5, moved  # the odd partial shift
    edge = _mediapipe_like((5.0, 40.0), 6.0)
    np.testing.assert_array_equal(
        refine_iris(_drawn_eye((5.0, 40.0)), edge)[468], edge[468].astype(np.float32)
    )
    rgb = np.repeat(_drawn_eye((41.0, 40.5))[..., None], 3, axis=2).clip(0, 255).astype(np.uint8)
    assert np.linalg.norm(refine_iris(rgb, uv)[468] - (41.0, 40.5)) < 0.3  # RGB as well as grey
    with pytest.raises(ValueError, match="478"):
        refine_iris(flat, uv[:468])
    with pytest.raises(ValueError, match="RGB"):
        refine_iris(np.zeros((80, 80, 4), np.uint8), uv)


def test_real_mediapipe_iris_refined_toward_the_true_iris(rig):
    """The real model on the synthetic actor's renders (iris colours, eyes turned up, down, in and out):
    the refined iris centres are nearer the true ones than MediaPipe's own, and so is the gaze the
    tracker reads from them (``TrackerConfig.refine_iris``, on by default)."""
    from facecap.landmark_stream import detect_landmarks
    from facecap.landmarks import FaceLandmarker

    model = shared_path("mediapipe_face_landmarker", "face_landmarker.task")
    actor = SyntheticActor(rig, "d415", distance=0.6, seed=2)
    rng = np.random.default_rng(2)
    px = {False: [], True: []}
    deg = {False: [], True: []}
    with FaceLandmarker(model, blendshapes=False) as lm:
        for i in range(16):
            up, out = ("Up", "Out") if i % 2 else ("Down", "In")
            w = _weights(**{f"eyeLook{up}Left": rng.uniform(0, 0.6), f"eyeLook{up}Right": rng.uniform(0, 0.6),
                            f"eyeLook{out}Left": rng.uniform(0, 0.6)})  # fmt: skip
            uv_true, _ = _true_uv(rig, actor, w)
            frame = actor.render(w, index=i)
            uv, _ = detect_landmarks(lm, frame)
            truth = gaze_from_weights(w)
            for refine in (False, True):
                got = refine_iris(frame.color, uv) if refine else uv
                px[refine] += list(np.linalg.norm(got[[468, 473]] - uv_true[[468, 473]], axis=1))
                cfg = TrackerConfig.for_camera("d415", refine_iris=refine)
                state = Tracker(rig=rig, config=cfg).track(frame, landmarks=uv)
                deg[refine] += list(np.degrees(np.abs(state.gaze - truth)).ravel())
    assert np.median(px[True]) < 0.7 * np.median(px[False]), (np.median(px[True]), np.median(px[False]))
    assert np.median(deg[True]) < np.median(deg[False]), (np.median(deg[True]), np.median(deg[False]))


def test_iris_refined_in_a_colour_image_of_another_resolution(rig):
    """Colour at twice the depth image's resolution (same optical centre): the tracker carries the iris
    points to the colour image, refines them there and back, and reads the same gaze as from colour at
    the depth's own resolution."""
    import dataclasses

    from facecap.landmark_stream import detect_landmarks
    from facecap.landmarks import FaceLandmarker

    model = shared_path("mediapipe_face_landmarker", "face_landmarker.task")
    actor = SyntheticActor(rig, "d415", distance=0.6, seed=3)
    w = _weights(eyeLookUpLeft=0.4, eyeLookUpRight=0.4, eyeLookOutLeft=0.5, eyeLookInRight=0.5)
    frame = actor.render(w, index=0)
    with FaceLandmarker(model, blendshapes=False) as lm:
        uv, _ = detect_landmarks(lm, frame)
    ci = frame.color_intrinsics
    big = dataclasses.replace(frame, color=np.repeat(np.repeat(frame.color, 2, axis=0), 2, axis=1),
                              color_intrinsics=ci.scaled(2 * ci.width, 2 * ci.height))  # fmt: skip
    cfg = TrackerConfig.for_camera("d415")
    same = Tracker(rig=rig, config=cfg).track(frame, landmarks=uv).gaze
    twice = Tracker(rig=rig, config=cfg).track(big, landmarks=uv).gaze
    raw = Tracker(rig=rig, config=TrackerConfig.for_camera("d415", refine_iris=False)).track(
        frame, landmarks=uv
    )
    assert np.degrees(np.abs(same - raw.gaze)).max() > 3.0  # the refinement moved the gaze
    np.testing.assert_allclose(np.degrees(twice), np.degrees(same), atol=1.0)  # alike in both images


def test_the_iris_refinement_is_smoothed_over_time_not_the_points(rig):
    """The shift the image adds to MediaPipe's iris points is smoothed exponentially over time
    (``IRIS_SHIFT_TAU_S``); a frame long after, or a timestamp that goes back, takes its own shift."""
    from facecap.frames import Frame, Intrinsics
    from facecap.tracker import IRIS_SHIFT_TAU_S

    k = Intrinsics(80, 80, 60.0, 60.0, 39.5, 39.5)
    uv = _mediapipe_like((40.0, 40.0), 6.0)
    tr = Tracker(rig=rig, intrinsics=k)

    def shift(x, t):
        grey = _drawn_eye((x, 40.0)).clip(0, 255).astype(np.uint8)
        frame = Frame(
            depth=None, depth_intrinsics=k, color=np.repeat(grey[..., None], 3, axis=2), timestamp=t
        )
        return float(tr._refined_iris(frame, uv)[468, 0] - 40.0)

    first = shift(41.0, 0.0)
    assert abs(first - 1.0) < 0.3  # nothing to smooth with: the image's own shift
    a = 1.0 - np.exp(-(1 / 30) / IRIS_SHIFT_TAU_S)
    assert shift(42.0, 1 / 30) == pytest.approx(first + a * (2.0 - first), abs=0.1)  # 1 frame later
    assert shift(42.0, 5.0) == pytest.approx(2.0, abs=0.3)  # long after: its own
    assert shift(41.0, 1.0) == pytest.approx(1.0, abs=0.3)  # back in time (a replay): its own
