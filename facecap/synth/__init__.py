"""The synthetic actor: render a blendshape rig as a RealSense-like RGB-D camera would see it.

Pieces, each usable alone (one module each):

- :mod:`~facecap.synth.camera` -- camera presets in :data:`CAMERAS` (D415, D435 at 640x480),
  :class:`CameraPreset`, :func:`get_camera`.
- :mod:`~facecap.synth.render` -- :func:`render_mesh` / :func:`render_rig`, a Numba z-buffer rasterizer:
  perspective-correct depth (metres, 0 = no surface), vertex colours with Lambert shading from a point
  light near the camera, back-faces culled, per-pixel triangle id and barycentrics.
- :mod:`~facecap.synth.noise` -- :func:`apply_depth_noise` / :func:`apply_color_noise`, the D4xx error
  model of docs/design.md §3 (axial noise growing with z², 1 mm quantisation, holes and flying pixels at
  silhouettes, the stereo occlusion shadow, range limits) driven by :class:`DepthNoise`.
- :mod:`~facecap.synth.performance` -- :func:`procedural_performance` and :func:`head_motion`, expression
  weights and head poses that need no data file; Live Link Face takes (:mod:`facecap.livelink`) drive the
  rig with real timing.
- :mod:`~facecap.synth.actor` -- :class:`SyntheticActor`, all of it behind one object yielding
  ``(Frame, GroundTruth)`` pairs; :func:`synthetic_take` is the one-call version used by the demo and the
  benchmarks; :func:`make_performance`, :func:`simulated_landmarks`.
- :mod:`~facecap.synth.truth` -- :func:`save_truth` / :func:`load_truth`, the ground-truth sidecar
  ``FILE.truth.npz`` written beside a synthetic recording ``FILE.db3``.
- :mod:`~facecap.synth.record` -- :func:`record_synthetic_take`, a take rendered into ``FILE.db3`` plus
  its sidecar (what ``facecap synth`` runs).
- :mod:`~facecap.synth.preview` -- :func:`rig_preview`, a PIL contact sheet of a rig's 52 expressions;
- :mod:`~facecap.synth.identity` -- :func:`random_identity`, other people made from a rig (smooth random
  shape changes of 5-8 mm and, optionally, another expression style).

Conventions: rig space metres, y up, z out of the face; poses map rig -> OpenCV camera,
``x_cam = R @ x_rig + t``; pixel centres at integer coordinates. All randomness is seeded: the same
seed gives the same frames, bit for bit.
"""

from ..frames import Frame, GroundTruth, Intrinsics  # noqa: F401 -- the API's types, importable here too
from .actor import SyntheticActor, make_performance, simulated_landmarks, synthetic_take
from .camera import CAMERAS, CameraPreset, get_camera
from .identity import random_identity
from .noise import DepthNoise, apply_color_noise, apply_depth_noise
from .performance import (
    EXPRESSIONS,
    expression_weights,
    head_motion,
    procedural_performance,
    protocol_performance,
)
from .preview import rig_preview
from .record import SyntheticRecording, record_synthetic_take
from .render import (
    LIGHT,
    SKIN,
    RenderResult,
    background_wall,
    render_mesh,
    render_rig,
    render_triangles,
    shade_vertices,
)
from .truth import SyntheticTruth, load_truth, save_truth, truth_path

__all__ = [
    "random_identity",
    "CAMERAS",
    "EXPRESSIONS",
    "LIGHT",
    "SKIN",
    "CameraPreset",
    "DepthNoise",
    "RenderResult",
    "SyntheticActor",
    "SyntheticRecording",
    "SyntheticTruth",
    "apply_color_noise",
    "apply_depth_noise",
    "background_wall",
    "expression_weights",
    "get_camera",
    "head_motion",
    "load_truth",
    "make_performance",
    "procedural_performance",
    "protocol_performance",
    "record_synthetic_take",
    "render_mesh",
    "render_rig",
    "render_triangles",
    "rig_preview",
    "save_truth",
    "shade_vertices",
    "simulated_landmarks",
    "synthetic_take",
    "truth_path",
]
