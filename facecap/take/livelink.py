"""Live Link Face <-> take conversion: the one place a :class:`~facecap.livelink.LiveLinkTake` becomes a
:class:`~facecap.take.Take` and back.

Angles cross between the two conventions only through :func:`facecap.livelink.from_livelink_angles` /
:func:`facecap.livelink.to_livelink_angles` (yaw and roll negated); timecodes through
:mod:`facecap.timecode`. An import -> export round trip of a Live Link Face CSV is byte-identical.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..livelink import LiveLinkTake, from_livelink_angles, read_csv, to_livelink_angles
from ..pose import from_euler
from ..timecode import LIVELINK_TIMECODE_RATE, format_timecode, frame_offsets, parse_timecode, timecode_rate
from .model import Take


def take_from_livelink_csv(
    path: str | Path, *, fps: float | None = None, skip_bad_rows: bool = False
) -> Take:
    """Import a Live Link Face CSV (iPhone ARKit) as a take.

    Head and eye angles are converted from Live Link's convention to facecap's
    (:func:`facecap.livelink.from_livelink_angles`: yaw and roll negated); head angles then become
    rotations (``facecap.pose.from_euler``; translations are zero, Live Link has none) and eye
    yaw/pitch become ``gaze``. The raw angle columns (Live Link convention, as in the file) are kept
    in ``extra`` (``"head_euler"`` (N, 3), ``"eye_euler"`` (N, 2, 3), NaN on face-lost rows) so that
    ``export_take(take, "x.csv", "livelink-csv")`` writes the same columns and values. Face-lost
    rows (``Timecode,0``) become untracked frames with zero weights and a frontal pose. Timecodes
    are kept verbatim; ``fps`` defaults to the capture rate the CSV reader infers. ``skip_bad_rows``
    drops malformed rows (a cut or edited file) instead of raising; their line numbers are in
    ``meta["skipped_lines"]`` and ``meta["complete"]`` is then false.
    """
    ll = read_csv(path, errors="skip" if skip_bad_rows else "raise")
    take = take_from_livelink(ll, fps=fps, source=str(path))
    if ll.skipped_lines:
        take.meta["skipped_lines"] = list(ll.skipped_lines)
        take.meta["complete"] = False
    return take


def take_from_livelink(ll: LiveLinkTake, *, fps: float | None = None, source: str | None = None) -> Take:
    """A take from a :class:`facecap.livelink.LiveLinkTake` (see :func:`take_from_livelink_csv`).

    ``source`` (default ``ll.name``) is stored in ``meta["source"]``; ``fps`` defaults to ``ll.fps``.
    """
    n = ll.n_frames
    tracked = np.asarray(ll.tracked, dtype=bool).reshape(n)
    head = np.asarray(ll.head, dtype=np.float64).reshape(n, 3)
    eyes = np.asarray(ll.eyes, dtype=np.float64).reshape(n, 2, 3)
    head_ok = from_livelink_angles(np.where(tracked[:, None], np.nan_to_num(head), 0.0))
    rot = np.array([from_euler(*h) for h in head_ok]).reshape(n, 3, 3)
    weights = np.where(tracked[:, None], np.nan_to_num(np.asarray(ll.weights, dtype=np.float64)), 0.0)
    eyes_fc = from_livelink_angles(np.nan_to_num(eyes))
    gaze = np.where(tracked[:, None, None], eyes_fc[:, :, :2], 0.0)
    return Take(
        fps=float(fps or ll.fps),
        timecodes=list(ll.timecodes),
        timestamps=ll.timestamps,
        weights=weights.astype(np.float32),
        rotations=rot,
        translations=np.zeros((n, 3)),
        tracked=tracked,
        quality=tracked.astype(np.float32),
        gaze=gaze.astype(np.float32),
        meta={
            "format": "livelink-csv",
            "source": source or ll.name,
            "fps": float(fps or ll.fps),
            "timecode_rate": int(ll.timecode_fps),
            "start_timecode": ll.timecodes[0] if n else None,
            "rig": "arkit",
            "complete": True,
        },
        extra={"head_euler": head, "eye_euler": eyes},
    )


def take_to_livelink(take: Take) -> LiveLinkTake:
    """The take as a :class:`facecap.livelink.LiveLinkTake`.

    Head angles come from the rotations (:meth:`facecap.take.Take.head_euler`) and eye yaw/pitch from
    ``gaze`` (eye roll 0), both turned into Live Link's convention by
    :func:`facecap.livelink.to_livelink_angles` (HeadYaw/LeftEyeYaw > 0 toward the subject's right,
    pitch > 0 down, roll negated). A take imported
    from Live Link keeps its original angle columns (``take.extra``, Live Link convention) wherever they
    still agree with the rotations/gaze to 1e-6 rad, so an import -> export round trip is identical.
    Timecodes already in Live Link's ``HH:MM:SS:FF.fff`` spelling are kept; others are rewritten at Live
    Link's 60 fps timecode rate from the take's start timecode and timestamps.
    """
    n = len(take)
    tr = take.tracked
    head = to_livelink_angles(take.head_euler() if n else np.zeros((0, 3)))
    raw = take.extra.get("head_euler")
    if raw is not None and np.shape(raw) == (n, 3):
        raw = np.asarray(raw, dtype=np.float64)
        ok = np.isfinite(raw).all(1) & (np.abs(raw - head) <= 1e-6).all(1)
        head = np.where(ok[:, None], raw, head)
    eyes = np.zeros((n, 2, 3))
    eyes[:, :, :2] = take.gaze
    eyes = to_livelink_angles(eyes)
    raw = take.extra.get("eye_euler")
    if raw is not None and np.shape(raw) == (n, 2, 3):
        raw = np.asarray(raw, dtype=np.float64)
        ok = np.isfinite(raw).all((1, 2)) & (np.abs(raw[:, :, :2] - eyes[:, :, :2]) <= 1e-6).all((1, 2))
        eyes = np.where(ok[:, None, None], raw, eyes)
    timecodes = list(take.timecodes)
    tc_rate = int(take.meta.get("timecode_rate") or LIVELINK_TIMECODE_RATE)
    if not all("." in t for t in timecodes):
        start = parse_timecode(take.timecodes[0], timecode_rate(take.fps)) if n else 0.0
        rel = frame_offsets(take.timestamps, take.fps) / take.fps
        tc_rate = LIVELINK_TIMECODE_RATE
        timecodes = [format_timecode(start + float(s), tc_rate) for s in rel]
    weights = np.where(tr[:, None], take.weights.astype(np.float64), np.nan)
    head = np.where(tr[:, None], head, np.nan)
    eyes = np.where(tr[:, None], eyes.reshape(n, 6), np.nan)
    ts = take.timestamps - take.timestamps[0] if n else take.timestamps
    name = str(take.meta.get("name") or "take")
    return LiveLinkTake(weights=weights, head=head, eyes=eyes, tracked=tr.copy(), timestamps=ts, fps=take.fps,
                        timecodes=timecodes, timecode_fps=tc_rate, name=name)  # fmt: skip
