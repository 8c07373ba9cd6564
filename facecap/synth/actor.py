"""The synthetic actor: a rig in front of a simulated RealSense camera, yielding ``(Frame, GroundTruth)``.

Also a simulated landmark detector, :func:`make_performance` (weights and head poses for a take) and
:func:`synthetic_take`, the one-call version used by the demo and the benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .. import arkit
from ..frames import Frame, GroundTruth
from ..pose import FRONTAL
from ..rig import Rig
from .camera import CameraPreset, get_camera
from .noise import DepthNoise, apply_color_noise, apply_depth_noise
from .performance import head_motion, procedural_performance
from .render import (
    LIGHT,
    RenderResult,
    background_wall,
    blend_vertices,
    check_pose,
    render_rig,
    render_triangles,
)


class SyntheticActor:
    """A rig in front of a simulated RealSense camera: renders aligned RGB-D frames with ground truth.

    Parameters
    ----------
    rig : Rig
    camera : str or CameraPreset
        ``"d415"`` or ``"d435"`` (640x480, :data:`CAMERAS`).
    distance : float, metres
        Camera to rig origin for the default frontal pose.
    noise : bool or DepthNoise
        True for the default :class:`DepthNoise`, False for clean images.
    seed : int
        Seeds all noise; frame ``i`` of two actors with the same seed is identical.
    background : bool or float
        True: a wall 1.2 m away (in depth and colour); a float: the wall distance in metres; False: no
        depth behind the face (colour still shows a grey wall).
    light : (3,) camera-frame point light position, metres
    """

    def __init__(
        self,
        rig: Rig,
        camera: str | CameraPreset = "d415",
        distance: float = 0.6,
        noise: bool | DepthNoise = True,
        seed: int = 0,
        background: bool | float = True,
        light=LIGHT,
    ) -> None:
        if not isinstance(rig, Rig):
            raise TypeError(f"rig must be a facecap Rig (facecap.load_rig()), got {type(rig).__name__}")
        if not (math.isfinite(distance) and distance > 0):
            raise ValueError(f"distance must be a positive number of metres, got {distance}")
        self.rig = rig
        self.camera = get_camera(camera)
        self.intrinsics = self.camera.intrinsics
        self.distance = float(distance)
        if not isinstance(noise, (bool, DepthNoise)) and noise is not None:
            raise TypeError(f"noise must be True, False or a DepthNoise, got {type(noise).__name__}")
        self.noise = DepthNoise() if noise is True else (noise or None)
        self.seed = int(seed)
        self.light = tuple(float(x) for x in light)
        if background is True:
            wall = 1.2
        elif background is False or background is None:
            wall = None
        else:
            wall = float(background)
            if not wall > 0:
                raise ValueError(f"background distance must be > 0 metres, got {background}")
        self.background_distance = wall
        self._background = background_wall(self.intrinsics, wall, self.light)
        self._triangles = render_triangles(rig)
        self._count = 0

    @property
    def frontal_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(R, t) of a face looking into the camera at ``distance``."""
        return FRONTAL.copy(), np.array([0.0, 0.0, self.distance])

    def _key(self, index: int) -> int:
        return int(np.random.default_rng([self.seed, int(index)]).integers(0, 2**63 - 1))

    def render_clean(
        self, weights: np.ndarray, rotation: np.ndarray | None = None, translation: np.ndarray | None = None
    ) -> RenderResult:
        """Noise-free render (depth, colour, triangle ids); pose defaults to :attr:`frontal_pose`."""
        r0, t0 = self.frontal_pose
        r = r0 if rotation is None else rotation
        t = t0 if translation is None else translation
        return render_rig(
            self.rig,
            weights,
            r,
            t,
            self.intrinsics,
            self._background,
            triangles=self._triangles,
            light=self.light,
        )

    def render(
        self,
        weights: np.ndarray,
        rotation: np.ndarray | None = None,
        translation: np.ndarray | None = None,
        timestamp: float | None = None,
        index: int | None = None,
    ) -> Frame:
        """One aligned RGB-D frame (noise as configured); pose defaults to :attr:`frontal_pose`.

        ``index`` selects the noise stream (by default the actor counts its calls); ``timestamp``
        defaults to ``index / 30`` seconds.
        """
        if index is None:
            index, self._count = self._count, self._count + 1
        return self._finish(
            self.render_clean(weights, rotation, translation),
            index,
            index / 30.0 if timestamp is None else timestamp,
        )

    def ground_truth(
        self, weights: np.ndarray, rotation: np.ndarray, translation: np.ndarray, visible: bool = True
    ) -> GroundTruth:
        """GroundTruth with the rig's landmarks projected to pixels (``landmarks_2d`` (L, 2) float32)."""
        r, t = check_pose(rotation, translation)
        w = np.asarray(weights, dtype=np.float32).reshape(arkit.NUM_SHAPES)
        lm = self.rig.landmark_points(blend_vertices(self.rig, w)) @ r.T + t
        uv = self.intrinsics.project(lm).astype(np.float32).reshape(-1, 2)
        return GroundTruth(rotation=r, translation=t, weights=w.copy(), landmarks_2d=uv, visible=visible)

    def frames(
        self,
        weights_seq: np.ndarray,
        rotations: np.ndarray | None = None,
        translations: np.ndarray | None = None,
        fps: float = 30.0,
    ) -> Iterator[tuple[Frame, GroundTruth]]:
        """Render a sequence: ``(Frame, GroundTruth)`` per row of ``weights_seq`` (N, 52).

        Poses default to frontal; timestamps are ``i / fps``; frame ``i`` uses noise stream ``i``.
        Arguments are checked here, before the first frame is rendered.
        """
        w = np.asarray(weights_seq, dtype=np.float32)
        if w.ndim != 2 or w.shape[1] != arkit.NUM_SHAPES:
            raise ValueError(f"weights_seq must be (N, 52) in canonical ARKit order, got {w.shape}")
        n = len(w)
        r0, t0 = self.frontal_pose
        rs = np.broadcast_to(r0, (n, 3, 3)) if rotations is None else np.asarray(rotations, dtype=np.float64)
        ts = (
            np.broadcast_to(t0, (n, 3))
            if translations is None
            else np.asarray(translations, dtype=np.float64)
        )
        if rs.shape != (n, 3, 3) or ts.shape != (n, 3):
            raise ValueError(
                f"rotations must be ({n}, 3, 3) and translations ({n}, 3), got {rs.shape}, {ts.shape}"
            )
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        if not np.isfinite(w).all():
            raise ValueError("weights_seq contains NaN or inf (hold or drop face-lost frames first)")
        return self._frames(w, rs, ts, fps)

    def _frames(self, w, rs, ts, fps) -> Iterator[tuple[Frame, GroundTruth]]:
        for i in range(len(w)):
            res = self.render_clean(w[i], rs[i], ts[i])
            frame = self._finish(res, i, i / fps)
            yield frame, self.ground_truth(w[i], rs[i], ts[i], visible=bool((res.triangle >= 0).any()))

    def _finish(self, res: RenderResult, index: int, timestamp: float) -> Frame:
        depth, color = res.depth, res.color
        if self.noise is not None:
            key, cam = self._key(index), self.camera
            depth = apply_depth_noise(
                depth, self.intrinsics.fx, cam.baseline, self.noise, key, cam.min_range, cam.max_range
            )
            color = apply_color_noise(color, self.noise.color_sigma, key)
        return Frame(
            depth=depth,
            depth_intrinsics=self.intrinsics,
            color=color,
            color_intrinsics=self.intrinsics,
            timestamp=float(timestamp),
            index=int(index),
        )


