"""FaceState: what the tracker says about one frame (docs/design.md §1)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .arkit import NUM_SHAPES
from .pose import FRONTAL


@dataclass
class FaceState:
    """Tracking result for one frame.

    Attributes
    ----------
    timestamp : float, seconds (source clock)
    weights : (52,) float32 in [0, 1], canonical ARKit order (``facecap.arkit.ARKIT_NAMES``)
    rotation : (3, 3) float64, rig -> camera rotation (camera frame: x right, y down, z forward);
        a face looking into the camera (``facecap.pose.FRONTAL``) when nothing is tracked
    translation : (3,) float64, metres, rig origin in the camera frame
    tracked : bool, False when no face was found or the fit was rejected
    quality : float in [0, 1], fraction of mask points with a good correspondence, 0 when lost
    gaze : (2, 2) float32 radians, rows (left eye, right eye), columns (yaw, pitch)
    index : int, frame number in the source
    rms_mm : float, point-to-plane RMS residual of inliers in millimetres (nan when lost)
    """

    timestamp: float = 0.0
    weights: np.ndarray = field(default_factory=lambda: np.zeros(NUM_SHAPES, np.float32))
    rotation: np.ndarray = field(default_factory=lambda: FRONTAL.copy())
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    tracked: bool = False
    quality: float = 0.0
    gaze: np.ndarray = field(default_factory=lambda: np.zeros((2, 2), np.float32))
    index: int = 0
    rms_mm: float = float("nan")

    def euler(self) -> np.ndarray:
        """Head (yaw, pitch, roll) in radians, :mod:`facecap.pose` convention (not Live Link's: see
        :func:`facecap.livelink.to_livelink_angles`).

        Relative to a face looking into the camera: yaw > 0 toward the subject's left, pitch > 0 face
        down, roll > 0 counter-clockwise in the image.
        """
        from .pose import head_euler

        return head_euler(self.rotation)
