"""Actor calibration on performers the rig has not seen: neutral fit, solve time, tracking with the actor.

    python bench/bench_calibration.py [--identities K] [--frames N] [--style S] [--mediapipe] [--rgb]
                                      [--landmarks] [--out FILE]

Each performer is :func:`facecap.synth.random_identity` of the built-in ICT rig (5-8 mm smooth shape
changes, expression style: each delta scaled in 1 +- ``style`` and smoothly warped). The performer does
the calibration protocol (:data:`facecap.calibration.PROTOCOL`) in front of a simulated D415 at 0.6 m;
:class:`facecap.calibration.Calibrator` turns those frames into an actor rig. Reported, same run:

- ``neutral_mm``: surface distance from the fitted neutral to the performer's true neutral over the
  tracked face region (median, p90; after the best rigid alignment, as the actor's frame is its own), and
  the same for the generic rig;
- ``solve_s``: :meth:`Calibrator.solve` time; ``trimesh``: trimesh's ``registration.nricp_amberg`` on the
  same template and the same fused target (time, surface distance);
- tracking the 7 real takes (``--frames`` each, head motion +-20/10 deg): weight MAE excluding eyeLook* and
  tongueOut with the generic rig and with the calibrated actor (and MediaPipe's blendshapes with
  ``--mediapipe``; with ``--rgb`` also both rigs in colour-only mode, from MediaPipe's landmarks on the
  same frames: rows ``generic_rgb``, ``actor_rgb``; with ``--landmarks`` both rigs on depth with those
  landmarks fused, the tracker's default landmark weights: rows ``generic_landmarks``,
  ``actor_landmarks``).
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

import bench_accuracy as ba  # noqa: E402

from facecap.calibration import PROTOCOL, Calibrator  # noqa: E402
from facecap.formats import load_rig  # noqa: E402
from facecap.metrics import neutral_error_mm  # noqa: E402
from facecap.synth import SyntheticActor, protocol_performance, random_identity  # noqa: E402


def trimesh_baseline(rig, cal, truth) -> dict:
    """trimesh's Amberg NICP from the generic face to the fused neutral cloud of the same frames."""
    import trimesh
    from trimesh.registration import nricp_amberg

    cloud, _, idx, tris = cal.fused
    src = trimesh.Trimesh(rig.neutral[idx].astype(np.float64), tris, process=False)
    t0 = time.perf_counter()
    out = nricp_amberg(src, trimesh.PointCloud(cloud), distance_threshold=0.01, use_faces=False)
    dt = time.perf_counter() - t0
    full = rig.neutral.astype(np.float64).copy()
    full[idx] = out
    return {"seconds": round(dt, 2), "neutral_mm": neutral_error_mm(full, truth, rig)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, default=2, help="unseen performers (default 2)")
    ap.add_argument("--frames", type=int, default=150, help="frames per real take (default 150)")
    ap.add_argument("--style", type=float, default=0.4, help="expression style spread (default 0.4)")
    ap.add_argument("--mediapipe", action="store_true", help="also score MediaPipe's blendshapes")
    rgb_help = "also track each rig colour-only, from MediaPipe's landmarks (implies --mediapipe)"
    ap.add_argument("--rgb", action="store_true", help=rgb_help)
    lmk_help = "also track each rig on depth with MediaPipe's landmarks fused (implies --mediapipe)"
    ap.add_argument("--landmarks", action="store_true", help=lmk_help)
    ap.add_argument("--no-trimesh", action="store_true", help="skip the trimesh baseline")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    rig = load_rig()
    res = {"bench": "calibration", "camera": "d415", "style": args.style, "frames_per_take": args.frames,
           "performers": {}}  # fmt: skip
    ba.PRIORS = {}
    for i in range(1, args.identities + 1):
        truth = random_identity(rig, seed=i, style=args.style)
        W, R, t, labels = protocol_performance(PROTOCOL, seed=i)
        actor = SyntheticActor(truth, camera="d415", distance=0.6, seed=1000 + i)
        frames = [f for f, _ in actor.frames(W, R, t, fps=30)]
        cal = Calibrator(frames[0].depth_intrinsics, camera="d415")
        for f, lab in zip(frames, labels, strict=True):
            if lab is not None:
                cal.add(lab, f)
        t0 = time.perf_counter()
        act = cal.solve()
        solve_s = time.perf_counter() - t0
        row = {
            "neutral_mm": {
                "generic": neutral_error_mm(rig.neutral, truth, rig),
                "actor": neutral_error_mm(act.neutral, truth, rig),
            },  # fmt: skip
            "solve_s": round(solve_s, 2),
            "missing_steps": act.meta["calibration"]["missing"],
        }
        if not args.no_trimesh:
            row["trimesh"] = trimesh_baseline(rig, cal, truth)
        rigs = {"generic": rig, "actor": act}
        row["tracking"] = ba.run_face(
            f"performer{i}",
            truth,
            rigs,
            "d415",
            args.frames,
            100 * i,
            args.mediapipe,
            args.rgb,
            args.landmarks,
        )
        res["performers"][f"performer{i}"] = row
        print(f"  [performer{i} done]", file=sys.stderr, flush=True)
    perf = list(res["performers"].values())
    res["mean_mae50"] = {k: round(float(np.mean([p["tracking"][k]["mae50"] for p in perf])), 4)
                         for k in perf[0]["tracking"]}  # fmt: skip
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
