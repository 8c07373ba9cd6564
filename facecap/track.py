"""`facecap track FILE`: run the tracker over a recording and write weights and pose per frame.

FILE is a RealSense recording (``.bag``/``.db3``: depth and colour) or a video file (``.mp4``, ``.mov``...:
colour only, tracked from MediaPipe's landmarks alone, see :mod:`facecap.video`).

The rows are the per-frame layout of :mod:`facecap.sinks.file` (the same as ``facecap export --format
csv|jsonl``), written through the capture loop (:func:`facecap.pipeline.run`) one frame at a time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


def track_file(path: str | Path, out: str | Path, *, rig=None, fmt: str | None = None, progress=None,
               model: str | Path | None = None, adapt_identity: bool = False,
               smoothing=None) -> dict:  # fmt: skip
    """Track every frame of a ``.bag``/``.db3`` recording or a video file and write the result to ``out``.

    Parameters
    ----------
    path : the recording
    out : ``.csv`` or ``.jsonl`` file (or give ``fmt``), flushed every frame: Ctrl-C keeps what was tracked
    rig : Rig, path or None (the built-in rig)
    progress : None, True or a ``facecap.progress.Progress``
    model : MediaPipe model for a video (default: ``facecap.landmarks.find_model``'s search)
    adapt_identity : fit the rig's neutral to the face while tracking (``TrackerConfig.adapt_identity``;
        a recording's depth is needed: ValueError for a video)
    smoothing : a ``facecap.smoothing.OneEuro`` to filter the weights over time (``TrackerConfig.smoothing``)

    Returns
    -------
    ``{"frames": n, "tracked_fraction": f, "dropped": d, "interrupted": bool}``, ``d`` the depth frames
    without a colour frame to align to (:attr:`facecap.realsense.RecordingSource.dropped`); for a video
    also ``landmark_frames`` (frames MediaPipe found the face in) and ``truncated`` (frames its header
    announced that could not be decoded); ``identity`` with ``adapt_identity``
    (:meth:`facecap.calibration.IdentityAdapter.summary`, None until a depth frame was tracked).
    """
    from .formats import load_rig
    from .pipeline import Outputs, run
    from .realsense import RecordingSource
    from .rig import Rig
    from .sinks import FileSink
    from .tracker import Tracker, TrackerConfig
    from .video import is_video

    rig = rig if isinstance(rig, Rig) else load_rig(rig)
    if is_video(path):
        if adapt_identity:
            raise ValueError(f"adapt_identity fits the face to depth images; {path} is a colour-only video")
        return _track_video(path, out, rig, fmt, progress, model, smoothing)
    src = RecordingSource(path)
    info = src.info()
    fps = float(info.get("fps") or 30.0)
    sink = FileSink(out, fps, fmt=fmt, meta={"source": str(path), "rig": rig.name} | _said(smoothing))
    config = TrackerConfig.for_camera(
        str(info.get("device") or ""), adapt_identity=adapt_identity, adapt_inline=True, smoothing=smoothing
    )
    tracker = Tracker(rig=rig, config=config)
    res = run(src, tracker, Outputs([sink], fps=fps), progress=progress, total=src.frame_count)
    keys = ("frames", "tracked_fraction", "dropped", "interrupted") + (
        ("identity",) if adapt_identity else ()
    )
    return {k: res[k] for k in keys}


def _said(smoothing) -> dict:
    """The output header's record of the smoothing (nothing without it)."""
    return {} if smoothing is None else {"smoothing": dataclasses.asdict(smoothing)}


def _track_video(path, out, rig, fmt, progress, model, smoothing=None) -> dict:
    from .landmarks import FaceLandmarker
    from .pipeline import Outputs, run
    from .sinks import FileSink
    from .tracker import Tracker, TrackerConfig
    from .video import VideoSource

    src = VideoSource(path)
    with FaceLandmarker(model, blendshapes=False) as lm:
        sink = FileSink(
            out, src.fps, fmt=fmt,
            meta={"source": str(path), "rig": rig.name, "colour_only": True} | _said(smoothing),
        )  # fmt: skip
        tracker = Tracker(rig=rig, config=TrackerConfig(smoothing=smoothing))
        res = run(src, tracker, Outputs([sink], fps=src.fps), landmarker=lm, progress=progress,
                  total=src.frame_count)  # fmt: skip
    keys = ("frames", "tracked_fraction", "dropped", "interrupted", "landmark_frames")
    return {k: res[k] for k in keys} | {"truncated": src.truncated}


__all__ = ["track_file"]
