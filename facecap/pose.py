"""Head-pose conventions: rotations, Euler angles and quaternions.

facecap poses map rig space (y up, z out of the face) into the OpenCV camera frame
(x right, y down, z forward): ``x_cam = R @ x_rig + t``. A face looking straight into the camera has
``R = FRONTAL = diag(1, -1, -1)``.

Head angles are taken relative to that frontal pose in a *viewer* frame V whose axes are the camera's
with y and z flipped (x right in the image, y up, z toward the camera), so ``R = FRONTAL @ R_v`` and
``R_v = Ry(yaw) @ Rx(pitch) @ Rz(roll)``:

- yaw > 0 turns the face toward image right (the subject's left) about V's y axis,
- pitch > 0 tilts the face down (the nose moves down in the image), about V's x axis,
- roll > 0 rotates the face counter-clockwise as seen in the image.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

FRONTAL = np.diag([1.0, -1.0, -1.0])


def from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rig -> camera rotation (3, 3) float64 for head angles in radians (see module docstring)."""
    r_v = Rotation.from_euler("YXZ", [yaw, pitch, roll]).as_matrix()
    return FRONTAL @ r_v


def head_euler(rotation: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) radians of a rig -> camera rotation; inverse of :func:`from_euler`."""
    r_v = FRONTAL @ np.asarray(rotation, dtype=np.float64)
    return Rotation.from_matrix(r_v).as_euler("YXZ")


def rotation_angle_deg(r_a: np.ndarray, r_b: np.ndarray) -> float:
    """Angle in degrees of the relative rotation ``r_a^T r_b``."""
    c = (np.trace(np.asarray(r_a).T @ np.asarray(r_b)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def to_unity(rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Head pose in Unity's left-handed frame (x right, y up, z forward away from the viewer).

    The camera stands at Unity's origin looking along +z, as a webcam facing the user; the head
    appears in front of it. Returns (position (3,) metres, quaternion (4,) x, y, z, w).
    """
    # Unity axes from camera axes: x_u = x_c, y_u = -y_c, z_u = z_c  (a reflection: handedness flip).
    s = np.diag([1.0, -1.0, 1.0])
    t = s @ np.asarray(translation, dtype=np.float64)
    # Unity's head bone: z forward = out of the face (rig z), y up (rig y), x = the head's own right,
    # which is rig -x (rig x is the subject's left). Both sides are reflections, so r is a rotation.
    r = s @ np.asarray(rotation, dtype=np.float64) @ np.diag([-1.0, 1.0, 1.0])
    # A frontal face (facing the camera, toward -z_u) is a 180 deg yaw in Unity.
    return t, Rotation.from_matrix(r).as_quat()