def simulated_landmarks(
    gt: GroundTruth, pixel_sigma: float = 1.5, seed: int | np.random.Generator = 0, dropout: float = 0.0
) -> np.ndarray:
    """A *simulated* landmark detector: the ground-truth 2-D landmarks plus Gaussian pixel noise.

    Parameters
    ----------
    gt : GroundTruth with ``landmarks_2d`` (L, 2)
    pixel_sigma : float, pixels, per-coordinate noise std
    seed : int or numpy Generator
    dropout : float in [0, 1), probability that a landmark is missing (NaN row)

    Returns
    -------
    (L, 2) float32 pixels, NaN for dropped landmarks
    """
    if gt.landmarks_2d is None:
        raise ValueError("ground truth has no landmarks_2d (render it with SyntheticActor.ground_truth)")
    if not (pixel_sigma >= 0 and 0 <= dropout < 1):
        raise ValueError(f"need pixel_sigma >= 0 and 0 <= dropout < 1, got {pixel_sigma}, {dropout}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lm = np.asarray(gt.landmarks_2d, dtype=np.float64)
    out = lm + rng.normal(0.0, pixel_sigma, lm.shape)
    out[rng.random(len(lm)) < dropout] = np.nan
    return out.astype(np.float32)


def make_performance(
    n_frames: int | None = 300,
    fps: float = 30.0,
    seed: int = 0,
    take_csv: str | None = None,
    max_angle_deg: float = 20.0,
    distance: float = 0.6,
    max_translation_m: float = 0.02,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (N, 52) float32 in [0, 1], rotations (N, 3, 3) and translations (N, 3) for a synthetic take.

    Weights come from :func:`procedural_performance`, or from a Live Link Face take (resampled to ``fps``;
    face-lost rows held; values clipped to [0, 1]; ``n_frames`` None or beyond the take's end stops at the
    end). Head motion comes from :func:`head_motion` (Live Link takes carry no head rotation).
    """
    if take_csv is not None:
        from ..livelink import read_csv

        take = read_csv(take_csv)
        available = int(math.floor(take.timestamps[-1] * fps)) + 1
        n = available if n_frames is None else min(int(n_frames), available)
        weights = np.clip(take.sample(np.arange(n) / fps), 0.0, 1.0).astype(np.float32)
    else:
        n = 300 if n_frames is None else int(n_frames)
        weights = procedural_performance(n, fps, seed)
    rot, trans = head_motion(n, fps, seed + 1, max_angle_deg, max_translation_m, distance)
    return weights, rot, trans


def synthetic_take(
    n_frames: int | None = 300,
    camera: str | CameraPreset = "d415",
    distance: float = 0.6,
    seed: int = 0,
    take_csv: str | None = None,
    max_angle_deg: float = 20.0,
    *,
    rig: Rig | None = None,
    fps: float = 30.0,
    noise: bool | DepthNoise = True,
    background: bool | float = True,
) -> Iterator[tuple[Frame, GroundTruth]]:
    """The synthetic actor performing a take: ``(Frame, GroundTruth)`` per frame.

    Expressions from ``take_csv`` (a Live Link Face CSV) or :func:`procedural_performance`; head motion
    from :func:`head_motion`; the built-in rig unless ``rig`` is given. See :func:`make_performance`.
    """
    if rig is None:
        from ..formats import load_rig

        rig = load_rig()
    weights, rot, trans = make_performance(n_frames, fps, seed, take_csv, max_angle_deg, distance)
    actor = SyntheticActor(rig, camera, distance, noise, seed, background)
    return actor.frames(weights, rot, trans, fps)
