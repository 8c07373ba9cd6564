"""The synthetic actor: render a blendshape rig as a RealSense-like RGB-D camera would see it.

Pieces, each usable alone:

- :func:`render_mesh` / :func:`render_rig` -- a Numba z-buffer rasterizer: perspective-correct depth
  (metres, 0 = no surface), vertex colours with Lambert shading from a point light near the camera,
  back-faces culled, per-pixel triangle id and barycentrics.
- :func:`apply_depth_noise` / :func:`apply_color_noise` -- the D4xx error model of DESIGN.md §3
  (axial noise growing with z², 1 mm quantisation, holes and flying pixels at silhouettes, the stereo
  occlusion shadow, range limits) driven by :class:`DepthNoise`; camera presets in :data:`CAMERAS`.
- :func:`procedural_performance` and :func:`head_motion` -- expression weights and head poses that
  need no data file; Live Link Face takes (:mod:`facecap.livelink`) drive the rig with real timing.
- :class:`SyntheticActor` -- all of it behind one object yielding ``(Frame, GroundTruth)`` pairs;
  :func:`synthetic_take` is the one-call version used by the demo and the benchmarks.
- :func:`save_truth` / :func:`load_truth` -- the ground-truth sidecar ``FILE.truth.npz`` written beside a
  synthetic recording ``FILE.db3``.

Conventions: rig space metres, y up, z out of the face; poses map rig -> OpenCV camera,
``x_cam = R @ x_rig + t``; pixel centres at integer coordinates. All randomness is seeded: the same
seed gives the same frames, bit for bit.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numba as nb
import numpy as np

from . import arkit
from ._io import atomic_path
from .fit import _vertex_normals
from .frames import Frame, GroundTruth, Intrinsics
from .pose import FRONTAL, from_euler
from .rig import Rig

# ============================================================================================ cameras


@dataclass(frozen=True)
class CameraPreset:
    """A depth camera model: intrinsics of the aligned RGB-D stream plus the stereo facts noise needs.

    Attributes
    ----------
    name : str
    intrinsics : Intrinsics
        Of the rendered (aligned) depth and colour images.
    baseline : float, metres
        Stereo baseline of the depth module.
    min_range, max_range : float, metres
        Depth outside this range is invalid (0).
    """

    name: str
    intrinsics: Intrinsics
    baseline: float
    min_range: float
    max_range: float

    def at(self, width: int, height: int) -> CameraPreset:
        """The same camera at another size: focal length scaled with the width, principal point centred."""
        s = width / self.intrinsics.width
        f = self.intrinsics.fx * s
        k = Intrinsics(width, height, f, f, (width - 1) / 2, (height - 1) / 2)
        return CameraPreset(self.name, k, self.baseline, self.min_range, self.max_range)


def _preset(name: str, native_width: int, native_f: float, baseline: float, min_range: float) -> CameraPreset:
    f = native_f * 640 / native_width
    return CameraPreset(name, Intrinsics(640, 480, f, f, 319.5, 239.5), baseline, min_range, 4.0)


CAMERAS: dict[str, CameraPreset] = {
    # D415: f ~ 1005 px at 1280 wide, 55 mm baseline -> 502.5 px at 640x480 (65 deg horizontal FOV).
    "d415": _preset("d415", 1280, 1005.0, 0.055, 0.30),
    # D435: f ~ 447 px at 848 wide, 50 mm baseline -> 337.4 px at 640x480 (87 deg horizontal FOV).
    "d435": _preset("d435", 848, 447.0, 0.050, 0.20),
}
"""Camera presets at 640x480 (use :meth:`CameraPreset.at` for another size)."""


def get_camera(camera: str | CameraPreset) -> CameraPreset:
    """A preset by name (``"d415"``, ``"d435"``), or the preset itself."""
    if isinstance(camera, CameraPreset):
        return camera
    try:
        return CAMERAS[str(camera).lower()]
    except KeyError:
        raise ValueError(f"unknown camera {camera!r}; choose one of {sorted(CAMERAS)}") from None


@dataclass(frozen=True)
class DepthNoise:
    """RealSense D4xx depth and colour error model (DESIGN.md §3).

    Axial noise: ``sigma(z) = z**2 * subpixel / (fx * baseline) * scale`` metres, with ``fx`` the focal
    length at the rendered resolution (640x480 disparities are coarser than 1280x720 ones).
    The default ``scale = 2.0`` stands for "measured noise runs 3-5x the floor": at 640x480 and 0.6 m it
    gives 2.1 mm (D415) and 3.4 mm (D435), i.e. 4.0x and 2.6x the floors DESIGN.md quotes at the native
    widths (0.5 mm, 1.3 mm).

    Attributes
    ----------
    subpixel : float, pixels -- stereo matcher sub-pixel accuracy (0.05-0.1).
    scale : float -- multiplier of the theoretical floor.
    correlated : bool -- smooth the noise with a 3x3 binomial kernel (variance kept), as block matching does.
    depth_unit : float, metres -- quantisation step (z16 depth units).
    edge_threshold : float, metres -- a jump to a 4-neighbour larger than this marks a silhouette pixel.
    hole_prob : float -- probability that a silhouette pixel is invalid (0).
    flying_prob : float -- probability that a silhouette pixel takes a depth between its two sides.
    stereo_shadow : bool -- invalidate what the right imager cannot see (the band left of near objects).
    color_sigma : float, 8-bit levels -- colour sensor noise per channel.
    """

    subpixel: float = 0.08
    scale: float = 2.0
    correlated: bool = True
    depth_unit: float = 0.001
    edge_threshold: float = 0.03
    hole_prob: float = 0.35
    flying_prob: float = 0.3
    stereo_shadow: bool = True
    color_sigma: float = 2.0

    def __post_init__(self) -> None:
        for k in ("subpixel", "scale", "depth_unit", "edge_threshold", "color_sigma"):
            v = getattr(self, k)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"DepthNoise.{k} must be finite and >= 0, got {v}")
        if self.depth_unit <= 0:
            raise ValueError("DepthNoise.depth_unit must be > 0 (0.001 for RealSense z16)")
        p, q = self.hole_prob, self.flying_prob
        if not (0 <= p <= 1 and 0 <= q <= 1 and p + q <= 1):
            raise ValueError(f"hole_prob and flying_prob must lie in [0, 1] and sum to <= 1, got {p}, {q}")

    def sigma(self, z: np.ndarray | float, fx: float, baseline: float) -> np.ndarray | float:
        """Axial noise standard deviation (metres) at depth ``z`` (metres)."""
        return np.square(z) * (self.subpixel * self.scale / (fx * baseline))


# ============================================================================================ kernels
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_SQRT3 = math.sqrt(3.0)
_SQRT6 = math.sqrt(6.0)


@nb.njit(cache=True, inline="always")
def _mix64(z):
    """splitmix64 output function (uint64 -> uint64)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True, inline="always")
def _hash(key, i):
    """Counter-based random 64 bits for stream ``key`` and counter ``i``."""
    return _mix64(key + np.uint64(i + 1) * _GAMMA)


@nb.njit(cache=True, inline="always")
def _irwin_hall(h):
    """Unit-variance, zero-mean noise from 64 random bits: sum of four 16-bit uniforms (|x| < 3.47)."""
    s = 0.0
    for j in range(4):
        s += (float((h >> np.uint64(16 * j)) & np.uint64(0xFFFF)) + 0.5) / 65536.0
    return (s - 2.0) * _SQRT3


