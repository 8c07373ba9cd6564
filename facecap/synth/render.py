"""A Numba z-buffer rasterizer for triangle meshes and blendshape rigs, without noise.

Perspective-correct depth (metres, 0 = no surface), vertex colours with Lambert shading from a point
light near the camera, back faces culled, per-pixel triangle id and barycentrics (:class:`RenderResult`).
Camera frame: OpenCV (x right, y down, z forward); pixel centres at integer coordinates.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from .. import arkit
from .._kernels import vertex_normals
from ..frames import Intrinsics
from ..rig import Rig


# ============================================================================================ kernels
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


def blend_vertices(rig: Rig, weights: np.ndarray) -> np.ndarray:
    """Rig-space vertices (V, 3) float32 of ``rig`` at ``weights`` (52,) float32, canonical ARKit order.

    Single-threaded Numba (``Rig.evaluate`` calls BLAS, which stalls when other processes hold the
    cores). No checks: callers validate ``weights`` first.
    """
    return _blend(rig.neutral, rig.deltas, weights)


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
    lit = shade_vertices(v, vertex_normals(v, t), albedo, light, ambient).astype(np.float32)
    color = np.array(bg_color, dtype=np.uint8, order="C")
    _resolve_color(tri_id, bary, t, lit, color)
    return RenderResult(depth=depth, color=color, triangle=tri_id, bary=bary, triangles=t)


def check_pose(rotation, translation) -> tuple[np.ndarray, np.ndarray]:
    """The pose ``x_cam = R x_rig + t`` as float64 arrays, checked: R (3, 3) a rotation, t (3,) metres."""
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
    r, t = check_pose(rotation, translation)
    w = np.asarray(weights, dtype=np.float32)
    if w.shape != (arkit.NUM_SHAPES,):
        raise ValueError(f"weights must be (52,) in canonical ARKit order, got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights contain NaN or inf")
    verts = blend_vertices(rig, w)
    cam = verts @ r.T.astype(np.float32) + t.astype(np.float32)
    colors = rig.colors if vertex_colors is None else vertex_colors
    tris = render_triangles(rig) if triangles is None else triangles
    return render_mesh(cam, tris, intrinsics, colors, background, **kw)
