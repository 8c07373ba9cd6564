"""Per-frame fit: nonrigid projective ICP of a blendshape mask to a depth image (docs/design.md §2).

Minimises over head pose (R, t) and weights w in [0, 1]^52::

    E = sum_i rho( n_i . (x_i(w) - p_i) / sigma )^2            point-to-plane, projective association
      + beta * sum_i ( d_i . (x_i(w) - p_i) / sigma )^2          small point-to-point share along the ray
      + lambda_lmk * sum_l c_l rho_l |pi(x_l(w)) - u_l|^2 / sigma_px^2   2-D landmarks (optional;
                                                                  rho_l: Huber weight, HUBER_LMK)
      + lambda_t |w - w_prev|^2 + lambda_s sum_k w_k              temporal smoothness, sparsity (L1, w >= 0)
                                                                  (the temporal term robust to large changes)

with ``x_i(w) = R (b0_i + B_i w) + t``. Gauss-Newton: Numba kernels build the rows of J (one pass over the
mask's vertices), BLAS forms J^T J, and a box-constrained Newton step (active set on the 58x58 system)
keeps the weights inside [0, 1] -- no clipping after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._kernels import box_qp, icp_rows, landmark_rows, vertex_normals
from .arkit import NUM_SHAPES
from .rig import mesh_edges

NP = 6 + NUM_SHAPES  # rotation (3), translation (3), weights (52)
LAMBDA_S_GENERIC = 0.5
"""L1 sparsity with a generic rig (the face is not the rig's)."""
LAMBDA_S_ACTOR = 0.1
"""L1 sparsity with a calibrated actor (the rig is the performer's): selection without much shrinkage."""
LAMBDA_S_RGB = 1.5
"""L1 sparsity of a colour-only frame, generic rig or actor: 2-D landmarks alone leave more shapes
free, so it must select harder (measured: 0.5 -> 1.0 lowers the MAE on three faces by 5-7 %; an actor
at its depth value, 0.1, was 1.2-1.5x worse; 1.0 -> 1.5 with the prior at 3, see there)."""
LAMBDA_PRIOR_RGB = 3.0
"""Weight of the expression prior on a colour-only frame (``TrackerConfig.rgb_prior``): from the front, 2-D
landmarks alone cannot tell a dropped jaw from a dropped lower lip (or a funnel), nor many shapes from
their neighbours; the co-activations of real performances can. Measured (weight MAE on 7 takes x 60 frames,
ICT head / an unseen identity, a prior fitted on the other performer's takes; jawOpen's correlation with
MediaPipe's on 5 real videos; held procedural expressions' median gain):

========================  ===============  ================  ==============
prior, L1                 MAE              jawOpen r         held gain
========================  ===============  ================  ==============
none, 1.0                 0.085 / 0.076    0.57 - 0.96       0.37
1.0, 1.0                  0.063 / 0.063    0.76 - 0.97       0.16
3.0, 1.5 (these)          0.063 / 0.063    0.83 - 0.97       0.10
3.0, 2.0                  0.063 / 0.063    0.85 - 0.97       0.08
========================  ===============  ================  ==============

With the light prior the woman of d6 rounding her lips with the jaw dropped was read as a funnel
(MediaPipe: jawOpen 0.71, funnel 0.11; facecap 0.28, 0.50). The price is held expressions that real
takes rarely show (a one-sided brow, a wink): colour-only reads them weakly either way."""

HUBER_LMK = 6.0
"""Huber threshold of the landmark rows in units of ``sigma_px`` (4.2 px with the default landmarks, 9 px
colour-only): beyond it a landmark's pull grows linearly, not quadratically, so a few of MediaPipe's
gross errors cannot drag the fit. Measured (``tests/test_tracker.py``, medians of 6 seeds): with 10 % of
the fitted landmarks off by 15-30 px, depth + landmarks weight MAE 0.049 -> 0.016 (clean: 0.016) and
rotation 1.0 -> 0.29 deg, colour-only rotation 5.0 -> 2.5 deg (clean 1.5); on MediaPipe's own landmarks
of the renders of the real takes it changes nothing (weight MAE 0.0589 / 0.1056 depth + lids, ICT head /
an unseen identity, 0.0625 / 0.0629 colour-only); 3 sigma cost the unseen identity's lids 0.1056 -> 0.1102
(they are off by pixels where the identity differs, and carry the blinks)."""


@dataclass
class FitParams:
    """Weights and thresholds of the fit (units in brackets).

    sigma : expected depth noise [m]; residuals are divided by it.
    max_dist : reject correspondences farther than this along the normal [m].
    max_normal_deg : reject where the model normal faces away from the camera by more than this [deg].
    edge_tol : reject where the depth jumps by more than this (or 3 sigma) to a neighbouring pixel [m].
    huber : Huber threshold in units of sigma.
    p2p_share : weight beta of the point-to-point (along-ray) rows relative to point-to-plane.
    lambda_t : temporal smoothness: pull toward the previous frame's weights, relative to the data's own
        information about each weight (0.5: the previous frame counts half as much as this one).
    temporal_scale : the temporal pull on a weight is divided by ``1 + (change / temporal_scale)^2``: changes
        of the size of noise are smoothed, a face that moves is followed (0: a plain quadratic pull, which
        lagged a 0.6 step by a median 6 frames on the ICT rig; with 0.1: median 0, max 5, at a weight MAE
        of 0.061 against 0.060 on the real takes).
    lambda_s : L1 sparsity of the weights, in standard deviations of each weight's data estimate. None
        (default): ``LAMBDA_S_GENERIC`` for a generic rig, ``LAMBDA_S_ACTOR`` for a calibrated actor (a rig
        whose ``meta`` holds ``"calibration"``; the tracker decides), ``LAMBDA_S_RGB`` for either on a
        colour-only frame. A generic rig on someone else's face needs the stronger L1. Without it the
        identity mismatch leaks into the expression shapes: MAE on an unseen identity went 0.120 ->
        0.137 at 0.1, with eyeWide held at 0.75. A rig that fits the face loses by the shrinkage: the
        ICT head tracked with its own rig went 0.064 -> 0.051 at 0.1.
    relaxed : relaxed lasso: the L1 step only selects the active shapes (those above ``active_eps``);
        they are then refitted without it, so held expressions are not shrunk (plain L1 read a held 0.6
        smile as 0.3 on noisy frames; relaxed with ``lambda_s=1``: 0.47). Off by default: on faces driven
        by the real takes the unshrunk estimates are noisier than they are less biased (weight MAE 0.064
        -> 0.072 on the analytic rig, 0.074 -> 0.090 on the ICT head tracked with itself).
    active_eps : a weight above this after the L1 step is active (selected).
    prior_mean, prior_precision : (52,), (52, 52) the expression prior (:mod:`facecap.prior`), or None.
    lambda_prior : weight of the prior term ``(w - mean)^T P (w - mean)`` when a prior is given (with it,
        a lighter L1, ``lambda_s=0.25``, works best).
    lambda_0 : ridge on weight updates (damping) [1/weight^2].
    lambda_pose : Levenberg damping of pose updates [1/rad^2, 1/m^2 scaled by 0.1 m].
    lambda_lmk : weight of landmark rows; landmark residuals are divided by sigma_px.
    sigma_px : expected landmark detector error [px]. 0.7 with the tracker's default landmarks (the
        lid contours): on the ICT head driven by the real takes weight MAE 0.0637 (depth only) -> 0.0608,
        on an unseen identity 0.120 -> 0.110; 2 px gave 0.0619 / 0.122, and all 478 landmarks hurt
        (0.085: MediaPipe's contour and lip points disagree with the rig's map by pixels).
    huber_lmk : Huber threshold of a landmark's reprojection error, in units of sigma_px: beyond it
        the landmark weighs less (outlier rejection; inf: off).
    iterations : Gauss-Newton iterations per frame (at least).
    max_iterations, extend_energy : more iterations, up to ``max_iterations``, while the last step still
        changed the fit by ``delta^T H delta >= extend_energy`` (its size in the data's own metric, in
        sigma^2 units: twice the energy decrease the Gauss-Newton model predicts). A face that moves
        keeps iterating within the frame; a still face stops after ``iterations``. The previous test,
        a weight step over 0.02, kept 6 of 7 frames iterating to the cap on D415 noise (the weakly
        observed shapes wander by 0.02-0.1 per step while the energy moves by < 0.5) at no gain: with
        this one the fit takes half the time (4.4 -> 2.1 ms) at the same weight MAE and step lag.
    solve_weights : fit expression weights (False: rigid pose only).
    """

    sigma: float = 0.003
    max_dist: float = 0.012
    max_normal_deg: float = 70.0
    edge_tol: float = 0.004
    huber: float = 2.5
    p2p_share: float = 0.1
    lambda_t: float = 0.5
    temporal_scale: float = 0.1
    lambda_s: float | None = None
    relaxed: bool = False
    active_eps: float = 0.03
    prior_mean: np.ndarray | None = None
    prior_precision: np.ndarray | None = None
    lambda_prior: float = 3.0
    lambda_0: float = 1e-3
    lambda_pose: float = 1e-2
    lambda_lmk: float = 1.0
    sigma_px: float = 0.7
    huber_lmk: float = HUBER_LMK
    iterations: int = 2
    max_iterations: int = 8
    extend_energy: float = 1.0
    solve_weights: bool = True


# ----------------------------------------------------------------------------------------- kernels
def rodrigues(w: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) float64 of a rotation vector w (3,) radians."""
    th = float(np.linalg.norm(w))
    if th < 1e-12:
        return np.eye(3)
    k = w / th
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * Kx + (1 - np.cos(th)) * (Kx @ Kx)


def boundary_vertices(triangles: np.ndarray, n_vertices: int, rings: int = 0) -> np.ndarray:
    """(V,) bool: vertices on a boundary edge of the mesh (an edge used by one triangle), grown by
    ``rings`` edge rings."""
    from scipy import sparse

    uniq, counts = mesh_edges(triangles, n_vertices)
    out = np.zeros(n_vertices, bool)
    out[uniq[counts == 1].ravel()] = True
    if rings:
        adj = sparse.coo_matrix((np.ones(len(uniq)), (uniq[:, 0], uniq[:, 1])), shape=(n_vertices,) * 2)
        adj = (adj + adj.T).tocsr()
        for _ in range(rings):
            out |= (adj @ out.astype(np.float64)) > 0
    return out


@dataclass
class MaskModel:
    """The part of a rig the fit uses, cached in float64: vertices of the ``track`` mask.

    b0 : (N, 3) neutral, metres; B : (52, N, 3) deltas; tris : (F, 3) triangles re-indexed to the mask;
    Bsp : the deltas as a sparse (3N, 52) matrix for evaluating vertices;
    index : (N,) rig vertex index of each mask vertex; BT : (N, 3, 52) the deltas vertex-major (the
    fit's kernels compute the sampled vertices from them);
    sample : (S,) mask vertices that generate ICP rows (an even subsample of at most ``max_points``).
    """

    b0: np.ndarray
    B: np.ndarray
    Bsp: object
    BT: np.ndarray
    tris: np.ndarray
    index: np.ndarray
    sample: np.ndarray

    @classmethod
    def from_rig(cls, rig, mask: str = "track", max_points: int = 2500, margin_rings: int = 2) -> MaskModel:
        """Cache the mask of ``rig``. Vertices within ``margin_rings`` edges of a mesh boundary (eye and
        mouth openings, where the lid or lip edge overhangs what lies behind it) generate no ICP rows:
        their projective correspondences are ambiguous."""
        from scipy import sparse

        keep = rig.masks[mask]
        idx = np.flatnonzero(keep)
        remap = -np.ones(rig.n_vertices, np.int64)
        remap[idx] = np.arange(len(idx))
        tris = remap[rig.triangles[keep[rig.triangles].all(1)]]
        B = np.ascontiguousarray(rig.deltas[:, idx, :], dtype=np.float64)
        Bf = B.reshape(len(B), -1).T
        # (3N, 52): deltas are local, mostly zero; motions below a micrometre are dropped
        Bsp = sparse.csr_matrix(np.where(np.abs(Bf) < 1e-6, 0.0, Bf))
        near_edge = boundary_vertices(rig.triangles, rig.n_vertices, margin_rings)[idx]
        cand = np.flatnonzero(~near_edge)
        step = max(1, int(np.ceil(len(cand) / max_points)))
        sample = cand[::step].astype(np.int64)
        return cls(
            b0=rig.neutral[idx].astype(np.float64),
            B=B,
            Bsp=Bsp,
            BT=np.ascontiguousarray(B.transpose(1, 2, 0)),
            tris=tris,
            index=idx,
            sample=sample,
        )

    def vertices(self, w: np.ndarray) -> np.ndarray:
        """(N, 3) float64 mask vertices of weights w (52,), rig space, metres."""
        return self.b0 + (self.Bsp @ w).reshape(-1, 3)


@dataclass
class FitResult:
    rotation: np.ndarray
    translation: np.ndarray
    weights: np.ndarray
    inliers: int
    candidates: int
    rms: float  # metres, point-to-plane RMS of inliers

    @property
    def quality(self) -> float:
        return self.inliers / max(self.candidates, 1)


class Buffers:
    def __init__(self, n: int):
        self.J = np.empty((2 * n, NP), np.float32)
        self.r = np.empty(2 * n, np.float32)
        self.raw = np.empty(2 * n)
        # (model, weights, vertex normals) of the last fit with these buffers: the next fit of the same
        # model starts from them while its weights are within 0.15 of those (the tracker's next frame)
        self.normals: tuple | None = None

    def reserve(self, rows: int) -> None:
        """Room for at least ``rows`` rows in J and r (kept; the rows already written are kept too)."""
        if len(self.r) < rows:
            J, r = np.empty((rows, NP), np.float32), np.empty(rows, np.float32)
            J[: len(self.r)], r[: len(self.r)] = self.J, self.r
            self.J, self.r = J, r


def fit_frame(
    model: MaskModel,
    depth: np.ndarray,
    intr: tuple[float, float, float, float],
    R: np.ndarray,
    t: np.ndarray,
    w: np.ndarray,
    params: FitParams,
    *,
    w_prev: np.ndarray | None = None,
    landmarks: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    buffers: Buffers | None = None,
) -> FitResult:
    """Gauss-Newton fit of pose and weights to one depth image (arrays already validated).

    Parameters
    ----------
    model : MaskModel of the rig
    depth : (H, W) float32, metres, 0 = no data
    intr : (fx, fy, cx, cy) pixels
    R, t : (3, 3), (3,) float64 initial rig -> camera pose
    w : (52,) float64 initial weights in [0, 1]
    w_prev : (52,) weights of the previous frame for the temporal prior (None: no prior)
    landmarks : (uv (L, 2) px, conf (L,), tris (L, 3) mask-vertex ids, bary (L, 3), deltas (L, 3, 52)
        of the landmark points, metres), or None. With landmarks the fit goes on however few depth rows there
        are (a colour-only frame passes an empty depth image); the caller judges the result

    Returns
    -------
    FitResult with the refined pose and weights.
    """
    fx, fy, cx, cy = intr
    R = R.copy()
    t = t.copy()
    w = w.copy()
    buf = buffers or Buffers(len(model.sample))
    cos_max = float(np.cos(np.radians(params.max_normal_deg)))
    lo = np.full(NP, -np.inf)
    hi = np.full(NP, np.inf)
    m = m_depth = 0
    inl = 0
    rms = np.nan
    inv_s = 1.0 / params.sigma
    nr = w_normals = None
    if buf.normals is not None and buf.normals[0] is model:
        _, w_normals, nr = buf.normals
    # the kernels compute the vertices and landmarks as base + deltas . weights; a rigid fit (weights
    # held) takes them posed once, builds and solves the 6 pose columns only
    if params.solve_weights:
        n, base, wk, BT = NP, model.b0, w, model.BT
    else:
        n, base, wk, BT = 6, model.vertices(w), np.zeros(0), model.BT[:, :, :0]
    if landmarks is not None:
        uv, conf, ltris, lbary, BL = landmarks
        p0 = np.einsum("lq,lqd->ld", lbary, base[ltris])
        BL = BL if params.solve_weights else BL[:, :, :0]
    moved = np.inf
    for it in range(max(params.iterations, params.max_iterations)):
        if it >= params.iterations and moved < params.extend_energy:
            break  # past the base iterations only while the face still moves
        if nr is None or np.abs(w - w_normals).max() > 0.15:  # normals: only when the shape moved a lot
            nr = vertex_normals(model.vertices(w) if params.solve_weights else base, model.tris)
            w_normals = w.copy()
            buf.normals = (model, w_normals, nr)
        if params.solve_weights:
            wk = w
        # the first iterations accept a wider band (the warm start may be a few mm off), then tighten
        md = params.max_dist * max(0.5, 1.5 - 0.5 * it)
        m = icp_rows(
            base,
            wk,
            nr,
            model.sample,
            R,
            t,
            depth,
            fx,
            fy,
            cx,
            cy,
            BT,
            md,
            cos_max,
            max(params.edge_tol, 3.0 * params.sigma),
            params.p2p_share,
            inv_s,
            params.huber,
            buf.J,
            buf.r,
            buf.raw,
        )
        if m < 20 and landmarks is None:
            return FitResult(R, t, w, 0, len(model.sample), np.nan)
        m_depth = m
        if landmarks is not None and params.lambda_lmk > 0:  # 2-D landmark rows after the depth rows
            buf.reserve(m + 2 * len(conf))
            scale, huber_px = np.sqrt(params.lambda_lmk) / params.sigma_px, params.huber_lmk * params.sigma_px
            m = landmark_rows(p0, wk, BL, uv, conf, R, t, fx, fy, cx, cy, scale, huber_px, buf.J, buf.r, m)
        J = buf.J[:m, :n]
        H = (J.T @ J).astype(np.float64)  # float32 BLAS: residuals are normalised, precision is ample
        g = (J.T @ buf.r[:m]).astype(np.float64)
        hd = H.ravel()[:: n + 1]  # a view of the diagonal
        if params.solve_weights:
            info = hd[6:].copy()  # data information of each weight (1 / variance)
            # priors on the weights
            hd[6:] += params.lambda_0
            if w_prev is not None:
                # temporal prior in units of each weight's own data information: the estimate leans on
                # the previous frame by the same ratio whether the shape is well or poorly observed
                lt = params.lambda_t * info
                if params.temporal_scale > 0:  # robust: a large change is the face moving, not noise
                    lt = lt / (1.0 + ((w - w_prev) / params.temporal_scale) ** 2)
                hd[6:] += lt
                g[6:] += lt * (w - w_prev)
            if params.lambda_prior > 0 and params.prior_precision is not None:
                # Gaussian prior on the weights learned from real performances (co-activation statistics)
                P = params.lambda_prior * params.prior_precision
                H[6:, 6:] += P
                g[6:] += P @ (w - params.prior_mean)
            # L1 sparsity scaled per shape by how well the data sees it: a threshold of lambda_s noise
            # standard deviations of that weight, not a fixed amount (which would erase subtle shapes)
            lam_s = LAMBDA_S_GENERIC if params.lambda_s is None else params.lambda_s
            l1 = lam_s * np.sqrt(np.maximum(info, 1e-12))
            g[6:] += l1
        # pose damping
        hd[:3] += params.lambda_pose
        hd[3:6] += params.lambda_pose * 100.0
        if params.solve_weights:
            lo[6:] = -w
            hi[6:] = 1.0 - w
            delta = box_qp(H, g, lo, hi, 30)
            if params.relaxed:
                # relaxed lasso: the L1 step selected the shapes; refit the selected ones without it
                # (the others stay at 0), so held expressions are not shrunk
                active = (w + delta[6:]) > params.active_eps
                g2 = g.copy()
                g2[6:] -= np.where(active, l1, 0.0)
                hi2 = hi.copy()
                hi2[6:] = np.where(active, hi[6:], lo[6:])
                delta = box_qp(H, g2, lo, hi2, 30)
        else:
            delta = np.zeros(NP)
            delta[:6] = np.linalg.solve(H, -g)
        R = rodrigues(delta[:3]) @ R
        t = t + delta[3:6]
        if params.solve_weights:
            w = np.clip(w + delta[6:], 0.0, 1.0)  # exact bounds already; clip removes round-off only
        moved = float(delta[:n] @ H @ delta[:n])
        step_w = float(np.abs(delta[6:]).max())
        converged = step_w < 0.005 and np.abs(delta[:3]).max() < 2e-4 and np.abs(delta[3:6]).max() < 1e-4
        if converged and it >= 1:
            break
    rp = buf.raw[:m_depth]
    rp = rp[np.isfinite(rp)]
    good = np.abs(rp) < 3 * params.sigma
    inl = int(np.count_nonzero(good))
    rms = float(np.sqrt(np.mean(rp[good] ** 2))) if inl else np.nan
    return FitResult(R, t, w, inl, len(model.sample), rms)


def robust_energy(
    model: MaskModel,
    depth: np.ndarray,
    intr: tuple[float, float, float, float],
    R: np.ndarray,
    t: np.ndarray,
    w: np.ndarray,
    params: FitParams,
    *,
    buffers: Buffers | None = None,
    cap: float = 3.0,
) -> float:
    """Robust depth energy of one pose and expression, for choosing among fits of the same frame.

    Each sampled mask vertex costs ``min((r / sigma)^2, cap^2)`` for its point-to-plane residual ``r``
    and ``cap^2`` when it has no correspondence (off the image, no depth, a depth edge, facing away or
    farther than ``params.max_dist``), so a fit cannot lower its energy by losing data. Arguments as for
    :func:`fit_frame`.

    Returns
    -------
    float, mean cost per sampled vertex (dimensionless; 0 = perfect fit, ``cap^2`` = nothing matched).
    """
    fx, fy, cx, cy = intr
    buf = buffers or Buffers(len(model.sample))
    nr = vertex_normals(model.vertices(w), model.tris)
    m = icp_rows(
        model.b0, np.asarray(w, np.float64), nr, model.sample, R, t, depth, fx, fy, cx, cy, model.BT,
        params.max_dist, float(np.cos(np.radians(params.max_normal_deg))),
        max(params.edge_tol, 3.0 * params.sigma), 0.0, 1.0 / params.sigma, params.huber,
        buf.J, buf.r, buf.raw,
    )  # fmt: skip
    z2 = (buf.raw[:m] / params.sigma) ** 2
    n = max(len(model.sample), 1)
    return float((np.minimum(z2, cap * cap).sum() + cap * cap * (len(model.sample) - m)) / n)