@nb.njit(cache=True)
def _blend(neutral, deltas, weights):
    """``neutral + sum_k weights[k] deltas[k]`` (V, 3) float32, skipping zero weights; single-threaded
    (a BLAS call here stalls when other processes hold the cores)."""
    out = neutral.copy()
    nv = neutral.shape[0]
    for k in range(weights.shape[0]):
        wk = weights[k]
        if wk == 0.0:
            continue
        for i in range(nv):
            out[i, 0] += wk * deltas[k, i, 0]
            out[i, 1] += wk * deltas[k, i, 1]
            out[i, 2] += wk * deltas[k, i, 2]
    return out


@nb.njit(cache=True)
def _rasterize(cam, fx, fy, cx, cy, tris, near, depth, tri_id, bary):
    """Z-buffer rasterization of camera-frame triangles into preset buffers (in place).

    cam (V, 3) float32 camera-frame vertices; tris (F, 3) int32; depth (H, W) float32 holds the initial
    depth (background; 0 or +inf = nothing) and receives the nearest surface; tri_id (H, W) int32
    (preset -1) receives the triangle index; bary (H, W, 3) float32 the perspective-correct
    barycentrics of that triangle.
    Pixel centres are at integer coordinates. Triangles with a vertex closer than ``near`` are dropped,
    and so are back faces: for points in front of the camera the projected signed area has the sign of
    ``n . v0`` (n the outward normal), so a front face has negative area. Edge pixels belong to both
    triangles; depth is ``1 / (sum_k w_k / z_k)`` with screen-space barycentrics ``w_k``.
    """
    h, w = depth.shape
    nv = cam.shape[0]
    uv = np.empty((nv, 3), np.float64)
    for i in range(nv):
        z = float(cam[i, 2])
        iz = 1.0 / z if z >= near else -1.0
        uv[i, 0] = fx * cam[i, 0] * iz + cx
        uv[i, 1] = fy * cam[i, 1] * iz + cy
        uv[i, 2] = iz
    for f in range(tris.shape[0]):
        i0, i1, i2 = tris[f, 0], tris[f, 1], tris[f, 2]
        iz0, iz1, iz2 = uv[i0, 2], uv[i1, 2], uv[i2, 2]
        if iz0 < 0.0 or iz1 < 0.0 or iz2 < 0.0:
            continue
        u0, v0, u1, v1, u2, v2 = uv[i0, 0], uv[i0, 1], uv[i1, 0], uv[i1, 1], uv[i2, 0], uv[i2, 1]
        area = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
        if area >= 0.0:
            continue  # back face or edge-on
        xa = max(int(math.ceil(min(u0, min(u1, u2)))), 0)
        xb = min(int(math.floor(max(u0, max(u1, u2)))), w - 1)
        ya = max(int(math.ceil(min(v0, min(v1, v2)))), 0)
        yb = min(int(math.floor(max(v0, max(v1, v2)))), h - 1)
        if xa > xb or ya > yb:
            continue
        inv = 1.0 / area
        for py in range(ya, yb + 1):
            for px in range(xa, xb + 1):
                w0 = ((u1 - px) * (v2 - py) - (u2 - px) * (v1 - py)) * inv
                if w0 < 0.0:
                    continue
                w1 = ((u2 - px) * (v0 - py) - (u0 - px) * (v2 - py)) * inv
                if w1 < 0.0:
                    continue
                w2 = ((u0 - px) * (v1 - py) - (u1 - px) * (v0 - py)) * inv
                if w2 < 0.0:
                    continue
                z = 1.0 / (w0 * iz0 + w1 * iz1 + w2 * iz2)
                cur = depth[py, px]
                if z < cur or cur <= 0.0:
                    depth[py, px] = z
                    tri_id[py, px] = f
                    bary[py, px, 0] = w0 * iz0 * z
                    bary[py, px, 1] = w1 * iz1 * z
                    bary[py, px, 2] = w2 * iz2 * z


@nb.njit(cache=True)
def _resolve_color(tri_id, bary, tris, vcolor, out):
    """In place: colour (H, W, 3) uint8 of pixels with ``tri_id >= 0`` from per-vertex colours (V, 3)
    float32 0..255 and barycentrics; other pixels keep what ``out`` holds (the background)."""
    h, w = tri_id.shape
    for y in range(h):
        for x in range(w):
            f = tri_id[y, x]
            if f < 0:
                continue
            a, b, d = tris[f, 0], tris[f, 1], tris[f, 2]
            l0, l1, l2 = bary[y, x, 0], bary[y, x, 1], bary[y, x, 2]
            r = l0 * vcolor[a, 0] + l1 * vcolor[b, 0] + l2 * vcolor[d, 0] + np.float32(0.5)
            g = l0 * vcolor[a, 1] + l1 * vcolor[b, 1] + l2 * vcolor[d, 1] + np.float32(0.5)
            bl = l0 * vcolor[a, 2] + l1 * vcolor[b, 2] + l2 * vcolor[d, 2] + np.float32(0.5)
            out[y, x, 0] = np.uint8(min(max(r, np.float32(0.0)), np.float32(255.0)))
            out[y, x, 1] = np.uint8(min(max(g, np.float32(0.0)), np.float32(255.0)))
            out[y, x, 2] = np.uint8(min(max(bl, np.float32(0.0)), np.float32(255.0)))


