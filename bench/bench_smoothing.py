"""Output smoothing (``TrackerConfig(smoothing=OneEuro())``, ``--smooth``) beside the raw weights, same run.

    python bench/bench_smoothing.py [--frames N] [--min-cutoff HZ] [--beta B] [--d-cutoff HZ] [--out FILE]

The smoother filters what the tracker reports and never what it fits from, so one tracking run gives both:
``state.weights`` (smoothed) and ``tracker.w`` (the fit's own estimate, the baseline). Simulated D415 at
0.6 m, depth only:

- ``takes``: the 7 real ARKit takes (``--frames`` each at 30 fps, head within +-20 / +-10 deg) performed by
  the ICT head and by an unseen identity (``random_identity`` seed 1): weight MAE excluding eyeLook* and
  tongueOut, and the jitter: the mean frame-to-frame change of those weights and the median over frames of
  the largest change of any of them, beside the truth's own;
- ``rest``: the unseen identity at rest for 150 frames, head moving: the same jitter (the truth's is 0);
- ``steps``: a 0.6 step in one shape held 16 frames, then back to 0, frontal, 6 shapes x 3 noise seeds:
  frames until the reported weight reaches 90 % of its held value, and until it falls below 10 % of it.

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_accuracy as ba  # noqa: E402

from facecap import Tracker, TrackerConfig, arkit  # noqa: E402
from facecap.formats import load_rig  # noqa: E402
from facecap.smoothing import OneEuro  # noqa: E402
from facecap.synth import SyntheticActor, random_identity  # noqa: E402

STEP_SHAPES = ("jawOpen", "mouthSmileLeft", "mouthFunnel", "mouthPucker", "browInnerUp", "eyeBlinkLeft")


def track(rig, frames, smoothing) -> tuple[np.ndarray, np.ndarray]:
    """(smoothed, raw) (n, 52) weights of one tracking run."""
    cfg = TrackerConfig.for_camera("d415", smoothing=smoothing)
    tr = Tracker(rig, frames[0].depth_intrinsics, cfg)
    out, raw = [], []
    for f in frames:
        s = tr.track(f)
        out.append(s.weights)
        raw.append(tr.w if s.tracked else np.zeros(52))
    return np.array(out, np.float64), np.array(raw, np.float64)


def jitter(W: np.ndarray, take_len: int) -> dict:
    """Mean frame-to-frame change of the scored weights, and the median of each frame's largest."""
    d = np.abs(np.diff(W.reshape(-1, take_len, 52)[:, :, ba.SCORED], axis=1)).reshape(-1, len(ba.SCORED))
    return {
        "mean_change": round(float(d.mean()), 4),
        "frame_max_median": round(float(np.median(d.max(1))), 3),
    }


def mae(E, T) -> float:
    return round(float(np.abs(E[:, ba.SCORED] - T[:, ba.SCORED]).mean()), 4)


def takes_block(rig, smoothing, n: int) -> dict:
    takes = ba.takes(n)
    T = np.concatenate([w for _, w in takes])
    out = {"truth_jitter": jitter(T, n)}
    for name, face in (("ict_head", rig), ("unseen_identity_1", random_identity(rig, seed=1))):
        S, R = [], []
        for k, (_, W) in enumerate(takes):
            frames, _ = ba.render(face, W, 40 + k, "d415")
            s, r = track(rig, frames, smoothing)
            S.append(s)
            R.append(r)
        S, R = np.concatenate(S), np.concatenate(R)
        out[name] = {
            "raw": {"mae": mae(R, T), "jitter": jitter(R, n)},
            "smoothed": {"mae": mae(S, T), "jitter": jitter(S, n)},
        }
    return out


def rest_block(rig, smoothing, n: int = 150) -> dict:
    frames, _ = ba.render(random_identity(rig, seed=1), np.zeros((n, 52)), 7, "d415")
    s, r = track(rig, frames, smoothing)
    return {"raw": jitter(r, n), "smoothed": jitter(s, n)}


def steps_block(rig, smoothing) -> dict:
    lags: dict = {"raw": {"rise": [], "fall": []}, "smoothed": {"rise": [], "fall": []}}
    per_shape = {}
    for name in STEP_SHAPES:
        k = arkit.INDEX[name]
        for seed in range(3):
            actor = SyntheticActor(rig, camera="d415", seed=seed)
            R, t = actor.frontal_pose
            W = np.zeros((40, 52))
            W[8:24, k] = 0.6
            frames = [actor.render(w, R, t, index=i, timestamp=i / 30.0) for i, w in enumerate(W)]
            s, r = track(rig, frames, smoothing)
            for kind, v in (("raw", r[:, k]), ("smoothed", s[:, k])):
                held = float(np.median(v[16:24]))
                rise = next((i - 8 for i in range(8, 24) if v[i] >= 0.9 * held), 16)
                fall = next((i - 24 for i in range(24, 40) if v[i] <= 0.1 * held), 16)
                lags[kind]["rise"].append(rise)
                lags[kind]["fall"].append(fall)
                if kind == "smoothed":
                    per_shape.setdefault(name, []).append(rise)
    summary = {
        kind: {d: {"median": float(np.median(v)), "max": int(np.max(v))} for d, v in x.items()}
        for kind, x in lags.items()
    }
    return summary | {"smoothed_rise_by_shape": per_shape}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=150, help="frames of each real take (default 150)")
    ap.add_argument("--min-cutoff", type=float, default=OneEuro.min_cutoff_hz, help="OneEuro.min_cutoff_hz")
    ap.add_argument("--beta", type=float, default=OneEuro.beta, help="OneEuro.beta")
    ap.add_argument("--d-cutoff", type=float, default=OneEuro.d_cutoff_hz, help="OneEuro.d_cutoff_hz")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)
    rig = load_rig()
    smoothing = OneEuro(min_cutoff_hz=a.min_cutoff, beta=a.beta, d_cutoff_hz=a.d_cutoff)
    res = {
        "bench": "smoothing",
        "camera": "d415",
        "smoothing": {
            "min_cutoff_hz": smoothing.min_cutoff_hz,
            "beta": smoothing.beta,
            "d_cutoff_hz": smoothing.d_cutoff_hz,
        },  # fmt: skip
        "steps": steps_block(rig, smoothing),
        "rest": rest_block(rig, smoothing),
        "takes": takes_block(rig, smoothing, a.frames),
    }
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
