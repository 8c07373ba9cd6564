"""RGB-D frames and camera models (docs/design.md §1).

Camera frame convention (OpenCV): x right, y down, z forward, metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one stream.

    Parameters
    ----------
    width, height : int, pixels
    fx, fy, cx, cy : float, pixels
        Focal lengths and principal point; pixel centres are at integer coordinates.
    model : str
        Distortion model name (``"none"`` for the synthetic actor; RealSense reports its own).
    coeffs : tuple of 5 float
        Distortion coefficients (ignored by facecap's projections, kept for round trips).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    model: str = "none"
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if not (self.width > 0 and self.height > 0):
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        vals = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in vals) or self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be finite and positive, got fx={self.fx}, fy={self.fy}")
        size = max(self.width, self.height)
        if not all(0.05 * size <= f <= 100.0 * size for f in (self.fx, self.fy)):
            raise ValueError(
                f"focal lengths fx={self.fx:g}, fy={self.fy:g} px are implausible for a {self.width}x"
                f"{self.height} image (expected {0.05 * size:g}-{100 * size:g} px: a field of view between "
                "about 1 and 170 degrees); are they in pixels?"
            )
        if not (-self.width <= self.cx <= 2 * self.width and -self.height <= self.cy <= 2 * self.height):
            raise ValueError(
                f"principal point ({self.cx:g}, {self.cy:g}) px lies far outside the {self.width}x"
                f"{self.height} image"
            )

    @property
    def K(self) -> np.ndarray:
        """(3, 3) float64 camera matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same camera at another resolution (same field of view)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            width,
            height,
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            self.model,
            self.coeffs,
        )

    def project(self, points: np.ndarray) -> np.ndarray:
        """Project camera-frame points (..., 3) metres to pixels (..., 2) float."""
        p = np.asarray(points, dtype=np.float64)
        z = p[..., 2]
        return np.stack([self.fx * p[..., 0] / z + self.cx, self.fy * p[..., 1] / z + self.cy], axis=-1)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("width", "height", "fx", "fy", "cx", "cy", "model")} | {
            "coeffs": list(self.coeffs)
        }


@dataclass(frozen=True)
class Extrinsics:
    """Rigid transform from the depth camera frame to the color camera frame: ``x_c = R x_d + t``."""

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def is_identity(self) -> bool:
        return bool(np.allclose(self.rotation, np.eye(3)) and np.allclose(self.translation, 0))


@dataclass
class Frame:
    """One RGB-D frame.

    Parameters
    ----------
    color : (H, W, 3) uint8 RGB, or None when the source has no color stream
    depth : (h, w) float32, metres; 0 means no data. None for a colour-only frame (a webcam, a video
        file): then ``color`` is required and ``depth_intrinsics`` are the colour image's
    depth_intrinsics : Intrinsics of the depth image (of the colour image when ``depth`` is None)
    color_intrinsics : Intrinsics of the color image (None without color)
    depth_to_color : Extrinsics; identity when depth is already aligned to color
    timestamp : float, seconds (device clock)
    index : int, frame number in its source
    """

    depth: np.ndarray | None
    depth_intrinsics: Intrinsics
    color: np.ndarray | None = None
    color_intrinsics: Intrinsics | None = None
    depth_to_color: Extrinsics = field(default_factory=Extrinsics)
    timestamp: float = 0.0
    index: int = 0

    def __post_init__(self) -> None:
        if self.depth is None:
            if self.color is None:
                raise ValueError("a frame needs depth, colour or both (got neither)")
            if self.color_intrinsics is None:
                self.color_intrinsics = self.depth_intrinsics
            if self.color_intrinsics != self.depth_intrinsics:
                raise ValueError("a colour-only frame's depth_intrinsics must be its colour intrinsics")
            self._check_color()
            return
        d = np.asarray(self.depth)
        if d.ndim != 2:
            raise ValueError(f"depth must be a 2-D (H, W) array in metres, got shape {d.shape}")
        if d.dtype != np.float32:
            if d.dtype == np.uint16:
                raise ValueError(
                    "depth is uint16 (raw z16 units): convert to metres with depth * depth_scale"
                )
            if np.issubdtype(d.dtype, np.integer) or d.dtype == bool:
                raise ValueError(
                    f"depth is {d.dtype} (integer units, e.g. millimetres): give float32 metres "
                    "(millimetres / 1000, or raw units * depth_scale)"
                )
            d = d.astype(np.float32)
        probe = d[::16, ::16]
        probe = probe[np.isfinite(probe) & (probe > 0)]
        if probe.size >= 16 and float(np.median(probe)) > 50.0:  # no depth camera sees a face 50 m away
            raise ValueError(
                f"depth looks like millimetres (median {float(np.median(probe)):.0f}): give metres "
                "(depth / 1000)"
            )
        di = self.depth_intrinsics
        if d.shape != (di.height, di.width):
            raise ValueError(
                f"depth is {d.shape[1]}x{d.shape[0]} but its intrinsics say {di.width}x{di.height}"
            )
        bad = ~np.isfinite(d) | (d < 0)
        if bad.any():  # NaN/inf/negative become "no data"; never propagate into the fit
            d = np.where(bad, np.float32(0), d)
        self.depth = d
        self._check_color()

    def _check_color(self) -> None:
        if self.color is not None:
            c = np.asarray(self.color)
            if c.ndim != 3 or c.shape[2] != 3 or c.dtype != np.uint8:
                raise ValueError(f"color must be (H, W, 3) uint8 RGB, got {c.shape} {c.dtype}")
            ci = self.color_intrinsics
            if ci is None:
                raise ValueError("a color image needs color_intrinsics")
            if c.shape[:2] != (ci.height, ci.width):
                raise ValueError(
                    f"color is {c.shape[1]}x{c.shape[0]} but its intrinsics say {ci.width}x{ci.height}"
                )
            self.color = c
        if not np.isfinite(self.timestamp):
            raise ValueError(f"timestamp must be finite, got {self.timestamp}")

    @property
    def aligned(self) -> bool:
        """True when depth pixels correspond 1:1 to color pixels."""
        return (
            self.color is not None
            and self.depth_to_color.is_identity
            and self.color_intrinsics == self.depth_intrinsics
        )


