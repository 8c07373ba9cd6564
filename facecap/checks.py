"""Argument checks shared by the exporters (glTF, USD, retargeting): one home for each check and its message.

Each function validates at a public boundary and raises with a message that says how to fix the input
(``docs/design.md`` and the house style: stumpy's ``core.check_dtype``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .arkit import ARKIT_NAMES, NUM_SHAPES


def check_weight_track(weights, fps) -> tuple[np.ndarray, float]:
    """Validate an animation: weights (N, 52) finite, canonical order, N >= 1; fps a positive number.

    Parameters
    ----------
    weights : (N, 52) float
        Blendshape weights per frame, canonical ARKit order.
    fps : float
        Frames per second.

    Returns
    -------
    (N, 52) float64 weights and fps as a float; raises ``ValueError`` naming the first bad frame and shape.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != NUM_SHAPES or len(w) < 1:
        raise ValueError(f"weights must be (N, {NUM_SHAPES}) in canonical ARKit order, got {w.shape}")
    if not np.isfinite(w).all():
        f, k = np.argwhere(~np.isfinite(w))[0]
        raise ValueError(
            f"weights contain NaN or inf (first at frame {f}, {ARKIT_NAMES[k]}); "
            "fill lost frames (e.g. hold the last tracked one) before exporting"
        )
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a number, got {fps!r}") from None
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    return w, fps


def check_pose_track(
    rotations, translations, n: int, *, quaternions: bool = False
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Validate an optional head-pose track of ``n`` frames.

    Parameters
    ----------
    rotations : (n, 3, 3) float, or (n, 4) float unit quaternions (x, y, z, w) when ``quaternions``; or None
        Rotation matrices must be proper (det = +1 within 1e-3), quaternions of unit length within 1e-3.
    translations : (n, 3) float, metres, or None
    n : int
        Number of frames (the weight track's length).
    quaternions : bool
        Accept (n, 4) quaternions as well as matrices.

    Returns
    -------
    rotations : (n, 3, 3) float64, (n, 4) float64 quaternions normalised to unit length, or None
    translations : (n, 3) float64 or None
    """
    r = None
    if rotations is not None:
        r = np.asarray(rotations, dtype=np.float64)
        if quaternions and r.shape == (n, 4):
            if not np.isfinite(r).all():
                raise ValueError("rotations contain NaN or inf")
            norm = np.linalg.norm(r, axis=1)
            if (np.abs(norm - 1.0) > 1e-3).any():
                raise ValueError("rotation quaternions must have unit length (x, y, z, w order)")
            r = r / norm[:, None]
        elif r.shape == (n, 3, 3):
            if not np.isfinite(r).all():
                raise ValueError("rotations contain NaN or inf")
            if not np.allclose(np.linalg.det(r), 1.0, atol=1e-3):
                raise ValueError("rotations must be proper rotation matrices (det = +1)")
        elif quaternions:
            raise ValueError(
                f"rotations must be ({n}, 4) quaternions (x, y, z, w) or ({n}, 3, 3) matrices, got {r.shape}"
            )
        else:
            raise ValueError(f"rotations must be ({n}, 3, 3) rotation matrices, got {r.shape}")
    t = None
    if translations is not None:
        t = np.asarray(translations, dtype=np.float64)
        if t.shape != (n, 3):
            raise ValueError(f"translations must be ({n}, 3) metres, got {t.shape}")
        if not np.isfinite(t).all():
            raise ValueError("translations contain NaN or inf")
    return r, t


def check_out_path(path: str | Path, suffixes: tuple[str, ...], what: str, *, folder: bool = True) -> Path:
    """Validate an output file name: its suffix (any case) is one of ``suffixes``.

    Parameters
    ----------
    path : str or Path
    suffixes : tuple of str
        Allowed suffixes with their dot, e.g. ``(".glb", ".gltf")``.
    what : str
        What the path is, for the message (``"glTF output"``, ``"out_path"``).
    folder : bool
        Also require the containing folder to exist (``FileNotFoundError`` otherwise). Writers that
        create missing folders pass False.

    Returns
    -------
    Path
    """
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        allowed = f"{', '.join(suffixes[:-1])} or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]
        raise ValueError(f"{what} must end in {allowed}, got {p.name!r}")
    if folder and not p.parent.is_dir():
        raise FileNotFoundError(f"output folder {p.parent} does not exist; create it first")
    return p


__all__ = ["check_out_path", "check_pose_track", "check_weight_track"]
