"""Numba kernels of the fit and the renderer (a private module: only facecap's stages call them).

``vertex_normals`` (a wrapper of ``_vertex_normals``; the fit and the synthetic actor), ``icp_rows``
(projective association and the robustly weighted Jacobian rows), ``landmark_rows`` (2-D landmark
reprojection rows) and ``box_qp`` (the bounded Newton step)
of :mod:`facecap.fit`; ``fuse_depth`` (one frame's depth along the face's normals, for calibration's
scan fusion); ``ring_samples`` (the iris edge search of :func:`facecap.gaze.refine_iris`). All
``cache=True``; none validates its input (the callers already hold C-contiguous arrays of the right
shape and dtype). Each has a NumPy or SciPy reference that the tests compare it with.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, fastmath=True, nogil=True)
def _vertex_normals(verts, tris):  # pragma: no cover - compiled
    """Area-weighted vertex normals (V, 3) of a triangle mesh; reference: facecap.rig.vertex_normals."""
    n = np.zeros_like(verts)
    for f in range(tris.shape[0]):
        a, b, c = tris[f, 0], tris[f, 1], tris[f, 2]
        e1x = verts[b, 0] - verts[a, 0]
        e1y = verts[b, 1] - verts[a, 1]
        e1z = verts[b, 2] - verts[a, 2]
        e2x = verts[c, 0] - verts[a, 0]
        e2y = verts[c, 1] - verts[a, 1]
        e2z = verts[c, 2] - verts[a, 2]
        nx = e1y * e2z - e1z * e2y
        ny = e1z * e2x - e1x * e2z
        nz = e1x * e2y - e1y * e2x
        for v in (a, b, c):
            n[v, 0] += nx
            n[v, 1] += ny
            n[v, 2] += nz
    for v in range(n.shape[0]):
        length = np.sqrt(n[v, 0] ** 2 + n[v, 1] ** 2 + n[v, 2] ** 2)
        if length > 0:
            n[v, 0] /= length
            n[v, 1] /= length
            n[v, 2] /= length
        else:
            n[v, 2] = 1.0
    return n


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of a triangle mesh (compiled; no input checks).

    Parameters
    ----------
    vertices : (V, 3) float32 or float64, C-contiguous
    triangles : (F, 3) int32 or int64 indices into ``vertices``

    Returns
    -------
    (V, 3) array of the dtype of ``vertices``; isolated vertices get (0, 0, 1).
    The checked NumPy version is :func:`facecap.rig.vertex_normals`.
    """
    return _vertex_normals(vertices, triangles)


@nb.njit(cache=True, inline="always", nogil=True)
def _rotated_point(base, D, i, wts, R):  # pragma: no cover - compiled
    """``R @ (base[i] + D[i] . wts)``: point i blended by the weights (D (N, 3, K) its deltas), rotated."""
    px, py, pz = base[i, 0], base[i, 1], base[i, 2]
    for k in range(D.shape[2]):
        px += D[i, 0, k] * wts[k]
        py += D[i, 1, k] * wts[k]
        pz += D[i, 2, k] * wts[k]
    return (
        R[0, 0] * px + R[0, 1] * py + R[0, 2] * pz,
        R[1, 0] * px + R[1, 1] * py + R[1, 2] * pz,
        R[2, 0] * px + R[2, 1] * py + R[2, 2] * pz,
    )


