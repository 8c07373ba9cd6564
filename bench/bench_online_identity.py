"""Online identity refinement (``TrackerConfig(adapt_identity=True)``) beside the generic rig, same frames.

    python bench/bench_online_identity.py [--identities K] [--frames N] [--out FILE]

Each performer is :func:`facecap.synth.random_identity` of the built-in ICT rig (5-8 mm), in front of a
simulated D415 at 0.6 m, head turning within +-25 deg yaw and +-15 deg pitch. Two sessions per performer,
each tracked once with the generic rig and once with ``adapt_identity`` (the adapter's solve is waited for
where it starts, so that its timing does not depend on this machine's speed; ``solve_s`` is its time):

- ``rest``: 300 frames at rest, then a held smile with the jaw open (jawOpen 0.4, smiles 0.5; 12 frames,
  the first 4 not scored): ``neutral_mm`` (surface distance from the rig's neutral to the true one, median)
  and the held expression's weight MAE;
- ``takes``: the 7 real ARKit takes back to back (``--frames`` each at 30 fps): weight MAE excluding
  eyeLook* and tongueOut over all frames and over the frames after the swap. Also the ICT head itself
  (its own identity: what adaptation costs when there is nothing to fit, the takes' rest values being fused
  into its neutral).

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

import bench_accuracy as ba  # noqa: E402

from facecap import Tracker, TrackerConfig, arkit  # noqa: E402
from facecap.formats import load_rig  # noqa: E402
from facecap.metrics import neutral_error_mm  # noqa: E402
from facecap.synth import SyntheticActor, head_motion, random_identity  # noqa: E402

HELD = {"jawOpen": 0.4, "mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}


def render(face, W: np.ndarray, seed: int) -> list:
    R, t = head_motion(len(W), fps=30, seed=seed, max_angle_deg=25, max_pitch_deg=15, distance_m=0.6)
    actor = SyntheticActor(face, camera="d415", distance=0.6, seed=seed)
    return [f for f, _ in actor.frames(W, R, t, fps=30)]


def track(rig, frames: list, adapt: bool) -> tuple[np.ndarray, Tracker, int | None, float | None]:
    """(n, 52) weights, the tracker, the frame after which the fitted rig was used, the solve's seconds."""
    tr = Tracker(rig, frames[0].depth_intrinsics, TrackerConfig.for_camera("d415", adapt_identity=adapt))
    out, swap, solve_s = [], None, None
    for i, f in enumerate(frames):
        s = tr.track(f)
        out.append(s.weights if s.tracked else np.zeros(52, np.float32))
        ad = tr.adapter
        if ad is not None and ad.busy:
            t0 = time.perf_counter()
            ad._thread.join()
            solve_s, swap = round(time.perf_counter() - t0, 2), i  # the next frame tracks with it
    return np.array(out), tr, swap, solve_s


def mae(E: np.ndarray, T: np.ndarray) -> float:
    return round(float(np.abs(E[:, ba.SCORED] - T[:, ba.SCORED]).mean()), 4) if len(E) else float("nan")


def rest_session(rig, face, seed: int) -> dict:
    frames = render(face, np.zeros((300, 52)), seed)
    w = np.zeros(52)
    for k, v in HELD.items():
        w[arkit.INDEX[k]] = v
    Wh = np.tile(w, (12, 1))
    held = render(face, Wh, seed + 100)
    out = {}
    for name, adapt in (("generic", False), ("adapted", True)):
        _, tr, swap, solve_s = track(rig, frames, adapt)
        tr.reset()  # another shot: the same tracker, its rig fitted or not, acquires the face again
        E = np.array([tr.track(f).weights for f in held])
        row = {"neutral_mm": neutral_error_mm(tr.rig.neutral, face, rig)["median"],
               "held_mae": round(float(np.abs(E[4:] - Wh[4:]).mean()), 4)}  # fmt: skip
        if adapt:
            row |= {"solved_after_frames": swap, "solve_s": solve_s, "views": tr.rig.meta.get(
                "online_identity", {}).get("views"), "error": tr.adapter.error}  # fmt: skip
        out[name] = row
    return out


def takes_session(rig, face, frames_per_take: int, seed: int) -> dict:
    T = np.concatenate([W for _, W in ba.takes(frames_per_take)])
    frames = render(face, T, seed)
    G, *_ = track(rig, frames, False)
    A, _, swap, solve_s = track(rig, frames, True)
    after = slice(swap + 1, None) if swap is not None else slice(0, 0)  # same frames for both rows
    return {
        "generic": {"mae50": mae(G, T), "mae50_after_swap": mae(G[after], T[after])},
        "adapted": {"mae50": mae(A, T), "mae50_after_swap": mae(A[after], T[after]),
                    "solved_after_frames": swap, "solve_s": solve_s},
    }  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, default=3, help="unseen performers (default 3)")
    ap.add_argument("--frames", type=int, default=150, help="frames per real take (default 150)")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)
    rig = load_rig()
    res = {"rest": {}, "takes": {}}
    for k in range(a.identities):
        seed = 21 + 2 * k
        face = random_identity(rig, seed=seed)
        res["rest"][f"identity{seed}"] = rest_session(rig, face, seed)
        res["takes"][f"identity{seed}"] = takes_session(rig, face, a.frames, seed)
        print(f"identity {seed} done", file=sys.stderr, flush=True)
    res["takes"]["ict"] = takes_session(rig, rig, a.frames, 7)
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
