"""Synthetic identities: other people's faces made from a rig by smooth random deformations.

A tracker that explains its own rig's images proves little; these faces are the rig's topology with another
shape (and, optionally, another expression style), different per seed, for measuring accuracy on faces the
tracking rig has not seen.
"""

from __future__ import annotations

import numpy as np

from ..rig import Rig


def smooth_field(points: np.ndarray, rng: np.random.Generator, n_bumps: int = 12,
                 radius: tuple[float, float] = (0.02, 0.05)) -> np.ndarray:  # fmt: skip
    """A smooth random vector field on ``points``: a sum of Gaussian bumps with random centres (on the
    points), radii and directions.

    Parameters
    ----------
    points : (n, 3) float, metres
    rng : numpy Generator
    n_bumps : int
    radius : (min, max) bump radius, metres

    Returns
    -------
    (n, 3) float64 field with max norm 1 (unitless; scale it).
    """
    p = np.asarray(points, dtype=np.float64)
    field = np.zeros_like(p)
    centres = p[rng.integers(0, len(p), n_bumps)]
    radii = rng.uniform(*radius, n_bumps)
    dirs = rng.normal(size=(n_bumps, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    for c, r, d in zip(centres, radii, dirs, strict=True):
        field += np.exp(-np.sum((p - c) ** 2, axis=1) / (2 * r * r))[:, None] * d
    peak = np.linalg.norm(field, axis=1).max()
    return field / peak if peak > 0 else field


def random_identity(
    rig: Rig,
    seed: int,
    amplitude: float | None = None,
    *,
    style: float = 0.0,
    symmetric: bool = True,
) -> Rig:
    """Another person made from ``rig``: its neutral moved by a smooth random field, different per seed.

    Parameters
    ----------
    rig : Rig
    seed : int
    amplitude : float, metres, optional
        Largest displacement of the neutral; default drawn in 5-8 mm.
    style : float
        Expression style spread: each delta is scaled by a factor drawn in ``1 +- style`` (0.4 gives
        0.6-1.4) and warped by a smooth field of 15 % of its own peak motion. 0 keeps the rig's deltas.
    symmetric : bool
        Mirror-average the identity field (faces are nearly symmetric); asymmetric otherwise.

    Returns
    -------
    Rig with the same topology, landmarks, masks and colours, named ``"<rig>-id<seed>"``; ``meta`` records
    the seed, amplitude and style.
    """
    rng = np.random.default_rng(seed)
    amp = float(rng.uniform(0.005, 0.008)) if amplitude is None else float(amplitude)
    v = rig.neutral.astype(np.float64)
    f = smooth_field(v, rng)
    if symmetric:
        f = 0.5 * (f + f[rig.mirror] * (-1.0, 1.0, 1.0))
        f /= max(np.linalg.norm(f, axis=1).max(), 1e-12)
    neutral = v + amp * f
    deltas = rig.deltas.astype(np.float64)
    if style > 0:
        gains = rng.uniform(1 - style, 1 + style, len(deltas))
        warped = []
        for k, d in enumerate(deltas):
            peak = np.linalg.norm(d, axis=1)
            w = smooth_field(v, rng, n_bumps=4) * (0.15 * peak.max()) * (np.abs(d).max(1) > 0)[:, None]
            warped.append(gains[k] * d + w * (peak / max(peak.max(), 1e-12))[:, None])
        deltas = np.array(warped)
    meta = {**rig.meta, "identity": {"base": rig.name, "seed": int(seed), "amplitude_m": round(amp, 6),
                                     "style": float(style), "symmetric": bool(symmetric)}}  # fmt: skip
    return Rig(
        neutral=neutral.astype(np.float32), triangles=rig.triangles, deltas=deltas.astype(np.float32),
        landmark_ids=rig.landmark_ids, landmark_tris=rig.landmark_tris, landmark_bary=rig.landmark_bary,
        masks=rig.masks, mirror=rig.mirror, colors=rig.colors, name=f"{rig.name}-id{seed}", meta=meta,
    )  # fmt: skip


__all__ = ["random_identity", "smooth_field"]
