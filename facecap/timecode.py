"""Timecode: SMPTE ``HH:MM:SS:FF`` (takes) and Live Link's ``HH:MM:SS:FF.fff``, parsed, formatted and counted.

Both spellings count frames at an integer *timecode rate*, non-drop-frame, from midnight (hours wrap
at 24); ``;`` (drop-frame) is refused. Rates above 100 fps print three frame digits.

- Live Link Face writes ``HH:MM:SS:FF.fff``: ``FF.fff`` is the frame number with a sub-frame fraction at
  :data:`LIVELINK_TIMECODE_RATE` (60) frames per second, so a 30 fps capture steps the frame field by 2.
  :func:`parse_timecode` / :func:`format_timecode` convert it to and from seconds since midnight.
- A facecap take (:mod:`facecap.take`) labels whole frames ``HH:MM:SS:FF`` at ``round(fps)``
  (:func:`timecode_rate`; 29.97 fps is labelled at 30, drifting 3.6 s per hour against the wall clock
  like any NDF timecode). The start is the local wall-clock time of day when the first frame is written
  (:func:`wallclock_timecode`), or the recorder's ``start_timecode``. Frame ``i`` is labelled
  ``start + round((timestamp_i - timestamp_0) * fps)`` when timestamps increase strictly, else
  ``start + i`` (:func:`frame_offsets`, :func:`timecodes_from_timestamps`).
  :func:`timecode_to_frames` / :func:`frames_to_timecode` convert it to and from frames since midnight.
"""

from __future__ import annotations

import datetime as _dt
import math
import re

import numpy as np

LIVELINK_TIMECODE_RATE = 60
"""The timecode rate Live Link Face writes (every real take we have seen)."""

TIMECODE_RATES = (24, 25, 30, 48, 50, 60, 120)
"""Standard integer timecode rates, ascending (what :func:`infer_timecode_rate` picks from)."""

DAY_SECONDS = 86400
"""Timecode wraps at 24 hours."""

_SMPTE_RE = re.compile(r"^\d{1,2}:\d{2}:\d{2}[:;]\d{2,3}$")  # whole frames; parse_timecode checks the rest


# --------------------------------------------------------------------------------------------- seconds
def parse_timecode(timecode: str, fps: float) -> float:
    """Seconds since midnight of a SMPTE timecode ``HH:MM:SS:FF`` or ``HH:MM:SS:FF.fff``.

    Parameters
    ----------
    timecode : str
        ``FF`` is the frame number at the timecode rate ``fps``; an optional fraction (``.fff``) is the
        sub-frame position, as Live Link Face writes it (``12:21:59:06.595`` is frame 6.595).
    fps : float
        Timecode frame rate (frames per second), e.g. 60 for Live Link Face takes.

    Returns
    -------
    float, seconds
    """
    if not isinstance(timecode, str):
        raise TypeError(f"timecode must be a str like '12:21:59:06.595', got {type(timecode).__name__}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"timecode rate must be a positive number of frames per second, got {fps}")
    s = timecode.strip()
    if ";" in s:
        raise ValueError(f"drop-frame timecode {s!r} is not supported; use non-drop HH:MM:SS:FF")
    parts = s.split(":")
    try:
        if len(parts) != 4:
            raise ValueError
        hh, mm, ss = (int(p) for p in parts[:3])
        ff = float(parts[3])
        if not all(p.strip().replace(".", "", 1).isdigit() for p in parts):
            raise ValueError
    except ValueError:
        raise ValueError(f"bad timecode {s!r}: expected HH:MM:SS:FF or HH:MM:SS:FF.fff") from None
    if mm >= 60 or ss >= 60 or not ff < fps:
        raise ValueError(f"timecode {s!r} is out of range: minutes/seconds must be < 60, frames < {fps:g}")
    return hh * 3600.0 + mm * 60.0 + ss + ff / fps


def format_timecode(seconds: float, fps: float, digits: int = 3) -> str:
    """SMPTE timecode ``HH:MM:SS:FF.fff`` (hours wrap at 24) for seconds since midnight.

    Inverse of :func:`parse_timecode` up to ``10**-digits`` of a frame. ``digits=0`` gives ``HH:MM:SS:FF``.
    """
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"seconds must be finite and >= 0, got {seconds}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"timecode rate must be positive, got {fps}")
    scale = 10**digits
    ticks = round(seconds * fps * scale)  # integer sub-frame ticks: exact carry into frames/seconds
    frames_per_second_ticks = round(fps * scale)
    if abs(fps * scale - frames_per_second_ticks) > 1e-6:
        raise ValueError(f"fractional timecode rate {fps} is not supported by format_timecode")
    whole_seconds, rem = divmod(ticks, frames_per_second_ticks)
    ff, sub = divmod(rem, scale)
    hh, r = divmod(whole_seconds % DAY_SECONDS, 3600)
    mm, ss = divmod(r, 60)
    width = 2 if fps <= 100 else 3
    out = f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:0{width}d}"
    return out + (f".{sub:0{digits}d}" if digits else "")


