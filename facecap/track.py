"""`facecap track FILE`: run the tracker over a RealSense recording and write weights and pose per frame.

The rows are the per-frame layout of :mod:`facecap.sinks.file` (the same as ``facecap export --format
csv|jsonl``), written through the capture loop (:func:`facecap.pipeline.run`) one frame at a time.
"""

from __future__ import annotations

from pathlib import Path


def track_file(path: str | Path, out: str | Path, *, rig=None, fmt: str | None = None, progress=None) -> dict:
    """Track every frame of a ``.bag``/``.db3`` recording and write the result to ``out``.

    Parameters
    ----------
    path : the recording
    out : ``.csv`` or ``.jsonl`` file (or give ``fmt``), flushed every frame: Ctrl-C keeps what was tracked
    rig : Rig, path or None (the built-in rig)
    progress : None, True or a ``facecap.progress.Progress``

    Returns
    -------
    ``{"frames": n, "tracked_fraction": f, "dropped": d, "interrupted": bool}``, ``d`` the depth frames
    without a colour frame to align to (:attr:`facecap.realsense.RecordingSource.dropped`).
    """
    from .formats import load_rig
    from .pipeline import Outputs, run
    from .realsense import RecordingSource
    from .rig import Rig
    from .sinks import FileSink
    from .tracker import Tracker, TrackerConfig

    src = RecordingSource(path)
    rig = rig if isinstance(rig, Rig) else load_rig(rig)
    info = src.info()
    fps = float(info.get("fps") or 30.0)
    sink = FileSink(out, fps, fmt=fmt, meta={"source": str(path), "rig": rig.name})
    tracker = Tracker(rig=rig, config=TrackerConfig.for_camera(str(info.get("device") or "")))
    res = run(src, tracker, Outputs([sink], fps=fps), progress=progress, total=src.frame_count)
    return {k: res[k] for k in ("frames", "tracked_fraction", "dropped", "interrupted")}


__all__ = ["track_file"]
