"""Eye gaze from the iris landmarks: the solver, its signs, blinks, and the real MediaPipe model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from facecap import arkit
from facecap.formats import load_rig
from facecap.gaze import BLINK_APERTURE, OPEN_APERTURE, GazeSolver, eye_aperture
from facecap.synth import SyntheticActor
from facecap.tracker import Tracker, TrackerConfig

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
    facecap.pose convention that the sinks document); the mirror image flips yaw only."""
    actor = SyntheticActor(rig, "d415", distance=0.6, noise=False)
    for sign, look in ((1, {"eyeLookOutLeft": 0.6, "eyeLookInRight": 0.6}),
                       (-1, {"eyeLookInLeft": 0.6, "eyeLookOutRight": 0.6})):  # fmt: skip
        w = _weights(eyeLookDownLeft=0.3, eyeLookDownRight=0.3, **look)
        frame = actor.render(w, index=0)
        uv, _ = _true_uv(rig, actor, w)
        tr = Tracker(rig=rig, config=TrackerConfig.for_camera("d415"))
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
    """By default only the lid contours enter the fit; weights are checked at the boundary."""
    from facecap.landmarks import EYE_CONTOURS

    tr = Tracker(rig=rig)
    assert set(np.flatnonzero(tr._lmk_weight)) == set(EYE_CONTOURS) and len(EYE_CONTOURS) == 32
    uv = np.zeros((478, 2))
    _, conf, *_ = tr._prepare_landmarks(uv, None)
    ids = tr._lmk[0]
    assert (conf[np.isin(ids, EYE_CONTOURS)] == 1).all() and (conf[~np.isin(ids, EYE_CONTOURS)] == 0).all()
    assert Tracker(rig=rig, config=TrackerConfig(landmark_weights=np.ones(478)))._lmk_weight.all()
    with pytest.raises(ValueError, match="landmark_weights"):
        Tracker(rig=rig, config=TrackerConfig(landmark_weights=np.ones(10)))
    with pytest.raises(ValueError, match="landmark_weights"):
        Tracker(rig=rig, config=TrackerConfig(landmark_weights=np.full(478, 2.0)))
