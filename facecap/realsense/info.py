"""Summaries of recordings (``facecap info FILE``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .container import check_recording_path, file_index, find_stream, probe_recording


def info_from_probe(path: Path, probe: dict, index: dict | None) -> dict:
    streams = [{k: v for k, v in s.items() if k != "index"} for s in probe["streams"]]
    depth, color = find_stream(probe["streams"], "depth"), find_stream(probe["streams"], "color")
    frames = None if index is None else index["frames"]
    nominal = depth["fps"] if depth else None
    span = probe["playback_duration_s"]  # first to last frame by the file's message times
    if index is not None and index["first_ms"] is not None and index["last_ms"] is not None:
        span = (index["last_ms"] - index["first_ms"]) / 1000.0  # the same by the frames' own timestamps
    duration = span + 1.0 / nominal if (nominal and frames) else span
    aligned = None
    if depth and color:
        ex = probe["depth_to_color"]
        same_pose = ex is None or (
            np.allclose(ex["rotation"], np.eye(3)) and np.allclose(ex["translation"], 0)
        )
        aligned = bool(same_pose and depth.get("intrinsics") == color.get("intrinsics"))
    return {
        "path": str(path),
        "format": "ROS2 .db3" if path.suffix.lower() == ".db3" else "ROS1 .bag",
        "size_bytes": path.stat().st_size,
        "device": probe["device"],
        "streams": streams,
        "resolution": [depth["width"], depth["height"]] if depth and "width" in depth else None,
        "fps": nominal,
        "frames": frames,
        "duration_s": duration,
        "depth_scale": probe["depth_scale"],
        "aligned": aligned,
        "depth_to_color": probe["depth_to_color"],
    }


def recording_info(path: str | os.PathLike) -> dict:
    """Summary of a RealSense recording without decoding its images.

    Returns
    -------
    dict
        ``path``, ``format`` ("ROS2 .db3" / "ROS1 .bag"), ``size_bytes``, ``device`` (camera name),
        ``streams`` (list of dicts: stream, format, fps, width, height, intrinsics), ``resolution`` [w, h] and
        ``fps`` of the depth stream, ``frames`` (depth frames, None when the index cannot tell),
        ``duration_s`` (first to last frame plus one frame period: 300 frames at 30 fps last 10 s),
        ``depth_scale`` (metres per z16 step), ``aligned`` (depth and color share a camera; None without
        color), ``depth_to_color`` (rotation, translation or None).

    Raises
    ------
    FileNotFoundError, ValueError (extension), RecordingError (damaged or not a RealSense file).
    """
    p = check_recording_path(path)
    return info_from_probe(p, probe_recording(p), file_index(p))
