"""Retargeting: drive a puppet's own shapes (VRM presets, a studio rig, ...) from the 52 ARKit weights.

A *mapping* is a JSON file that says, for every puppet shape (a *target*), which ARKit weights drive it
and how::

    {
      "name": "vrm0",
      "description": "VRM 0.x preset clips",
      "mirror": false,
      "targets": {
        "A":       {"sources": {"jawOpen": 1.0, "mouthClose": -1.0}},
        "Blink_L": {"sources": "eyeBlinkLeft", "curve": {"type": "smoothstep", "edge0": 0.1, "edge1": 0.8}},
        "Joy":     {"sources": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}, "gain": 1.2,
                    "curve": {"type": "gamma", "exponent": 0.8}, "min": 0.0, "max": 1.0},
        "Fun":     {"sources": ["mouthSmileLeft", "mouthSmileRight"], "gain": 0.5,
                    "curve": {"type": "piecewise", "points": [[0, 0], [0.3, 0.6], [1, 0.2]]}}
      }
    }

Each target is evaluated as ::

    x = gain * sum_i(coefficient_i * w[source_i]) + offset
    value = clip(curve(x), min, max)

- ``sources``: ``{"arkitName": coefficient}``, a list of names (coefficient 1) or one name. Names take any
  spelling ``facecap.arkit.canonical_name`` accepts (``eyeBlinkLeft``, ``EyeBlinkLeft``, ``eyeBlink_L``).
- ``gain`` (default 1), ``offset`` (default 0), ``min`` / ``max`` (default 0 / 1): finite numbers.
- ``curve``: ``"linear"`` (default), ``"smoothstep"`` or an object ``{"type": "smoothstep", "edge0": a,
  "edge1": b}`` (0 below a, 1 above b, C1-smooth between), ``{"type": "gamma", "exponent": g}``
  (``clip(x, 0, 1) ** g``), ``{"type": "piecewise", "points": [[x0, y0], [x1, y1], ...]}`` (linear
  interpolation, constant outside, x strictly increasing).
- ``mirror`` (top level, default false): swap every Left/Right source, for a puppet that mirrors the
  performer (its left eye blinks when the performer's right eye does).

Built-in mappings ship inside the package, in ``facecap/data/rigs/`` (``vrm0``, ``perfect_sync``,
``arkit``); ``load_mapping("vrm0")`` finds them by name. :func:`apply_to_gltf` writes a copy of a glTF/GLB
puppet with a morph-weight animation that plays a take through a mapping.

Modules: ``mapping`` (:class:`Mapping`, :class:`Target`, :class:`Curve`, parsing and validation of the
JSON above, :func:`load_mapping`, :func:`builtin_mappings`, :func:`identity_mapping`), ``puppet``
(:func:`apply_to_gltf`).
"""

from .mapping import (
    Curve,
    Mapping,
    MappingError,
    Target,
    builtin_mappings,
    identity_mapping,
    load_mapping,
)
from .puppet import apply_to_gltf

__all__ = [
    "Curve",
    "Mapping",
    "MappingError",
    "Target",
    "apply_to_gltf",
    "builtin_mappings",
    "identity_mapping",
    "load_mapping",
]
