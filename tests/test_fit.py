"""Numba kernels of the fit against pure-NumPy references on seeded data."""

import numpy as np
import pytest
from scipy.optimize import minimize

from facecap import pose
from facecap._kernels import _vertex_normals, box_qp, icp_rows
from facecap.fit import NP, rodrigues
from facecap.rig import vertex_normals


def _grid_mesh(n=20, seed=0):
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-0.08, 0.08, n), np.linspace(-0.1, 0.1, n))
    z = 0.1 - 3 * (x**2 + y**2) + rng.normal(0, 1e-3, x.shape)
    v = np.stack([x, y, z], -1).reshape(-1, 3)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tris = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    return v, tris


def test_vertex_normals_kernel_matches_reference():
    v, tris = _grid_mesh()
    got = _vertex_normals(v.astype(np.float64), tris.astype(np.int64))
    ref = vertex_normals(v, tris)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert (got[:, 2] > 0.7).all()  # counter-clockwise from outside: +z on the front


def _icp_rows_reference(
    xr, nr, sample, R, t, depth, fx, fy, cx, cy, BT, max_dist, cos_max, edge_tol, p2p, inv_s, huber
):
    rows, rs, raws = [], [], []
    h, w = depth.shape
    for si, i in enumerate(sample):
        a = R @ xr[i]
        x = a + t
        if x[2] <= 0.05:
            continue
        n = R @ nr[i]
        d = x / np.linalg.norm(x)
        if -(n @ d) < cos_max:
            continue
        u, v = int(fx * x[0] / x[2] + cx + 0.5), int(fy * x[1] / x[2] + cy + 0.5)
        if not (0 < u < w - 1 and 0 < v < h - 1) or depth[v, u] <= 0:
            continue
        z = depth[v, u]
        nbrs = depth[[v, v, v - 1, v + 1], [u - 1, u + 1, u, u]]
        if (np.abs(nbrs - z) > edge_tol).any():
            continue
        e = x - np.array([(u - cx) / fx * z, (v - cy) / fy * z, z])
        if abs(n @ e) > max_dist:
            continue
        for rep in range(2 if (p2p > 0 and si % 4 == 0) else 1):
            nn = n if rep == 0 else d
            scale = inv_s if rep == 0 else 2 * p2p * inv_s
            res = nn @ e
            if abs(res * inv_s) > huber:
                scale *= np.sqrt(huber / abs(res * inv_s))
            row = np.concatenate([np.cross(a, nn), nn, (R.T @ nn) @ BT[i]]) * scale
            rows.append(row)
            rs.append(res * scale)
            raws.append(res if rep == 0 else np.nan)
    return np.array(rows), np.array(rs), np.array(raws)