@nb.njit(cache=True)
def _unit_noise(h, w, key, smooth):
    """(h, w) float32 zero-mean unit-variance noise; pixel ``y * w + x`` uses ``_hash(key, y * w + x)``.

    ``smooth`` applies the separable 3x3 binomial kernel [1, 2, 1] (edges replicated) scaled by 1/6
    instead of 1/16, so that white unit-variance input stays unit-variance in the interior.
    """
    raw = np.empty((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            raw[y, x] = _irwin_hall(_hash(key, y * w + x))
    if not smooth:
        return raw
    tmp = np.empty((h, w), np.float32)
    for y in range(h):
        tmp[y, 0] = 3.0 * raw[y, 0] + raw[y, min(1, w - 1)]
        tmp[y, w - 1] = 3.0 * raw[y, w - 1] + raw[y, max(w - 2, 0)]
        for x in range(1, w - 1):
            tmp[y, x] = raw[y, x - 1] + 2.0 * raw[y, x] + raw[y, x + 1]
    out = np.empty((h, w), np.float32)
    k = np.float32(1.0 / 6.0)
    for y in range(h):
        yu, yd = max(y - 1, 0), min(y + 1, h - 1)
        for x in range(w):
            out[y, x] = (tmp[yu, x] + 2.0 * tmp[y, x] + tmp[yd, x]) * k
    return out


@nb.njit(cache=True)
def _edge_artifacts(clean, key, threshold, p_hole, p_fly, out):
    """Holes and flying pixels at depth discontinuities (writes ``out``; reads only ``clean``).

    A pixel is a silhouette pixel when a 4-neighbour differs by more than ``threshold`` (a neighbour with
    no data counts). With probability ``p_hole`` it becomes 0; else with probability ``p_fly`` it takes
    ``z + u (z_n - z)``, u uniform in [0.2, 0.8], toward the neighbour with the largest jump (the first
    of left, right, up, down on ties). Pixel ``y * w + x`` draws from ``_hash(key, y * w + x)``.
    """
    h, w = clean.shape
    for y in range(h):
        yu, yd = max(y - 1, 0), min(y + 1, h - 1)
        for x in range(w):
            out[y, x] = clean[y, x]
        for x in range(w):
            z = clean[y, x]
            xl, xr = max(x - 1, 0), min(x + 1, w - 1)
            a, b, c, d = clean[y, xl], clean[y, xr], clean[yu, x], clean[yd, x]
            # cheap screen first (a border neighbour is the pixel itself: no jump)
            m = max(max(abs(a - z), abs(b - z)), max(abs(c - z), abs(d - z)))
            if m <= threshold or z <= 0.0:
                continue
            best, zn = 0.0, 0.0
            for q in (a, b, c, d):
                jump = abs(q - z) if q > 0.0 else np.inf
                if jump > threshold and jump > best:
                    best, zn = jump, q
            if best == 0.0:
                continue
            r = _hash(key, y * w + x)
            u_event = float(r & np.uint64(0xFFFFFF)) / 16777216.0
            u_mix = float((r >> np.uint64(24)) & np.uint64(0xFFFFFF)) / 16777216.0
            if u_event < p_hole:
                out[y, x] = 0.0
            elif u_event < p_hole + p_fly and zn > 0.0:
                out[y, x] = z + (0.2 + 0.6 * u_mix) * (zn - z)


@nb.njit(cache=True)
def _stereo_shadow(clean, fb, out):
    """Zero ``out`` where the right imager (baseline ``+x``) cannot see the point of ``clean``.

    Right-image column of pixel x: ``x - fb / z``. Scanning each row from the right, a pixel is occluded
    when some pixel to its right maps at or left of it (the ordering constraint fails).
    """
    h, w = clean.shape
    xr = np.empty(w, np.float64)
    for y in range(h):
        for x in range(w):
            z = clean[y, x]
            xr[x] = x - fb / z if z > 0.0 else np.inf
        m = np.inf
        for x in range(w - 1, -1, -1):
            v = xr[x]
            if v >= m:
                if v != np.inf:
                    out[y, x] = 0.0
            else:
                m = v


@nb.njit(cache=True)
def _axial_noise(depth, unit_noise, coef, step, zmin, zmax):
    """In place: ``z += coef z^2 n``, quantise to ``step``, zero outside [zmin, zmax]."""
    h, w = depth.shape
    inv = 1.0 / step
    for y in range(h):
        for x in range(w):
            z = float(depth[y, x])
            if z <= 0.0:
                continue
            z += coef * z * z * unit_noise[y, x]
            z = math.floor(z * inv + 0.5) * step
            depth[y, x] = z if zmin <= z <= zmax else 0.0


@nb.njit(cache=True, inline="always")
def _tri10(r, shift):
    """Zero-mean triangular noise in (-1, 1) from two 10-bit fields of ``r`` at ``shift``, ``shift + 10``."""
    a = np.int32((r >> np.uint64(shift)) & np.uint64(0x3FF))
    b = np.int32((r >> np.uint64(shift + 10)) & np.uint64(0x3FF))
    return np.float32(a + b - 1023) / np.float32(1024.0)


@nb.njit(cache=True)
def _color_noise(flat, key, sigma):
    """In place on a flat RGB buffer (3 P,) uint8: add triangular noise of std ``sigma`` to each channel.

    Pixel ``i`` uses ``_hash(key, i)``; channel c takes bits 20c..20c+19 (std of each draw: 1/sqrt(6)).
    """
    s = np.float32(sigma * _SQRT6)
    half, top, zero = np.float32(0.5), np.float32(255.0), np.float32(0.0)
    for i in range(flat.shape[0] // 3):
        r = _hash(key, i)
        v0 = np.float32(flat[3 * i]) + _tri10(r, 0) * s + half
        v1 = np.float32(flat[3 * i + 1]) + _tri10(r, 20) * s + half
        v2 = np.float32(flat[3 * i + 2]) + _tri10(r, 40) * s + half
        flat[3 * i] = np.uint8(min(max(v0, zero), top))
        flat[3 * i + 1] = np.uint8(min(max(v1, zero), top))
        flat[3 * i + 2] = np.uint8(min(max(v2, zero), top))


# ============================================================================================ rendering
SKIN = (218, 170, 148)
"""Albedo (8-bit RGB) of a rig without vertex colours."""
LIGHT = (0.12, -0.25, 0.0)
"""Point light, camera frame (metres): above and to the right of the lens."""


@dataclass
class RenderResult:
    """What :func:`render_mesh` draws.

    Attributes
    ----------
    depth : (H, W) float32, metres; 0 where nothing was hit
    color : (H, W, 3) uint8 RGB
    triangle : (H, W) int32, index of the visible mesh triangle, -1 on background
    bary : (H, W, 3) float32, perspective-correct barycentrics of that triangle (garbage where -1)
    """

    depth: np.ndarray
    color: np.ndarray
    triangle: np.ndarray
    bary: np.ndarray
    triangles: np.ndarray = field(repr=False)

    @property
    def vertex(self) -> np.ndarray:
        """(H, W) int32 nearest mesh vertex of each pixel (largest barycentric), -1 on background."""
        t = np.maximum(self.triangle, 0)
        v = np.take_along_axis(self.triangles[t], self.bary.argmax(-1)[..., None], axis=-1)[..., 0]
        return np.where(self.triangle >= 0, v, -1).astype(np.int32)


def shade_vertices(
    cam: np.ndarray, normals: np.ndarray, albedo: np.ndarray, light=LIGHT, ambient: float = 0.3
) -> np.ndarray:
    """Lambert shading of camera-frame vertices: ``albedo * (ambient + (1 - ambient) max(0, n . l))``.

    Returns (V, 3) float32 in 0..255 (not clipped).
    """
    to_light = np.asarray(light, np.float32) - cam
    to_light /= np.linalg.norm(to_light, axis=1, keepdims=True) + 1e-12
    lam = np.maximum(np.einsum("ij,ij->i", normals, to_light), 0.0)
    return albedo * (ambient + (1.0 - ambient) * lam)[:, None]


def background_wall(
    intrinsics: Intrinsics, distance: float | None = 1.2, light=LIGHT
) -> tuple[np.ndarray, np.ndarray]:
    """A grey wall facing the camera: ``(depth (H, W) float32, color (H, W, 3) uint8)``, read-only (cached).

    ``distance`` metres, or None for no wall (depth 0; the colour is still a lit grey gradient, never black).
    """
    return _background_wall(
        intrinsics, None if distance is None else float(distance), tuple(map(float, light))
    )


@functools.lru_cache(maxsize=8)
def _background_wall(k: Intrinsics, distance: float | None, light: tuple) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0 : k.height, 0 : k.width].astype(np.float32)
    d = 1.2 if distance is None else float(distance)
    pts = np.stack([(xs - k.cx) / k.fx * d, (ys - k.cy) / k.fy * d, np.full_like(xs, d)], -1)
    to_l = np.asarray(light, np.float32) - pts
    r = np.linalg.norm(to_l, axis=-1)
    lam = -to_l[..., 2] / r * (d / r) ** 2  # cosine toward the wall normal (0, 0, -1), 1/r^2 falloff
    shade = 0.45 + 0.4 * lam / lam.max() + 0.08 * (1.0 - ys / k.height)  # a soft vertical gradient too
    color = np.clip(np.array([150, 148, 142], np.float32) * shade[..., None], 0, 255).astype(np.uint8)
    depth = np.zeros((k.height, k.width), np.float32) if distance is None else np.full_like(xs, d)
    depth.flags.writeable = False
    color.flags.writeable = False
    return depth, color


def render_mesh(
    vertices: np.ndarray,
    triangles: np.ndarray,
    intrinsics: Intrinsics,
    vertex_colors: np.ndarray | None = None,
    background: tuple[np.ndarray, np.ndarray] | None = None,
    light=LIGHT,
    ambient: float = 0.3,
    near: float = 0.05,
) -> RenderResult:
    """Render a triangle mesh given in the camera frame.

    Parameters
    ----------
    vertices : (V, 3) float, metres, OpenCV camera frame (x right, y down, z forward)
    triangles : (F, 3) int, counter-clockwise seen from outside (back faces are culled)
    intrinsics : Intrinsics
    vertex_colors : (V, 3) uint8 or float 0..255 albedo, optional (default :data:`SKIN`)
    background : (depth (H, W) float32, color (H, W, 3) uint8), optional
        What lies behind the mesh (see :func:`background_wall`); default: no data and a grey wall colour.
    light : (3,) camera-frame point light position, metres
    ambient : float in [0, 1]
    near : float, metres; triangles with a vertex closer than this are dropped

    Returns
    -------
    RenderResult
    """
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    t = np.ascontiguousarray(triangles, dtype=np.int32)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V, 3) camera-frame metres, got {v.shape}")
    if t.ndim != 2 or t.shape[1] != 3 or (len(t) and (t.min() < 0 or t.max() >= len(v))):
        raise ValueError(f"triangles must be (F, 3) indices into {len(v)} vertices")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain NaN or inf")
    k = intrinsics
    if background is None:
        background = background_wall(k, None, light)
    bg_depth, bg_color = background
    if bg_depth.shape != (k.height, k.width) or bg_color.shape != (k.height, k.width, 3):
        raise ValueError(
            f"background must be ({k.height}, {k.width}) depth and ({k.height}, {k.width}, 3) color"
        )
    if vertex_colors is None:
        albedo = np.broadcast_to(np.asarray(SKIN, np.float32), v.shape)
    else:
        albedo = np.asarray(vertex_colors, dtype=np.float32)
        if albedo.shape != v.shape:
            raise ValueError(f"vertex_colors must be {v.shape} RGB 0..255, got {albedo.shape}")

    depth = np.array(bg_depth, dtype=np.float32, order="C")  # 0 = nothing behind
    tri_id = np.full((k.height, k.width), -1, np.int32)
    bary = np.empty((k.height, k.width, 3), np.float32)
    _rasterize(v, k.fx, k.fy, k.cx, k.cy, t, near, depth, tri_id, bary)
    lit = shade_vertices(v, _vertex_normals(v, t), albedo, light, ambient).astype(np.float32)
    color = np.array(bg_color, dtype=np.uint8, order="C")
    _resolve_color(tri_id, bary, t, lit, color)
    return RenderResult(depth=depth, color=color, triangle=tri_id, bary=bary, triangles=t)


def _check_pose(rotation, translation) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)
    if r.shape != (3, 3) or t.shape != (3,):
        raise ValueError(f"pose must be R (3, 3) and t (3,), got {r.shape} and {t.shape}")
    if not (np.isfinite(r).all() and np.isfinite(t).all()):
        raise ValueError("pose contains NaN or inf")
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
        raise ValueError("R must be a rotation matrix (orthonormal, det +1); see facecap.pose.from_euler")
    return r, t


