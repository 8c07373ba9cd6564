"""MediaPipe Face Landmarker wrapper (facecap.landmarks) with the real model on real face video."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from facecap import arkit, landmarks
from facecap.landmarks import ENV_VAR, FaceLandmarker, find_model

cv2 = pytest.importorskip("cv2")  # comes with mediapipe (opencv-contrib-python)

N_FRAMES = 30


@pytest.fixture(scope="module")
def model():
    return shared_path("mediapipe_face_landmarker", "face_landmarker.task")


@pytest.fixture(scope="module")
def video_frames():
    """The first 30 frames (RGB uint8) of a real front-facing face video, 480x480."""
    path = shared_path("face_videos", "liveportrait_driving_d18.mp4")
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < N_FRAMES:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    assert len(frames) == N_FRAMES, f"could only decode {len(frames)} frames of {path}"
    return frames


@pytest.fixture(scope="module")
def detections(model, video_frames):
    with FaceLandmarker(model) as lm:
        return [lm.detect(f, i / 30.0) for i, f in enumerate(video_frames)]


@pytest.fixture
def no_cache(monkeypatch, tmp_path):
    """No env var, and a user cache that is certainly empty."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(landmarks, "CACHE_PATH", tmp_path / "cache" / "face_landmarker.task")


def test_real_video_detected_in_nearly_all_frames(detections, video_frames):
    found = [d for d in detections if d is not None]
    assert len(found) >= N_FRAMES - 1
    h, w = video_frames[0].shape[:2]
    for d in found:
        assert d.landmarks.shape == (478, 2) and d.landmarks.dtype == np.float32
        assert d.depth.shape == (478,)
        assert np.isfinite(d.landmarks).all()
        assert (d.landmarks[:, 0] > -0.5).all() and (d.landmarks[:, 0] < w - 0.5).all()
        assert (d.landmarks[:, 1] > -0.5).all() and (d.landmarks[:, 1] < h - 0.5).all()
        assert d.matrix is not None and d.matrix.shape == (4, 4)


def test_blendshapes_canonical_and_bounded(detections):
    for d in (d for d in detections if d is not None):
        bs = d.blendshapes
        assert bs.shape == (52,) and bs.dtype == np.float32
        assert ((bs >= 0) & (bs <= 1)).all()
        assert bs[arkit.INDEX["tongueOut"]] == 0.0  # MediaPipe has no tongueOut
        # left/right pairs of a frontal face agree roughly (a swapped order would pair unrelated shapes)
        for name in ("eyeBlinkLeft", "eyeSquintLeft", "mouthSmileLeft", "browDownLeft"):
            right = name.replace("Left", "Right")
            assert abs(bs[arkit.INDEX[name]] - bs[arkit.INDEX[right]]) < 0.35, name


