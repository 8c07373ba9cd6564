"""Throughput of the capture loop with MediaPipe landmarks: detection on a worker thread vs. inline.

    python bench/bench_landmarks.py [--frames 300] [--rounds 3] [--acquisitions 60] [--out FILE.json]

The ICT head (the built-in rig's face) rendered by the synthetic actor at 640x480 (colour, D415 depth
noise, head motion, driven by a real Live Link take), the same frames for every row, each row run
``--rounds`` times in alternation (medians reported; this machine is shared):

- ``mediapipe_alone``: MediaPipe Face Landmarker on each colour image, nothing else (the ceiling);
  landmarks only, as ``--landmarks`` runs it (``blendshapes=False``) in every row;
- ``mediapipe_alone_confined``: the same with MediaPipe's threads confined to the CPUs the capture loop
  gives detection (:meth:`facecap.landmarks.FaceLandmarker.pin`); the faster of the two is the ceiling;
- ``depth_only``: :func:`facecap.pipeline.run` without landmarks;
- ``inline``: detection then fit, one after the other (how ``run`` worked before the worker thread);
- ``pipelined``: :func:`facecap.pipeline.run` with the landmarker (detection on a worker thread);
- ``pipelined_db3``: the same, playing the frames from a RealSense ``.db3`` recording (``facecap play``);
- ``live_90fps``: a source that delivers the frames at 90 fps like a camera, with the live policy of
  ``facecap live`` (capture never waits for detection; landmarks at most 50 ms old): the latency that
  matters live, and how many frames were fitted with their own landmarks.

Reported: frames per second, the ratio of ``pipelined`` to the faster MediaPipe-alone row (target >= 0.9), the
latency from a frame leaving the source to its state being sent (median, p95).

``acquisition``: ``--acquisitions`` cold starts (a fresh tracker each) of the neutral ICT head at random
poses (yaw +-45 deg, pitch +-20, roll +-15, 0.45-0.9 m), from depth alone and with MediaPipe's
landmarks of the same frame: the share acquired within 5 deg of the true rotation (all, and beyond 30
deg of yaw) and the acquisition time. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from facecap import Tracker, TrackerConfig, pose  # noqa: E402
from facecap.formats import load_rig  # noqa: E402
from facecap.frames import color_to_depth_pixels  # noqa: E402
from facecap.landmark_stream import detect_landmarks  # noqa: E402
from facecap.landmarks import FaceLandmarker  # noqa: E402
from facecap.livelink import read_csv  # noqa: E402
from facecap.pipeline import run  # noqa: E402
from facecap.synth import SyntheticActor, head_motion  # noqa: E402

MODEL = SHARED / "mediapipe_face_landmarker" / "face_landmarker.task"


def frames_of_a_take(n: int):
    rig = load_rig()
    take = read_csv(SHARED / "arkit_blendshape_takes" / "livelinkface_alexdjulin_S07-001.csv")
    W = np.clip(np.nan_to_num(take.held().weights), 0, 1)[:n]
    W = np.concatenate([W, np.repeat(W[-1:], n - len(W), 0)]) if len(W) < n else W
    R, t = head_motion(n, fps=30, seed=3, max_angle_deg=20, max_pitch_deg=10, distance_m=0.6)
    actor = SyntheticActor(rig, "d415", distance=0.6, seed=3)
    return rig, [f for f, _ in actor.frames(W.astype(np.float32), R, t, fps=30)]


def mediapipe_alone(frames, confined: bool = False) -> float:
    """MediaPipe alone on every frame; ``confined``: its threads and this one on the CPUs the capture
    loop gives detection (all but the first, :meth:`FaceLandmarker.pin`), which on this machine makes
    MediaPipe alone faster too, so it is the ceiling the loop is held to."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    with FaceLandmarker(MODEL, blendshapes=False) as lm:
        if confined and len(allowed) > 1:
            lm.pin(set(sorted(allowed)[1:]))
        try:
            t0 = time.perf_counter()
            for f in frames:
                detect_landmarks(lm, f)
            return len(frames) / (time.perf_counter() - t0)
        finally:
            if confined and len(allowed) > 1:
                os.sched_setaffinity(0, allowed)


def inline(rig, frames) -> float:
    tr = Tracker(rig=rig, config=TrackerConfig.for_camera("d415"))
    with FaceLandmarker(MODEL, blendshapes=False) as lm:
        t0 = time.perf_counter()
        for f in frames:
            tr.track(f, landmarks=detect_landmarks(lm, f)[0])
        return len(frames) / (time.perf_counter() - t0)


def loop(rig, frames, landmarks: bool) -> dict:
    tr = Tracker(rig=rig, config=TrackerConfig.for_camera("d415"))
    if not landmarks:
        return run(frames, tr, None, progress=False)
    with FaceLandmarker(MODEL, blendshapes=False) as lm:
        return run(frames, tr, None, landmarker=lm, progress=False)


def paced(frames, fps: float):
    """The frames delivered at ``fps`` in real time, like a camera (timestamps rewritten to the clock)."""
    import dataclasses

    t0 = time.perf_counter()
    for i, f in enumerate(frames):
        delay = t0 + i / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield dataclasses.replace(f, timestamp=i / fps)


def live(rig, frames, fps: float) -> dict:
    from facecap.cli.capture import LIVE_LANDMARK_MAX_AGE_S

    tr = Tracker(rig=rig, config=TrackerConfig.for_camera("d415"))
    with FaceLandmarker(MODEL, blendshapes=False) as lm:
        return run(paced(frames, fps), tr, None, landmarker=lm, progress=False,
                   landmark_max_age_s=LIVE_LANDMARK_MAX_AGE_S)  # fmt: skip