def render_triangles(rig: Rig) -> np.ndarray:
    """The rig's triangles a renderer should draw: all but those touching the ``"overlays"`` mask
    (transparent layers such as ICT-FaceKit's eye moisture/cornea shells), (F', 3) int32."""
    over = rig.masks.get("overlays")
    if over is None or not over.any():
        return rig.triangles
    return np.ascontiguousarray(rig.triangles[~over[rig.triangles].any(axis=1)])


def render_rig(
    rig: Rig,
    weights: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    intrinsics: Intrinsics,
    background: tuple[np.ndarray, np.ndarray] | None = None,
    vertex_colors: np.ndarray | None = None,
    triangles: np.ndarray | None = None,
    **kw,
) -> RenderResult:
    """Render ``rig`` with blendshape ``weights`` (52,) at pose ``x_cam = R x_rig + t`` (no noise).

    ``vertex_colors`` defaults to ``rig.colors`` (or :data:`SKIN`); ``triangles`` to
    :func:`render_triangles` (``RenderResult.triangle`` indexes them); other keywords go to
    :func:`render_mesh`.
    """
    r, t = _check_pose(rotation, translation)
    w = np.asarray(weights, dtype=np.float32)
    if w.shape != (arkit.NUM_SHAPES,):
        raise ValueError(f"weights must be (52,) in canonical ARKit order, got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights contain NaN or inf")
    verts = _blend(rig.neutral, rig.deltas, w)
    cam = verts @ r.T.astype(np.float32) + t.astype(np.float32)
    colors = rig.colors if vertex_colors is None else vertex_colors
    tris = render_triangles(rig) if triangles is None else triangles
    return render_mesh(cam, tris, intrinsics, colors, background, **kw)


def apply_depth_noise(
    depth: np.ndarray,
    fx: float,
    baseline: float,
    model: DepthNoise,
    key: int,
    min_range: float = 0.2,
    max_range: float = 4.0,
) -> np.ndarray:
    """A noisy copy of a clean depth image, as a D4xx would deliver it.

    Steps: holes and flying pixels at silhouettes, the stereo occlusion shadow, axial noise
    ``sigma(z) = z^2 subpixel scale / (fx baseline)``, quantisation to ``depth_unit`` and the range limits.

    Parameters
    ----------
    depth : (H, W) float32, metres (0 = no data)
    fx : float, pixels; baseline : float, metres
    model : DepthNoise
    key : int, random stream (any 64-bit integer; the same key gives the same noise)
    min_range, max_range : float, metres

    Returns
    -------
    (H, W) float32, metres, multiples of ``model.depth_unit`` (0 = no data)
    """
    d = np.ascontiguousarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H, W) metres, got shape {d.shape}")
    key = np.uint64(int(key) & 0xFFFFFFFFFFFFFFFF)
    h, w = d.shape
    out = np.empty_like(d)
    _edge_artifacts(
        d, key ^ np.uint64(0x5EED0001), model.edge_threshold, model.hole_prob, model.flying_prob, out
    )
    if model.stereo_shadow:
        _stereo_shadow(d, fx * baseline, out)
    n = _unit_noise(h, w, key ^ np.uint64(0x5EED0002), model.correlated)
    coef = model.subpixel * model.scale / (fx * baseline)
    _axial_noise(out, n, coef, model.depth_unit, min_range, max_range)
    return out


def apply_color_noise(color: np.ndarray, sigma: float, key: int) -> np.ndarray:
    """A copy of ``color`` (H, W, 3) uint8 with zero-mean per-channel noise of std ``sigma`` levels."""
    c = np.array(color, dtype=np.uint8, copy=True, order="C")
    if c.ndim != 3 or c.shape[2] != 3:
        raise ValueError(f"color must be (H, W, 3) uint8, got {c.shape}")
    if sigma > 0:
        _color_noise(
            c.reshape(-1), np.uint64(int(key) & 0xFFFFFFFFFFFFFFFF) ^ np.uint64(0x5EED0003), float(sigma)
        )
    return c


# ============================================================================================ performances
def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _envelope(t: np.ndarray, start: float, attack: float, hold: float, release: float) -> np.ndarray:
    """0 -> 1 -> 0 with smoothstep ramps: rise over ``attack`` s, stay ``hold`` s, fall over ``release`` s."""
    up = _smoothstep((t - start) / attack)
    down = 1.0 - _smoothstep((t - start - attack - hold) / release)
    return np.minimum(up, down)


