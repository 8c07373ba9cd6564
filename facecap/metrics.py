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
