"""Reading a take back: :func:`load_take`, which recovers every intact frame of a damaged or unclosed take.

Every chunk file is scanned record by record (:mod:`facecap.take.recover`): a damaged record is skipped and
counted, never the frames after it; chunks are ordered by their own headers; a missing or broken
``take.json`` is rebuilt from the chunks. What was read is compared with what ``take.json`` recorded, and
anything missing is said in a :class:`TakeRecoveryWarning` (frame ranges) and in
``take.meta["recovery"]``. :func:`as_take` also accepts a Live Link ``.csv``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..timecode import timecodes_from_timestamps
from .format import FORMAT_NAME, FORMAT_VERSION, MAX_FPS, TakeMetaError, read_meta
from .model import Take
from .recover import CHUNK_GLOB, TakeScan, format_ranges, scan_take

COMMON_FPS = (23.976, 24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0, 90.0, 100.0, 120.0)


class TakeRecoveryWarning(UserWarning):
    """A take was read only partly (damaged, truncated or missing chunks or records), was never closed,
    or its ``take.json`` had to be rebuilt."""


def estimate_fps(timestamps: np.ndarray) -> float | None:
    """Frame rate from frame timestamps (seconds): the median step, snapped to a common rate within 1 %."""
    d = np.diff(np.asarray(timestamps, np.float64))
    d = d[np.isfinite(d) & (d > 0)]
    if not len(d):
        return None
    fps = 1.0 / float(np.median(d))
    near = min(COMMON_FPS, key=lambda r: abs(r - fps))
    fps = near if abs(near - fps) <= 0.01 * near else fps
    return fps if 0 < fps <= MAX_FPS else None


def recovery_summary(scan: TakeScan, meta_rebuilt: bool) -> dict:
    """The ``meta["recovery"]`` entry: recorded / recovered / lost frames and what was damaged."""
    return {
        "recorded": scan.expected,
        "recovered": int(len(scan.records)),
        "lost": scan.lost_frames,
        "lost_ranges": [[a, b - 1] for a, b in scan.lost],
        "problems": list(scan.problems),
        "meta_rebuilt": bool(meta_rebuilt),
    }


def load_take(path: str | Path) -> Take:
    """Read a take directory written by :class:`facecap.take.TakeRecorder`, recovering what is intact.

    Every intact record of every chunk is read (see the module docstring). A take that lost frames, was
    never closed (crash, SIGKILL) or had to rebuild its ``take.json`` loads with one
    :class:`TakeRecoveryWarning` that says so; ``take.meta["recovery"]`` holds the counts and the lost
    frame ranges (frame numbers from 0 in recording order), and ``take.summary()["complete"]`` is true
    only when nothing is missing.

    Raises
    ------
    FileNotFoundError
        No such directory, or it holds neither ``take.json`` nor chunk files.
    ValueError
        A file instead of a folder, ``take.json`` of an unsupported version, or nothing recoverable
        from a broken ``take.json``.
    """
    path = Path(path)
    rebuilt = None
    try:
        meta, problems = read_meta(path)
    except TakeMetaError as e:
        if not any(path.glob(CHUNK_GLOB)):
            if not (path / "take.json").exists():
                raise FileNotFoundError(
                    f"{path} is not a facecap take: take.json is missing and there are no frames-*.bin "
                    "chunks (was the folder copied incompletely?)"
                ) from e
            raise ValueError(f"{path}: {e} and there are no frames-*.bin chunks to rebuild it from") from e
        rebuilt, problems = str(e), []
        meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "complete": False}
    rec = meta.get("record") or {}
    scan = scan_take(path, rec.get("chunk_frames"), meta.get("frames"))
    recs = scan.records
    n = len(recs)
    ts = recs["timestamp"].astype(np.float64)
    if "fps" not in meta:
        fps = estimate_fps(ts)
        if fps is None:
            raise ValueError(
                f"take {path}: take.json gives no usable fps and the {n} recovered frames cannot tell it; "
                'add "fps": <rate> to take.json'
            )
        meta["fps"] = fps
        problems.append(f"fps {fps:g} estimated from the frame timestamps")
    if rebuilt is not None:
        meta["frames_recovered_from_chunks"] = n
        problems.insert(0, f"{rebuilt}; rebuilt from the chunks")
    fps = float(meta["fps"])
    meta["recovery"] = recovery_summary(scan, rebuilt is not None)
    meta["recovery"]["problems"] = problems + meta["recovery"]["problems"]
    start = meta.get("start_timecode") or "00:00:00:00"
    try:
        timecodes = timecodes_from_timestamps(start, ts, fps)
    except ValueError:
        meta["recovery"]["problems"].append(f"start_timecode {start!r} is not HH:MM:SS:FF; 00:00:00:00 used")
        timecodes = timecodes_from_timestamps("00:00:00:00", ts, fps)
    if meta["recovery"]["problems"] or scan.lost:
        lost = f"; lost frames {format_ranges(scan.lost)}" if scan.lost else ""
        total = f" of {scan.expected}" if scan.expected is not None else ""
        warnings.warn(
            f"take {path}: {'; '.join(meta['recovery']['problems'])}; recovered {n}{total} frames "
            f"({n / fps:.2f} s){lost}",
            TakeRecoveryWarning,
            stacklevel=2,
        )
    elif not meta.get("complete"):
        why = f" ({meta['error']})" if meta.get("error") else " (recording was interrupted)"
        warnings.warn(
            f"take {path} was not closed{why}; recovered {n} frames ({n / fps:.2f} s)",
            TakeRecoveryWarning,
            stacklevel=2,
        )
    return Take(
        fps=fps,
        timecodes=timecodes,
        timestamps=ts,
        weights=recs["weights"].astype(np.float32),
        rotations=recs["rotation"].astype(np.float64),
        translations=recs["translation"].astype(np.float64),
        tracked=recs["tracked"].astype(bool),
        quality=recs["quality"].astype(np.float32),
        gaze=recs["gaze"].astype(np.float32),
        meta=meta,
        indices=recs["index"].astype(np.int64),
        rms_mm=recs["rms_mm"].astype(np.float32),
    )


def as_take(take: Take | str | Path, *, skip_bad_rows: bool = False) -> Take:
    """A :class:`Take` as is, a take directory loaded, or a Live Link ``.csv`` imported (``skip_bad_rows``:
    malformed CSV rows are dropped, see :func:`facecap.take.take_from_livelink_csv`)."""
    if isinstance(take, Take):
        return take
    p = Path(take)
    if p.is_file() and p.suffix.lower() == ".csv":
        from .livelink import take_from_livelink_csv

        return take_from_livelink_csv(p, skip_bad_rows=skip_bad_rows)
    return load_take(p)
