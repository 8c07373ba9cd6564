"""`facecap track FILE`: run the tracker over a RealSense recording and write weights and pose per frame."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .arkit import ARKIT_NAMES
from .state import FaceState

POSE_COLUMNS = ("head_yaw", "head_pitch", "head_roll", "tx", "ty", "tz")
COLUMNS = ("frame", "timestamp", "tracked", "quality", *ARKIT_NAMES, *POSE_COLUMNS)


def state_row(state: FaceState) -> dict:
    """One output row: frame, timestamp (s), tracked, quality, 52 weights, head yaw/pitch/roll (rad),
    translation (m)."""
    ypr = state.euler() if state.tracked else np.full(3, np.nan)
    t = state.translation if state.tracked else np.full(3, np.nan)
    row = {
        "frame": int(state.index),
        "timestamp": round(float(state.timestamp), 6),
        "tracked": int(state.tracked),
        "quality": round(float(state.quality), 4),
    }
    row |= {n: round(float(w), 5) for n, w in zip(ARKIT_NAMES, state.weights, strict=True)}
    row |= {k: round(float(v), 6) for k, v in zip(POSE_COLUMNS, (*ypr, *t), strict=True)}
    return row


def write_states(states: Iterable[FaceState], out: str | Path, fmt: str | None = None) -> int:
    """Write FaceStates as CSV (header + one row per frame) or JSON lines, flushing every row.

    A crash or Ctrl-C loses nothing already written. Returns the number of rows.
    """
    out = Path(out)
    fmt = fmt or {".csv": "csv", ".jsonl": "jsonl"}.get(out.suffix.lower())
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"cannot tell the output format from {out.name!r}: use .csv or .jsonl, or --format")
    n = 0
    with open(out, "w", newline="", buffering=1) as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS) if fmt == "csv" else None
        if writer:
            writer.writeheader()
        for s in states:
            row = state_row(s)
            if writer:
                writer.writerow(row)
            else:
                f.write(
                    json.dumps(
                        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
                    )
                    + "\n"
                )
            n += 1
    return n


def track_file(
    path: str | Path, out: str | Path, *, rig=None, fmt: str | None = None, progress: bool = True
) -> dict:
    """Track every frame of a ``.bag``/``.db3`` recording and write the result to ``out``.

    Returns ``{"frames": n, "tracked_fraction": f, "dropped": d}``, ``d`` the depth frames without a colour
    frame to align to (:attr:`facecap.realsense.RecordingSource.dropped`).
    """
    from tqdm import tqdm

    from .formats import load_rig
    from .realsense import RecordingSource
    from .rig import Rig
    from .tracker import Tracker, TrackerConfig

    src = RecordingSource(path)
    rig = rig if isinstance(rig, Rig) else load_rig(rig)
    config = TrackerConfig.for_camera(str(src.info().get("device") or ""))
    tracker = None
    tracked = []
    total = src.frame_count

    def states():
        nonlocal tracker
        with tqdm(total=total, unit="frame", desc="tracking", disable=not progress) as bar:
            for frame in src:
                if tracker is None:
                    tracker = Tracker(rig=rig, intrinsics=frame.depth_intrinsics, config=config)
                s = tracker.track(frame)
                tracked.append(s.tracked)
                bar.update(1)
                yield s

    n = write_states(states(), out, fmt)
    return {
        "frames": n,
        "tracked_fraction": float(np.mean(tracked)) if tracked else 0.0,
        "dropped": src.dropped,
    }