# --------------------------------------------------------------------------------------------- rates
def timecode_rate(fps: float) -> int:
    """Integer frame rate that SMPTE timecode labels count at for ``fps`` (non-drop-frame)."""
    return max(1, int(round(float(fps))))


def infer_timecode_rate(frame_fields: list[float], seconds_fields: list[int]) -> int:
    """Rate of timecodes from their frame (``FF.fff``) and seconds (``SS``) fields.

    The smallest of :data:`TIMECODE_RATES` above the largest frame field (120 if none is);
    :data:`LIVELINK_TIMECODE_RATE` when fewer than 3 distinct seconds are seen (too short to tell).
    """
    if len(set(seconds_fields)) < 3 or not frame_fields:
        return LIVELINK_TIMECODE_RATE
    top = max(frame_fields)
    return next((r for r in TIMECODE_RATES if r > top), 120)


# --------------------------------------------------------------------------------------------- frames
def timecode_to_frames(timecode: str, fps: float) -> int:
    """Frames since midnight of ``"HH:MM:SS:FF"`` at ``fps`` (non-drop-frame).

    Raises ``ValueError`` for other spellings, drop-frame (``;``) timecode or a frame field >= the rate.
    The arithmetic and range checks are :func:`parse_timecode`'s.
    """
    if not _SMPTE_RE.match(str(timecode).strip()):
        raise ValueError(f"timecode {timecode!r} is not SMPTE HH:MM:SS:FF, e.g. '10:00:00:00'")
    rate = timecode_rate(fps)
    frames = round(parse_timecode(str(timecode), rate) * rate)
    if frames >= 24 * 3600 * rate:
        raise ValueError(f"timecode {timecode!r} is out of range: hours must be < 24")
    return frames


def frames_to_timecode(frames: int, fps: float) -> str:
    """``"HH:MM:SS:FF"`` of a frame count since midnight at ``fps`` (wraps at 24 h)."""
    rate = timecode_rate(fps)
    return format_timecode(int(frames) % (DAY_SECONDS * rate) / rate, rate, digits=0)


def wallclock_timecode(fps: float, when: _dt.datetime | None = None) -> str:
    """SMPTE timecode of the local time of day (now by default) at ``fps``."""
    t = when or _dt.datetime.now()
    rate = timecode_rate(fps)
    frames = ((t.hour * 60 + t.minute) * 60 + t.second) * rate + int(t.microsecond * rate // 1_000_000)
    return frames_to_timecode(frames, fps)


def frame_offsets(timestamps: np.ndarray, fps: float) -> np.ndarray:
    """Frame offset of each frame from the first: from timestamps if they increase strictly, else 0..N-1."""
    ts = np.asarray(timestamps, dtype=np.float64)
    n = len(ts)
    if n > 1 and np.all(np.isfinite(ts)) and np.all(np.diff(ts) > 0):
        return np.round((ts - ts[0]) * float(fps)).astype(np.int64)
    return np.arange(n, dtype=np.int64)


def timecodes_from_timestamps(start_timecode: str, timestamps: np.ndarray, fps: float) -> list[str]:
    """``"HH:MM:SS:FF"`` of each frame: ``start_timecode`` plus its :func:`frame_offsets` at ``fps``."""
    start = timecode_to_frames(start_timecode, fps)
    return [frames_to_timecode(start + int(o), fps) for o in frame_offsets(timestamps, fps)]


__all__ = [
    "DAY_SECONDS", "LIVELINK_TIMECODE_RATE", "TIMECODE_RATES", "format_timecode", "frame_offsets",
    "frames_to_timecode", "infer_timecode_rate", "parse_timecode", "timecode_rate", "timecode_to_frames",
    "timecodes_from_timestamps", "wallclock_timecode",
]  # fmt: skip