_S = "Left", "Right"
# name -> {shape: peak}; shapes ending in "*" expand to Left and Right. Together they cover all 52 shapes
# except the eye looks and blinks, which have their own tracks.
EXPRESSIONS: dict[str, dict[str, float]] = {
    "smile": {"mouthSmile*": 0.85, "cheekSquint*": 0.45, "eyeSquint*": 0.3, "mouthDimple*": 0.25},
    "smirk_left": {
        "mouthSmileLeft": 0.75,
        "cheekSquintLeft": 0.35,
        "mouthDimpleLeft": 0.4,
        "mouthLeft": 0.25,
    },
    "smirk_right": {
        "mouthSmileRight": 0.75,
        "cheekSquintRight": 0.35,
        "mouthDimpleRight": 0.4,
        "mouthRight": 0.25,
    },
    "surprise": {
        "browInnerUp": 0.8,
        "browOuterUp*": 0.75,
        "eyeWide*": 0.7,
        "jawOpen": 0.45,
        "mouthLowerDown*": 0.2,
    },
    "brow_raise": {"browInnerUp": 0.6, "browOuterUp*": 0.7, "eyeWide*": 0.2},
    "brow_raise_left": {"browOuterUpLeft": 0.8, "browInnerUp": 0.25, "eyeWideLeft": 0.3},
    "brow_raise_right": {"browOuterUpRight": 0.8, "browInnerUp": 0.25, "eyeWideRight": 0.3},
    "frown": {"browDown*": 0.8, "eyeSquint*": 0.3, "noseSneer*": 0.25, "mouthPress*": 0.3},
    "sad": {"mouthFrown*": 0.7, "browInnerUp": 0.55, "mouthShrugLower": 0.4, "mouthPress*": 0.15},
    "disgust": {"noseSneer*": 0.8, "mouthUpperUp*": 0.55, "browDown*": 0.3, "cheekSquint*": 0.3},
    "sneer_left": {"noseSneerLeft": 0.8, "mouthUpperUpLeft": 0.6, "cheekSquintLeft": 0.35},
    "sneer_right": {"noseSneerRight": 0.8, "mouthUpperUpRight": 0.6, "cheekSquintRight": 0.35},
    "pucker": {"mouthPucker": 0.9, "mouthFunnel": 0.25},
    "oo": {"mouthFunnel": 0.8, "mouthPucker": 0.3, "jawOpen": 0.2},
    "cheek_puff": {"cheekPuff": 0.9, "mouthPucker": 0.15, "mouthPress*": 0.1},
    "jaw_left": {"jawLeft": 0.7, "mouthLeft": 0.3},
    "jaw_right": {"jawRight": 0.7, "mouthRight": 0.3},
    "jaw_forward": {"jawForward": 0.7, "mouthShrugLower": 0.2, "jawOpen": 0.1},
    "aah": {
        "jawOpen": 0.9,
        "mouthStretch*": 0.3,
        "mouthLowerDown*": 0.45,
        "mouthUpperUp*": 0.2,
        "browInnerUp": 0.2,
    },
    "lips_closed_jaw_open": {"jawOpen": 0.35, "mouthClose": 0.5},
    "grimace": {"mouthStretch*": 0.8, "mouthLowerDown*": 0.35, "noseSneer*": 0.2, "eyeSquint*": 0.35},
    "mm": {"mouthRollLower": 0.6, "mouthRollUpper": 0.5, "mouthPress*": 0.45},
    "shrug": {"mouthShrugLower": 0.7, "mouthShrugUpper": 0.45, "browInnerUp": 0.4, "mouthFrown*": 0.3},
    "tongue_out": {"tongueOut": 0.85, "jawOpen": 0.4},
    "lips_left": {"mouthLeft": 0.7, "mouthSmileLeft": 0.1},
    "lips_right": {"mouthRight": 0.7, "mouthSmileRight": 0.1},
    "squint": {"eyeSquint*": 0.7, "cheekSquint*": 0.4, "browDown*": 0.2},
    "wink_left": {"eyeBlinkLeft": 1.0, "eyeSquintLeft": 0.4, "cheekSquintLeft": 0.4, "mouthSmileLeft": 0.3},
    "wink_right": {
        "eyeBlinkRight": 1.0,
        "eyeSquintRight": 0.4,
        "cheekSquintRight": 0.4,
        "mouthSmileRight": 0.3,
    },
    "talk": {},  # syllables, built in _talk()
}
_VISEMES = (
    {"mouthLowerDown*": 0.35, "mouthUpperUp*": 0.2},
    {"mouthFunnel": 0.45},
    {"mouthPucker": 0.5},
    {"mouthStretch*": 0.35},
    {"mouthClose": 0.15, "mouthPress*": 0.3},
    {"mouthRollLower": 0.35},
    {"mouthSmile*": 0.3},
)


