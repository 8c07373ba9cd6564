"""Eye gaze from the iris landmarks (facecap.gaze) on synthetic renders with known eye turns.

    python bench/bench_gaze.py [--frames 150] [--out FILE.json]

The ICT head rendered by the synthetic actor (640x480, iris colours, D415 noise, head motion within
+-20 deg yaw / +-10 deg pitch), driven by all 7 real Live Link takes. Their eyeLook* weights turn the
rig's eyeballs, so the true gaze of each eye is known (:func:`facecap.tracker.gaze_from_weights` of the
true weights). Rows, on the same frames:

- ``depth_only``: the tracker without landmarks (eyeLook* from depth alone);
- ``iris``: the tracker with MediaPipe's landmarks, gaze solved from the iris (``facecap.gaze``),
  the iris points refined on the image first (:func:`facecap.gaze.refine_iris`, facecap's default);
- ``iris_unrefined``: the same with MediaPipe's own iris points (the baseline of that refinement);
- ``iris_true_landmarks``: the same with the rig's own projected landmarks in place of MediaPipe's,
  the solver's ceiling (what is left is the depth fit's pose and expression);
- ``mediapipe``: MediaPipe's own eyeLook* blendshape scores through the same conversion.

Scores: per-eye yaw/pitch error (degrees, median and p90 over eyes, axes and frames), eyeLook* weight
MAE, and two blink figures, over the frames where an eye's true eyeBlink exceeds 0.5, each against the
last frame before that blink:

- ``blink_spike_deg_max``: how far the estimate moves beyond the truth's own move, i.e. the largest
  ``|est - est_before| - |true - true_before|`` (per axis). A solver that holds still scores 0; one that
  follows wandering iris points under a closing lid scores the size of its jump. This is the target.
- ``blink_error_change_deg_max``: the largest change of the gaze error itself. It also counts the
  takes' own gaze moving during a blink (ARKit reads blinks with some eyeLookDown/In, up to about
  10 deg here), which no estimate that holds through the blink can see.

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

from bench_accuracy import SHARED, mediapipe, takes  # noqa: E402

from facecap import Tracker, TrackerConfig, arkit  # noqa: E402
from facecap.formats import load_rig  # noqa: E402
from facecap.synth import SyntheticActor, head_motion  # noqa: E402
from facecap.tracker import gaze_from_weights  # noqa: E402

EYELOOK = [arkit.INDEX[n] for n in arkit.ARKIT_NAMES if n.startswith("eyeLook")]
BLINK = [arkit.INDEX["eyeBlinkLeft"], arkit.INDEX["eyeBlinkRight"]]


def blink_moves_deg(est: np.ndarray, true: np.ndarray, truth_w: np.ndarray) -> tuple[float, float]:
    """(spike, error change) in degrees over one take's blinks; see the module docstring.

    est, true : (N, 2, 2) gaze in radians; truth_w : (N, 52) true weights.
    """
    spike = change = 0.0
    for eye in (0, 1):
        closed = truth_w[:, BLINK[eye]] > 0.5
        ref = None
        for i in range(len(est)):
            if not closed[i]:
                ref = i
            elif ref is not None:
                d_est, d_true = np.abs(est[i, eye] - est[ref, eye]), np.abs(true[i, eye] - true[ref, eye])
                spike = max(spike, float(np.degrees(d_est - d_true).max()))
                d_err = (est[i, eye] - true[i, eye]) - (est[ref, eye] - true[ref, eye])
                change = max(change, float(np.degrees(np.abs(d_err)).max()))
    return spike, change


def score(G, GT, E, T, W) -> dict:
    err = np.degrees(np.abs(G - GT))
    moves = [blink_moves_deg(g, gt, w) for g, gt, w in zip(G_split(G, W), G_split(GT, W), W, strict=True)]
    return {
        "gaze_err_deg_median": round(float(np.median(err)), 2),
        "gaze_err_deg_p90": round(float(np.percentile(err, 90)), 2),
        "yaw_err_deg_median": round(float(np.median(err[:, :, 0])), 2),
        "pitch_err_deg_median": round(float(np.median(err[:, :, 1])), 2),
        "eyelook_mae": round(float(np.abs(E - T).mean()), 4),
        "blink_spike_deg_max": round(max(m[0] for m in moves), 2),
        "blink_error_change_deg_max": round(max(m[1] for m in moves), 2),
    }


def G_split(G, W):
    out, i = [], 0
    for w in W:
        out.append(G[i : i + len(w)])
        i += len(w)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=150, help="frames per take (default 150)")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    model = SHARED / "mediapipe_face_landmarker" / "face_landmarker.task"
    if not model.is_file():
        raise SystemExit(f"shared data missing: {model}")
    t0 = time.perf_counter()
    rig = load_rig()
    rows = ("depth_only", "iris", "iris_unrefined", "iris_true_landmarks", "mediapipe")
    acc = {k: {"G": [], "E": []} for k in rows}
    GT, T, Ws = [], [], []
    for ti, (name, W) in enumerate(takes(args.frames)):
        R, t = head_motion(len(W), fps=30, seed=ti, max_angle_deg=20, max_pitch_deg=10, distance_m=0.6)
        actor = SyntheticActor(rig, "d415", distance=0.6, seed=ti)
        pairs = list(actor.frames(W.astype(np.float32), R, t, fps=30))
        mp_bs, mp_uv = mediapipe([f for f, _ in pairs], landmarks=True)
        for k in ("depth_only", "iris", "iris_unrefined", "iris_true_landmarks"):
            # the rig's own landmarks are exact: refining them on the render would only add its pixels' error
            cfg = TrackerConfig.for_camera("d415", refine_iris=k == "iris")
            tr = Tracker(rig=rig, config=cfg)
            for (f, truth), uv in zip(pairs, mp_uv, strict=True):
                if k == "iris_true_landmarks":
                    uv = np.full((478, 2), np.nan)
                    uv[rig.landmark_ids] = truth.landmarks_2d
                s = tr.track(f, landmarks=None if k == "depth_only" else uv)
                acc[k]["G"].append(s.gaze)
                acc[k]["E"].append(s.weights[EYELOOK])
        for bs in np.nan_to_num(mp_bs).astype(np.float32):
            acc["mediapipe"]["G"].append(gaze_from_weights(bs))
            acc["mediapipe"]["E"].append(bs[EYELOOK])
        GT += [gaze_from_weights(w.astype(np.float32)) for w in W]
        T.append(W[:, EYELOOK])
        Ws.append(W)
        print(f"  [{name} done]", file=sys.stderr, flush=True)
    GT, T = np.array(GT), np.concatenate(T)
    res = {"bench": "gaze", "frames_per_take": args.frames, "takes": len(Ws),
           "true_gaze_deg_abs_median": round(float(np.median(np.degrees(np.abs(GT)))), 2),
           "true_gaze_deg_abs_max": round(float(np.degrees(np.abs(GT)).max()), 2)}  # fmt: skip
    for k in rows:
        res[k] = score(np.array(acc[k]["G"]), GT, np.array(acc[k]["E"]), T, Ws)
    res["targets"] = {"gaze_err_deg_median": 2.0, "eyelook_mae": 0.08, "blink_spike_deg_max": 5.0}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