@nb.njit(cache=True, fastmath=True, nogil=True)
def icp_rows(
    base,
    wts,
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
    max_dist,
    cos_max,
    edge_tol,
    p2p_share,
    inv_sigma,
    huber,
    J,
    r,
    raw,
):  # pragma: no cover - compiled
    """Projective association and robustly weighted Jacobian rows.

    base, wts : (N, 3) rig-space vertices and (K,) weights: the mask's vertices are ``base + BT . wts``
        (the neutral and the current weights; or posed vertices, K = 0 and ``BT[:, :, :0]``, for a rigid
        fit), computed here for the sampled vertices only.
    nr : (N, 3) unit normals of the current mask.
    sample : (S,) mask-vertex indices that generate rows.
    BT : (N, 3, K) expression deltas of the mask vertices (vertex-major for locality).
    For each sampled vertex: project into the depth image, back-project the depth found there, and
    write the point-to-plane row (and for every 4th vertex a point-to-point row along the viewing
    ray), divided by sigma and Huber-weighted, into J (M, 6 + K) and r (M,); ``raw`` gets the
    unweighted signed residual in metres (NaN for point-to-point rows). Returns the number of rows.
    Rejects: behind the camera, outside the image, no depth, a depth jump > edge_tol to a 4-neighbour
    (or a hole there), normal facing away, distance > max_dist.
    """
    h, w = depth.shape
    K = BT.shape[2]
    m = 0
    for s_i in range(sample.shape[0]):
        i = sample[s_i]
        ax, ay, az = _rotated_point(base, BT, i, wts, R)
        x = ax + t[0]
        y = ay + t[1]
        z = az + t[2]
        if z <= 0.05:
            continue
        nx = R[0, 0] * nr[i, 0] + R[0, 1] * nr[i, 1] + R[0, 2] * nr[i, 2]
        ny = R[1, 0] * nr[i, 0] + R[1, 1] * nr[i, 1] + R[1, 2] * nr[i, 2]
        nz = R[2, 0] * nr[i, 0] + R[2, 1] * nr[i, 1] + R[2, 2] * nr[i, 2]
        inv = 1.0 / np.sqrt(x * x + y * y + z * z)
        dx, dy, dz = x * inv, y * inv, z * inv  # viewing ray
        if -(nx * dx + ny * dy + nz * dz) < cos_max:
            continue
        u = int(fx * x / z + cx + 0.5)
        v = int(fy * y / z + cy + 0.5)
        if u < 0 or v < 0 or u >= w or v >= h:
            continue
        d = depth[v, u]
        if d <= 0.0:
            continue
        # a depth edge (silhouette, lid over eyeball, lips) or a hole next to the pixel: ambiguous
        if u == 0 or v == 0 or u == w - 1 or v == h - 1:
            continue
        edge = False
        for nb_ in (depth[v, u - 1], depth[v, u + 1], depth[v - 1, u], depth[v + 1, u]):
            if abs(nb_ - d) > edge_tol:
                edge = True
        if edge:
            continue
        ex = x - (u - cx) / fx * d
        ey = y - (v - cy) / fy * d
        ez = z - d
        res = nx * ex + ny * ey + nz * ez
        if abs(res) > max_dist:
            continue
        for rep in range(2):
            if rep == 1:
                if p2p_share <= 0.0 or s_i % 4 != 0:
                    break
                # point-to-point along the ray, every 4th vertex weighted up to share p2p_share overall
                nx, ny, nz = dx, dy, dz
                res = dx * ex + dy * ey + dz * ez
                scale = 2.0 * p2p_share * inv_sigma
                raw[m] = np.nan
            else:
                scale = inv_sigma
                raw[m] = res
            a = abs(res * inv_sigma)
            if a > huber:
                scale *= np.sqrt(huber / a)
            mx = (R[0, 0] * nx + R[1, 0] * ny + R[2, 0] * nz) * scale
            my = (R[0, 1] * nx + R[1, 1] * ny + R[2, 1] * nz) * scale
            mz = (R[0, 2] * nx + R[1, 2] * ny + R[2, 2] * nz) * scale
            J[m, 0] = (ay * nz - az * ny) * scale
            J[m, 1] = (az * nx - ax * nz) * scale
            J[m, 2] = (ax * ny - ay * nx) * scale
            J[m, 3] = nx * scale
            J[m, 4] = ny * scale
            J[m, 5] = nz * scale
            for k in range(K):
                J[m, 6 + k] = mx * BT[i, 0, k] + my * BT[i, 1, k] + mz * BT[i, 2, k]
            r[m] = res * scale
            m += 1
    return m


