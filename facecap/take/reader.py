"""Reading a take back: :func:`load_take`, which recovers every intact frame of a damaged or unclosed take.

Chunks are read in order up to the first damaged or truncated record, or missing chunk; what was
recovered is said in a :class:`TakeRecoveryWarning`. :func:`as_take` also accepts a Live Link ``.csv``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..timecode import timecodes_from_timestamps
from .format import RECORD_DTYPE, chunk_name, read_chunk, read_meta
from .model import Take


class TakeRecoveryWarning(UserWarning):
    """A take was read only partly (damaged or truncated chunk) or was never closed."""


def load_take(path: str | Path) -> Take:
    """Read a take directory written by :class:`facecap.take.TakeRecorder`.

    All chunks are read in order; reading stops at the first damaged or truncated record (or missing
    chunk) with a :class:`TakeRecoveryWarning` saying how many frames were recovered. A take that was
    never closed (crash, SIGKILL) loads the same way and warns once.

    Raises
    ------
    FileNotFoundError
        No such directory, or it has no ``take.json``.
    ValueError
        ``take.json`` is not valid take metadata.
    """
    path = Path(path)
    meta = read_meta(path)
    fps = float(meta["fps"])
    parts: list[np.ndarray] = []
    problem = None
    chunk_files = sorted(path.glob("frames-*.bin"))
    i = 0
    while True:
        p = path / chunk_name(i)
        if not p.is_file():
            later = [q.name for q in chunk_files if q.name > p.name]
            if later:
                problem = f"{p.name} is missing (later chunks {', '.join(later)} ignored)"
            break
        recs, problem = read_chunk(p, i)
        parts.append(recs)
        if problem is not None:
            later = [q.name for q in chunk_files if q.name > p.name]
            if later:
                problem += f"; later chunks {', '.join(later)} ignored"
            break
        i += 1
    recs = np.concatenate(parts) if parts else np.zeros(0, RECORD_DTYPE)
    n = len(recs)
    expected = meta.get("frames")
    if problem is not None:
        also = f" of {expected}" if isinstance(expected, int) else ""
        warnings.warn(
            f"take {path}: {problem}; recovered {n}{also} frames ({n / fps:.2f} s) before it",
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
    ts = recs["timestamp"].astype(np.float64)
    return Take(
        fps=fps,
        timecodes=timecodes_from_timestamps(meta.get("start_timecode") or "00:00:00:00", ts, fps),
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


def as_take(take: Take | str | Path) -> Take:
    """A :class:`Take` as is, a take directory loaded, or a Live Link ``.csv`` imported."""
    if isinstance(take, Take):
        return take
    p = Path(take)
    if p.is_file() and p.suffix.lower() == ".csv":
        from .livelink import take_from_livelink_csv

        return take_from_livelink_csv(p)
    return load_take(p)
