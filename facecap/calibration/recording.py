"""Calibrate from a recording of the protocol: steps found by the marks a live session wrote beside it
(``facecap calibrate --record``), else by the protocol's timing."""

from __future__ import annotations

import os

from ..rig import Rig
from .calibrator import Calibrator
from .protocol import PROTOCOL, Protocol


def step_windows(protocol: Protocol, transition_s: float = 0.6, margin_s: float = 0.2) -> list:
    """(name, start_s, end_s) of each step's hold, from the start of the recording: each step is reached
    over ``transition_s`` and held for its ``hold_s``; ``margin_s`` at both ends of a hold is left out
    (a performer a little early or late)."""
    out, t = [], 0.0
    for s in protocol:
        t += transition_s
        out.append((s.name, t + margin_s, t + s.hold_s - margin_s))
        t += s.hold_s
    return out


def calibrate_recording(
    path: str | os.PathLike,
    *,
    protocol: Protocol = PROTOCOL,
    camera: str | None = None,
    rig: Rig | None = None,
    transition_s: float = 0.6,
    progress=None,
    marks: str | os.PathLike | bool | None = None,
) -> tuple[Rig, Calibrator]:
    """Calibrate from a RealSense recording (.bag/.db3) of a performer doing ``protocol`` in order, each
    step reached over ``transition_s`` seconds and held for its hold time.

    Parameters
    ----------
    camera : RealSense model for the depth noise (default: the recording's device name)
    progress : None, True (a status line) or a :class:`facecap.progress.Progress` factory
    marks : the step marks of a live session (:func:`facecap.calibration.session.save_marks`): a path, None
        (the file beside the recording when there is one) or False (the protocol's timing, ``transition_s``)

    Returns
    -------
    (actor rig, the Calibrator, whose ``steps`` tell what was accepted and rejected per step)

    Raises
    ------
    CalibrationError when the neutral steps were not captured (``.redo`` names them); the recording's own
    errors (missing, damaged) as :func:`facecap.realsense.read_recording` raises them.
    """
    from ..progress import StatusLine
    from ..realsense import read_recording, recording_info
    from .session import load_marks, marks_path

    info = recording_info(path)
    if marks is None and marks_path(path).is_file():
        marks = marks_path(path)
    windows = load_marks(marks, protocol) if marks else step_windows(protocol, transition_s)
    if not windows:
        raise ValueError(f"{marks}: the live session captured no step")
    end = max(b for _, _, b in windows)
    fps = float(info.get("fps") or 30.0)
    reporter = (StatusLine if progress is True else progress) or None
    bar = reporter(int(end * fps) + 1, "calibrating") if reporter else None
    cal = None
    t0 = None
    try:
        for frame in read_recording(path):
            if cal is None:
                cal = Calibrator(frame.depth_intrinsics, camera or info.get("device") or "d415", rig,
                                 protocol, fps=fps)  # fmt: skip
                t0 = frame.timestamp
            t = frame.timestamp - t0
            if t > end:
                break
            if bar:
                bar.update(1)
            step = next((n for n, a, b in windows if a - 1e-3 <= t <= b + 1e-3), None)  # ms clocks
            if step is not None:
                cal.add(step, frame)
    finally:
        if bar:
            bar.close()
    if cal is None:
        raise ValueError(f"{path}: the recording has no frames")
    return cal.solve(), cal
