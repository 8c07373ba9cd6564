"""Accuracy on faces driven by real ARKit takes: built-in rig, analytic rig and MediaPipe on the same frames.

    python bench/bench_accuracy.py [--frames N] [--identities K] [--quick] [--out FILE.json]

Faces (rendered by facecap's synthetic actor with colour, D415 or D435 noise at 0.6 m, head motion within
+-20 deg yaw and +-10 deg pitch), each performing all 7 real Live Link takes of ../shared/data:

- ``ict``: the ICT-FaceKit head (the built-in rig's own face),
- ``identity<k>``: unseen people, :func:`facecap.synth.random_identity` of it (5-8 mm smooth shape changes).

Trackers on the same frames: ``builtin`` (the built-in rig, depth only), ``builtin+prior`` (the same with
the expression prior of :mod:`facecap.prior`, fitted on the six takes other than the one scored; six of the
seven takes are one performer's, so on the ICT head also ``builtin+prior_other_performer``: the prior fitted
on the other performer's takes only),
``--rig-b FILE`` (another rig file on the unseen identities, e.g. the analytic rig facecap shipped until
commit 0f20ffd: ``git show 0f20ffd:facecap/data/generic_rig.npz > analytic.npz``) and ``mediapipe``
(MediaPipe Face Landmarker's own 52 blendshape scores on the colour image). Scores: weight MAE over the 52
ARKit weights without eyeLook* and tongueOut (``mae50``), per-shape gain (least-squares slope of the
estimate on the truth over the frames where the truth exceeds 0.3, pooled over the takes; shapes with fewer
than 30 such frames are not reported), ``constant_share`` (the share of the MAE that is a constant offset
per take and shape: 1 - MAE after removing each take's mean error per shape / MAE) and, for facecap, head
rotation error, fit and acquisition times.

Two more sections, on the ICT head:

- ``held_expressions``: each expression of ``facecap.synth.EXPRESSIONS`` (winks, smirks, one-sided brows
  included; not talk or tongue) held still for 24 frames after 4 neutral ones, D415 noise, head turned
  11 deg, 2 noise seeds; the median of the last 12 frames read against the truth: MAE and the gain of the
  expression's main shapes (truth >= 0.5) -- what shrinkage does to a held expression, for the default
  L1, a light L1 (0.1) and the expression prior (fitted on all 7 takes);
- ``information``: what depth alone can tell per frame. From the fit's own rows at the true pose and
  expression (sigma the renderer's 2.1 mm at 0.6 m; its 3x3 spatial correlation ignored, so optimistic),
  the Cramer-Rao standard deviation of each weight with the pose and the other 51 weights free, median
  over frames: a shape whose bound is far above the errors asked of it can only be read through a prior.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from facecap import Tracker, TrackerConfig, arkit, metrics, pose  # noqa: E402
from facecap.fit import FitParams  # noqa: E402
from facecap.formats import load_rig  # noqa: E402
from facecap.frames import Frame  # noqa: E402
from facecap.synth import SyntheticActor, head_motion, random_identity  # noqa: E402

SCORED = [arkit.INDEX[k] for k in metrics.DEPTH_VISIBLE]
PRIORS: dict = {}  # leave-one-take-out expression priors, filled in main()
LOPO: dict = {}  # priors fitted on the other performer's takes, filled in main()


def takes(n: int, fps: float = 30.0) -> list[tuple[str, np.ndarray]]:
    """(name, (n, 52) weights) of each real take, resampled to ``fps`` from its first tracked row."""
    from facecap.livelink import read_csv

    d = SHARED / "arkit_blendshape_takes"
    if not d.is_dir():
        raise SystemExit(f"shared data missing: {d}")
    out = []
    for p in sorted(d.glob("*.csv")):
        take = read_csv(p)
        held = take.held()
        ts = take.timestamps - take.timestamps[np.flatnonzero(take.tracked)[0]]
        idx = np.clip(np.searchsorted(ts, np.arange(n) / fps), 0, take.n_frames - 1)
        out.append((p.stem.replace("livelinkface_", ""), np.clip(np.nan_to_num(held.weights[idx]), 0, 1)))
    return out


def motion(n, seed):
    """The head poses (R (n, 3, 3), t (n, 3)) of take renders with ``seed``."""
    return head_motion(n, fps=30, seed=seed, max_angle_deg=20, max_pitch_deg=10, distance_m=0.6)


def render(face, W, seed, camera):
    R, t = motion(len(W), seed)
    actor = SyntheticActor(face, camera=camera, distance=0.6, seed=seed)
    return [f for f, _ in actor.frames(W, R, t, fps=30)], R


PERFORMERS = ("alexdjulin", "JMTechArt")  # the takes' file names carry their performer's name


def take_weights() -> dict[str, np.ndarray]:
    """{take: (n, 52) weights of its tracked frames} of every real take."""
    from facecap.livelink import read_csv

    full = {}
    for p in sorted((SHARED / "arkit_blendshape_takes").glob("*.csv")):
        t = read_csv(p)
        full[p.stem.replace("livelinkface_", "")] = np.asarray(t.weights)[np.asarray(t.tracked)]
    return full


def loo_priors(full: dict[str, np.ndarray]) -> dict[str, object]:
    """{take: expression prior fitted on the other takes' tracked frames} (leave one take out);
    ``full`` as :func:`take_weights` returns."""
    from facecap.prior import fit_prior

    return {k: fit_prior([w for j, w in full.items() if j != k]) for k in full}


def other_performer_priors(full: dict[str, np.ndarray]) -> dict[str, object]:
    """{take: expression prior fitted on the takes of the other performers only}."""
    from facecap.prior import fit_prior

    who = {k: next(n for n in PERFORMERS if n in k) for k in full}
    return {k: fit_prior([w for j, w in full.items() if who[j] != who[k]]) for k in full}


def track(rig, frames, camera, prior=None, landmarks=None):
    """Tracker states, fit times of tracked frames and of acquisitions (ms); ``landmarks``: MediaPipe's
    per frame ((478, 2) depth pixels or None), fused with the tracker's default landmark weights."""
    fit = replace(FitParams(), lambda_s=0.25, lambda_prior=1.0) if prior is not None else FitParams()
    config = TrackerConfig.for_camera(camera, prior=prior, fit=fit)
    tr = Tracker(rig=rig, intrinsics=frames[0].depth_intrinsics, config=config)
    states, ms, acq = [], [], []
    for i, f in enumerate(frames):
        was = tr.tracked
        states.append(tr.track(f, landmarks=None if landmarks is None else landmarks[i]))
        (ms if was else acq).append(tr.last_fit_ms)
    return states, ms, acq


def mediapipe(frames, landmarks: bool = False):
    """MediaPipe's blendshapes (N, 52) (NaN rows: no face); with ``landmarks`` also its landmarks per
    frame in depth pixels ((478, 2) or None)."""
    from facecap.frames import color_to_depth_pixels
    from facecap.landmarks import FaceLandmarker

    out = np.full((len(frames), 52), np.nan)
    uv = [None] * len(frames)
    with FaceLandmarker(SHARED / "mediapipe_face_landmarker" / "face_landmarker.task") as lm:
        for i, f in enumerate(frames):
            det = lm.detect(f.color, f.timestamp)
            if det is not None:
                out[i] = det.blendshapes
                uv[i] = color_to_depth_pixels(det.landmarks, f)
    return (out, uv) if landmarks else out


def colour_only(f: Frame) -> Frame:
    """The frame without its depth (facecap's colour-only mode)."""
    return Frame(depth=None, depth_intrinsics=f.color_intrinsics, color=f.color, timestamp=f.timestamp,
                 index=f.index)  # fmt: skip


def other_performer_prior(take: str):
    """The expression prior fitted on the takes of the performers other than ``take``'s (``LOPO``, filled
    on first use): the colour-only rows' prior, which must not have seen the take it is scored on."""
    if not LOPO:
        LOPO.update(other_performer_priors(take_weights()))
    return LOPO[take]


def track_rgb(rig, frames, uv, camera, rgb_prior="builtin"):
    """Colour-only tracking of ``frames`` from MediaPipe's landmarks ``uv``: the states. ``rgb_prior``:
    ``TrackerConfig.rgb_prior`` (on the real takes, pass :func:`other_performer_prior`)."""
    tr = Tracker(rig=rig, config=TrackerConfig.for_camera(camera, rgb_prior=rgb_prior))
    return [tr.track(colour_only(f), landmarks=u) for f, u in zip(frames, uv, strict=True)]


def gains(est: np.ndarray, truth: np.ndarray, min_frames: int = 30) -> dict[str, float]:
    """Least-squares slope through the origin of est on truth, over frames with truth > 0.3, per shape."""
    out = {}
    for k in SCORED:
        m = (truth[:, k] > 0.3) & np.isfinite(est[:, k])
        if m.sum() >= min_frames:
            out[arkit.ARKIT_NAMES[k]] = round(float(est[m, k] @ truth[m, k] / (truth[m, k] @ truth[m, k])), 3)
    return out


def constant_share(est, truth, ok, take_len):
    """Share of the MAE that is a constant offset per take and shape (removed by subtracting each take's
    mean error per shape over its tracked frames)."""
    err = (est - truth)[:, SCORED]
    mae, left = [], []
    for a in range(0, len(est), take_len):
        e, o = err[a : a + take_len], ok[a : a + take_len]
        if o.any():
            mae.append(np.abs(e[o]))
            left.append(np.abs(e[o] - e[o].mean(0)))
    if not mae:
        return None
    return round(1.0 - float(np.concatenate(left).mean() / np.concatenate(mae).mean()), 3)


def summarise(est, truth, ok, take_len=None):
    e = np.abs(est[ok][:, SCORED] - truth[ok][:, SCORED])
    g = gains(np.where(ok[:, None], est, np.nan), truth)
    return {
        "mae50": round(float(e.mean()), 4),
        "constant_share": constant_share(est, truth, ok, take_len) if take_len else None,
        "frames_scored": int(ok.sum()),
        "gains_below_0.85": {k: v for k, v in g.items() if v < 0.85},
        "gain_min": min(g.values()) if g else None,
    }


def run_face(name, face, rigs, camera, n, seed, with_mp, rgb: bool = False, landmarks: bool = False):
    """Track ``face``'s renders of the takes with each rig (and, ``rgb``, each rig colour-only from
    MediaPipe's landmarks: rows ``<rig>_rgb``; ``landmarks``, each rig on depth with MediaPipe's
    landmarks fused: rows ``<rig>_landmarks``; ``with_mp``: MediaPipe's blendshapes)."""
    with_mp = with_mp or rgb or landmarks
    truth, est = [], {k: [] for k in rigs} | ({"mediapipe": []} if with_mp else {})
    est |= {f"{k}_rgb": [] for k in rigs} if rgb else {}
    est |= {f"{k}_landmarks": [] for k in rigs} if landmarks else {}
    ok = {k: [] for k in est}
    rot, fit_ms, acq_ms = {k: [] for k in rigs}, {k: [] for k in rigs}, {k: [] for k in rigs}
    for ti, (take, W) in enumerate(takes(n)):
        frames, R = render(face, W, seed + ti, camera)
        truth.append(W)
        for k, rig in rigs.items():
            prior = PRIORS[take] if k.endswith("+prior") else LOPO[take] if "+prior_other" in k else None
            states, ms, acq = track(rig, frames, camera, prior)
            est[k].append(np.array([s.weights for s in states]))
            ok[k].append(np.array([s.tracked for s in states]))
            rot[k] += [
                pose.rotation_angle_deg(s.rotation, r) for s, r in zip(states, R, strict=True) if s.tracked
            ]
            fit_ms[k] += ms
            acq_ms[k] += acq
        if with_mp:
            m, uv = mediapipe(frames, landmarks=True)
            est["mediapipe"].append(m)
            ok["mediapipe"].append(np.isfinite(m).all(1))
            for k, rig in rigs.items() if rgb else ():
                states = track_rgb(rig, frames, uv, camera, other_performer_prior(take))
                est[f"{k}_rgb"].append(np.array([s.weights for s in states]))
                ok[f"{k}_rgb"].append(np.array([s.tracked for s in states]))
            for k, rig in rigs.items() if landmarks else ():
                states = track(rig, frames, camera, landmarks=uv)[0]
                est[f"{k}_landmarks"].append(np.array([s.weights for s in states]))
                ok[f"{k}_landmarks"].append(np.array([s.tracked for s in states]))
        print(f"  [{name} {camera} {take} done]", file=sys.stderr, flush=True)
    truth = np.concatenate(truth)
    res = {}
    for k in est:
        E, O = np.concatenate(est[k]), np.concatenate(ok[k])
        res[k] = summarise(E, truth, O, n) | {"tracked_fraction": round(float(O.mean()), 4)}
        if k in rigs:
            res[k] |= {
                "rot_err_deg_median": round(float(np.median(rot[k])), 3) if rot[k] else None,
                "fit_ms_median": round(float(np.median(fit_ms[k])), 3) if fit_ms[k] else None,
                "acquire_ms_median": round(float(np.median(acq_ms[k])), 2) if acq_ms[k] else None,
            }
    return res


def held_expressions(rig, seeds: int = 2) -> dict:
    """Each expression of ``EXPRESSIONS`` held still (see the module docstring): per tracker, the MAE of
    the held reading and the gains of the main shapes."""
    from facecap.prior import load_prior
    from facecap.synth import EXPRESSIONS, expression_weights

    names = [k for k in EXPRESSIONS if k not in ("talk", "tongue_out")]
    prior = load_prior()  # the built-in one, fitted on all 7 takes
    trackers = {
        "builtin": (FitParams(), None),
        "lambda_s_0.1": (FitParams(lambda_s=0.1), None),
        "builtin+prior": (replace(FitParams(), lambda_s=0.25, lambda_prior=1.0), prior),
    }
    R, t = pose.from_euler(0.2, -0.08, 0.03), np.array([0.01, -0.01, 0.6])
    rows = {k: [] for k in trackers}
    for seed in range(seeds):
        actor = SyntheticActor(rig, camera="d415", distance=0.6, seed=seed)
        for name in names:
            w = expression_weights(name).astype(np.float64)
            frames = [actor.render(w if i >= 4 else np.zeros(52), R, t) for i in range(28)]
            main_shapes = np.flatnonzero(w >= 0.5)
            for k, (fit, pr) in trackers.items():
                tr = Tracker(rig=rig, intrinsics=frames[0].depth_intrinsics,
                             config=TrackerConfig.for_camera("d415", fit=fit, prior=pr))  # fmt: skip
                est = np.median([tr.track(f).weights for f in frames][16:], axis=0)
                gain = float(np.mean(est[main_shapes] / w[main_shapes])) if len(main_shapes) else None
                rows[k].append((name, float(np.abs(est - w)[SCORED].mean()), gain))
    out = {}
    for k, r in rows.items():
        g = np.array([x[2] for x in r if x[2] is not None])
        out[k] = {
            "mae50": round(float(np.mean([x[1] for x in r])), 4),
            "main_gain_median": round(float(np.median(g)), 3),
            "main_gain_min": round(float(g.min()), 3),
            "held_below_0.85": f"{int((g < 0.85).sum())}/{len(g)}",
            "gain_by_expression": {
                n: round(float(np.mean([x[2] for x in r if x[0] == n])), 2)
                for n in names
                if any(x[0] == n and x[2] is not None for x in r)
            },
        }
    return {"expressions": len(names), "seeds": seeds} | out


def information(rig, n: int, every: int = 15) -> dict:
    """Per-frame Cramer-Rao standard deviation of each weight from depth alone (module docstring)."""
    from facecap._kernels import icp_rows, vertex_normals  # the fit's own rows, at the truth
    from facecap.fit import NP, Buffers, MaskModel
    from facecap.synth import DepthNoise, get_camera
    from facecap.tracker import max_points

    cam = get_camera("d415")
    model = MaskModel.from_rig(rig, max_points=max_points(TrackerConfig(), rig))
    buf = Buffers(len(model.sample))
    sds = []
    for ti, (_, W) in enumerate(takes(n)):
        Rs, ts = motion(n, ti)
        actor = SyntheticActor(rig, camera="d415", distance=0.6, seed=ti)  # the frames run_face scored
        for i in range(0, n, every):
            f, w = actor.render(W[i], Rs[i], ts[i], index=i), W[i].astype(np.float64)
            sigma = float(DepthNoise().sigma(float(ts[i][2]), cam.intrinsics.fx, cam.baseline))
            nr = vertex_normals(model.vertices(w), model.tris)
            intr = f.depth_intrinsics
            m = icp_rows(model.b0, w, nr, model.sample, Rs[i], ts[i], f.depth, intr.fx, intr.fy, intr.cx,
                         intr.cy, model.BT, 0.012, np.cos(np.radians(70.0)), 0.004, 0.0, 1.0 / sigma, np.inf,
                         buf.J, buf.r, buf.raw)  # fmt: skip
            J = buf.J[:m].astype(np.float64)
            H = J.T @ J + 1e-9 * np.eye(NP)
            S = H[6:, 6:] - H[6:, :6] @ np.linalg.solve(H[:6, :6], H[:6, 6:])  # pose marginalised
            sds.append(np.sqrt(np.diag(np.linalg.inv(S))))
    sd = np.median(sds, axis=0)
    order = sorted(SCORED, key=lambda k: -sd[k])
    return {
        "frames": len(sds),
        "sigma_mm": round(sigma * 1000, 2),
        "weight_sd_median_over_shapes": round(float(np.median(sd[SCORED])), 3),
        "shapes_with_sd_over_0.1": int((sd[SCORED] > 0.1).sum()),
        "weight_sd": {arkit.ARKIT_NAMES[k]: round(float(sd[k]), 3) for k in order},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=150, help="frames per take (default 150, 5 s at 30 fps)")
    ap.add_argument("--identities", type=int, default=3, help="unseen identities (default 3)")
    ap.add_argument("--quick", action="store_true", help="30 frames per take, one identity (smoke test)")
    ap.add_argument("--no-mediapipe", action="store_true")
    ap.add_argument("--no-held", action="store_true", help="skip the held-expression section")
    ap.add_argument("--rig", help="tracking rig: a built-in name or a file (default: the built-in rig)")
    ap.add_argument("--rig-b", help="a second rig file scored on the unseen identities (row 'rig_b')")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    n, k_id = (30, 1) if args.quick else (args.frames, args.identities)
    builtin = load_rig(args.rig)
    global PRIORS, LOPO
    full = take_weights()
    PRIORS, LOPO = loo_priors(full), other_performer_priors(full)
    rigs = {"builtin": builtin, "builtin+prior": builtin}
    if args.rig_b:
        rigs["rig_b"] = load_rig(args.rig_b)
    t0 = time.perf_counter()
    res = {"bench": "accuracy", "frames_per_take": n, "takes": 7, "rig": builtin.name, "faces": {}}
    own = {"builtin": builtin, "builtin+prior": builtin}
    own_lopo = own | {"builtin+prior_other_performer": builtin}
    res["faces"]["ict_d415"] = run_face("ict", builtin, own_lopo, "d415", n, 0, not args.no_mediapipe)
    res["faces"]["ict_d435"] = run_face("ict", builtin, own, "d435", n, 0, False)
    for i in range(1, k_id + 1):
        face = random_identity(builtin, seed=i)
        res["faces"][f"identity{i}_d415"] = run_face(f"identity{i}", face, rigs, "d415", n, 100 * i,
                                                     not args.no_mediapipe)  # fmt: skip
    if not args.no_held:
        res["held_expressions"] = held_expressions(builtin, seeds=1 if args.quick else 2)
    res["information"] = information(builtin, n)
    ids = [v for k, v in res["faces"].items() if k.startswith("identity")]
    res["identities_mean_mae50"] = {
        k: round(float(np.mean([v[k]["mae50"] for v in ids])), 4) for k in (ids[0] if ids else {})
    }
    res["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