def acquisition(rig, n: int, seed: int = 0) -> dict:
    """Cold acquisitions at random poses, depth only vs with landmarks, on the same frames."""
    actor = SyntheticActor(rig, "d415", distance=0.6, seed=seed)
    rng = np.random.default_rng(seed)
    cases = []
    with FaceLandmarker(MODEL, blendshapes=False) as lm:
        for i in range(n):
            yaw = np.radians(rng.uniform(-45, 45))
            R = pose.from_euler(yaw, np.radians(rng.uniform(-20, 20)), np.radians(rng.uniform(-15, 15)))
            t = np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.06, 0.06), rng.uniform(0.45, 0.9)])
            f = actor.render(np.zeros(52), R, t, index=i)
            for k in range(3):  # a new face for VIDEO mode: let it settle as it would on a live stream
                d = lm.detect(f.color, 10.0 * i + k / 30)
            cases.append((f, None if d is None else color_to_depth_pixels(d.landmarks, f), R, abs(yaw)))
    out = {"acquisitions": n, "detected": round(float(np.mean([c[1] is not None for c in cases])), 3)}
    wide = np.array([c[3] > np.radians(30) for c in cases])
    for row in ("depth_only", "landmarks"):
        tr = Tracker(rig=rig, config=TrackerConfig.for_camera("d415"))
        ok, ms = [], []
        for f, uv, R, _ in cases:
            tr.reset()
            s = tr.track(f, landmarks=uv if row == "landmarks" else None)
            ok.append(s.tracked and pose.rotation_angle_deg(s.rotation, R) < 5.0)
            ms.append(tr.last_fit_ms)
        ok = np.array(ok)
        out[row] = {"within_5deg": round(float(ok.mean()), 3),
                    "within_5deg_yaw_over_30": round(float(ok[wide].mean()), 3) if wide.any() else None,
                    "acquire_ms_median": round(float(np.median(ms)), 1)}  # fmt: skip
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300, help="frames (default 300, 10 s at 30 fps)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per row (default 3)")
    ap.add_argument("--acquisitions", type=int, default=60, help="cold starts at random poses (default 60)")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    if not MODEL.is_file():
        raise SystemExit(f"shared data missing: {MODEL}")
    from facecap.realsense import read_recording, write_recording

    print("rendering...", file=sys.stderr, flush=True)
    rig, frames = frames_of_a_take(args.frames)
    rows: dict[str, list] = {k: [] for k in ("mediapipe_alone", "mediapipe_alone_confined", "depth_only",
                                             "inline", "pipelined", "pipelined_db3")}  # fmt: skip
    lat: dict[str, list] = {"pipelined": [], "pipelined_db3": [], "depth_only": [], "live_90fps": []}
    own: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "take.db3"
        write_recording(rec, frames)
        loop(rig, frames[:20], True)  # warm-up: Numba caches, MediaPipe's first graph
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            rows["mediapipe_alone"].append(mediapipe_alone(frames))
            rows["mediapipe_alone_confined"].append(mediapipe_alone(frames, confined=True))
            rows["inline"].append(inline(rig, frames))
            for key, src, lmk in (("depth_only", frames, False), ("pipelined", frames, True),
                                  ("pipelined_db3", None, True)):  # fmt: skip
                res = loop(rig, src if src is not None else read_recording(rec), lmk)
                rows[key].append(res["fps"])
                lat[key].append((res["latency_ms_median"], res["latency_ms_p95"]))
                if lmk:
                    assert res["landmark_frames"] >= 0.9 * len(frames), res
            res = live(rig, frames, 90.0)
            rows.setdefault("live_90fps", []).append(res["fps"])
            lat["live_90fps"].append((res["latency_ms_median"], res["latency_ms_p95"]))
            own.append((res["landmark_frames"] - res["landmarks_stale"]) / res["frames"])
    med = {k: round(float(np.median(v)), 1) for k, v in rows.items()}
    best = max(med["mediapipe_alone"], med["mediapipe_alone_confined"])
    out = {
        "bench": "landmarks",
        "frames": len(frames),
        "size": [frames[0].depth_intrinsics.width, frames[0].depth_intrinsics.height],
        "rounds": args.rounds,
        "fps_median": med,
        "fps_all": {k: [round(x, 1) for x in v] for k, v in rows.items()},
        # against the faster way to run MediaPipe alone (free, or confined as the loop confines it)
        "pipelined_over_mediapipe_alone": round(med["pipelined"] / best, 3),
        "pipelined_db3_over_mediapipe_alone": round(med["pipelined_db3"] / best, 3),
        "pipelined_over_mediapipe_alone_free": round(med["pipelined"] / med["mediapipe_alone"], 3),
        "pipelined_over_inline": round(med["pipelined"] / med["inline"], 2),
        "latency_ms": {k: {"median": round(float(np.median([a for a, _ in v])), 2),
                           "p95": round(float(np.median([b for _, b in v])), 2)} for k, v in lat.items()},
        "live_90fps_own_landmarks_fraction": round(float(np.median(own)), 3),
        "target_ratio": 0.9,
    }  # fmt: skip
    if args.acquisitions > 0:
        print("acquisitions...", file=sys.stderr, flush=True)
        out["acquisition"] = acquisition(rig, args.acquisitions)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
