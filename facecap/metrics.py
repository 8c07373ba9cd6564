"""Accuracy of tracked takes against ground truth (used by the demo and the benchmarks)."""

from __future__ import annotations

import numpy as np

from .arkit import ARKIT_NAMES, INDEX
from .pose import rotation_angle_deg

# Shapes depth barely sees: reported separately (eyeball rotation under closed lids, tongue inside the mouth).
DEPTH_BLIND = tuple(n for n in ARKIT_NAMES if n.startswith("eyeLook")) + ("tongueOut",)
DEPTH_VISIBLE = tuple(n for n in ARKIT_NAMES if n not in DEPTH_BLIND)


def score(
    weights: np.ndarray,
    true_weights: np.ndarray,
    rotations: np.ndarray,
    true_rotations: np.ndarray,
    translations: np.ndarray,
    true_translations: np.ndarray,
    tracked: np.ndarray,
) -> dict:
    """Compare a tracked take with its ground truth.

    Parameters
    ----------
    weights, true_weights : (N, 52) float, canonical ARKit order
    rotations, true_rotations : (N, 3, 3) rig -> camera
    translations, true_translations : (N, 3) metres
    tracked : (N,) bool; errors are computed over tracked frames only

    Returns
    -------
    dict with frames, tracked_fraction, mae_weights (the 52 minus eyeLook*/tongueOut),
    mae_weights_all, mae_depth_blind, mae_by_shape, rot_err_deg_median, trans_err_mm_median (and p95).
    """
    w = np.asarray(weights, np.float64)
    tw = np.asarray(true_weights, np.float64)
    tracked = np.asarray(tracked, bool)
    n = len(w)
    if not (tw.shape == w.shape == (n, 52) and len(tracked) == n):
        raise ValueError("weights, true_weights must be (N, 52) and tracked (N,)")
    out: dict = {"frames": int(n), "tracked_fraction": float(tracked.mean()) if n else 0.0}
    if not tracked.any():
        return out | {
            "mae_weights": None,
            "mae_by_shape": {},
            "rot_err_deg_median": None,
            "trans_err_mm_median": None,
        }
    err = np.abs(w[tracked] - tw[tracked])
    vis = [INDEX[k] for k in DEPTH_VISIBLE]
    blind = [INDEX[k] for k in DEPTH_BLIND]
    rot = np.array(
        [rotation_angle_deg(a, b) for a, b in zip(rotations[tracked], true_rotations[tracked], strict=True)]
    )
    tr = (
        np.linalg.norm(np.asarray(translations)[tracked] - np.asarray(true_translations)[tracked], axis=1)
        * 1000
    )
    return out | {
        "mae_weights": float(err[:, vis].mean()),
        "mae_weights_all": float(err.mean()),
        "mae_depth_blind": float(err[:, blind].mean()),
        "mae_by_shape": {k: round(float(e), 4) for k, e in zip(ARKIT_NAMES, err.mean(0), strict=True)},
        "rot_err_deg_median": float(np.median(rot)),
        "rot_err_deg_p95": float(np.percentile(rot, 95)),
        "trans_err_mm_median": float(np.median(tr)),
        "trans_err_mm_p95": float(np.percentile(tr, 95)),
    }


def surface_distance(vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(P,) float64 distance [m] from each point (P, 3) to the triangle mesh (V, 3), (F, 3): exact
    point-to-triangle, through Open3D's ray-casting scene."""
    from .camera_access import import_open3d

    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(vertices, np.float32)), o3d.core.Tensor(np.asarray(triangles, np.uint32))
    )
    d = scene.compute_distance(o3d.core.Tensor(np.asarray(points, np.float32)))
    return d.numpy().astype(np.float64)


def neutral_error_mm(fitted: np.ndarray, truth, rig) -> dict[str, float]:
    """How far a fitted neutral (V, 3) is from a true one: the surface distance in mm from the fitted
    vertices of ``rig``'s tracked region to ``truth``'s neutral mesh (median, p90), after the rotation and
    translation that best align the two faces (a calibrated actor's frame is its own)."""
    face, track = rig.masks["face"], rig.masks["track"]
    a, b = np.asarray(fitted, np.float64)[face], truth.neutral[face].astype(np.float64)
    ca, cb = a.mean(0), b.mean(0)
    U, _, Vt = np.linalg.svd((a - ca).T @ (b - cb))
    rot = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    v = np.asarray(fitted, np.float64).copy()
    v[face] = (a - ca) @ rot + cb
    d = surface_distance(truth.neutral, rig.triangles, v[track]) * 1000.0
    return {"median": round(float(np.median(d)), 3), "p90": round(float(np.percentile(d, 90)), 3)}
