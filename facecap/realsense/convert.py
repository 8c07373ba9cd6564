"""Conversions between pyrealsense2 objects and facecap types: intrinsics, extrinsics, colour, framesets."""

from __future__ import annotations

import numpy as np

from ..camera_access import import_pyrealsense2 as _rs
from ..frames import Extrinsics, Frame, Intrinsics

DEPTH_UNITS = 0.001  # metres per z16 step facecap writes (RealSense default: 1 mm)

COLOR_FORMATS = ("rgb8", "bgr8", "rgba8", "bgra8")
DISTORTIONS = (
    "none",
    "modified_brown_conrady",
    "inverse_brown_conrady",
    "brown_conrady",
    "ftheta",
    "kannala_brandt4",
)


class RecordingError(ValueError):
    """A recording that cannot be read: corrupt, truncated, not a RealSense file, or without depth."""


def intrinsics_from_rs(ri) -> Intrinsics:
    return Intrinsics(
        int(ri.width),
        int(ri.height),
        float(ri.fx),
        float(ri.fy),
        float(ri.ppx),
        float(ri.ppy),
        ri.model.name,
        tuple(float(c) for c in ri.coeffs),
    )


def intrinsics_to_rs(intr: Intrinsics):
    rs = _rs()
    if intr.model not in DISTORTIONS:
        raise ValueError(f"unknown distortion model {intr.model!r}; RealSense knows {', '.join(DISTORTIONS)}")
    coeffs = [float(c) for c in intr.coeffs]
    if len(coeffs) != 5:
        raise ValueError(f"RealSense intrinsics need 5 distortion coefficients, got {len(coeffs)}")
    ri = rs.intrinsics()
    ri.width, ri.height = int(intr.width), int(intr.height)
    ri.fx, ri.fy, ri.ppx, ri.ppy = float(intr.fx), float(intr.fy), float(intr.cx), float(intr.cy)
    ri.model = getattr(rs.distortion, intr.model)
    ri.coeffs = coeffs
    return ri


def extrinsics_from_rs(re_) -> Extrinsics:
    # librealsense stores the rotation column-major: x_to = R x_from + t with R[i, j] = rotation[3 * j + i]
    r = np.asarray(re_.rotation, dtype=np.float64).reshape(3, 3).T
    return Extrinsics(r + 0.0, np.asarray(re_.translation, dtype=np.float64) + 0.0)  # + 0.0: no -0.0


def extrinsics_to_rs(ex: Extrinsics):
    e = _rs().extrinsics()
    e.rotation = [float(v) for v in np.asarray(ex.rotation, dtype=np.float64).T.ravel()]
    e.translation = [float(v) for v in np.asarray(ex.translation, dtype=np.float64).ravel()]
    return e


def color_to_rgb(frame) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of a RealSense color frame (the frame's buffer goes back to librealsense)."""
    frame = frame.as_video_frame()
    fmt = frame.get_profile().format().name
    a = np.asanyarray(frame.get_data())
    if fmt == "rgb8":
        return a.copy()
    if fmt == "bgr8":
        return np.ascontiguousarray(a[..., ::-1])
    if fmt == "rgba8":
        return np.ascontiguousarray(a[..., :3])
    if fmt == "bgra8":
        return np.ascontiguousarray(a[..., 2::-1])
    raise RecordingError(
        f"color format {fmt} is not supported (facecap reads {', '.join(COLOR_FORMATS)}); "
        "record color as RGB8, the RealSense Viewer default"
    )


class FrameConverter:
    """Turns RealSense framesets into :class:`Frame`; holds the align block and the stream intrinsics."""

    def __init__(self, depth_profile, color_profile, depth_scale: float, align: bool):
        rs = _rs()
        self.depth_scale = float(depth_scale)
        self.depth_intrinsics = intrinsics_from_rs(depth_profile.get_intrinsics())
        self.color_intrinsics = None
        self.depth_to_color = Extrinsics()
        if color_profile is not None:
            self.color_intrinsics = intrinsics_from_rs(color_profile.get_intrinsics())
            try:
                self.depth_to_color = extrinsics_from_rs(depth_profile.get_extrinsics_to(color_profile))
            except RuntimeError:  # no extrinsics recorded: treat the streams as co-located
                pass
        self.needs_align = color_profile is not None and (
            self.depth_intrinsics != self.color_intrinsics or not self.depth_to_color.is_identity
        )
        self._align = rs.align(rs.stream.color) if (align and self.needs_align) else None

        self._composer = self._composed = None
        self._pair: tuple = ()

    def drops(self, c) -> bool:
        """True when a depth frame with color ``c`` (None when missing) cannot be converted and is dropped.

        Alignment needs the color frame; converting without it would give a frame at the native depth size
        and intrinsics, unlike all the others, which downstream stages set up for the first frame reject.
        """
        return self._align is not None and c is None

    def _frameset(self, d, c):
        """A frameset of two loose frames, for ``rs.align`` (which only takes framesets)."""
        rs = _rs()
        if self._composer is None:
            self._composed = rs.frame_queue(2, keep_frames=True)
            self._composer = rs.processing_block(
                lambda f, src: src.frame_ready(src.allocate_composite_frame(list(self._pair)))
            )
            self._composer.start(self._composed)
        self._pair = (d, c)
        self._composer.invoke(d)
        self._pair = ()
        return self._composed.wait_for_frame(1000).as_frameset()

    def __call__(self, d, c, index: int, fs=None) -> Frame:
        """Frame from a depth frame ``d``, a color frame ``c`` (or None) and optionally their frameset.

        Callers skip the pairs :meth:`drops` rejects; given one anyway this raises ValueError.
        """
        if self.drops(c):
            raise ValueError("depth needs its color frame to be aligned; check drops() first")
        align = self._align is not None
        if align:
            fs = self._align.process(fs if fs is not None else self._frameset(d, c))
            d = fs.get_depth_frame()
        d = d.as_depth_frame()
        units = d.get_units() or self.depth_scale
        z = np.asanyarray(d.get_data())
        depth = np.multiply(z, np.float32(units), dtype=np.float32)
        color = color_intr = None
        if c is not None and self.color_intrinsics is not None:
            color, color_intr = color_to_rgb(c), self.color_intrinsics
        if align:
            depth_intr, extr = self.color_intrinsics, Extrinsics()
        else:
            depth_intr, extr = self.depth_intrinsics, self.depth_to_color
        return Frame(
            depth=depth,
            depth_intrinsics=depth_intr,
            color=color,
            color_intrinsics=color_intr,
            depth_to_color=extr,
            timestamp=d.get_timestamp() / 1000.0,
            index=index,
        )