def _expand_peaks(spec: dict[str, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for n, p in spec.items():
        for m in (n[:-1] + s for s in _S) if n.endswith("*") else (n,):
            out[arkit.index(m)] = p
    return out


def _add(acc: np.ndarray, sl: slice, env: np.ndarray, peaks: dict[int, float], gain: float) -> None:
    """acc holds prod(1 - c) per shape; contributions combine as a probabilistic OR (stays in [0, 1])."""
    for k, p in peaks.items():
        acc[sl, k] *= 1.0 - np.minimum(p * gain, 1.0) * env


def _talk(acc, t, start, length, rng) -> None:
    """Syllables at ~4 per second: jaw opening with one viseme each."""
    s = start
    while s < start + length:
        dur = rng.uniform(0.2, 0.32)
        sl = slice(int(np.searchsorted(t, s)), int(np.searchsorted(t, s + dur)))
        env = _envelope(t[sl], s, dur * 0.45, 0.0, dur * 0.55)
        _add(acc, sl, env, {arkit.index("jawOpen"): rng.uniform(0.12, 0.45)}, 1.0)
        _add(acc, sl, env, _expand_peaks(_VISEMES[rng.integers(len(_VISEMES))]), rng.uniform(0.6, 1.0))
        s += dur * rng.uniform(0.75, 1.0)


def procedural_performance(
    n_frames: int, fps: float = 30.0, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Expression weights for a plausible, smooth performance; needs no data file.

    Three tracks combine as a probabilistic OR (``1 - prod(1 - c)``, so weights stay in [0, 1]):

    - expressions: the events of :data:`EXPRESSIONS` (smiles, smirks, surprise, brow raises, frowns,
      disgust, puckers, cheek puffs, jaw moves, talking, winks, ...) in shuffled rounds that play every
      event once before any repeats; each rises over 0.2-0.4 s, holds 0.2-0.9 s, falls over 0.25-0.6 s,
      peaks scaled by 0.75-1.0, with 0-0.4 s between events;
    - blinks every 2-5 s (close 0.1 s, open 0.15-0.2 s);
    - gaze: fixations of 0.6-2.5 s in shuffled rounds over 8 directions and the centre, eased over
      0.2 s, mapped to the eight eyeLook shapes (looking down lowers the lids a little).

    One round of expressions lasts about 45 s; every one of the 52 shapes exceeds 0.3 within the first
    round (within 60 s, at any fps). The sequence depends on time, not frames: the same seed at 30 and
    60 fps gives the same performance sampled twice as densely.

    Parameters
    ----------
    n_frames : int
    fps : float, frames per second
    seed : int or numpy Generator

    Returns
    -------
    (n_frames, 52) float32 in [0, 1], canonical ARKit order
    """
    n_frames = int(n_frames)
    if n_frames < 0 or not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"need n_frames >= 0 and fps > 0, got {n_frames}, {fps}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    end = n_frames / fps
    acc = np.ones((n_frames, arkit.NUM_SHAPES))

    # expression track
    names = list(EXPRESSIONS)
    s, deck = rng.uniform(0.2, 0.8), []
    while s < end:
        if not deck:
            deck = [names[i] for i in rng.permutation(len(names))]
        ev = deck.pop()
        if ev == "talk":
            length = rng.uniform(1.5, 3.0)
            _talk(acc, t, s, length, rng)
            s += length + rng.uniform(0.0, 0.4)
            continue
        a, h, r = rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.9), rng.uniform(0.25, 0.6)
        sl = slice(int(np.searchsorted(t, s)), int(np.searchsorted(t, s + a + h + r)))
        _add(acc, sl, _envelope(t[sl], s, a, h, r), _expand_peaks(EXPRESSIONS[ev]), rng.uniform(0.75, 1.0))
        s += a + h + r + rng.uniform(0.0, 0.4)

    # blink track
    blink = {arkit.index("eyeBlinkLeft"): 1.0, arkit.index("eyeBlinkRight"): 1.0}
    s = rng.uniform(0.5, 2.0)
    while s < end:
        op = rng.uniform(0.15, 0.2)
        sl = slice(int(np.searchsorted(t, s)), int(np.searchsorted(t, s + 0.15 + op)))
        _add(acc, sl, _envelope(t[sl], s, 0.1, 0.05, op), blink, rng.uniform(0.9, 1.0))
        s += rng.uniform(2.0, 5.0)

    # gaze track: yaw > 0 looks toward the subject's left, pitch > 0 up
    dirs = [
        (c, sn) for c, sn in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1), (0, 0))
    ]
    yaw, pitch = np.zeros(n_frames), np.zeros(n_frames)
    s, cur, deck = 0.0, (0.0, 0.0), []
    while s < end:
        if not deck:
            deck = [dirs[i] for i in rng.permutation(len(dirs))]
        dx, dy = deck.pop()
        mag = rng.uniform(0.4, 0.85)
        nxt = (dx * mag, dy * mag * 0.8)
        sl = slice(int(np.searchsorted(t, s)), n_frames)
        e = _smoothstep((t[sl] - s) / 0.2)
        yaw[sl] = cur[0] + (nxt[0] - cur[0]) * e
        pitch[sl] = cur[1] + (nxt[1] - cur[1]) * e
        cur = nxt
        s += rng.uniform(0.6, 2.5)
    gaze = {
        "eyeLookOutLeft": np.maximum(yaw, 0),
        "eyeLookInRight": np.maximum(yaw, 0),
        "eyeLookInLeft": np.maximum(-yaw, 0),
        "eyeLookOutRight": np.maximum(-yaw, 0),
        "eyeLookUpLeft": np.maximum(pitch, 0),
        "eyeLookUpRight": np.maximum(pitch, 0),
        "eyeLookDownLeft": np.maximum(-pitch, 0),
        "eyeLookDownRight": np.maximum(-pitch, 0),
        "eyeBlinkLeft": 0.25 * np.maximum(-pitch, 0),
        "eyeBlinkRight": 0.25 * np.maximum(-pitch, 0),
    }
    for n, c in gaze.items():
        acc[:, arkit.index(n)] *= 1.0 - c
    return np.clip(1.0 - acc, 0.0, 1.0).astype(np.float32)


def _smooth_signal(
    t: np.ndarray, rng: np.random.Generator, amplitude: float, fmin=0.05, fmax=0.35
) -> np.ndarray:
    """Sum of 4 sinusoids with random frequencies and phases; |x| <= amplitude guaranteed."""
    f = rng.uniform(fmin, fmax, 4)
    ph = rng.uniform(0, 2 * np.pi, 4)
    a = rng.uniform(0.5, 1.0, 4)
    a *= amplitude / a.sum()
    return (a[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None])).sum(0)


def head_motion(
    n_frames: int,
    fps: float = 30.0,
    seed: int | np.random.Generator = 0,
    max_angle_deg: float = 20.0,
    max_translation_m: float = 0.02,
    distance_m: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth head poses around a frontal pose: yaw, pitch and roll within ``max_angle_deg`` and a
    translation within ``max_translation_m`` per axis of ``(0, 0, distance_m)`` (the rig origin).

    Each angle and translation axis is a sum of four sinusoids of 0.05-0.35 Hz (yaw uses the full
    ``max_angle_deg``, pitch 0.75 and roll 0.5 of it), so the bounds hold strictly and motion is smooth.

    Returns
    -------
    rotations : (n_frames, 3, 3) float64, rig -> camera (see ``facecap.pose.from_euler``)
    translations : (n_frames, 3) float64, metres
    """
    n_frames = int(n_frames)
    if n_frames < 0 or not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"need n_frames >= 0 and fps > 0, got {n_frames}, {fps}")
    if not (0 <= max_angle_deg <= 90 and max_translation_m >= 0 and distance_m > 0):
        raise ValueError("need 0 <= max_angle_deg <= 90, max_translation_m >= 0 and distance_m > 0")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    a = np.radians(max_angle_deg)
    yaw, pitch, roll = (_smooth_signal(t, rng, a * s) for s in (1.0, 0.75, 0.5))
    rot = np.array([from_euler(y, p, r) for y, p, r in zip(yaw, pitch, roll, strict=True)]).reshape(-1, 3, 3)
    trans = np.stack([_smooth_signal(t, rng, max_translation_m) for _ in range(3)], axis=1).reshape(-1, 3)
    trans[:, 2] += distance_m
    return rot, trans


# ============================================================================================ the actor
class SyntheticActor:
    """A rig in front of a simulated RealSense camera: renders aligned RGB-D frames with ground truth.

    Parameters
    ----------
    rig : Rig
    camera : str or CameraPreset
        ``"d415"`` or ``"d435"`` (640x480, :data:`CAMERAS`).
    distance : float, metres
        Camera to rig origin for the default frontal pose.
    noise : bool or DepthNoise
        True for the default :class:`DepthNoise`, False for clean images.
    seed : int
        Seeds all noise; frame ``i`` of two actors with the same seed is identical.
    background : bool or float
        True: a wall 1.2 m away (in depth and colour); a float: the wall distance in metres; False: no
        depth behind the face (colour still shows a grey wall).
    light : (3,) camera-frame point light position, metres
    """

    def __init__(
        self,
        rig: Rig,
        camera: str | CameraPreset = "d415",
        distance: float = 0.6,
        noise: bool | DepthNoise = True,
        seed: int = 0,
        background: bool | float = True,
        light=LIGHT,
    ) -> None:
        if not isinstance(rig, Rig):
            raise TypeError(f"rig must be a facecap Rig (facecap.load_rig()), got {type(rig).__name__}")
        if not (math.isfinite(distance) and distance > 0):
            raise ValueError(f"distance must be a positive number of metres, got {distance}")
        self.rig = rig
        self.camera = get_camera(camera)
        self.intrinsics = self.camera.intrinsics
        self.distance = float(distance)
        if not isinstance(noise, (bool, DepthNoise)) and noise is not None:
            raise TypeError(f"noise must be True, False or a DepthNoise, got {type(noise).__name__}")
        self.noise = DepthNoise() if noise is True else (noise or None)
        self.seed = int(seed)
        self.light = tuple(float(x) for x in light)
        if background is True:
            wall = 1.2
        elif background is False or background is None:
            wall = None
        else:
            wall = float(background)
            if not wall > 0:
                raise ValueError(f"background distance must be > 0 metres, got {background}")
        self.background_distance = wall
        self._background = background_wall(self.intrinsics, wall, self.light)
        self._triangles = render_triangles(rig)
        self._count = 0

    @property
    def frontal_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) of a face looking into the camera at ``distance``."""
        return FRONTAL.copy(), np.array([0.0, 0.0, self.distance])

    def _key(self, index: int) -> int:
        return int(np.random.default_rng([self.seed, int(index)]).integers(0, 2**63 - 1))

    def render_clean(
        self, weights: np.ndarray, rotation: np.ndarray | None = None, translation: np.ndarray | None = None
    ) -> RenderResult:
        """Noise-free render (depth, colour, triangle ids); pose defaults to :attr:`frontal_pose`."""
        r0, t0 = self.frontal_pose
        r = r0 if rotation is None else rotation
        t = t0 if translation is None else translation
        return render_rig(
            self.rig,
            weights,
            r,
            t,
            self.intrinsics,
            self._background,
            triangles=self._triangles,
            light=self.light,
        )

    def render(
        self,
        weights: np.ndarray,
        rotation: np.ndarray | None = None,
        translation: np.ndarray | None = None,
        timestamp: float | None = None,
        index: int | None = None,
    ) -> Frame:
        """One aligned RGB-D frame (noise as configured); pose defaults to :attr:`frontal_pose`.

        ``index`` selects the noise stream (by default the actor counts its calls); ``timestamp``
        defaults to ``index / 30`` seconds.
        """
        if index is None:
            index, self._count = self._count, self._count + 1
        return self._finish(
            self.render_clean(weights, rotation, translation),
            index,
            index / 30.0 if timestamp is None else timestamp,
        )

    def ground_truth(
        self, weights: np.ndarray, rotation: np.ndarray, translation: np.ndarray, visible: bool = True
    ) -> GroundTruth:
        """GroundTruth with the rig's landmarks projected to pixels (``landmarks_2d`` (L, 2) float32)."""
        r, t = _check_pose(rotation, translation)
        w = np.asarray(weights, dtype=np.float32).reshape(arkit.NUM_SHAPES)
        lm = self.rig.landmark_points(_blend(self.rig.neutral, self.rig.deltas, w)) @ r.T + t
        uv = self.intrinsics.project(lm).astype(np.float32).reshape(-1, 2)
        return GroundTruth(rotation=r, translation=t, weights=w.copy(), landmarks_2d=uv, visible=visible)

    def frames(
        self,
        weights_seq: np.ndarray,
        rotations: np.ndarray | None = None,
        translations: np.ndarray | None = None,
        fps: float = 30.0,
    ) -> Iterator[tuple[Frame, GroundTruth]]:
        """Render a sequence: ``(Frame, GroundTruth)`` per row of ``weights_seq`` (N, 52).

        Poses default to frontal; timestamps are ``i / fps``; frame ``i`` uses noise stream ``i``.
        Arguments are checked here, before the first frame is rendered.
        """
        w = np.asarray(weights_seq, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != arkit.NUM_SHAPES:
            raise ValueError(f"weights_seq must be (N, 52) in canonical ARKit order, got {w.shape}")
        n = len(w)
        r0, t0 = self.frontal_pose
        rs = np.broadcast_to(r0, (n, 3, 3)) if rotations is None else np.asarray(rotations, dtype=np.float64)
        ts = (
            np.broadcast_to(t0, (n, 3))
            if translations is None
            else np.asarray(translations, dtype=np.float64)
        )
        if rs.shape != (n, 3, 3) or ts.shape != (n, 3):
            raise ValueError(
                f"rotations must be ({n}, 3, 3) and translations ({n}, 3), got {rs.shape}, {ts.shape}"
            )
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        if not np.isfinite(w).all():
            raise ValueError("weights_seq contains NaN or inf (hold or drop face-lost frames first)")
        return self._frames(w, rs, ts, fps)

    def _frames(self, w, rs, ts, fps) -> Iterator[tuple[Frame, GroundTruth]]:
        for i in range(len(w)):
            res = self.render_clean(w[i], rs[i], ts[i])
            frame = self._finish(res, i, i / fps)
            yield frame, self.ground_truth(w[i], rs[i], ts[i], visible=bool((res.triangle >= 0).any()))

    def _finish(self, res: RenderResult, index: int, timestamp: float) -> Frame:
        depth, color = res.depth, res.color
        if self.noise is not None:
            key, cam = self._key(index), self.camera
            depth = apply_depth_noise(
                depth, self.intrinsics.fx, cam.baseline, self.noise, key, cam.min_range, cam.max_range
            )
            color = apply_color_noise(color, self.noise.color_sigma, key)
        return Frame(
            depth=depth,
            depth_intrinsics=self.intrinsics,
            color=color,
            color_intrinsics=self.intrinsics,
            timestamp=float(timestamp),
            index=int(index),
        )


def simulated_landmarks(
    gt: GroundTruth, pixel_sigma: float = 1.5, seed: int | np.random.Generator = 0, dropout: float = 0.0
) -> np.ndarray:
    """A *simulated* landmark detector: the ground-truth 2-D landmarks plus Gaussian pixel noise.

    Parameters
    ----------
    gt : GroundTruth with ``landmarks_2d`` (L, 2)
    pixel_sigma : float, pixels, per-coordinate noise std
    seed : int or numpy Generator
    dropout : float in [0, 1), probability that a landmark is missing (NaN row)

    Returns
    -------
    (L, 2) float32 pixels, NaN for dropped landmarks
    """
    if gt.landmarks_2d is None:
        raise ValueError("ground truth has no landmarks_2d (render it with SyntheticActor.ground_truth)")
    if not (pixel_sigma >= 0 and 0 <= dropout < 1):
        raise ValueError(f"need pixel_sigma >= 0 and 0 <= dropout < 1, got {pixel_sigma}, {dropout}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lm = np.asarray(gt.landmarks_2d, dtype=np.float64)
    out = lm + rng.normal(0.0, pixel_sigma, lm.shape)
    out[rng.random(len(lm)) < dropout] = np.nan
    return out.astype(np.float32)


def make_performance(
    n_frames: int | None = 300,
    fps: float = 30.0,
    seed: int = 0,
    take_csv: str | None = None,
    max_angle_deg: float = 20.0,
    distance: float = 0.6,
    max_translation_m: float = 0.02,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (N, 52) float32 in [0, 1], rotations (N, 3, 3) and translations (N, 3) for a synthetic take.

    Weights come from :func:`procedural_performance`, or from a Live Link Face take (resampled to ``fps``;
    face-lost rows held; values clipped to [0, 1]; ``n_frames`` None or beyond the take's end stops at the
    end). Head motion comes from :func:`head_motion` (Live Link takes carry no head rotation).
    """
    if take_csv is not None:
        from .livelink import read_csv

        take = read_csv(take_csv)
        available = int(math.floor(take.timestamps[-1] * fps)) + 1
        n = available if n_frames is None else min(int(n_frames), available)
        weights = np.clip(take.sample(np.arange(n) / fps), 0.0, 1.0).astype(np.float32)
    else:
        n = 300 if n_frames is None else int(n_frames)
        weights = procedural_performance(n, fps, seed)
    rot, trans = head_motion(n, fps, seed + 1, max_angle_deg, max_translation_m, distance)
    return weights, rot, trans


def synthetic_take(
    n_frames: int | None = 300,
    camera: str | CameraPreset = "d415",
    distance: float = 0.6,
    seed: int = 0,
    take_csv: str | None = None,
    max_angle_deg: float = 20.0,
    *,
    rig: Rig | None = None,
    fps: float = 30.0,
    noise: bool | DepthNoise = True,
    background: bool | float = True,
) -> Iterator[tuple[Frame, GroundTruth]]:
    """The synthetic actor performing a take: ``(Frame, GroundTruth)`` per frame.

    Expressions from ``take_csv`` (a Live Link Face CSV) or :func:`procedural_performance`; head motion
    from :func:`head_motion`; the built-in rig unless ``rig`` is given. See :func:`make_performance`.
    """
    if rig is None:
        from .rig import load_rig

        rig = load_rig()
    weights, rot, trans = make_performance(n_frames, fps, seed, take_csv, max_angle_deg, distance)
    actor = SyntheticActor(rig, camera, distance, noise, seed, background)
    return actor.frames(weights, rot, trans, fps)


# ============================================================================================ truth sidecar
@dataclass
class SyntheticTruth:
    """Ground truth of a synthetic recording (see :func:`save_truth`)."""

    weights: np.ndarray  # (N, 52) float32, canonical order
    rotations: np.ndarray  # (N, 3, 3) float64, rig -> camera
    translations: np.ndarray  # (N, 3) float64, metres
    timestamps: np.ndarray  # (N,) float64, seconds
    landmarks_2d: np.ndarray  # (N, L, 2) float32 pixels (L may be 0)
    camera: str
    distance: float
    seed: int
    rig_name: str
    fps: float
    intrinsics: dict

    @property
    def n_frames(self) -> int:
        return len(self.weights)


def truth_path(recording: str | os.PathLike) -> Path:
    """``FILE.truth.npz`` beside ``FILE.db3`` (or the path itself if it already ends in ``.truth.npz``)."""
    p = Path(recording)
    if p.name.endswith(".truth.npz"):
        return p
    return p.with_name(p.stem + ".truth.npz") if p.suffix else p.with_name(p.name + ".truth.npz")


def save_truth(
    recording: str | os.PathLike,
    truths: list[GroundTruth],
    timestamps,
    *,
    camera: str | CameraPreset,
    distance: float,
    seed: int,
    rig_name: str,
    fps: float,
) -> Path:
    """Write the ground truth of ``recording`` (``FILE.db3`` -> ``FILE.truth.npz``); return the path."""
    if not truths:
        raise ValueError("no ground truth to save (zero frames)")
    cam = get_camera(camera)
    n_lm = {0 if g.landmarks_2d is None else len(g.landmarks_2d) for g in truths}
    lms = (
        np.stack([g.landmarks_2d for g in truths]).astype(np.float32)
        if n_lm != {0}
        else np.zeros((len(truths), 0, 2), np.float32)
    )
    meta = {
        "camera": cam.name,
        "distance": float(distance),
        "seed": int(seed),
        "rig_name": str(rig_name),
        "fps": float(fps),
        "intrinsics": cam.intrinsics.to_dict(),
        "format": "facecap-truth-1",
    }
    path = truth_path(recording)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            weights=np.stack([g.weights for g in truths]).astype(np.float32),
            rotations=np.stack([g.rotation for g in truths]).astype(np.float64),
            translations=np.stack([g.translation for g in truths]).astype(np.float64),
            timestamps=np.asarray(timestamps, dtype=np.float64),
            landmarks_2d=lms,
            meta=np.array(json.dumps(meta)),
        )
    return path


def load_truth(path: str | os.PathLike) -> SyntheticTruth:
    """Read a sidecar written by :func:`save_truth`; ``path`` may be the recording or the ``.truth.npz``."""
    p = truth_path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"no ground truth beside the recording: {p} (only `facecap synth` writes one)"
        )
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, OSError, ValueError
        raise ValueError(f"{p} is not a readable ground-truth .npz ({e})") from e
    with z:
        need = {"weights", "rotations", "translations", "timestamps", "landmarks_2d", "meta"}
        if need - set(z.files):
            raise ValueError(f"{p} is not a facecap ground-truth file: missing {sorted(need - set(z.files))}")
        meta = json.loads(str(z["meta"]))
        return SyntheticTruth(
            weights=z["weights"],
            rotations=z["rotations"],
            translations=z["translations"],
            timestamps=z["timestamps"],
            landmarks_2d=z["landmarks_2d"],
            camera=meta["camera"],
            distance=meta["distance"],
            seed=meta["seed"],
            rig_name=meta["rig_name"],
            fps=meta["fps"],
            intrinsics=meta["intrinsics"],
        )


# ============================================================================================ rig preview
def rig_preview(
    rig: Rig, out: str | os.PathLike | None = None, tile: int = 200, cols: int = 8, supersample: int = 2
):
    """Contact sheet of the neutral and all 52 expressions (each at weight 1), labelled with ARKit names.

    Rendered by the synthetic actor's renderer without noise, frontal, cropped to the face (the
    ``"track"`` mask plus a 25 % margin). Vertices tint red with their displacement (strongest from
    5 mm on) so that small shapes such as the eye looks stay visible.

    Parameters
    ----------
    rig : Rig
    out : path of a PNG to write, optional
    tile : int, pixels per square tile
    cols : int, tiles per row (rows follow: 53 tiles -> 7 rows of 8)
    supersample : int, render at this multiple of ``tile`` and downsample (anti-aliasing)

    Returns
    -------
    PIL.Image.Image (RGB, ``cols * tile`` x ``ceil(53 / cols) * tile``)
    """
    from PIL import Image, ImageDraw, ImageFont

    if tile < 32 or cols < 1 or supersample < 1:
        raise ValueError("need tile >= 32 px, cols >= 1 and supersample >= 1")
    region = rig.masks["track"]
    pts = rig.neutral[region] if region.any() else rig.neutral
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1])) * 1.25
    size = tile * supersample
    distance = 0.6
    f = size * distance / extent  # the face region, centred at ``distance``, fills the tile
    strip = max(14, tile // 9)  # label height; the face is centred in the tile above it
    k = Intrinsics(size, size, f, f, (size - 1) / 2, (size - strip * supersample - 1) / 2)
    r = from_euler(0.0, 0.0, 0.0)
    t = np.array([0.0, 0.0, distance]) - r @ centre  # the face centre on the optical axis
    bg = background_wall(k, None)
    tris = render_triangles(rig)
    albedo = (
        np.broadcast_to(np.asarray(SKIN, np.float32), rig.neutral.shape)
        if rig.colors is None
        else rig.colors.astype(np.float32)
    )
    red = np.array([235.0, 40.0, 30.0], np.float32)
    names = ("neutral", *arkit.ARKIT_NAMES)
    rows = -(-len(names) // cols)
    sheet = Image.new("RGB", (cols * tile, rows * tile), (40, 40, 40))
    draw = ImageDraw.Draw(sheet, "RGBA")
    try:
        font = ImageFont.load_default(size=max(10, tile // 14))
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    for i, name in enumerate(names):
        w = np.zeros(arkit.NUM_SHAPES, np.float32)
        colors = albedo
        if i:
            w[i - 1] = 1.0
            mag = np.linalg.norm(rig.deltas[i - 1], axis=1)
            a = np.clip(mag / 0.005, 0.0, 1.0)[:, None] * 0.6
            colors = albedo * (1 - a) + red * a
        res = render_rig(rig, w, r, t, k, bg, vertex_colors=colors, triangles=tris)
        img = Image.fromarray(res.color)
        if supersample > 1:
            img = img.resize((tile, tile), Image.Resampling.LANCZOS)
        x0, y0 = (i % cols) * tile, (i // cols) * tile
        sheet.paste(img, (x0, y0))
        draw.rectangle([x0, y0 + tile - strip, x0 + tile - 1, y0 + tile - 1], fill=(0, 0, 0, 150))
        draw.text(
            (x0 + tile // 2, y0 + tile - strip // 2), name, fill=(255, 255, 255), font=font, anchor="mm"
        )
        draw.rectangle([x0, y0, x0 + tile - 1, y0 + tile - 1], outline=(20, 20, 20))
    if out is not None:
        sheet.save(out)
    return sheet
