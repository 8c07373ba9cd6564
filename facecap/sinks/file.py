"""The per-frame file layout (CSV and JSON), one for every command: ``facecap track`` writes it frame by frame
through :class:`FileSink`, ``facecap export --format csv|json|jsonl`` writes a take with the same rows.

CSV columns (:data:`CSV_COLUMNS`): ``frame`` (source frame number), ``time`` (s since the first frame),
``timecode``, ``tracked`` (0/1), ``quality``, the 52 canonical ARKit names, ``head_yaw``, ``head_pitch``,
``head_roll`` (radians, :func:`facecap.pose.head_euler`), ``qx, qy, qz, qw`` (rotation quaternion), ``tx, ty,
tz`` (metres), ``left_eye_yaw, left_eye_pitch, right_eye_yaw, right_eye_pitch`` (radians), ``rms_mm``.
float32 channels are printed with 9 significant digits (they read back bit-exact), float64 ones with
Python's shortest round-trip repr. Poses map rig space into the OpenCV camera frame (``x_cam = R x_rig + t``).

JSON frames (:func:`json_frame`): ``{"frame", "time", "timecode", "tracked", "quality", "weights": [52],
"rotation": [[3] x 3], "translation": [3], "head_euler": [3], "gaze": [[yaw, pitch] left, right],
"rms_mm"}``, non-finite numbers as ``null``. JSON Lines files start with a header object
(:func:`json_header`, ``"format": "facecap-take-jsonl"``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from .. import arkit
from ..pose import head_euler, quaternions_xyzw
from ..state import FaceState
from ..timecode import frames_to_timecode, timecode_to_frames
from .base import Sink

CSV_POSE_COLUMNS = (
    "head_yaw", "head_pitch", "head_roll", "qx", "qy", "qz", "qw", "tx", "ty", "tz",
    "left_eye_yaw", "left_eye_pitch", "right_eye_yaw", "right_eye_pitch", "rms_mm",
)  # fmt: skip
CSV_COLUMNS = ("frame", "time", "timecode", "tracked", "quality", *arkit.ARKIT_NAMES, *CSV_POSE_COLUMNS)
"""Header of the per-frame CSV."""

POSE_NOTE = "rig -> OpenCV camera: x_cam = R @ x_rig + t (metres); head_euler = yaw, pitch, roll (rad)"


def _f32(x: float) -> str:
    return f"{x:.9g}"


def _f32_list(a) -> list:
    """float32 values -> floats that print short and read back bit-exact (nested like ``a``)."""
    a = np.asarray(a, dtype=np.float32)
    return [float(f"{v:.9g}") for v in a.ravel().tolist()] if a.ndim <= 1 else [_f32_list(r) for r in a]


def _finite(x):
    """JSON-safe value: non-finite floats become None (recursively for lists)."""
    if isinstance(x, list):
        return [_finite(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _euler(r: np.ndarray) -> list[float]:
    return head_euler(r).tolist() if np.isfinite(r).all() else [math.nan] * 3


def csv_row(state: FaceState, time: float, timecode: str) -> list:
    """One CSV row (:data:`CSV_COLUMNS`) of ``state``; ``time`` seconds since the first frame."""
    r = np.asarray(state.rotation, dtype=np.float64)
    q = quaternions_xyzw(r[None])[0]
    pose = [*map(repr, _euler(r)), *map(repr, q.tolist()),
            *map(repr, np.asarray(state.translation, dtype=np.float64).tolist())]  # fmt: skip
    gaze = np.asarray(state.gaze, dtype=np.float32).reshape(4).tolist()
    weights = np.asarray(state.weights, dtype=np.float32).tolist()
    return [int(state.index), repr(float(time)), timecode, int(state.tracked),
            _f32(float(np.float32(state.quality))), *map(_f32, weights), *pose, *map(_f32, gaze),
            _f32(float(np.float32(state.rms_mm)))]  # fmt: skip


def json_frame(state: FaceState, time: float, timecode: str) -> dict:
    """One JSON frame object of ``state`` (module docstring); non-finite numbers are None."""
    r = np.asarray(state.rotation, dtype=np.float64)
    d = {
        "frame": int(state.index),
        "time": float(time),
        "timecode": timecode,
        "tracked": bool(state.tracked),
        "quality": _f32_list([state.quality])[0],
        "weights": _f32_list(state.weights),
        "rotation": r.tolist(),
        "translation": np.asarray(state.translation, dtype=np.float64).tolist(),
        "head_euler": _euler(r),
        "gaze": _f32_list(np.asarray(state.gaze).reshape(2, 2)),
        "rms_mm": _f32_list([state.rms_mm])[0],
    }
    return {k: _finite(v) for k, v in d.items()}


def json_header(fmt: str, fps: float, n_frames: int | None, meta: dict) -> dict:
    """The header object of a JSON / JSON Lines file (``fmt``: ``"facecap-take-json"`` or ``-jsonl``)."""
    return {
        "format": fmt,
        "version": 1,
        "fps": fps,
        "n_frames": n_frames,
        "blendshapes": list(arkit.ARKIT_NAMES),
        "pose": POSE_NOTE,
        "meta": json.loads(json.dumps(meta, default=str)),
    }


class FileSink(Sink):
    """Writes every state as one CSV row or JSON line, flushed at once (a crash loses nothing written).

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.jsonl`` or ``.ndjson`` (or give ``fmt``). Overwritten if it exists.
    fps : float
        Timecode rate: frame ``i`` is labelled ``start_timecode + round((t_i - t_0) * fps)`` while
        timestamps increase strictly; once they stall or go back, each frame one more than the last.
    start_timecode : str
        SMPTE ``HH:MM:SS:FF`` of the first frame.
    fmt : {"csv", "jsonl"}, optional
    meta : dict, optional
        Stored in the JSON Lines header.
    """

    def __init__(self, path, fps: float = 30.0, *, start_timecode: str = "00:00:00:00",
                 fmt: str | None = None, meta: dict | None = None) -> None:  # fmt: skip
        path = Path(path)
        fmt = fmt or {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower())
        if fmt not in ("csv", "jsonl"):
            raise ValueError(
                f"cannot tell the output format from {path.name!r}: use .csv or .jsonl, or --format"
            )
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        self.path, self.fmt, self.fps, self.url = path, fmt, float(fps), f"file://{os.fspath(path)}"
        self._start = timecode_to_frames(start_timecode, fps)
        self._t0 = self._prev_t = None
        self._offset, self._counting = 0, False
        self.frames = 0
        self._f = open(path, "w", newline="", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed in close()
        if fmt == "csv":
            self._csv = csv.writer(self._f, lineterminator="\n")
            self._csv.writerow(CSV_COLUMNS)
        else:
            self._f.write(json.dumps(json_header("facecap-take-jsonl", self.fps, None, meta or {})) + "\n")

    def _clock(self, ts: float) -> tuple[float, str]:
        if self._t0 is None:
            self._t0, self._offset = ts, 0
        elif not self._counting and math.isfinite(ts) and ts > self._prev_t:
            self._offset = round((ts - self._t0) * self.fps)
        else:  # a clock that stalls or goes back: count frames from here on
            self._counting = True
            self._offset += 1
        self._prev_t = ts
        return ts - self._t0, frames_to_timecode(self._start + self._offset, self.fps)

    def send(self, state: FaceState) -> None:
        if self._f.closed:
            raise RuntimeError(f"{self!r} is closed")
        if not isinstance(state, FaceState):
            raise TypeError(f"send() takes a facecap.state.FaceState, got {type(state).__name__}")
        time, tc = self._clock(float(state.timestamp))
        if self.fmt == "csv":
            self._csv.writerow(csv_row(state, time, tc))
        else:
            self._f.write(json.dumps(json_frame(state, time, tc), allow_nan=False) + "\n")
        self.frames += 1

    def close(self) -> None:
        self._f.close()

    @property
    def stats(self) -> dict:
        return {
            "url": self.url,
            "frames": self.frames,
            "datagrams_sent": 0,
            "datagrams_failed": 0,
            "errors": {},
        }


__all__ = ["CSV_COLUMNS", "CSV_POSE_COLUMNS", "FileSink", "csv_row", "json_frame", "json_header"]