@dataclass
class GroundTruth:
    """What a synthetic frame really shows: head pose (rig -> camera) and canonical ARKit weights."""

    rotation: np.ndarray  # (3, 3) float64
    translation: np.ndarray  # (3,) float64, metres
    weights: np.ndarray  # (52,) float32
    landmarks_2d: np.ndarray | None = None  # (L, 2) float32 pixels, the rig's landmarks projected
    visible: bool = True


def color_to_depth_pixels(uv: np.ndarray, frame: Frame) -> np.ndarray | None:
    """Carry colour-image pixels to the depth image of ``frame``.

    Exact when depth is aligned to colour (identity) or when the two streams share the optical centre
    (identity ``depth_to_color``; the intrinsics may differ: resolution, focal length). With a real
    stereo offset a pixel's depth would be needed: returns None.

    Parameters
    ----------
    uv : (n, 2) float pixels in the colour image
    frame : Frame with ``color_intrinsics``

    Returns
    -------
    (n, 2) float64 pixels in the depth image (NaN for points outside it), or None.
    """
    out = _carry(uv, frame, to_depth=True)
    if out is None:
        return None
    di = frame.depth_intrinsics
    outside = ~((out[:, 0] >= -0.5) & (out[:, 0] <= di.width - 0.5) & (out[:, 1] >= -0.5)
                & (out[:, 1] <= di.height - 0.5))  # fmt: skip
    out[outside] = np.nan
    return out


def depth_to_color_pixels(uv: np.ndarray, frame: Frame) -> np.ndarray | None:
    """Carry depth-image pixels to the colour image of ``frame``: the inverse of
    :func:`color_to_depth_pixels`, under the same conditions (None with a real stereo offset).

    Parameters
    ----------
    uv : (n, 2) float pixels in the depth image
    frame : Frame with ``color_intrinsics``

    Returns
    -------
    (n, 2) float64 pixels in the colour image, or None.
    """
    return _carry(uv, frame, to_depth=False)


def _carry(uv, frame: Frame, to_depth: bool) -> np.ndarray | None:
    """(n, 2) float64 pixels carried between the two images of ``frame`` (a new array), or None."""
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv must be (n, 2) pixels, got shape {uv.shape}")
    ci, di = frame.color_intrinsics, frame.depth_intrinsics
    if ci is None or not frame.depth_to_color.is_identity:
        return None
    if ci == di:
        return uv.copy()
    src, dst = (ci, di) if to_depth else (di, ci)
    x = (uv[:, 0] - src.cx) / src.fx
    y = (uv[:, 1] - src.cy) / src.fy
    return np.stack([x * dst.fx + dst.cx, y * dst.fy + dst.cy], axis=1)
