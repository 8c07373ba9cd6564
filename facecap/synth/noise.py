"""The RealSense D4xx error model of docs/design.md §3, applied to clean renders.

:class:`DepthNoise` holds the parameters; :func:`apply_depth_noise` adds holes and flying pixels at
silhouettes, the stereo occlusion shadow, axial noise growing with z², 1 mm quantisation and the range
limits; :func:`apply_color_noise` adds colour sensor noise. Randomness is counter-based (splitmix64 of a
64-bit key and the pixel index), so the same key gives the same noise, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np


@dataclass(frozen=True)
class DepthNoise:
    """RealSense D4xx depth and colour error model (docs/design.md §3).

    Axial noise: ``sigma(z) = z**2 * subpixel / (fx * baseline) * scale`` metres, with ``fx`` the focal
    length at the rendered resolution (640x480 disparities are coarser than 1280x720 ones).
    The default ``scale = 2.0`` stands for "measured noise runs 3-5x the floor": at 640x480 and 0.6 m it
    gives 2.1 mm (D415) and 3.4 mm (D435), i.e. 4.0x and 2.6x the floors docs/design.md quotes at the native
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


# ============================================================================================ noise
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