def test_icp_rows_kernel_matches_reference():
    rng = np.random.default_rng(1)
    v, tris = _grid_mesh(24)
    nr = vertex_normals(v, tris).astype(np.float64)
    K = 52
    BT = rng.normal(0, 2e-3, (len(v), 3, K))
    R = pose.from_euler(0.1, -0.05, 0.02)
    t = np.array([0.0, 0.0, 0.6])
    # a depth image of the same surface, slightly perturbed, with holes
    fx = fy = 500.0
    cx, cy = 160.0, 120.0
    depth = np.full((240, 320), 0.6 - 0.1 + 0.004, np.float32)
    depth += rng.normal(0, 2e-3, depth.shape).astype(np.float32)
    depth[rng.random(depth.shape) < 0.02] = 0
    sample = np.arange(0, len(v), 2, dtype=np.int64)
    w = rng.uniform(0, 0.5, K)
    base = v.astype(np.float64) - np.einsum("vdk,k->vd", BT, w)  # the kernel puts the vertices at v
    args = (
        v.astype(np.float64),
        nr,
        sample,
        R,
        t,
        depth,
        fx,
        fy,
        cx,
        cy,
        BT,
        0.01,
        0.2,
        0.006,
        0.1,
        1 / 0.0015,
        2.5,
    )
    n2 = 2 * len(sample)
    J, r, raw = np.empty((n2, NP), np.float32), np.empty(n2, np.float32), np.empty(n2)
    m = icp_rows(base, w, *args[1:], J, r, raw)
    Jr, rr, rawr = _icp_rows_reference(*args)
    assert m == len(Jr) and m > 50
    np.testing.assert_allclose(J[:m], Jr, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(r[:m], rr, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(raw[:m], rawr, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_qp_matches_scipy_bounded_solver(seed):
    rng = np.random.default_rng(seed)
    n = 20
    A = rng.normal(size=(40, n))
    H = A.T @ A + 0.1 * np.eye(n)
    g = rng.normal(size=n) * 5
    lo = np.where(rng.random(n) < 0.3, -np.inf, -rng.random(n))
    hi = np.where(rng.random(n) < 0.3, np.inf, rng.random(n))
    x = box_qp(H, g, lo, hi, 50)
    assert (x >= lo - 1e-12).all() and (x <= hi + 1e-12).all()
    ref = minimize(
        lambda z: 0.5 * z @ H @ z + g @ z,
        np.zeros(n),
        jac=lambda z: H @ z + g,
        bounds=list(zip(lo, hi, strict=True)),
        method="L-BFGS-B",
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    f = 0.5 * x @ H @ x + g @ x
    assert f <= ref.fun + 1e-8
    np.testing.assert_allclose(x, ref.x, atol=1e-4)


def test_rodrigues_is_a_rotation_and_matches_scipy():
    from scipy.spatial.transform import Rotation

    w = np.array([0.3, -0.2, 0.5])
    R = rodrigues(w)
    np.testing.assert_allclose(R, Rotation.from_rotvec(w).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(rodrigues(np.zeros(3)), np.eye(3))


def _landmark_rows_reference(xr, ltris, lbary, BT, uv, conf, R, t, fx, fy, cx, cy, scale, huber_px=np.inf):
    """The landmark rows in array form: x_cam = R (sum_k b_k x_k) + t, projected by the pinhole; a
    landmark off by e > huber_px pixels weighs huber_px / e."""
    xl = np.einsum("lk,lkd->ld", lbary, xr[ltris])
    a = xl @ R.T
    xc = a + t
    z = xc[:, 2]
    ok = (z > 0.05) & (conf > 0) & np.isfinite(uv).all(1)
    a, xc, z, uvk, c = a[ok], xc[ok], z[ok], uv[ok], conf[ok]
    proj = np.stack([fx * xc[:, 0] / z + cx, fy * xc[:, 1] / z + cy], 1)
    P = np.zeros((len(z), 2, 3))
    P[:, 0, 0], P[:, 0, 2] = fx / z, -fx * xc[:, 0] / z**2
    P[:, 1, 1], P[:, 1, 2] = fy / z, -fy * xc[:, 1] / z**2
    Jx = np.zeros((len(z), 3, NP))
    Jx[:, 0, 1], Jx[:, 0, 2] = a[:, 2], -a[:, 1]
    Jx[:, 1, 0], Jx[:, 1, 2] = -a[:, 2], a[:, 0]
    Jx[:, 2, 0], Jx[:, 2, 1] = a[:, 1], -a[:, 0]
    Jx[:, [0, 1, 2], [3, 4, 5]] = 1.0
    Bl = np.einsum("lk,lkdn->ldn", lbary[ok], BT[ltris[ok]])  # (L, 3, K)
    Jx[:, :, 6:] = np.einsum("ij,ljn->lin", R, Bl)
    e = np.linalg.norm(proj - uvk, axis=1)
    c = c * np.where(e > huber_px, huber_px / np.maximum(e, 1e-300), 1.0)
    s = (scale * np.sqrt(c))[:, None, None]
    J = (np.einsum("lij,ljp->lip", P, Jx) * s).reshape(-1, NP)
    r = ((proj - uvk) * s[:, :, 0]).reshape(-1)
    return J, r


def test_landmark_rows_kernel_matches_reference_and_finite_differences():
    from facecap._kernels import landmark_rows

    rng = np.random.default_rng(3)
    v, tris = _grid_mesh(16)
    K = 52
    BT = rng.normal(0, 2e-3, (len(v), 3, K))
    L = 60
    ltris = tris[rng.integers(0, len(tris), L)].astype(np.int64)
    lbary = rng.dirichlet(np.ones(3), L)
    R = pose.from_euler(0.2, -0.1, 0.05)
    t = np.array([0.01, -0.02, 0.6])
    intr = (600.0, 610.0, 320.0, 240.0)
    uv = rng.uniform(200, 400, (L, 2))
    conf = rng.uniform(0.2, 1.0, L)
    conf[:5] = 0.0  # skipped
    uv[5:8, 0] = np.nan  # skipped
    BL = np.einsum("lq,lqdk->ldk", lbary, BT[ltris])
    w0 = rng.uniform(0, 0.5, K)
    base = v.astype(np.float64) - np.einsum("vdk,k->vd", BT, w0)  # the landmarks land on v's

    def points(vertices):
        return np.einsum("lq,lqd->ld", lbary, vertices[ltris])

    J, r = np.full((2 * L + 3, NP), np.nan), np.full(2 * L + 3, np.nan)
    m = landmark_rows(points(base), w0, BL, uv, conf, R, t, *intr, 0.7, np.inf, J, r, 3)  # after 3 rows
    Jr, rr = _landmark_rows_reference(v.astype(np.float64), ltris, lbary, BT, uv, conf, R, t, *intr, 0.7)
    assert m - 3 == len(Jr) == 2 * (L - 8) and np.isnan(r[:3]).all()
    np.testing.assert_allclose(J[3:m], Jr, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r[3:m], rr, rtol=1e-9, atol=1e-9)
    # the Huber weight: landmarks off by more than 40 px (about half of these) pull less
    Jh, rh = np.full_like(J, np.nan), np.full_like(r, np.nan)
    mh = landmark_rows(points(base), w0, BL, uv, conf, R, t, *intr, 0.7, 40.0, Jh, rh, 3)
    ref = (v.astype(np.float64), ltris, lbary, BT, uv, conf, R, t, *intr, 0.7)
    Jhr, rhr = _landmark_rows_reference(*ref, 40.0)
    assert mh == m and 0.2 < np.mean(np.abs(rhr) < np.abs(rr) - 1e-9) < 0.95
    np.testing.assert_allclose(Jh[3:m], Jhr, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(rh[3:m], rhr, rtol=1e-9, atol=1e-9)
    J, r = J[3:m], r[3:m]

    # the rows are the derivative of the residual: central differences in rotation, translation, weights
    def resid(p):
        xr = v + np.einsum("vdk,k->vd", BT, p[6:])
        Rp = rodrigues(p[:3]) @ R
        out = np.empty((2 * L, NP))
        rp = np.empty(2 * L)
        posed = (points(xr), np.zeros(0), BL[:, :, :0])  # the weights moved the vertices already
        n = landmark_rows(*posed, uv, conf, Rp, t + p[3:6], *intr, 0.7, np.inf, out, rp, 0)
        return rp[:n]

    p0 = np.zeros(NP)
    for j in (0, 1, 2, 3, 5, 6, 30, 57):
        e = np.zeros(NP)
        e[j] = 1e-6
        fd = (resid(p0 + e) - resid(p0 - e)) / 2e-6
        np.testing.assert_allclose(J[:, j], fd, rtol=1e-4, atol=1e-4 * np.abs(J[:, j]).max())
