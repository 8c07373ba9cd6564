"""Landmark detection on a worker thread: order, no blocking of capture, failures, the real model."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from conftest import shared_path

from facecap.frames import Frame, Intrinsics
from facecap.landmark_stream import LandmarkStream, detect_landmarks

K = Intrinsics(64, 48, 50.0, 50.0, 31.5, 23.5)


def _frames(n, dt=1 / 30):
    rgb = np.zeros((48, 64, 3), np.uint8)
    return [Frame(depth=np.zeros((48, 64), np.float32), depth_intrinsics=K, color=rgb, color_intrinsics=K,
                  timestamp=i * dt, index=i) for i in range(n)]  # fmt: skip


class Det:
    def __init__(self, landmarks):
        self.landmarks = landmarks


class IndexDetector:
    """Returns landmarks that encode the timestamp they were detected on; optional hooks per call."""

    def __init__(self, before=None, fail_on=(), none_on=()):
        self.before, self.fail_on, self.none_on = before, set(fail_on), set(none_on)
        self.calls = []
        self.thread = None

    def detect(self, color, ts):
        self.thread = threading.current_thread()
        i = int(round(ts * 30))
        self.calls.append(i)
        if self.before is not None:
            self.before(i)
        if i in self.fail_on:
            raise RuntimeError("detector crashed")
        if i in self.none_on:
            return None
        return Det(np.full((478, 2), float(i), np.float32))


def test_recording_policy_keeps_order_and_gives_every_frame_its_own_landmarks():
    gate = threading.Event()
    det = IndexDetector(before=lambda i: gate.wait(0.005))  # a slow detector
    frames = _frames(40)
    with LandmarkStream(frames, det) as stream:
        items = list(stream)
    assert [it.index for it in items] == list(range(40))
    assert [it.frame for it in items] == frames
    for it in items:
        assert it.landmarks_from == it.index
        np.testing.assert_array_equal(it.landmarks, np.full((478, 2), it.index))
    assert det.calls == list(range(40)) and det.thread is not threading.main_thread()
    assert not stream._reader.is_alive() and not stream._detector.is_alive()


def test_live_policy_never_blocks_capture_on_a_stuck_detector():
    """The detector is stuck until the source has delivered every frame: with a live policy all frames
    still come out, in order, without waiting for it."""
    n = 30
    release = threading.Event()
    frames = _frames(n)

    def source():
        yield from frames
        release.set()  # reached only if reading never waited for the detector

    det = IndexDetector(before=lambda i: release.wait(10.0))
    with LandmarkStream(source(), det, max_age_s=0.05, wait_s=0.001) as stream:
        items = []
        for it in stream:
            items.append(it)
            if it.index == 0:
                assert release.wait(10.0), "capture waited for the detector"
    assert [it.index for it in items] == list(range(n))
    assert len(det.calls) < n  # frames the detector never reached were skipped, not queued
    for it in items:
        if it.landmarks is not None:  # own or from an earlier frame within the age limit
            src = it.landmarks_from
            assert src <= it.index and frames[it.index].timestamp - frames[src].timestamp <= 0.05 + 1e-9
            np.testing.assert_array_equal(it.landmarks, np.full((478, 2), src))


def test_detector_failures_give_no_landmarks_and_are_reported_once():
    det = IndexDetector(fail_on={3, 4}, none_on={7})
    with LandmarkStream(_frames(10), det) as stream:
        items = list(stream)
    got = [it.landmarks is not None for it in items]
    assert got == [True, True, True, False, False, True, True, False, True, True]
    assert stream.errors == 2 and len(stream.notes) == 1 and "detector crashed" in stream.notes[0]


def test_source_errors_reach_the_caller_after_the_frames_before_them():
    def source():
        yield from _frames(5)
        raise OSError("recording truncated")

    stream = LandmarkStream(source(), IndexDetector())
    seen = []
    with pytest.raises(OSError, match="truncated"):
        for it in stream:
            seen.append(it.index)
    assert seen == [0, 1, 2, 3, 4]
    assert not stream._reader.is_alive() and not stream._detector.is_alive()


def test_closing_early_stops_both_threads():
    def endless():
        i = 0
        while True:
            yield _frames(1)[0]
            i += 1

    stream = LandmarkStream(endless(), IndexDetector())
    for it in stream:
        if it.index == 5:
            break
    stream.close()
    assert not stream._reader.is_alive() and not stream._detector.is_alive()


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_age_s"):
        LandmarkStream([], IndexDetector(), max_age_s=-1)
    with pytest.raises(ValueError, match="ahead"):
        LandmarkStream([], IndexDetector(), ahead=0)


def test_run_with_a_failing_detector_keeps_tracking():
    """The capture loop with a detector that crashes on some frames and finds nothing on others: every
    frame is tracked, the failure is said once, and the result holds the counts."""
    from facecap.formats import load_rig
    from facecap.pipeline import run
    from facecap.synth import SyntheticActor, get_camera
    from facecap.tracker import Tracker

    rig = load_rig()
    actor = SyntheticActor(rig, get_camera("d415").at(320, 240), distance=0.5, noise=False)
    frames = [actor.render(np.zeros(52, np.float32), index=i) for i in range(8)]
    truth = actor.ground_truth(np.zeros(52, np.float32), *actor.frontal_pose)

    class Proj:  # the rig's own projected landmarks, except on the frames where it fails
        calls = 0

        def detect(self, color, ts):
            Proj.calls += 1
            if Proj.calls in (3, 4):
                raise RuntimeError("boom")
            if Proj.calls == 6:
                return None
            uv = np.full((478, 2), np.nan, np.float32)
            uv[rig.landmark_ids] = truth.landmarks_2d
            return Det(uv)

    res = run(frames, Tracker(rig=rig), None, landmarker=Proj(), progress=False)
    assert res["frames"] == 8 and res["tracked_frames"] == 8
    assert res["landmark_frames"] == 5 and res["landmarks_stale"] == 0
    assert len(res["landmark_errors"]) == 1 and "boom" in res["landmark_errors"][0]
    assert res["latency_ms_p95"] >= res["latency_ms_median"] > 0


def test_real_model_on_the_worker_thread_matches_inline_detection():
    """MediaPipe (VIDEO mode) on the worker thread gives the same landmarks as run inline, frame by
    frame, on the synthetic actor's colour renders."""
    from facecap.formats import load_rig
    from facecap.landmarks import FaceLandmarker
    from facecap.synth import SyntheticActor, head_motion

    model = shared_path("mediapipe_face_landmarker", "face_landmarker.task")
    rig = load_rig()
    n = 12
    R, t = head_motion(n, fps=30, seed=2, max_angle_deg=15, distance_m=0.6)
    actor = SyntheticActor(rig, "d415", distance=0.6, seed=2)
    frames = [f for f, _ in actor.frames(np.zeros((n, 52), np.float32), R, t, fps=30)]
    with FaceLandmarker(model) as lm:
        inline = [detect_landmarks(lm, f)[0] for f in frames]
    with FaceLandmarker(model) as lm, LandmarkStream(frames, lm) as stream:
        threaded = [it.landmarks for it in stream]
    assert all(a is not None for a in inline)
    for a, b in zip(inline, threaded, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="thread affinity is Linux-only")
