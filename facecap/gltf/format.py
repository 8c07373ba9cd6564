"""The glTF layout facecap writes and reads: file suffixes, accessor component types, colour encoding.

The container is written and parsed by ``pygltflib``; :mod:`facecap.gltf.write` and
:mod:`facecap.gltf.read` only lay out the data.

Layout written by :func:`~facecap.gltf.export_rig` (one scene, one node, one mesh, one triangle
primitive):

- ``POSITION`` float32 VEC3 (with ``min``/``max``), ``NORMAL`` float32 VEC3, optional ``COLOR_0``
  float32 VEC3 (linear, converted from the rig's sRGB albedo), ``indices`` uint32;
- 52 morph targets (``POSITION`` deltas, metres) in canonical ARKit order, named in
  ``mesh.extras.targetNames`` (the convention Blender and three.js read), ``mesh.weights`` all 0;
- ``mesh.extras.facecap``: what a round trip needs beyond the mesh (rig name and meta as JSON, the
  mirror map, region masks and landmarks as extra accessors), so :func:`~facecap.gltf.import_rig`
  rebuilds the exact :class:`~facecap.rig.Rig`; its ``version`` is :data:`FORMAT_VERSION`.

Every bufferView starts on a 4-byte boundary, vertex attributes carry ``byteStride`` and the
``ARRAY_BUFFER`` target, indices ``ELEMENT_ARRAY_BUFFER``. glTF's frame is rig space: metres, y up,
z out of the face.
"""

from __future__ import annotations

import numpy as np
import pygltflib as gl

GLTF_SUFFIXES = (".glb", ".gltf")
FORMAT_VERSION = 1  # of the mesh.extras.facecap block

# accessor componentType -> little-endian dtype, accessor type -> components per element
COMPONENT_DTYPES = {
    gl.BYTE: np.dtype("<i1"),
    gl.UNSIGNED_BYTE: np.dtype("<u1"),
    gl.SHORT: np.dtype("<i2"),
    gl.UNSIGNED_SHORT: np.dtype("<u2"),
    gl.UNSIGNED_INT: np.dtype("<u4"),
    gl.FLOAT: np.dtype("<f4"),
}
N_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear, float32 (glTF's COLOR_0 is linear)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb8(c: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] -> sRGB uint8."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    s = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.round(s * 255.0).astype(np.uint8)
