"""Optimal-step nonrigid ICP (Amberg, Romdhani, Vetter 2007): deform a template mesh onto a point cloud.

Every template vertex ``v_i`` gets an affine transform ``X_i`` (4x3); the energy per stiffness ``alpha`` is ::

    E(X) = sum_i w_i |X_i^T [v_i, 1] - u_i|^2  +  alpha^2 sum_{(i,j) edges} |G (X_i - X_j)|_F^2
           + beta^2 sum_l |X_l^T [v_l, 1] - p_l|^2

with ``u_i`` the closest target point of the deformed vertex (weight 0 where none is close, faces away or
the vertex was never seen), ``G = diag(1, 1, 1, gamma)``, and optional landmarks ``p_l``. For each alpha of
a decreasing schedule the linear least-squares problem is solved (a sparse SPD system, three right-hand
sides; by conjugate gradients preconditioned with a single-precision factorisation of the first system,
reused while the stiffness stays within ``REFACTOR`` of it) and the correspondences recomputed until X
settles. Where the data is silent the stiffness carries the neighbours' transforms: unseen regions stay
template-like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu
from scipy.spatial import cKDTree

from ..rig import mesh_edges, vertex_normals


@dataclass
class NricpResult:
    """vertices : (V, 3) float64 deformed template, metres; transforms : (V, 4, 3) per-vertex affine;
    weights : (V,) float64 data weight of each vertex in the last step (0 = no correspondence);
    distances : (V,) float64 distance to the closest target point at the end [m]; iterations : int;
    factor : (stiffness, SuperLU) of the system factorised (single precision), which a call continuing
    from this result (``init``) uses as its preconditioner instead of factorising again."""

    vertices: np.ndarray
    transforms: np.ndarray
    weights: np.ndarray
    distances: np.ndarray
    iterations: int
    factor: tuple | None = None


REFACTOR = 6.0
"""A factorisation preconditions solves at stiffnesses down to this many times softer than its own."""


def _pcg(A, B, X, solve, rtol: float = 1e-3, maxiter: int = 25) -> np.ndarray:
    """Preconditioned conjugate gradients on the columns of ``B`` (n, k) in lockstep.

    Each column has its own step sizes; the preconditioner ``solve`` (e.g. a factorisation of a
    nearby matrix) is applied to all columns at once, which costs little more than one column.
    A column stops changing once its residual is below ``rtol`` of its right-hand side.
    """
    X = X.copy()
    R = B - A @ X
    stop = rtol * np.linalg.norm(B, axis=0)
    Z = solve(R)
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R, Z)
    for _ in range(maxiter):
        live = np.linalg.norm(R, axis=0) > stop
        if not live.any():
            break
        AP = A @ P
        pap = np.einsum("ij,ij->j", P, AP)
        a = np.where(live & (pap > 0), rz / np.where(pap > 0, pap, 1.0), 0.0)
        X += a * P
        R -= a * AP
        Z = solve(R)
        rz_new = np.einsum("ij,ij->j", R, Z)
        P = Z + np.where(rz != 0, rz_new / np.where(rz != 0, rz, 1.0), 0.0) * P
        rz = rz_new
    return X


def nricp(
    template: np.ndarray,
    triangles: np.ndarray,
    target: np.ndarray,
    target_normals: np.ndarray | None = None,
    *,
    stiffness: tuple[float, ...] = (50.0, 20.0, 8.0, 3.0, 1.5),
    gamma: float = 1.0,
    max_dist: float = 0.01,
    max_normal_deg: float = 60.0,
    active: np.ndarray | None = None,
    landmarks: tuple[np.ndarray, np.ndarray] | None = None,
    beta: float = 1.0,
    inner: int = 3,
    tol: float = 1e-5,
    scale: float = 10.0,
    init: NricpResult | None = None,
    anchor: float = 0.02,
    target_boundary: np.ndarray | None = None,
    reciprocal: float | None = None,
) -> NricpResult:
    """Deform ``template`` onto ``target`` by optimal-step nonrigid ICP.

    Parameters
    ----------
    template : (V, 3) float, metres
    triangles : (F, 3) int, the template's triangles (edges define the stiffness graph)
    target : (P, 3) float, metres, the point cloud to fit (same frame as the template, roughly aligned)
    target_normals : (P, 3) float, optional; correspondences whose normals differ by more than
        ``max_normal_deg`` are dropped
    stiffness : decreasing alphas (dimensionless, for coordinates in units of ``1 / scale`` metres)
    gamma : weight of the translation column against the linear part in the stiffness term
    max_dist : correspondences farther than this are dropped [m]
    active : (V,) bool, vertices allowed a data term (default all); the rest follow their neighbours
    landmarks : (vertex ids (L,), target points (L, 3) metres), optional, weighted by ``beta``
    inner : correspondence updates per stiffness
    tol : stop the inner loop when no vertex moved more than this [m]
    scale : coordinates are multiplied by this inside the solve (10: decimetres, so that the affine part
        and the translation are of the same order and gamma = 1 balances them)
    init : a previous result on the same template to continue from (e.g. after the target was refined);
        its factorisation preconditions every solve (no new factorisation)
    anchor : weight of a pull of every transform toward the identity, ``anchor^2 |X_i - I|^2``: where no
        data reaches, the mesh stays template-like instead of extrapolating its neighbours' transforms
    target_boundary : (P,) bool, target points on the rim of the data (where the scan stops); a vertex whose
        closest point is one of them gets no correspondence (Amberg et al.: vertices beyond the edge of the
        data would otherwise all pull to its rim)
    reciprocal : optional; a correspondence counts only if the target point's own nearest vertex lies
        within this of the vertex [m] (a rim test for targets without ``target_boundary``)

    Returns
    -------
    NricpResult
    """
    v0 = np.asarray(template, np.float64)
    tgt = np.asarray(target, np.float64)
    if v0.ndim != 2 or v0.shape[1] != 3 or tgt.ndim != 2 or tgt.shape[1] != 3:
        raise ValueError(f"template and target must be (N, 3), got {v0.shape} and {tgt.shape}")
    if len(tgt) < 10 or not np.isfinite(tgt).all():
        raise ValueError("target needs at least 10 finite points")
    n = len(v0)
    s = float(scale)
    vs = v0 * s
    edges, _ = mesh_edges(triangles)
    ne = len(edges)
    # node-arc incidence M (E x V) kron G: rows of edge e over the 4 coordinates of X_i - X_j
    G = np.array([1.0, 1.0, 1.0, gamma])
    rows = np.repeat(np.arange(ne * 4), 2)
    cols = np.stack([edges[:, 0], edges[:, 1]], 1)[:, None, :] * 4 + np.arange(4)[None, :, None]
    vals = np.stack([np.ones(ne), -np.ones(ne)], 1)[:, None, :] * G[None, :, None]
    MG = sparse.csr_matrix((vals.ravel(), (rows, cols.reshape(-1))), shape=(ne * 4, n * 4))
    K = (MG.T @ MG).tocsc()
    # D: V x 4V, row i holds [v_i, 1] at columns 4i..4i+3
    vh = np.hstack([vs, np.ones((n, 1))])
    D = sparse.csr_matrix((vh.ravel(), (np.repeat(np.arange(n), 4), np.arange(4 * n))), shape=(n, 4 * n))
    DtD_blocks = D.T  # used with a diagonal weight below
    tree = cKDTree(tgt * s)
    tn = None if target_normals is None else np.asarray(target_normals, np.float64)
    cos_max = np.cos(np.radians(max_normal_deg))
    act = np.ones(n, bool) if active is None else np.asarray(active, bool)
    rim = None if target_boundary is None else np.asarray(target_boundary, bool)
    if rim is not None and rim.shape != (len(tgt),):
        raise ValueError(f"target_boundary must be ({len(tgt)},) bool, got {rim.shape}")
    X = np.zeros((4 * n, 3))
    X[0::4, 0] = X[1::4, 1] = X[2::4, 2] = 1.0  # identity transforms
    X0 = X.copy()
    eye = sparse.identity(4 * n, format="csc")
    cur = vs.copy()
    if init is not None:
        X = init.transforms.reshape(4 * n, 3).copy()
        X[3::4] *= s  # translations in solve units
        cur = D @ X
    lm_rows = None
    if landmarks is not None:
        lid, lp = np.asarray(landmarks[0], np.int64), np.asarray(landmarks[1], np.float64) * s
        lm_rows = (D[lid], lp)
    its = 0
    wts = np.zeros(n)
    dist = np.full(n, np.inf)
    # a factorisation is reused by later stiffnesses down to REFACTOR times softer (and by a call
    # continuing from init): alpha 5 preconditioning alpha 1 took 2-9 iterations to PCG's rtol 1e-3 (one
    # factorisation instead of two, 0.4 s less, the neutral within 2 um); rtol 1e-4 took twice the
    # iterations for a neutral within 10 um
    factored, lu = init.factor if init is not None and init.factor else (np.inf, None)
    for alpha in stiffness:
        if alpha * REFACTOR < factored:
            lu = None
        for _ in range(inner):
            its += 1
            dist, idx = tree.query(cur, workers=-1)
            u = tree.data[idx]
            ok = act & (dist < max_dist * s)
            if rim is not None:
                ok &= ~rim[idx]
            if reciprocal is not None:
                _, back = cKDTree(cur).query(u, workers=-1)
                ok &= np.linalg.norm(cur[back] - cur, axis=1) < reciprocal * s
            if tn is not None:
                nv = vertex_normals(cur, triangles)
                ok &= np.einsum("ij,ij->i", nv, tn[idx]) > cos_max
            wts = ok.astype(np.float64)
            Wd = sparse.diags(wts)
            A = (alpha * alpha) * K + DtD_blocks @ Wd @ D + anchor * anchor * eye
            b = DtD_blocks @ (wts[:, None] * u) + anchor * anchor * X0
            if lm_rows is not None:
                A = A + (beta * beta) * (lm_rows[0].T @ lm_rows[0])
                b = b + (beta * beta) * (lm_rows[0].T @ lm_rows[1])
            A = A.tocsc()
            if lu is None:  # factorise; every solve is PCG preconditioned with it. Single precision: a
                # third less time to factorise and solve, the same fits (a preconditioner need not be exact)
                opts = {"SymmetricMode": True, "DiagPivotThresh": 0.0}
                lu = splu(A.astype(np.float32), permc_spec="MMD_AT_PLUS_A", options=opts)
                factored = alpha
            Xn = _pcg(A, b, X, lambda r, lu=lu: lu.solve(r.astype(np.float32)).astype(np.float64), maxiter=60)
            new = D @ Xn
            moved = float(np.abs(new - cur).max()) / s
            X, cur = Xn, new
            if moved < tol:
                break
    dist, _ = tree.query(cur, workers=-1)
    T = X.reshape(n, 4, 3).copy()
    T[:, 3] /= s  # translations back in metres: v' = T[:3].T v + T[3]
    return NricpResult(cur / s, T, wts, dist / s, its, None if lu is None else (factored, lu))
