"""Playback and write speed of RealSense recordings (facecap.realsense), beside raw pyrealsense2.

Writes a synthetic 640x480 depth z16 + color rgb8 recording (.db3, in a temp dir) with
``write_recording`` (its default raw images, and once more with ``compress=True``, librealsense's lossless
PNG), then plays each back several times:

- facecap: ``read_recording`` -> Frame (depth float32 metres, RGB copy, intrinsics, timestamps);
- baseline: a raw ``rs.pipeline`` playback of the same file, real time off, frames touched but not copied
  or converted;
- open3d: ``open3d.t.io.RSBagReader`` if it can open the file (reported when it cannot).

It also times facecap's per-frame conversion alone (z16 -> float metres, color copy, Frame checks) to show
it does not dominate. Prints one JSON object to stdout; progress goes to stderr.

    .venv/bin/python bench/bench_playback.py [--frames 300] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facecap.frames import Frame, Intrinsics
from facecap.realsense import read_recording, write_recording

W, H, FPS = 640, 480, 30
TARGET_FPS = 90.0


def synthetic_frames(n: int, pool: int = 30, seed: int = 0):
    """n frames cycling through `pool` distinct seeded images: a head-sized sphere before a wall, 1 mm noise,
    holes; color gradients with camera-like noise. Cycling keeps memory small; timestamps stay unique."""
    rng = np.random.default_rng(seed)
    k = Intrinsics(W, H, 615.0, 615.0, 319.5, 239.5, "brown_conrady")
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    images = []
    for i in range(pool):
        z = 0.9 + 0.0003 * (u - W / 2)
        cx, r = W * (0.45 + 0.004 * i), 0.3 * H
        q = 1 - ((u - cx) ** 2 + (v - H / 2) ** 2) / r**2
        z = np.where(q > 0, 0.6 - 0.09 * np.sqrt(np.clip(q, 0, 1)), z) + rng.normal(0, 0.001, z.shape)
        z[rng.random(z.shape) < 0.02] = 0
        rgb = np.stack([u * 255 / W, v * 255 / H, np.full_like(u, 4.0 * i)], axis=-1)
        rgb = np.clip(rgb + rng.normal(0, 3, rgb.shape), 0, 255).astype(np.uint8)
        images.append((z.astype(np.float32), rgb))
    for i in range(n):
        z, rgb = images[i % pool]
        yield Frame(z, k, rgb, k, timestamp=i / FPS, index=i)


def facecap_fps(path: Path) -> tuple[float, int]:
    t = time.perf_counter()
    n = 0
    for frame in read_recording(path):
        n += 1
        assert frame.color is not None
    return n / (time.perf_counter() - t), n


def raw_pipeline_fps(path: Path) -> tuple[float, int]:
    """pyrealsense2 alone: pipeline playback with real time off, frames fetched but not converted."""
    from facecap.camera_access import import_pyrealsense2

    rs = import_pyrealsense2()
    cfg = rs.config()
    cfg.enable_device_from_file(str(path), repeat_playback=False)
    pipe = rs.pipeline()
    cfg.resolve(rs.pipeline_wrapper(pipe)).get_device().as_playback().set_real_time(False)
    t = time.perf_counter()
    profile = pipe.start(cfg)
    playback = profile.get_device().as_playback()
    n, idle = 0, 0
    while idle < 4:
        ok, fs = pipe.try_wait_for_frames(50)
        if not ok:
            idle += playback.current_status() == rs.playback_status.stopped
            continue
        idle = 0
        d, c = fs.get_depth_frame(), fs.get_color_frame()
        if d and c:
            np.asanyarray(d.get_data())  # a view, no copy
            np.asanyarray(c.get_data())
            n += 1
    dt = time.perf_counter() - t - 4 * 0.05  # the end-of-file polls are not playback
    pipe.stop()
    return n / dt, n


def open3d_fps(path: Path) -> tuple[float | None, str | None]:
    try:
        from facecap.camera_access import import_open3d

        o3d = import_open3d()
    except ImportError as e:
        return None, f"open3d not importable: {e}"
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)  # its warnings go to stdout
    reader = o3d.t.io.RSBagReader()
    if not reader.open(str(path)):
        return None, "open3d.t.io.RSBagReader.open() returned False (it does not read this file)"
    t = time.perf_counter()
    n = 0
    while not reader.is_eof():
        reader.next_frame()
        n += 1
    reader.close()
    return n / (time.perf_counter() - t), None


def conversion_ms(repeats: int = 200) -> float:
    """facecap's own work per decoded 640x480 pair: z16 -> float32 metres, RGB copy, Frame checks."""
    rng = np.random.default_rng(1)
    z16 = rng.integers(300, 1200, (H, W), dtype=np.uint16)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    k = Intrinsics(W, H, 615.0, 615.0, 319.5, 239.5)
    t = time.perf_counter()
    for i in range(repeats):
        depth = np.multiply(z16, np.float32(0.001), dtype=np.float32)
        Frame(depth, k, rgb.copy(), k, timestamp=float(i), index=i)
    return (time.perf_counter() - t) / repeats * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3, help="playback runs per reader (median reported)")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="facecap-bench-") as tmp:
        for compress in (False, True):
            path = Path(tmp) / f"bench{'_png' if compress else ''}.db3"
            print(f"writing {args.frames} frames {W}x{H} (compress={compress}) ...", file=sys.stderr)
            t = time.perf_counter()
            written = write_recording(path, synthetic_frames(args.frames), fps=FPS, compress=compress)
            write_fps = written / (time.perf_counter() - t)
            runs, raw = [], []
            for r in range(args.runs):
                fps, n = facecap_fps(path)
                assert n == written, f"read {n} of {written} frames"
                runs.append(fps)
                raw.append(raw_pipeline_fps(path)[0])
                print(f"  run {r}: facecap {fps:.0f} fps, raw pipeline {raw[-1]:.0f} fps", file=sys.stderr)
            fps_median, raw_median = statistics.median(runs), statistics.median(raw)
            results[compress] = {
                "frames": written,
                "fps_median": round(fps_median, 1),
                "fps_runs": [round(f, 1) for f in runs],
                "baseline_raw_fps": round(raw_median, 1),
                "ratio": round(fps_median / raw_median, 3),
                "write_fps": round(write_fps, 1),
                "file_mb": round(path.stat().st_size / 1e6, 1),
            }
            if not compress:
                o3d_fps, o3d_error = open3d_fps(path)
    conv = conversion_ms()
    main_result = results[False]  # write_recording's default: raw images
    result = {
        "bench": "playback",
        "resolution": [W, H],
        **main_result,
        "target_fps": TARGET_FPS,
        "meets_target": main_result["fps_median"] >= TARGET_FPS,
        "conversion_ms_per_frame": round(conv, 3),
        "conversion_share": round(conv * main_result["fps_median"] / 1000, 3),
        "png_compressed": results[True],
        "open3d_fps": None if o3d_fps is None else round(o3d_fps, 1),
        "open3d_error": o3d_error,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