@nb.njit(cache=True, nogil=True)  # no fastmath: it would assume the NaN test below away
def landmark_rows(p0, wts, BL, uv, conf, R, t, fx, fy, cx, cy, scale, huber_px, J, r, m0):  # pragma: no cover
    """2-D landmark reprojection rows, written into J, r from row ``m0``.

    p0 (L, 3) rig-space landmark points and wts (K,) weights: the landmarks are ``p0 + BL . wts``, with
    BL (L, 3, K) the landmarks' own deltas (their barycentric weights applied to the vertices' deltas:
    fixed for a rig; K = 0 for posed points); uv (L, 2) detected pixels; conf (L,) confidences (rows with
    conf <= 0 or a non-finite uv are skipped); ``scale`` = sqrt(lambda_lmk) / sigma_px; ``huber_px``: a
    landmark whose reprojection error (the length of its 2-D residual) is e > huber_px pixels weighs
    huber_px / e (Huber's IRLS weight: MediaPipe's gross errors pull linearly, not quadratically; inf:
    off). Two rows per landmark (u, v), each scaled by ``scale * sqrt(conf * huber weight)``, into
    J (M, 6 + K) and r (M,); returns the row count after them. Landmarks behind the camera (z <= 0.05 m)
    are skipped.
    """
    K = BL.shape[2]
    m = m0
    for li in range(p0.shape[0]):
        c = conf[li]
        if not (c > 0.0) or not (np.isfinite(uv[li, 0]) and np.isfinite(uv[li, 1])):
            continue
        ax, ay, az = _rotated_point(p0, BL, li, wts, R)
        x = ax + t[0]
        y = ay + t[1]
        z = az + t[2]
        if z <= 0.05:
            continue
        iz = 1.0 / z
        ru = fx * x * iz + cx - uv[li, 0]
        rv = fy * y * iz + cy - uv[li, 1]
        e = np.sqrt(ru * ru + rv * rv)
        if e > huber_px:
            c = c * huber_px / e
        s = scale * np.sqrt(c)
        for row in range(2):
            if row == 0:  # d u / d x_cam
                gx, gy, gz = fx * iz, 0.0, -fx * x * iz * iz
                res = ru
            else:
                gx, gy, gz = 0.0, fy * iz, -fy * y * iz * iz
                res = rv
            mx = (R[0, 0] * gx + R[1, 0] * gy + R[2, 0] * gz) * s
            my = (R[0, 1] * gx + R[1, 1] * gy + R[2, 1] * gz) * s
            mz = (R[0, 2] * gx + R[1, 2] * gy + R[2, 2] * gz) * s
            J[m, 0] = (ay * gz - az * gy) * s
            J[m, 1] = (az * gx - ax * gz) * s
            J[m, 2] = (ax * gy - ay * gx) * s
            J[m, 3] = gx * s
            J[m, 4] = gy * s
            J[m, 5] = gz * s
            for k in range(K):
                J[m, 6 + k] = mx * BL[li, 0, k] + my * BL[li, 1, k] + mz * BL[li, 2, k]
            r[m] = res * s
            m += 1
    return m


@nb.njit(cache=True, nogil=True)
def box_qp(H, g, lo, hi, iters):  # pragma: no cover - compiled
    """Minimise 0.5 x^T H x + g^T x subject to lo <= x <= hi (H symmetric positive definite).

    Active-set projected Newton: bound variables whose gradient pushes outward are fixed; the
    free block is solved exactly; a projected backtracking line search keeps the objective
    decreasing. Reference: scipy.optimize.minimize(method="L-BFGS-B") in the tests.
    """
    n = g.shape[0]
    x = np.minimum(np.maximum(np.zeros(n), lo), hi)
    for _ in range(iters):
        grad = H @ x + g
        free = np.ones(n, dtype=np.bool_)
        for j in range(n):
            if (x[j] <= lo[j] + 1e-12 and grad[j] > 0.0) or (x[j] >= hi[j] - 1e-12 and grad[j] < 0.0):
                free[j] = False
        idx = np.nonzero(free)[0]
        if idx.shape[0] == 0:
            break
        Hf = np.empty((idx.shape[0], idx.shape[0]))
        gf = np.empty(idx.shape[0])
        for a in range(idx.shape[0]):
            gf[a] = -grad[idx[a]]
            for b in range(idx.shape[0]):
                Hf[a, b] = H[idx[a], idx[b]]
        step = np.linalg.solve(Hf, gf)
        f0 = 0.5 * x @ (H @ x) + g @ x
        alpha = 1.0
        improved = False
        for _ls in range(12):
            xn = x.copy()
            for a in range(idx.shape[0]):
                j = idx[a]
                xn[j] = min(max(x[j] + alpha * step[a], lo[j]), hi[j])
            fn = 0.5 * xn @ (H @ xn) + g @ xn
            if fn <= f0 - 1e-16 * abs(f0):
                improved = True
                break
            alpha *= 0.5
        if not improved:
            break
        change = np.max(np.abs(xn - x))
        x = xn
        if change < 1e-9:
            break
    return x