def test_stream_confines_detection_to_all_cpus_but_the_first_and_leaves_the_caller_alone():
    """The detector thread and MediaPipe's own threads run on every allowed CPU but the first (the fit's);
    the caller's thread keeps its CPUs; the landmarks are those of an unconfined stream."""
    from facecap.formats import load_rig
    from facecap.landmarks import FaceLandmarker
    from facecap.synth import SyntheticActor

    model = shared_path("mediapipe_face_landmarker", "face_landmarker.task")
    actor = SyntheticActor(load_rig(), "d415", distance=0.6, seed=4)
    frames = [actor.render(np.zeros(52), index=i) for i in range(4)]
    before = os.sched_getaffinity(0)
    allowed = sorted(before)
    got = {}
    for pin in (False, True):
        with FaceLandmarker(model, blendshapes=False) as lm:
            assert lm._threads, "MediaPipe started no threads of its own"
            with LandmarkStream(frames, lm, pin=pin) as stream:
                got[pin] = [it.landmarks for it in stream]
            assert os.sched_getaffinity(0) == before
            alive = [t for t in lm._threads if os.path.exists(f"/proc/self/task/{t}")]
            want = set(allowed[1:]) if pin and len(allowed) > 1 else before
            assert alive and all(os.sched_getaffinity(t) == want for t in alive)
    assert all(a is not None for a in got[True])
    for a, b in zip(got[False], got[True], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)
