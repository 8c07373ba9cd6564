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

import math

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


def quaternions_xyzw(rotations: np.ndarray) -> np.ndarray:
    """Unit quaternions of many rotation matrices: the array form of :func:`quat_xyzw`, for whole takes.

    Parameters
    ----------
    rotations : (N, 3, 3) float
        Rotation matrices; rows holding NaN or inf (lost frames) are allowed.

    Returns
    -------
    (N, 4) float64
        (x, y, z, w), the order of glTF, Unity and scipy, computed by scipy's ``Rotation.from_matrix``.
        Sign: the component of largest magnitude is positive (scipy's choice), so a track stays
        continuous both near identity and near a half turn (camera-frame poses of a frontal face,
        ``FRONTAL``, are half turns about x: their w changes sign from frame to frame). It equals
        :func:`quat_xyzw` up to that sign. A row with a non-finite entry is all NaN.
    """
    r = np.asarray(rotations, dtype=np.float64)
    if r.ndim != 3 or r.shape[1:] != (3, 3):
        raise ValueError(f"rotations must be (N, 3, 3) matrices, got shape {r.shape}")
    q = np.full((len(r), 4), np.nan)
    ok = np.isfinite(r).all(axis=(1, 2))
    if ok.any():
        q[ok] = Rotation.from_matrix(r[ok]).as_quat()
    return q


# Per-frame pose terms in closed form: scipy's Rotation costs ~20-70 us per call, a third of the frame
# budget. tests/test_sinks.py checks each against facecap.pose (head_euler, to_unity) and scipy.
def quat_xyzw(m: list) -> list[float]:
    """Unit quaternion (x, y, z, w), w >= 0, of a 3x3 rotation given as nested lists (Shepperd)."""
    (a, b, c), (d, e, f), (g, h, i) = m
    tr = a + e + i
    if tr > 0.0:
        k = 2.0 * math.sqrt(tr + 1.0)
        q = [(h - f) / k, (c - g) / k, (d - b) / k, 0.25 * k]
    elif a > e and a > i:
        k = 2.0 * math.sqrt(max(1.0 + a - e - i, 1e-300))
        q = [0.25 * k, (b + d) / k, (c + g) / k, (h - f) / k]
    elif e > i:
        k = 2.0 * math.sqrt(max(1.0 + e - a - i, 1e-300))
        q = [(b + d) / k, 0.25 * k, (f + h) / k, (c - g) / k]
    else:
        k = 2.0 * math.sqrt(max(1.0 + i - a - e, 1e-300))
        q = [(c + g) / k, (f + h) / k, 0.25 * k, (d - b) / k]
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    n = -n if q[3] < 0.0 else n
    return [q[0] / n, q[1] / n, q[2] / n, q[3] / n]


def viewer_rotation(r: np.ndarray) -> list:
    """``FRONTAL @ r`` as nested lists: the head rotation in the viewer frame (x right, y up, z to camera)."""
    r0, r1, r2 = r.tolist()
    return [r0, [-x for x in r1], [-x for x in r2]]


def viewer_euler(rv: list) -> list[float]:
    """(yaw, pitch, roll) radians of a viewer-frame rotation ``Ry(yaw) Rx(pitch) Rz(roll)``; equals
    :func:`facecap.pose.head_euler` away from pitch = +-90 degrees."""
    return [
        math.atan2(rv[0][2], rv[2][2]),
        math.asin(min(1.0, max(-1.0, -rv[1][2]))),
        math.atan2(rv[1][0], rv[1][1]),
    ]


def unity_eye_quaternions(gaze: np.ndarray) -> np.ndarray:
    """(2, 4) eye-bone local rotations (x, y, z, w) in Unity's left-handed axes from gaze (2, 2).

    The eye rotation in rig axes is ``Ry(yaw) @ Rx(pitch)`` (yaw > 0 toward the subject's left, pitch > 0
    down, facecap.pose signs); Unity's bone frame is the rig frame with x flipped (x = the head's right),
    which maps a quaternion (x, y, z, w) to (x, -y, -z, w).
    """
    out = []
    for yaw, pitch in gaze.tolist():
        s1, c1, s2, c2 = (
            math.sin(0.5 * yaw),
            math.cos(0.5 * yaw),
            math.sin(0.5 * pitch),
            math.cos(0.5 * pitch),
        )
        # qy(yaw) * qx(pitch) = (c1 s2, s1 c2, -s1 s2, c1 c2); then the x-reflection
        out.append([c1 * s2, -s1 * c2, s1 * s2, c1 * c2])
    return np.array(out)


def unity_head_local(rotation: np.ndarray, translation: np.ndarray) -> tuple[list[float], list[float]]:
    """Head pose of :func:`facecap.pose.to_unity`, its rotation re-expressed in the frame of an avatar
    that faces the camera (a 180 degree yaw in Unity): identity for a frontal face; the avatar turns to
    its left when the performer turns to theirs.

    ``to_unity`` gives ``r_u = S R diag(-1, 1, 1)`` with ``S = diag(1, -1, 1)``; ``Ry(180)^T r_u`` equals
    ``Sx R_v Sx`` (``R_v = FRONTAL R``, ``Sx = diag(-1, 1, 1)``), whose quaternion is (x, -y, -z, w) of
    ``R_v``'s. Returns (position (3,) in Unity camera space, quaternion (4,) x, y, z, w).
    """
    t = translation.tolist()
    x, y, z, w = quat_xyzw(viewer_rotation(rotation))
    return [t[0], -t[1], t[2]], [x, -y, -z, w]