# ----------------------------------------------------------------------------------------- helpers


@nb.njit(cache=True, nogil=True)
def fuse_depth(depth, R, t, fx, fy, cx, cy, v0, nrm, band, mean, sd, trim, count, s1, s2):  # pragma: no cover
    """Accumulate one frame's depth offsets along each vertex normal (point to plane, rig space).

    depth (H, W) float32 metres; R, t rig -> camera; v0, nrm (V, 3) float64 vertices and unit normals.
    Each vertex that faces the camera (cosine to the view ray above 0.25, z > 0.05 m) is projected to
    its nearest pixel; every valid pixel of the 3x3 window there gives the offset ``o`` of its point from
    the vertex along the normal. Offsets within ``band`` (and, with ``trim``, within ``2 sd + 1e-5`` of
    ``mean`` of that vertex) add to ``count``, ``s1`` (sum) and ``s2`` (sum of squares), all (V,).
    Reference: ``_fuse_reference`` in tests/test_calibration.py.
    """
    h, w = depth.shape
    for i in range(v0.shape[0]):
        x = R[0, 0] * v0[i, 0] + R[0, 1] * v0[i, 1] + R[0, 2] * v0[i, 2] + t[0]
        y = R[1, 0] * v0[i, 0] + R[1, 1] * v0[i, 1] + R[1, 2] * v0[i, 2] + t[1]
        z = R[2, 0] * v0[i, 0] + R[2, 1] * v0[i, 1] + R[2, 2] * v0[i, 2] + t[2]
        nx = R[0, 0] * nrm[i, 0] + R[0, 1] * nrm[i, 1] + R[0, 2] * nrm[i, 2]
        ny = R[1, 0] * nrm[i, 0] + R[1, 1] * nrm[i, 1] + R[1, 2] * nrm[i, 2]
        nz = R[2, 0] * nrm[i, 0] + R[2, 1] * nrm[i, 1] + R[2, 2] * nrm[i, 2]
        if not (nx * x + ny * y + nz * z < -0.25 * np.sqrt(x * x + y * y + z * z)) or not z > 0.05:
            continue
        col = np.int64(np.rint(x / z * fx + cx))
        row = np.int64(np.rint(y / z * fy + cy))
        for dy in range(-1, 2):
            rr = row + dy
            if rr < 0 or rr >= h:
                continue
            for dx in range(-1, 2):
                cc = col + dx
                if cc < 0 or cc >= w:
                    continue
                d = np.float64(depth[rr, cc])
                if not d > 0:
                    continue
                px = (cc - cx) / fx * d - t[0]
                py = (rr - cy) / fy * d - t[1]
                pz = d - t[2]
                o = 0.0
                for k in range(3):  # (R^T (p - t) - v0) . n
                    o += (R[0, k] * px + R[1, k] * py + R[2, k] * pz - v0[i, k]) * nrm[i, k]
                if not abs(o) < band:
                    continue
                if trim and not abs(o - mean[i]) <= 2.0 * sd[i] + 1e-5:
                    continue
                count[i] += 1
                s1[i] += o
                s2[i] += o * o


@nb.njit(cache=True, fastmath=True, nogil=True)
def ring_samples(img, centres, ring):  # pragma: no cover - compiled
    """Bilinear samples (K, M) float32 of ``img`` at ``centres[k] + ring[m]``.

    img (H, W) float32; centres (K, 2) and ring (M, 2) float64 pixels (x, y), every point at least
    1 px inside the image. Reference: ``_ring_reference`` in tests/test_gaze.py.
    """
    out = np.empty((centres.shape[0], ring.shape[0]), np.float32)
    for k in range(centres.shape[0]):
        for m in range(ring.shape[0]):
            x = centres[k, 0] + ring[m, 0]
            y = centres[k, 1] + ring[m, 1]
            xi = np.int64(x)
            yi = np.int64(y)
            fx = x - xi
            fy = y - yi
            top = img[yi, xi] + fx * (img[yi, xi + 1] - img[yi, xi])
            bottom = img[yi + 1, xi] + fx * (img[yi + 1, xi + 1] - img[yi + 1, xi])
            out[k, m] = top + fy * (bottom - top)
    return out
