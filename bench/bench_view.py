"""What the live view (``--view``) costs the capture loop, beside the loop without it, same frames.

    python bench/bench_view.py [--frames N] [--rounds R] [--out FILE]

The capture loop (:func:`facecap.pipeline.run`, depth only, the built-in rig) paced at 90 fps over
``--frames`` synthetic D415 frames at 640x480, three ways in alternation: no view; the view with no
browser watching; the view with a client reading its MJPEG stream over 127.0.0.1 (as a browser would).
Reports each way's median per-frame fit time and latency, the frames it could not keep up with, and the
pictures the client received per second, plus the time to draw and encode one picture. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facecap import Tracker, TrackerConfig  # noqa: E402
from facecap.formats import load_rig  # noqa: E402
from facecap.pipeline import run  # noqa: E402
from facecap.synth import SyntheticActor, head_motion, procedural_performance  # noqa: E402
from facecap.view import Overlay, ViewServer, draw_view  # noqa: E402

FPS = 90.0


def _client(url: str, stop: threading.Event, got: list) -> None:
    """Read the MJPEG stream until ``stop``: the arrival time of each picture into ``got``."""
    with urllib.request.urlopen(url, timeout=30) as r:
        while not stop.is_set():
            if r.readline() != b"--frame\r\n":
                continue
            n = 0
            while (line := r.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            r.read(n + 2)
            got.append(time.perf_counter())


def one_run(rig, frames, mode: str) -> dict:
    tracker = Tracker(rig, frames[0].depth_intrinsics, TrackerConfig.for_camera("d415"))
    view = None if mode == "none" else ViewServer(0, rig=rig)
    got: list = []
    stop = threading.Event()
    client = None
    try:
        if mode == "watched":
            view.show(frames[0], tracker.track(frames[0]))  # the stream starts with a picture
            client = threading.Thread(target=_client, args=(view.url + "stream.mjpg", stop, got), daemon=True)
            client.start()
            time.sleep(0.5)
        res = run(frames, tracker, None, realtime=True, view=view)
    finally:
        stop.set()
        if view is not None:
            view.close()
        if client is not None:
            client.join(5)
    t = np.array(got)
    t = t[t >= t[0] + 0.5] if len(t) else t  # after the stream's start
    keys = ("fps", "fit_ms_median", "latency_ms_median", "latency_ms_p95")
    return {k: res[k] for k in keys} | {
        "pictures_per_s": (len(t) - 1) / (t[-1] - t[0]) if len(t) > 2 else 0.0
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=450, help="frames per run (default 450: 5 s at 90 fps)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each way, alternating (default 3)")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args(argv)
    rig = load_rig()
    n = a.frames
    actor = SyntheticActor(rig, camera="d415", seed=0)
    R, t = head_motion(n, fps=FPS, seed=0, max_angle_deg=20, max_pitch_deg=10, distance_m=0.6)
    W = procedural_performance(n, fps=FPS, seed=0)
    frames = [f for f, _ in actor.frames(W, R, t, fps=FPS)]
    ov = Overlay(rig)
    st = Tracker(rig, frames[0].depth_intrinsics).track(frames[0])
    draw = []
    import cv2

    for _ in range(20):
        t0 = time.perf_counter()
        cv2.imencode(".jpg", draw_view(frames[0], st, ov)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
        draw.append((time.perf_counter() - t0) * 1e3)
    runs: dict = {"none": [], "unwatched": [], "watched": []}
    for _ in range(a.rounds):
        for mode in runs:
            runs[mode].append(one_run(rig, frames, mode))
    summary = {
        mode: {k: round(float(np.median([r[k] for r in rs])), 2) for k in rs[0]} for mode, rs in runs.items()
    }
    res = {"bench": "view", "fps_paced": FPS, "frames": n, "rounds": a.rounds,
           "draw_and_encode_ms_median": round(float(np.median(draw)), 2), "median": summary,
           "fit_ratio_watched_vs_none": round(summary["watched"]["fit_ms_median"]
                                               / summary["none"]["fit_ms_median"], 2),
           "runs": runs}  # fmt: skip
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
