"""Colour-only sources: video files and webcams through OpenCV (issue 12, item 4).

Frames come out as ``Frame(depth=None, ...)``: RGB images with pinhole intrinsics and timestamps. The
tracker fits them from MediaPipe's landmarks alone. A video file or webcam has no calibration, so the
intrinsics assume a horizontal field of view (``fov_deg``, 60 degrees by default: a typical webcam or
phone camera). The distance the tracker reports scales with the focal length that follows from it; the
weights and the rotation hardly depend on it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .frames import Frame, Intrinsics

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def is_video(path: str | Path) -> bool:
    """True for a file name with a video suffix (``VIDEO_SUFFIXES``)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def intrinsics_for(width: int, height: int, fov_deg: float = 60.0) -> Intrinsics:
    """Pinhole intrinsics of a ``width`` x ``height`` image with horizontal field of view ``fov_deg``."""
    if not 10.0 <= fov_deg <= 150.0:
        raise ValueError(f"fov_deg must be within 10-150 degrees, got {fov_deg}")
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return Intrinsics(int(width), int(height), f, f, (width - 1) / 2, (height - 1) / 2)


class VideoSource:
    """Frames of a video file or a webcam.

    Parameters
    ----------
    source : path of a video file, or an int webcam index (OpenCV's ``VideoCapture``)
    fov_deg : assumed horizontal field of view [degrees]
    max_frames : stop after this many frames (None: all)
    wall_clock : timestamps from the time each frame was read (a webcam) instead of index / fps

    Raises
    ------
    FileNotFoundError : the file does not exist
    ValueError : OpenCV cannot open it (not a video, or an unsupported codec) or decodes no frame
    RuntimeError : no webcam at that index

    Iterating yields :class:`facecap.Frame` with ``depth=None``. A file that ends early (truncated)
    stops at the last decodable frame. ``truncated`` then tells how many of the frames its header
    announced were missing.
    """

    def __init__(self, source: str | Path | int, *, fov_deg: float = 60.0, max_frames: int | None = None,
                 wall_clock: bool = False):  # fmt: skip
        import cv2

        self.webcam = isinstance(source, int)
        if not self.webcam:
            path = Path(source)
            if not path.is_file():
                raise FileNotFoundError(f"video not found: {path}")
            self.path = path
        self._cap = cv2.VideoCapture(int(source) if self.webcam else str(source))
        if not self._cap.isOpened():
            self._cap.release()
            if self.webcam:
                raise RuntimeError(
                    f"no webcam at index {source}: none is connected, or another program holds it "
                    "(try another --webcam index)"
                )
            raise ValueError(
                f"{source} is not a video OpenCV can read: damaged or truncated (an .mp4 cut before its "
                "index), an unsupported codec, or not a video"
            )
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise ValueError(f"{source}: no frame could be decoded (empty or damaged video)")
        self._first = first
        h, w = first.shape[:2]
        self.intrinsics = intrinsics_for(w, h, fov_deg)
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 1000.0 else 30.0
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = None if self.webcam or n <= 0 else n
        self.max_frames = max_frames
        self.frames_read = 0
        self.wall_clock = bool(wall_clock)

    @property
    def truncated(self) -> int:
        """Frames the file's header announced but that could not be decoded (0 for a webcam)."""
        if self.frame_count is None or self.max_frames is not None:
            return 0
        return max(0, self.frame_count - self.frames_read)

    def __iter__(self) -> Iterator[Frame]:
        if self._cap is None:
            raise RuntimeError("this VideoSource is closed")
        try:
            bgr = self._first
            i = 0
            t0 = time.monotonic()
            while bgr is not None and (self.max_frames is None or i < self.max_frames):
                rgb = np.ascontiguousarray(bgr[:, :, ::-1])
                k = self.intrinsics
                if rgb.shape[:2] != (k.height, k.width):  # a stream that changes size mid-way: stop
                    break
                yield Frame(depth=None, depth_intrinsics=k, color=rgb, color_intrinsics=k,
                            timestamp=time.monotonic() - t0 if self.wall_clock else i / self.fps,
                            index=i)  # fmt: skip
                i += 1
                self.frames_read = i
                ok, bgr = self._cap.read()
                if not ok:
                    bgr = None
        finally:
            self._first = None
            self.close()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["VIDEO_SUFFIXES", "VideoSource", "intrinsics_for", "is_video"]
