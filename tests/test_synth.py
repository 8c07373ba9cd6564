"""The synthetic actor: renderer vs analytic geometry and NumPy references, noise model, performances."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facecap import arkit, synth
from facecap.frames import Intrinsics
from facecap.pose import FRONTAL, from_euler, head_euler
from facecap.rig import MEDIAPIPE_LANDMARKS, Rig, mirror_map
from facecap.synth.noise import (
    _GAMMA,
    _M1,
    _M2,
    _axial_noise,
    _color_noise,
    _edge_artifacts,
    _stereo_shadow,
    _unit_noise,
)
from facecap.synth.render import _blend, _rasterize, _resolve_color

# ------------------------------------------------------------------------------------------- test rig


def make_rig(nx: int = 61, ny: int = 81, seed: int = 0) -> Rig:
    """A ~5k-vertex face-like dome with a nose and 52 seeded Gaussian-bump expressions (y up, z out)."""
    xs, ys = np.linspace(-0.07, 0.07, nx), np.linspace(-0.1, 0.1, ny)
    x, y = np.meshgrid(xs, ys)
    z = 0.06 * np.sqrt(np.clip(1 - (x / 0.09) ** 2 - (y / 0.125) ** 2, 0, None))
    z += 0.02 * np.exp(-(x**2 + (y + 0.01) ** 2) / (2 * 0.012**2))
    v = np.stack([x, y, z], -1).reshape(-1, 3)
    i = np.arange((ny - 1) * nx).reshape(ny - 1, nx)[:, :-1].ravel()
    tris = np.concatenate([np.stack([i, i + 1, i + nx + 1], 1), np.stack([i, i + nx + 1, i + nx], 1)])
    rng = np.random.default_rng(seed)
    deltas = np.zeros((52, len(v), 3), np.float32)
    for k in range(52):
        c = v[rng.integers(len(v))]
        bump = 0.006 * np.exp(-((v - c) ** 2).sum(1) / (2 * 0.015**2))
        deltas[k, :, 2 if k % 2 else 1] = bump
    ids = np.array(sorted(set(MEDIAPIPE_LANDMARKS.values()))[:20], np.int32)
    lm_v = rng.choice(np.flatnonzero(np.abs(v[:, 0]) < 0.05), len(ids), replace=False)
    return Rig(
        neutral=v,
        triangles=tris,
        deltas=deltas,
        landmark_ids=ids,
        landmark_tris=np.repeat(lm_v[:, None], 3, 1),
        landmark_bary=np.tile(np.float32([1, 0, 0]), (len(ids), 1)),
        masks={"track": np.ones(len(v), bool)},
        mirror=mirror_map(v),
        name="test_dome",
    )


@pytest.fixture(scope="module")
def rig() -> Rig:
    return make_rig()


SMALL = Intrinsics(96, 72, 80.0, 80.0, 47.5, 35.5)
D415 = synth.CAMERAS["d415"]

# ------------------------------------------------------------------------------------------- NumPy references


def ref_rasterize(cam, k: Intrinsics, tris, near, depth0):
    depth = np.where(depth0 > 0, depth0, np.inf).astype(np.float64)
    tri_id = np.full(depth.shape, -1, np.int32)
    bary = np.zeros((*depth.shape, 3))
    cam = cam.astype(np.float64)
    u = k.fx * cam[:, 0] / cam[:, 2] + k.cx
    v = k.fy * cam[:, 1] / cam[:, 2] + k.cy
    for f, (a, b, c) in enumerate(tris):
        if min(cam[a, 2], cam[b, 2], cam[c, 2]) < near:
            continue
        (u0, u1, u2), (v0, v1, v2) = u[[a, b, c]], v[[a, b, c]]
        area = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
        if area >= 0:
            continue
        xa, xb = max(math.ceil(min(u0, u1, u2)), 0), min(math.floor(max(u0, u1, u2)), k.width - 1)
        ya, yb = max(math.ceil(min(v0, v1, v2)), 0), min(math.floor(max(v0, v1, v2)), k.height - 1)
        if xa > xb or ya > yb:
            continue
        py, px = np.mgrid[ya : yb + 1, xa : xb + 1].astype(np.float64)
        w0 = ((u1 - px) * (v2 - py) - (u2 - px) * (v1 - py)) / area
        w1 = ((u2 - px) * (v0 - py) - (u0 - px) * (v2 - py)) / area
        w2 = ((u0 - px) * (v1 - py) - (u1 - px) * (v0 - py)) / area
        iz = 1 / cam[[a, b, c], 2]
        z = 1 / (w0 * iz[0] + w1 * iz[1] + w2 * iz[2])
        sub = depth[ya : yb + 1, xa : xb + 1]
        upd = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (z < sub)
        sub[upd] = z[upd]
        tri_id[ya : yb + 1, xa : xb + 1][upd] = f
        bary[ya : yb + 1, xa : xb + 1][upd] = np.stack([w0 * iz[0] * z, w1 * iz[1] * z, w2 * iz[2] * z], -1)[
            upd
        ]
    return depth, tri_id, bary


def ref_hash(key, i):
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (np.asarray(i, np.uint64) + np.uint64(1)) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def ref_irwin_hall(h):
    s = (
        sum(((h >> np.uint64(16 * j)) & np.uint64(0xFFFF)).astype(np.float64) + 0.5 for j in range(4))
        / 65536.0
    )
    return (s - 2.0) * math.sqrt(3.0)


def ref_unit_noise(h, w, key, smooth):
    raw = ref_irwin_hall(ref_hash(key, np.arange(h * w))).reshape(h, w)
    if not smooth:
        return raw
    p = np.pad(raw, 1, mode="edge")
    t = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]
    return (t[:-2] + 2 * t[1:-1] + t[2:]) / 6.0


def ref_edge_artifacts(clean, key, thr, p_hole, p_fly):
    h, w = clean.shape
    out = clean.astype(np.float64).copy()
    p = np.pad(clean.astype(np.float64), 1, constant_values=np.nan)
    neigh = np.stack([p[1:-1, :-2], p[1:-1, 2:], p[:-2, 1:-1], p[2:, 1:-1]])  # left, right, up, down
    jump = np.where(neigh > 0, np.abs(neigh - clean), np.inf)
    jump = np.where(np.isnan(neigh), 0.0, jump)
    jump = np.where(jump > thr, jump, 0.0)
    best = jump.max(0)
    first = jump.argmax(0)  # the first neighbour with the largest jump, as the kernel's strict '>'
    zn = np.take_along_axis(np.nan_to_num(neigh), first[None], 0)[0]
    edge = (clean > 0) & (best > 0)
    r = ref_hash(key, np.arange(h * w)).reshape(h, w)
    u_ev = (r & np.uint64(0xFFFFFF)).astype(np.float64) / 16777216.0
    u_mix = ((r >> np.uint64(24)) & np.uint64(0xFFFFFF)).astype(np.float64) / 16777216.0
    hole = edge & (u_ev < p_hole)
    fly = edge & ~hole & (u_ev < p_hole + p_fly) & (zn > 0)
    out[hole] = 0
    out[fly] = (clean + (0.2 + 0.6 * u_mix) * (zn - clean))[fly]
    return out


def ref_stereo_shadow(clean, fb):
    x = np.arange(clean.shape[1], dtype=np.float64)
    with np.errstate(divide="ignore"):
        xr = np.where(clean > 0, x - fb / clean.astype(np.float64), np.inf)
    right_min = np.minimum.accumulate(xr[:, ::-1], axis=1)[:, ::-1]  # min over q >= x
    m = np.concatenate([right_min[:, 1:], np.full((len(xr), 1), np.inf)], axis=1)  # over q > x
    return (clean > 0) & (xr >= m)


def ref_axial(depth, n, coef, step, zmin, zmax):
    z = depth.astype(np.float64)
    z = np.where(z > 0, z + coef * z * z * n, 0)
    z = np.floor(z / step + 0.5) * step
    return np.where((depth > 0) & (z >= zmin) & (z <= zmax), z, 0)


def ref_color_noise(color, key, sigma):
    h, w, _ = color.shape
    r = ref_hash(key, np.arange(h * w))
    out = color.reshape(-1, 3).astype(np.float64)
    for c in range(3):
        a = ((r >> np.uint64(20 * c)) & np.uint64(0x3FF)).astype(np.int64)
        b = ((r >> np.uint64(20 * c + 10)) & np.uint64(0x3FF)).astype(np.int64)
        out[:, c] += (a + b - 1023) / 1024.0 * sigma * math.sqrt(6)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8).reshape(h, w, 3)


# -------------------------------------------------------------------------------- kernels vs references


def test_blend_kernel_matches_rig_evaluate(rig):
    w = np.random.default_rng(5).random(52).astype(np.float32)
    w[::3] = 0
    np.testing.assert_allclose(_blend(rig.neutral, rig.deltas, w), rig.evaluate(w), atol=1e-6)


def test_rasterize_kernel_matches_numpy(rig):
    r, t = from_euler(0.3, -0.2, 0.1), np.array([0.01, -0.02, 0.5])
    cam = (rig.neutral @ r.T + t).astype(np.float32)
    bg = np.full((SMALL.height, SMALL.width), 0.9, np.float32)
    bg[:, :10] = 0  # part of the image has no background
    depth = bg.copy()
    tri = np.full(bg.shape, -1, np.int32)
    bary = np.zeros((*bg.shape, 3), np.float32)
    _rasterize(cam, SMALL.fx, SMALL.fy, SMALL.cx, SMALL.cy, rig.triangles, 0.05, depth, tri, bary)
    d_ref, tri_ref, bary_ref = ref_rasterize(cam, SMALL, rig.triangles, 0.05, bg)
    assert (tri >= 0).sum() > 400
    np.testing.assert_allclose(depth, np.where(np.isinf(d_ref), 0, d_ref), rtol=1e-6)
    same = tri == tri_ref
    assert same.mean() > 0.995  # ties on shared edges may go either way
    np.testing.assert_allclose(bary[same & (tri >= 0)], bary_ref[same & (tri >= 0)], atol=1e-5)


def test_resolve_color_matches_numpy(rig):
    res = synth.render_rig(rig, np.zeros(52), FRONTAL, np.array([0, 0, 0.5]), SMALL)
    rng = np.random.default_rng(2)
    vcol = rng.uniform(0, 255, (rig.n_vertices, 3)).astype(np.float32)
    bg = rng.integers(0, 256, (SMALL.height, SMALL.width, 3), dtype=np.uint8)
    out = bg.copy()
    _resolve_color(res.triangle, res.bary, res.triangles, vcol, out)
    m = res.triangle >= 0
    ref = bg.copy()
    c = np.einsum("nk,nkc->nc", res.bary[m].astype(np.float64), vcol[res.triangles[res.triangle[m]]])
    ref[m] = np.clip(np.floor(c + 0.5), 0, 255).astype(np.uint8)
    diff = np.abs(out.astype(int) - ref)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


@pytest.mark.parametrize("smooth", [False, True])
def test_unit_noise_matches_numpy(smooth):
    key = np.uint64(987654321)
    n = _unit_noise(50, 70, key, smooth)
    np.testing.assert_allclose(n, ref_unit_noise(50, 70, key, smooth), atol=1e-5)
    big = _unit_noise(400, 400, key, smooth)[1:-1, 1:-1]
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1) < 0.02
    corr = np.corrcoef(big[:, :-1].ravel(), big[:, 1:].ravel())[0, 1]
    assert (corr > 0.5) if smooth else (abs(corr) < 0.02)


def _scene(z_front=0.6, z_back=1.2, shape=(120, 160)):
    d = np.full(shape, z_back, np.float32)
    d[30:90, 50:110] = z_front
    return d


def test_edge_artifacts_matches_numpy():
    d = _scene()
    d[100:, :20] = 0  # a region without data
    out = np.empty_like(d)
    key = np.uint64(42)
    _edge_artifacts(d, key, 0.03, 0.35, 0.3, out)
    np.testing.assert_allclose(out, ref_edge_artifacts(d, key, 0.03, 0.35, 0.3), atol=1e-6)


def test_stereo_shadow_matches_numpy():
    d = _scene()
    d[:, 140:] = 0.4
    out = d.copy()
    _stereo_shadow(d, 502.5 * 0.055, out)
    np.testing.assert_array_equal(out == 0, ref_stereo_shadow(d, 502.5 * 0.055))


def test_axial_noise_matches_numpy():
    d = _scene()
    d[0, :5] = (0.0, 0.1, 3.99, 4.2, 0.31)
    n = np.random.default_rng(3).standard_normal(d.shape).astype(np.float32)
    out = d.copy()
    _axial_noise(out, n, 0.004, 0.001, 0.3, 4.0)
    np.testing.assert_allclose(out, ref_axial(d, n, 0.004, 0.001, 0.3, 4.0), atol=1e-6)


def test_color_noise_matches_numpy():
    c = np.random.default_rng(4).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    c[0, :3] = (0, 255, 128)
    out = c.copy()
    _color_noise(out.reshape(-1), np.uint64(77), 3.0)
    diff = np.abs(out.astype(int) - ref_color_noise(c, np.uint64(77), 3.0))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999


# -------------------------------------------------------------------------------- renderer geometry


def _plane(tilt_deg=35.0, z0=0.7, s_range=(-0.5, 1.3), half_y=1.0):
    """A quad through (0, 0, z0) turned about the y axis, triangles facing the camera; its unit normal."""
    a = math.radians(tilt_deg)
    ex, ey, c = np.array([math.cos(a), 0, math.sin(a)]), np.array([0.0, 1, 0]), np.array([0, 0, z0])
    s0, s1 = s_range
    v = np.array(
        [
            c + s0 * ex - half_y * ey,
            c + s1 * ex - half_y * ey,
            c + s1 * ex + half_y * ey,
            c + s0 * ex + half_y * ey,
        ]
    )
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    n = np.cross(v[1] - v[0], v[2] - v[0])
    if n @ v[0] > 0:  # make the outward normal face the camera (front faces)
        tris, n = tris[:, ::-1].copy(), -n
    return v.astype(np.float32), tris, n / np.linalg.norm(n), c


def test_plane_depth_is_analytic_and_interpolation_perspective_correct():
    k = Intrinsics(160, 120, 120.0, 120.0, 79.5, 59.5)
    v, tris, n, c = _plane()
    x = v[:, 0].astype(np.float64)
    lo, hi = x.min(), x.max()
    colors = np.stack([(x - lo) / (hi - lo) * 255, np.zeros(4), np.zeros(4)], 1)  # red channel = 3-D x
    res = synth.render_mesh(v, tris, k, colors, ambient=1.0)
    assert (res.triangle >= 0).all()
    ys, xs = np.mgrid[0 : k.height, 0 : k.width]
    rays = np.stack([(xs - k.cx) / k.fx, (ys - k.cy) / k.fy, np.ones(xs.shape)], -1)
    z = (n @ c) / (rays @ n)
    np.testing.assert_allclose(res.depth, z, rtol=2e-6)
    expect = (rays[..., 0] * z - lo) / (hi - lo) * 255
    assert np.abs(res.color[..., 0] - expect).max() <= 1.0
    # the test can tell: within one triangle, along the middle row, the true colour is far from linear
    row = res.triangle[60] == res.triangle[60, 80]
    fit = np.polyval(np.polyfit(xs[60][row], expect[60][row], 1), xs[60][row])
    assert np.abs(fit - expect[60][row]).max() > 4


def test_backfaces_culled_and_background_kept():
    k = Intrinsics(80, 60, 60.0, 60.0, 39.5, 29.5)
    v, tris, _, _ = _plane(0.0, 0.5, (-0.1, 0.1), 0.1)
    bg = synth.background_wall(k, 1.2)
    front = synth.render_mesh(v, tris, k, background=bg)
    back = synth.render_mesh(v, tris[:, ::-1], k, background=bg)
    assert (front.triangle >= 0).sum() > 100 and (front.depth[front.triangle >= 0] < 0.51).all()
    assert (back.triangle < 0).all() and np.allclose(back.depth, 1.2)
    none = synth.render_mesh(v, tris[:, ::-1], k)
    assert (none.depth == 0).all() and none.color.mean() > 60  # a grey wall colour, not black
    near = synth.render_mesh(v * np.float32([1, 1, 0.05]), tris, k)  # closer than `near`: dropped
    assert (near.triangle < 0).all()


def test_vertex_ids_and_render_validation(rig):
    res = synth.render_rig(rig, np.zeros(52), FRONTAL, np.array([0, 0, 0.45]), SMALL)
    vid = res.vertex
    m = res.triangle >= 0
    assert (vid[~m] == -1).all() and (vid[m] >= 0).all()
    cam = rig.neutral @ FRONTAL.T + [0, 0, 0.45]
    uv = SMALL.project(cam[vid[m]])
    ys, xs = np.nonzero(m)
    assert np.abs(uv - np.stack([xs, ys], 1)).max() < 1.5  # the nearest vertex projects next to its pixel
    with pytest.raises(ValueError, match="rotation"):
        synth.render_rig(rig, np.zeros(52), np.eye(3) * 2, np.zeros(3), SMALL)
    with pytest.raises(ValueError, match="52"):
        synth.render_rig(rig, np.zeros(51), FRONTAL, np.array([0, 0, 0.5]), SMALL)
    with pytest.raises(ValueError, match="NaN"):
        synth.render_mesh(np.full((3, 3), np.nan), np.array([[0, 1, 2]]), SMALL)


# ------------------------------------------------------------------------------------------- noise model


def test_noise_follows_z_squared_law():
    model = synth.DepthNoise(depth_unit=1e-6)  # isolate the axial noise from quantisation
    k, b = D415.intrinsics, D415.baseline
    zs = np.array([0.4, 0.6, 0.9, 1.2, 1.6])
    measured = []
    for i, z in enumerate(zs):
        d = np.full((240, 320), z, np.float32)
        noisy = synth.apply_depth_noise(d, k.fx, b, model, key=i)
        assert (noisy > 0).all()
        measured.append((noisy - z)[1:-1, 1:-1].std())
    expect = model.sigma(zs, k.fx, b)
    np.testing.assert_allclose(measured, expect, rtol=0.10)
    slope = np.polyfit(np.log(zs), np.log(measured), 1)[0]
    assert abs(slope - 2) < 0.1
    assert 1.8e-3 < model.sigma(0.6, k.fx, b) < 2.4e-3  # documented: ~2.1 mm for the D415 at 0.6 m


def test_quantisation_and_range():
    k, b = D415.intrinsics, D415.baseline
    d = _scene()
    noisy = synth.apply_depth_noise(d, k.fx, b, synth.DepthNoise(), key=5, min_range=0.3, max_range=4.0)
    valid = noisy[noisy > 0].astype(np.float64) * 1000
    assert np.abs(valid - np.round(valid)).max() < 1e-3
    assert len(np.unique(np.round(valid))) > 10
    near = synth.apply_depth_noise(
        np.full((20, 20), 0.25, np.float32), k.fx, b, synth.DepthNoise(), 1, 0.3, 4.0
    )
    far = synth.apply_depth_noise(
        np.full((20, 20), 5.0, np.float32), k.fx, b, synth.DepthNoise(), 1, 0.3, 4.0
    )
    assert (near == 0).all() and (far == 0).all()


def test_holes_and_flying_pixels_only_at_silhouettes():
    d = _scene(shape=(200, 260))
    d[30:90, 50:110] = 1.2
    d[40:160, 60:200] = 0.6
    model = synth.DepthNoise(scale=0.0, stereo_shadow=False, hole_prob=0.4, flying_prob=0.3)
    out = synth.apply_depth_noise(d, 500.0, 0.055, model, key=11)
    p = np.pad(d, 1, mode="edge")
    jump = np.max(np.abs(np.stack([p[1:-1, :-2], p[1:-1, 2:], p[:-2, 1:-1], p[2:, 1:-1]]) - d), axis=0)
    edge = jump > 0.03
    assert edge.sum() > 700
    assert (out[~edge] == d[~edge]).all()  # nothing changes away from silhouettes (no axial noise here)
    e = out[edge]
    assert abs((e == 0).mean() - 0.4) < 0.06
    flying = (e > 0.6 + 0.2 * 0.6 - 1e-3) & (e < 1.2 - 0.2 * 0.6 + 1e-3)
    assert abs(flying.mean() - 0.3) < 0.06


def test_stereo_shadow_band_left_of_near_objects():
    k, b = D415.intrinsics, D415.baseline
    d = np.full((k.height, k.width), 1.2, np.float32)
    d[200:280, 300:380] = 0.6
    model = synth.DepthNoise(scale=0.0, hole_prob=0.0, flying_prob=0.0)
    out = synth.apply_depth_noise(d, k.fx, b, model, key=0)
    width = k.fx * b * (1 / 0.6 - 1 / 1.2)  # 23.0 px
    row = out[240]
    holes = np.flatnonzero(row == 0)
    assert holes.max() == 299 and abs(len(holes) - width) <= 1.0
    assert (out[:200] > 0).all() and (out[240, 380:] > 0).all()


def test_color_noise_statistics():
    c = np.full((200, 200, 3), 100, np.uint8)
    out = synth.apply_color_noise(c, 3.0, key=1)
    diff = out.astype(float) - 100
    assert abs(diff.mean()) < 0.05 and abs(diff.std() - 3.0) < 0.15
    assert (synth.apply_color_noise(c, 0.0, key=1) == c).all()


def test_noise_model_validation():
    with pytest.raises(ValueError, match="sum"):
        synth.DepthNoise(hole_prob=0.8, flying_prob=0.5)
    with pytest.raises(ValueError, match="depth_unit"):
        synth.DepthNoise(depth_unit=0.0)
    with pytest.raises(ValueError, match="d415"):
        synth.get_camera("kinect")


def test_camera_presets():
    assert D415.intrinsics.width == 640 and D415.intrinsics.fx == pytest.approx(502.5)
    assert synth.CAMERAS["d435"].intrinsics.fx == pytest.approx(447 * 640 / 848)
    assert D415.baseline == 0.055 and synth.CAMERAS["d435"].baseline == 0.050
    hd = D415.at(1280, 720)
    assert hd.intrinsics.fx == pytest.approx(1005.0) and hd.intrinsics.cx == pytest.approx(639.5)


# ------------------------------------------------------------------------------------------- performances


def test_procedural_performance_covers_all_shapes_smoothly():
    w = synth.procedural_performance(60 * 30, fps=30, seed=0)
    assert w.shape == (1800, 52) and w.dtype == np.float32
    assert w.min() >= 0 and w.max() <= 1
    assert (w.max(0) >= 0.3).all(), [arkit.ARKIT_NAMES[i] for i in np.flatnonzero(w.max(0) < 0.3)]
    assert np.abs(np.diff(w, axis=0)).max() <= 15 / 30  # at most 15 weight units per second
    fast = synth.procedural_performance(10 * 120, fps=120, seed=0)
    assert np.abs(np.diff(fast, axis=0)).max() <= 15 / 120  # continuous: steps shrink with the frame time
    assert np.array_equal(w, synth.procedural_performance(1800, 30, seed=0))
    assert not np.array_equal(w, synth.procedural_performance(1800, 30, seed=1))
    blink = w[:, arkit.index("eyeBlinkLeft")]
    closes = np.flatnonzero((blink[1:] >= 0.85) & (blink[:-1] < 0.85))
    assert 60 / 5 - 2 <= len(closes) <= 60 / 2 + 6  # blinks every 2-5 s (plus winks)
    active = (w > 0.1).sum(1)
    assert 2 < active.mean() < 15  # sparse but co-activated
    smile = w[:, [arkit.index("mouthSmileLeft"), arkit.index("cheekSquintLeft")]]
    assert np.corrcoef(smile.T)[0, 1] > 0.3  # plausible co-activation


def test_head_motion_bounded_and_smooth():
    r, t = synth.head_motion(900, 30, seed=3, max_angle_deg=25, max_translation_m=0.03, distance_m=0.7)
    assert r.shape == (900, 3, 3) and t.shape == (900, 3)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    e = np.degrees(np.array([head_euler(x) for x in r]))
    assert (np.abs(e) <= 25 + 1e-6).all() and np.abs(e[:, 0]).max() > 8
    assert (np.abs(t - [0, 0, 0.7]) <= 0.03 + 1e-12).all()
    assert np.abs(np.diff(e, axis=0)).max() < 2.0  # degrees per frame at 30 fps
    r0, _ = synth.head_motion(10, 30, seed=0, max_angle_deg=0)
    np.testing.assert_allclose(r0, np.broadcast_to(FRONTAL, r0.shape), atol=1e-12)
    with pytest.raises(ValueError):
        synth.head_motion(10, 30, max_angle_deg=120)


# ------------------------------------------------------------------------------------------- the actor


def test_actor_frames_and_ground_truth(rig):
    w = synth.procedural_performance(4, 30, seed=0)
    r, t = synth.head_motion(4, 30, seed=0, distance_m=0.5)
    actor = synth.SyntheticActor(rig, "d415", distance=0.5, seed=7)
    out = list(actor.frames(w, r, t, fps=30))
    assert len(out) == 4
    for i, (f, gt) in enumerate(out):
        assert f.aligned and f.depth.shape == (480, 640) and f.color.shape == (480, 640, 3)
        assert f.timestamp == pytest.approx(i / 30) and f.index == i
        np.testing.assert_array_equal(gt.weights, w[i])
        lm3 = rig.landmark_points(rig.evaluate(w[i])) @ r[i].T + t[i]
        np.testing.assert_allclose(gt.landmarks_2d, D415.intrinsics.project(lm3), atol=1e-3)
        assert gt.visible
    # landmarks lie on the rendered surface (clean render, frontal-ish face)
    clean = actor.render_clean(w[0], r[0], t[0])
    uv = np.round(out[0][1].landmarks_2d).astype(int)
    lm3 = rig.landmark_points(rig.evaluate(w[0])) @ r[0].T + t[0]
    dz = clean.depth[uv[:, 1], uv[:, 0]] - lm3[:, 2]
    assert np.median(np.abs(dz)) < 0.002
    # the same seed gives the same frames; noise is on and differs frame to frame
    again = next(synth.SyntheticActor(rig, "d415", distance=0.5, seed=7).frames(w, r, t))[0]
    assert np.array_equal(again.depth, out[0][0].depth) and np.array_equal(again.color, out[0][0].color)
    face = (clean.triangle >= 0) & (out[0][0].depth > 0)
    robust_std = 1.4826 * np.median(np.abs(out[0][0].depth - clean.depth)[face])  # ignores flying pixels
    sigma = actor.noise.sigma(0.5, D415.intrinsics.fx, D415.baseline)
    assert 0.7 * sigma < robust_std < 1.4 * sigma


def test_actor_background_options(rig):
    w = np.zeros(52, np.float32)
    walled = synth.SyntheticActor(rig, noise=False).render(w)
    assert np.allclose(walled.depth[0, 0], 1.2) and (walled.depth > 0).all()
    bare = synth.SyntheticActor(rig, noise=False, background=False).render(w)
    assert bare.depth[0, 0] == 0 and bare.color[0, 0].mean() > 60 and (bare.depth > 0).sum() > 10000
    far = synth.SyntheticActor(rig, "d435", noise=False, background=2.0).render(w)
    assert np.allclose(far.depth[0, 0], 2.0)
    with pytest.raises(TypeError, match="Rig"):
        synth.SyntheticActor("rig.npz")
    with pytest.raises(ValueError, match="distance"):
        synth.SyntheticActor(rig, distance=-1)
    with pytest.raises(TypeError, match="DepthNoise"):
        synth.SyntheticActor(rig, noise="on")
    actor = synth.SyntheticActor(rig)
    with pytest.raises(ValueError, match="NaN"):
        actor.frames(np.full((2, 52), np.nan))  # raised at the call, before any frame
    with pytest.raises(ValueError, match="rotations"):
        actor.frames(np.zeros((2, 52)), np.zeros((3, 3, 3)))


def test_simulated_landmarks(rig):
    actor = synth.SyntheticActor(rig, noise=False)
    gt = actor.ground_truth(np.zeros(52), *actor.frontal_pose)
    many = synth.GroundTruth(gt.rotation, gt.translation, gt.weights, np.zeros((20000, 2), np.float32))
    lm = synth.simulated_landmarks(many, pixel_sigma=2.0, seed=1, dropout=0.1)
    assert lm.dtype == np.float32 and lm.shape == (20000, 2)
    ok = ~np.isnan(lm[:, 0])
    assert abs(ok.mean() - 0.9) < 0.01 and abs(lm[ok].std() - 2.0) < 0.05
    assert np.array_equal(
        synth.simulated_landmarks(gt, 1.0, seed=3), synth.simulated_landmarks(gt, 1.0, seed=3)
    )


def test_synthetic_take_and_truth_roundtrip(rig, tmp_path):
    frames = list(synth.synthetic_take(3, "d435", 0.55, seed=2, rig=rig, max_angle_deg=10))
    assert len(frames) == 3
    gts = [g for _, g in frames]
    p = synth.save_truth(
        tmp_path / "rec.db3",
        gts,
        [f.timestamp for f, _ in frames],
        camera="d435",
        distance=0.55,
        seed=2,
        rig_name=rig.name,
        fps=30,
    )
    assert p == tmp_path / "rec.truth.npz"
    tr = synth.load_truth(tmp_path / "rec.db3")
    assert tr.n_frames == 3 and tr.camera == "d435" and tr.rig_name == "test_dome" and tr.seed == 2
    np.testing.assert_array_equal(tr.weights, np.stack([g.weights for g in gts]))
    np.testing.assert_allclose(tr.rotations[1], gts[1].rotation)
    np.testing.assert_allclose(tr.landmarks_2d[2], gts[2].landmarks_2d)
    assert tr.intrinsics["fx"] == pytest.approx(synth.CAMERAS["d435"].intrinsics.fx)
    with pytest.raises(FileNotFoundError, match="truth"):
        synth.load_truth(tmp_path / "other.db3")
    (tmp_path / "bad.truth.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="readable"):
        synth.load_truth(tmp_path / "bad.db3")


def test_performance_from_livelink_take(tmp_path):
    from facecap.livelink import LiveLinkTake, write_csv

    w = np.zeros((60, 52))
    w[:, arkit.index("jawOpen")] = np.linspace(0, 1.05, 60)  # real takes overshoot 1 a little
    tracked = np.ones(60, bool)
    tracked[10:20] = False
    w[10:20] = np.nan
    write_csv(tmp_path / "t.csv", LiveLinkTake.from_arrays(w, fps=60, tracked=tracked))
    weights, r, t = synth.make_performance(None, 30, seed=0, take_csv=str(tmp_path / "t.csv"))
    assert len(weights) == 30 and weights.max() <= 1.0 and np.isfinite(weights).all()
    jaw = weights[:, arkit.index("jawOpen")]
    assert jaw[5] == pytest.approx(jaw[9])  # rows 10-19 (t 0.167-0.317 s) were lost: held at row 9
    assert jaw[-1] == pytest.approx(1.0) and r.shape == (30, 3, 3)


def test_rig_preview_png(rig, tmp_path):
    from PIL import Image

    from facecap.cli import main

    path = tmp_path / "rig.npz"
    rig.save(path)
    out = tmp_path / "sheet.png"
    assert main(["rig", "preview", str(out), "--rig", str(path), "--tile", "64"]) == 0
    img = Image.open(out)
    assert img.size == (8 * 64, 7 * 64)
    a = np.asarray(img)
    assert a[:64, :64].std() > 10  # the neutral tile shows a face, not a flat colour


def test_cli_synth_writes_recording_and_truth(rig, tmp_path):
    from facecap.cli import main
    from facecap.realsense import read_recording

    rig_path = tmp_path / "rig.npz"
    rig.save(rig_path)
    out = tmp_path / "actor.db3"
    args = [
        "synth",
        "--frames",
        "3",
        "--camera",
        "d435",
        "--distance",
        "0.5",
        "--seed",
        "4",
        "--out",
        str(out),
    ]
    assert main([*args, "--rig", str(rig_path)]) == 0
    assert main([*args, "--rig", str(rig_path)]) == 2  # exists: refuses without --force
    assert main(["synth", "--out", str(tmp_path / "x.bag"), "--rig", str(rig_path)]) == 2
    frames = list(read_recording(out))
    truth = synth.load_truth(out)
    assert len(frames) == 3 == truth.n_frames and truth.camera == "d435" and truth.seed == 4
    w, r, t = synth.make_performance(3, 30.0, 4, None, 20.0, 0.5)
    np.testing.assert_array_equal(truth.weights, w)
    actor = synth.SyntheticActor(rig, "d435", 0.5, seed=4)
    for f, (ref, _) in zip(frames, actor.frames(w, r, t), strict=True):
        np.testing.assert_allclose(f.depth, ref.depth, atol=1e-6)  # already on the 1 mm grid
        np.testing.assert_array_equal(f.color, ref.color)


def test_expression_weights_are_the_events_peaks():
    from facecap.synth import EXPRESSIONS, expression_weights

    w = expression_weights("wink_left")
    assert w.shape == (52,) and w.dtype == np.float32
    assert w[arkit.INDEX["eyeBlinkLeft"]] == 1.0 and w[arkit.INDEX["eyeBlinkRight"]] == 0.0
    smile = expression_weights("smile")  # "mouthSmile*" expands to both sides
    assert smile[arkit.INDEX["mouthSmileLeft"]] == smile[arkit.INDEX["mouthSmileRight"]] == 0.85
    assert all(expression_weights(n).max() > 0 for n, v in EXPRESSIONS.items() if v)
    for bad in ("talk", "nope"):
        with pytest.raises(ValueError, match="no held expression"):
            expression_weights(bad)
