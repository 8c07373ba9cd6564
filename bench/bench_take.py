"""Benchmark: does take recording keep up with a 90 fps camera?

A producer paced at ``--fps`` (default 90) hands one FaceState per frame to
:class:`facecap.take.TakeRecorder` for ``--seconds`` seconds; optionally it also queues a raw 640x480 RGB-D
frame (fresh arrays each frame, as a camera delivers them) for ``raw.db3``. Reported per run: per-call cost
of ``write`` (and ``write_frame``), median / p99 / max in milliseconds; ``dropped_frames``: frames handed to
the recorder but missing on disk or in ``raw.db3`` afterwards; ``late_frames``: frames the producer loop
started more than one frame period late because earlier calls took too long (a camera with a one-frame
buffer would have overwritten them); for raw RGB-D the peak queue backlog and how long ``close`` waited for
the bag writer to drain. The baseline in the same run appends the same record bytes with ``np.save`` to a
buffered file (no CRC, no fsync).

    .venv/bin/python bench/bench_take.py                 # JSON on stdout
    .venv/bin/python bench/bench_take.py --seconds 3 --raw-seconds 0
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facecap.pose import from_euler
from facecap.state import FaceState
from facecap.take import TakeRecorder, load_take


def _states(n: int, fps: float) -> list[FaceState]:
    rng = np.random.default_rng(0)
    return [
        FaceState(timestamp=i / fps, weights=rng.random(52).astype(np.float32),
                  rotation=from_euler(*(0.2 * rng.standard_normal(3))), translation=np.array([0, 0, 0.6]),
                  tracked=True, quality=0.9, gaze=np.zeros((2, 2), np.float32), index=i, rms_mm=1.0)
        for i in range(n)
    ]  # fmt: skip


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    if not len(a):
        return {}
    return {"median_ms": round(float(np.median(a)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4),
            "max_ms": round(float(a.max()), 3), "calls": len(a)}  # fmt: skip


def _paced(n: int, fps: float, step) -> tuple[list[float], list[int]]:
    """Call step(i) at fps; return per-call ms and the frames started more than one period late."""
    period = 1.0 / fps
    cost, late = [], []
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due = t0 + i * period
        now = time.perf_counter()
        if now < due:
            time.sleep(max(0.0, due - now - 0.0005))
            while time.perf_counter() < due:
                pass
        elif now - due > period:
            late.append(i)
        a = time.perf_counter()
        step(i)
        cost.append((time.perf_counter() - a) * 1000)
    return cost, late


def run_recorder(root: Path, fps: float, seconds: float) -> dict:
    n = int(fps * seconds)
    states = _states(n, fps)
    rec = TakeRecorder(root / "take", fps=fps, start_timecode="00:00:00:00")
    cost, late = _paced(n, fps, lambda i: rec.write(states[i]))
    t = time.perf_counter()
    rec.close()
    close_ms = (time.perf_counter() - t) * 1000
    on_disk = len(load_take(root / "take"))
    return {"frames": n, "write": _stats(cost), "late_frames": len(late), "frames_on_disk": on_disk,
            "dropped_frames": n - on_disk, "close_ms": round(close_ms, 2)}  # fmt: skip


def run_baseline(root: Path, fps: float, seconds: float) -> dict:
    n = int(fps * seconds)
    recs = [np.frombuffer(TakeRecorder._pack(s), np.uint8) for s in _states(n, fps)]
    with open(root / "baseline.npy", "ab") as f:
        cost, late = _paced(n, fps, lambda i: np.save(f, recs[i]))
    return {"frames": n, "write": _stats(cost), "late_frames": len(late)}


def run_raw(root: Path, fps: float, seconds: float) -> dict:
    from facecap.frames import Frame, Intrinsics

    n = int(fps * seconds)
    states = _states(n, fps)
    intr = Intrinsics(width=640, height=480, fx=600.0, fy=600.0, cx=320.0, cy=240.0)
    rng = np.random.default_rng(1)
    depth0 = rng.uniform(0.4, 0.9, (480, 640)).astype(np.float32)
    color0 = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    rec = TakeRecorder(root / "raw_take", fps=fps, raw_rgbd=True)
    wf_cost, backlog = [], [0]

    def step(i: int) -> None:
        # a camera hands over new buffers every frame; copying them is the producer's cost, not timed
        frame = Frame(depth=depth0.copy(), depth_intrinsics=intr, color=color0.copy(), color_intrinsics=intr,
                      timestamp=i / fps, index=i)  # fmt: skip
        a = time.perf_counter()
        rec.write_frame(frame)
        wf_cost.append((time.perf_counter() - a) * 1000)
        rec.write(states[i])
        backlog[0] = max(backlog[0], rec._raw.backlog)

    cost, late = _paced(n, fps, step)
    t = time.perf_counter()
    rec.close()
    drain_s = time.perf_counter() - t
    take = load_take(root / "raw_take")
    raw_frames = int(take.meta.get("raw_rgbd_frames", -1))
    mb = (depth0.nbytes + color0.nbytes) / 2**20
    size = (root / "raw_take" / "raw.db3").stat().st_size / 2**20
    return {"frames": n, "write_plus_write_frame": _stats(cost), "write_frame": _stats(wf_cost),
            "late_frames": len(late), "late_frame_indices": late[:20], "frames_on_disk": len(take),
            "raw_frames_in_db3": raw_frames, "dropped_frames": (n - len(take)) + (n - raw_frames),
            "peak_backlog_frames": backlog[0], "peak_backlog_mb": round(backlog[0] * mb, 1),
            "close_drain_s": round(drain_s, 2), "bag_writer_fps": round(n / (seconds + drain_s), 1),
            "db3_mb": round(size, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fps", type=float, default=90.0)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the FaceState-only runs")
    ap.add_argument("--raw-seconds", type=float, default=5.0, help="length of the raw RGB-D run (0: skip)")
    args = ap.parse_args(argv)
    out = {"fps": args.fps, "python": platform.python_version(), "numpy": np.__version__}
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        out["take_recorder"] = run_recorder(root, args.fps, args.seconds)
        out["baseline_np_save"] = run_baseline(root, args.fps, args.seconds)
        if args.raw_seconds > 0:
            try:
                out["take_recorder_raw_rgbd_640x480"] = run_raw(root, args.fps, args.raw_seconds)
            except ImportError as e:
                out["take_recorder_raw_rgbd_640x480"] = {"skipped": str(e)}
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
