"""Numba mesh kernels shared by several stages (the fit, the synthetic actor's renderer).

Each kernel is private (``_name``, ``cache=True``) behind a public wrapper that the stages import; the
wrappers do not validate (their callers already hold C-contiguous arrays of the right shape). Each kernel
has a NumPy reference that the tests compare it with (docs/design.md, house style).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, fastmath=True)
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
