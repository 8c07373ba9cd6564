"""Colour-only tracking: facecap fitted to MediaPipe's landmarks alone, beside MediaPipe's blendshapes.

    python bench/bench_rgb.py [--frames 150] [--out FILE.json]

1. Synthetic, with ground truth: the ICT head and an unseen identity (``synth.random_identity``) rendered by
   the synthetic actor (640x480 colour, head motion +-20 deg yaw / +-10 deg pitch at 0.6 m), driven by the 7
   real Live Link takes. The depth image is dropped: ``Frame(depth=None)``. Rows: facecap colour-only
   (built-in rig; its expression prior fitted on the other performer's takes, never the scored take's),
   the same without the prior (``rgb_only_no_prior``), facecap with depth on the same frames, MediaPipe's
   own blendshapes. Weight MAE without eyeLook*/tongueOut, head rotation error, distance error (the rig's
   metric size sets the scale). The real videos below use the built-in prior (fitted on all 7 takes:
   other people).
2. Real videos (``../shared/data/face_videos``, LivePortrait driving clips): the fraction of frames with a
   face, facecap's jawOpen against MediaPipe's (Pearson r), and the jitter of the weights: the median over
   frames of the mean absolute frame-to-frame change of the 50 scored weights, beside MediaPipe's own;
   the share of frames whose iris points the image moved (:func:`facecap.gaze.refine_iris`), and the
   jitter of the gaze angles (degrees) with those points and with MediaPipe's own.

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_accuracy import (  # noqa: E402
    SCORED,
    SHARED,
    colour_only,
    mediapipe,
    other_performer_prior,
    render,
    summarise,
    takes,
)

from facecap import Tracker, TrackerConfig, arkit, pose  # noqa: E402
from facecap.formats import load_rig  # noqa: E402
from facecap.gaze import refine_iris  # noqa: E402
from facecap.landmarks import FaceLandmarker  # noqa: E402
from facecap.synth import random_identity  # noqa: E402
from facecap.video import VideoSource  # noqa: E402

MODEL = SHARED / "mediapipe_face_landmarker" / "face_landmarker.task"


def synthetic(rig, face, n: int, seed: int) -> dict:
    est = {"rgb_only": [], "rgb_only_no_prior": [], "depth": [], "mediapipe": []}
    ok = {k: [] for k in est}
    rot, dz, truth = [], [], []
    for ti, (take, W) in enumerate(takes(n)):
        frames, R = render(face, W, seed + ti, "d415")
        truth.append(W)
        bs, uv = mediapipe(frames, landmarks=True)
        for k in ("rgb_only", "rgb_only_no_prior", "depth"):
            # colour only: the expression prior fitted on the other performer's takes, never this take's
            prior = other_performer_prior(take) if k == "rgb_only" else None
            tr = Tracker(rig=rig, config=TrackerConfig.for_camera("d415", rgb_prior=prior))
            for f, u, r in zip(frames, uv, R, strict=True):
                s = tr.track(f if k == "depth" else colour_only(f), landmarks=u)
                est[k].append(s.weights)
                ok[k].append(s.tracked)
                if k == "rgb_only" and s.tracked:
                    rot.append(pose.rotation_angle_deg(s.rotation, r))
                    dz.append(abs(s.translation[2] - 0.6))
        est["mediapipe"] += list(np.nan_to_num(bs))
        ok["mediapipe"] += list(np.isfinite(bs).all(1))
    T = np.concatenate(truth)
    out = {k: summarise(np.array(est[k]), T, np.array(ok[k])) | {"tracked_fraction":
           round(float(np.mean(ok[k])), 4)} for k in est}  # fmt: skip
    for v in out.values():
        v.pop("gains_below_0.85")
    out["rgb_only"]["rot_err_deg_median"] = round(float(np.median(rot)), 2) if rot else None
    out["rgb_only"]["distance_err_mm_median"] = round(float(np.median(dz)) * 1000, 1) if dz else None
    return out


def jitter(W: np.ndarray) -> float:
    d = np.abs(np.diff(W[:, SCORED], axis=0)).mean(1)
    return round(float(np.median(d)), 4) if len(d) else float("nan")


def real_video(path: Path, max_frames: int | None) -> dict:
    src = VideoSource(path, max_frames=max_frames)
    tr = Tracker(rig=load_rig())
    raw = Tracker(rig=load_rig(), config=TrackerConfig(refine_iris=False))  # MediaPipe's own iris points
    ours, theirs, found, gaze, gaze_raw, moved = [], [], 0, [], [], 0
    with FaceLandmarker(MODEL) as lm:
        for f in src:
            d = lm.detect(f.color, f.timestamp)
            lmk = None if d is None else d.landmarks
            s, s_raw = tr.track(f, landmarks=lmk), raw.track(f, landmarks=lmk)
            if d is not None:
                found += 1
                moved += bool(np.abs(refine_iris(f.color, d.landmarks) - d.landmarks).max() > 1e-3)
                if s.tracked:
                    ours.append(s.weights)
                    theirs.append(d.blendshapes)
            gaze.append(s.gaze if s.tracked else np.full((2, 2), np.nan))
            gaze_raw.append(s_raw.gaze if s_raw.tracked else np.full((2, 2), np.nan))
    n = src.frames_read
    ours, theirs = np.array(ours), np.array(theirs)
    j = arkit.INDEX["jawOpen"]
    r = float(np.corrcoef(ours[:, j], theirs[:, j])[0, 1]) if len(ours) > 2 else float("nan")
    return {"frames": n, "face_fraction": round(found / max(n, 1), 4),
            "tracked_fraction": round(len(ours) / max(n, 1), 4), "jawOpen_r_vs_mediapipe": round(r, 3),
            "jitter_facecap": jitter(ours), "jitter_mediapipe": jitter(theirs),
            "iris_refined_fraction": round(moved / max(found, 1), 3), "gaze_jitter_deg": gaze_jitter(gaze),
            "gaze_jitter_deg_unrefined": gaze_jitter(gaze_raw)}  # fmt: skip


def gaze_jitter(G: list) -> float:
    """Median over frames of the mean absolute frame-to-frame change of the 4 gaze angles (degrees)."""
    d = np.degrees(np.abs(np.diff(np.array(G), axis=0))).mean(axis=(1, 2))
    d = d[np.isfinite(d)]
    return round(float(np.median(d)), 3) if len(d) else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=150, help="frames per take (default 150)")
    ap.add_argument("--video-frames", type=int, default=None, help="frames per real video (default: all)")
    ap.add_argument("--no-identity", action="store_true", help="only the ICT head")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    if not MODEL.is_file():
        raise SystemExit(f"shared data missing: {MODEL}")
    t0 = time.perf_counter()
    rig = load_rig()
    res = {"bench": "rgb", "frames_per_take": args.frames, "synthetic": {}, "videos": {}}
    res["synthetic"]["ict"] = synthetic(rig, rig, args.frames, 0)
    print("  [ict done]", file=sys.stderr, flush=True)
    if not args.no_identity:
        res["synthetic"]["identity1"] = synthetic(rig, random_identity(rig, seed=1), args.frames, 100)
        print("  [identity1 done]", file=sys.stderr, flush=True)
    for p in sorted((SHARED / "face_videos").glob("*.mp4")):
        res["videos"][p.stem] = real_video(p, args.video_frames)
        print(f"  [{p.stem} done]", file=sys.stderr, flush=True)
    vids = list(res["videos"].values())
    if vids:
        res["videos_summary"] = {
            "face_fraction_min": min(v["face_fraction"] for v in vids),
            "jawOpen_r_median": round(float(np.nanmedian([v["jawOpen_r_vs_mediapipe"] for v in vids])), 3),
            "jawOpen_r_min": round(float(np.nanmin([v["jawOpen_r_vs_mediapipe"] for v in vids])), 3),
            "jawOpen_constant_in": [
                k for k, v in res["videos"].items() if not np.isfinite(v["jawOpen_r_vs_mediapipe"])
            ],  # fmt: skip
        }
    res["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