def test_blendshape_order_matches_mediapipe_names(model, video_frames):
    """The wrapper's canonical vector equals MediaPipe's own named scores, shape by shape."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(model)),
                                        running_mode=vision.RunningMode.IMAGE, num_faces=1,
                                        output_face_blendshapes=True)  # fmt: skip
    raw = vision.FaceLandmarker.create_from_options(opts)
    try:
        img = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(video_frames[0]))
        res = raw.detect(img)
    finally:
        raw.close()
    named = {c.category_name: c.score for c in res.face_blendshapes[0] if c.category_name != "_neutral"}
    assert len(named) == 51
    with FaceLandmarker(model) as lm:  # VIDEO mode, first frame: a fresh detection like IMAGE mode
        d = lm.detect(video_frames[0], 0.0)
    assert d is not None
    for name, score in named.items():
        assert d.blendshapes[arkit.INDEX[arkit.canonical_name(name)]] == pytest.approx(score, abs=0.02), name


def test_eye_landmarks_plausible(detections):
    """33 (subject's right eye, outer corner) and 263 (left eye) lie on either side of the nose tip (1),
    above it, at a plausible inter-ocular distance."""
    for d in (d for d in detections if d is not None):
        p = d.landmarks
        nose, r_eye, l_eye = p[1], p[33], p[263]
        assert r_eye[0] < nose[0] < l_eye[0]  # unmirrored video: the subject's right is image-left
        assert r_eye[1] < nose[1] and l_eye[1] < nose[1]  # eyes above the nose tip (y down)
        width = np.ptp(p[:, 0])
        assert 0.4 < (l_eye[0] - r_eye[0]) / width < 0.9
        # iris centres (468 right, 473 left) sit between the corners of their eye
        assert p[33, 0] < p[468, 0] < p[133, 0]
        assert p[362, 0] < p[473, 0] < p[263, 0]


def test_timestamps_need_not_increase(model, video_frames):
    """VIDEO mode wants strictly increasing timestamps; the wrapper keeps them so (repeated/backward ok)."""
    with FaceLandmarker(model) as lm:
        a = lm.detect(video_frames[0], 1.0)
        b = lm.detect(video_frames[1], 1.0)
        c = lm.detect(video_frames[2], 0.5)
    assert a is not None and b is not None and c is not None


def test_v2_bundle_with_leading_zero_bytes_loads(model, video_frames):
    """The second bundle in shared data starts with two zero bytes before the zip's 'PK' - and so does
    Google's face_landmarker.task: the zip offsets count them, so MediaPipe loads both, with equal results.
    (Stripping the two bytes is what breaks a bundle: see test_bad_model_files.)"""
    v2 = shared_path("mediapipe_face_landmarker", "face_landmarker_v2_with_blendshapes.task")
    assert v2.read_bytes()[:4] == b"\0\0PK" and model.read_bytes()[:4] == b"\0\0PK"
    with FaceLandmarker(v2) as lm2, FaceLandmarker(model) as lm:
        d2 = lm2.detect(video_frames[5], 0.0)
        d1 = lm.detect(video_frames[5], 0.0)
    assert d1 is not None and d2 is not None
    np.testing.assert_allclose(d2.landmarks, d1.landmarks, atol=1.0)
    np.testing.assert_allclose(d2.blendshapes, d1.blendshapes, atol=0.05)


def test_bad_model_files(tmp_path, model):
    text = tmp_path / "notes.task"
    text.write_text("not a model\n")
    stripped = tmp_path / "stripped.task"
    stripped.write_bytes(model.read_bytes()[2:])
    truncated = tmp_path / "truncated.task"
    truncated.write_bytes(model.read_bytes()[:100_000])
    empty = tmp_path / "empty.task"
    empty.write_bytes(b"")
    for bad in (text, stripped, truncated, empty):
        with pytest.raises(ValueError, match="not a usable Face Landmarker model"):
            FaceLandmarker(bad)


def test_missing_model_names_the_env_var(no_cache, tmp_path):
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        find_model()
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        FaceLandmarker()
    with pytest.raises(FileNotFoundError, match="nope.task"):
        FaceLandmarker(tmp_path / "nope.task")
    with pytest.raises(FileNotFoundError, match="a directory"):
        find_model(tmp_path)


def test_env_var_and_cache_lookup(no_cache, monkeypatch, tmp_path, model, video_frames):
    monkeypatch.setenv(ENV_VAR, str(model))
    assert find_model() == model
    with FaceLandmarker() as lm:
        assert lm.detect(video_frames[0], 0.0) is not None
    # an explicit path wins over the env var
    other = tmp_path / "other.task"
    other.write_bytes(b"x")
    assert find_model(other) == other
    # env var pointing nowhere: an error that names it (no silent fallback to the cache)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.task"))
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        find_model()
    # no env var: the user cache
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setattr(landmarks, "CACHE_PATH", model)
    assert find_model() == model


def test_bad_images_rejected(model):
    with FaceLandmarker(model) as lm:
        with pytest.raises(ValueError, match="uint8 RGB"):
            lm.detect(np.zeros((48, 64), np.uint8), 0.0)
        with pytest.raises(ValueError, match="uint8 RGB"):
            lm.detect(np.zeros((48, 64, 3), np.float32), 0.0)
        assert lm.detect(np.zeros((48, 64, 3), np.uint8), 0.0) is None  # no face: None, no error


def test_synthetic_actor_looks_like_a_face(model):
    """MediaPipe finds the generic rig's colour render (frontal, no noise) and puts its landmarks where the
    rig's own MediaPipe-indexed landmarks project."""
    from facecap.formats import load_rig
    from facecap.synth import SyntheticActor

    rig = load_rig()
    actor = SyntheticActor(rig, "d415", distance=0.6, noise=False)
    w = np.zeros(52, np.float32)
    frame = actor.render(w, index=0)
    truth = actor.ground_truth(w, *actor.frontal_pose)
    with FaceLandmarker(model) as lm:
        d = lm.detect(frame.color, 0.0)
    assert d is not None, "MediaPipe does not see a face in the synthetic actor's render"
    err = np.linalg.norm(d.landmarks[rig.landmark_ids] - truth.landmarks_2d, axis=1)
    assert np.median(err) < 5.0  # measured 1.9 px (640x480, face ~130 px wide)
    p = d.landmarks
    assert p[33, 0] < p[1, 0] < p[263, 0]


def test_landmarks_only_mode_skips_the_blendshape_model(model, video_frames):
    """``blendshapes=False`` (what ``--landmarks`` runs): the same landmarks, blendshape scores left at 0."""
    with FaceLandmarker(model) as full, FaceLandmarker(model, blendshapes=False) as lean:
        for i, f in enumerate(video_frames[:5]):
            a, b = full.detect(f, i / 30), lean.detect(f, i / 30)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.05)
            assert a.blendshapes.max() > 0.0 and not b.blendshapes.any()
