"""Eye gaze from MediaPipe's iris landmarks against the rig's eyeballs (issue 12, item 3).

Depth barely sees the eyes turn, but the iris does in the colour image. With the head pose and the
expression of the depth fit held fixed, each eye's turn is solved from its five iris landmarks (centre
and four rim points, MediaPipe 468-472 for the subject's right eye, 473-477 for the left). The unknowns
are the rig's own eyeLook shapes, two signed values per eye: ``h`` (eyeLookOut - eyeLookIn) and ``v``
(eyeLookDown - eyeLookUp), each in [-1, 1]. The iris points the rig moves with those shapes are
projected into the image and fitted to the detected ones by Gauss-Newton. The eyeLook weights that come
out therefore explain the image through the rig, and the gaze angles are read from the weights
(:func:`facecap.tracker.gaze_from_weights`), so weights and angles agree.

A closing eye hides the iris and MediaPipe's iris points wander. An eye whose lid gap (upper to lower
lid landmark) is below ``BLINK_APERTURE`` of its width (corner to corner) keeps its last open-eye gaze;
between that and ``OPEN_APERTURE`` (a half-closed lid, or a lid that follows the eye down) the new
solution is trusted in proportion, blended with the last one. Blinks therefore do not produce gaze
spikes, and a downward look (lid gap about 0.3 of the width) is read in full.

MediaPipe's iris points themselves are a network's estimate: on the synthetic renders of
``bench/bench_gaze.py`` its iris centre sits a median 1.25 px from the true one vertically (0.63 px
across), and reads pitch at half its size. :func:`refine_iris` moves each iris onto the image's own
evidence, the dark disc's edge against the white of the eye, to 0.30 px vertically (0.37 px across) on
open eyes; :class:`facecap.tracker.Tracker` applies it before it solves the gaze
(``TrackerConfig.refine_iris``).
"""

from __future__ import annotations

import numpy as np

from ._kernels import ring_samples
from .arkit import INDEX

EYES = {
    # side: iris landmarks (centre first), upper lid, lower lid, the two corners (MediaPipe indices)
    "Left": (tuple(range(473, 478)), 386, 374, (362, 263)),
    "Right": (tuple(range(468, 473)), 159, 145, (133, 33)),
}
BLINK_APERTURE = 0.15
"""Lid gap / eye width below which an eye counts as closed (open: about 0.3-0.4)."""
OPEN_APERTURE = 0.25
"""Lid gap / eye width from which an eye's iris solution is used unblended."""


def refine_iris(color: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe's iris points moved onto the iris edge seen in the image.

    For each eye, a circle of MediaPipe's own iris radius (mean centre-to-rim distance of its iris
    points) is slid over the image to where the brightness just outside it (0.12 radius out) most
    exceeds the brightness just inside, in the lateral sectors (``IRIS_SECTOR_DEG``) where the iris
    meets the white of the eye. The search covers 0.35 radius around MediaPipe's centre, coarse to fine
    (steps of 0.085, then 0.017 radius), and the eye's five iris points move by the centre's shift.

    The shift is trusted in proportion to how consistently the edge shows around the circle
    (``IRIS_EDGE_T``): not at all for a closed or shaded eye, glare on glasses, or an eye at the
    image's edge, where MediaPipe's points are kept.

    Parameters
    ----------
    color : (H, W, 3) uint8 RGB or (H, W) grey image the landmarks were detected in
    landmarks : (478, 2) float pixels (x right, y down), MediaPipe order

    Returns
    -------
    (478, 2) float32, a copy with the iris points 468-477 moved
    """
    img = np.asarray(color)
    uv = np.asarray(landmarks, dtype=np.float64)
    if uv.shape != (478, 2):
        raise ValueError(f"landmarks must be (478, 2) pixels, got {uv.shape}")
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"color must be (H, W, 3) RGB or (H, W) grey, got {img.shape}")
    out = uv.astype(np.float32)
    for iris, *_rest in EYES.values():
        pts = uv[list(iris)]
        if not np.isfinite(pts).all():
            continue
        r = float(np.linalg.norm(pts[1:] - pts[0], axis=1).mean())
        if 1.0 <= r <= 0.25 * min(img.shape[:2]):
            out[list(iris)] = (pts + _iris_shift(img, pts[0], r)).astype(np.float32)
    return out


IRIS_SECTOR_DEG = 50.0
"""Half-width of the two lateral sectors (around the horizontal, both sides) where :func:`refine_iris`
reads the iris edge; above and below it the lids cover the iris more often than not."""
IRIS_EDGE_T = (3.0, 5.0)
"""How significant the found edge must be for :func:`refine_iris` to start trusting it, and to trust it
in full: its t statistic, the mean of the 22 per-direction contrasts (outside minus inside) over their
standard deviation, times the square root of 22. Measured (5th percentile / median): synthetic renders
3.4 / 6.7; real videos with the white of the eye showing 3.9-5.9 / 5.4-8.3, shaded eyes or eyes behind
glasses with glare 0.1-0.2 / 2.1-2.9 (there MediaPipe's points are kept); pure noise 1.6-5.3 (range)."""


def _iris_shift(img: np.ndarray, centre: np.ndarray, r: float) -> np.ndarray:
    """Shift (2,) pixels from ``centre`` to the best iris circle of radius ``r``, scaled by its trust."""
    delta = 0.12 * r  # the edge is read this far outside and inside the circle
    reach = (0.34 + 0.085 + 1.0 + 0.12) * r + 2.0  # what any sample can touch, from the centre
    x0, y0 = int(np.floor(centre[0] - reach)), int(np.floor(centre[1] - reach))
    x1, y1 = int(np.ceil(centre[0] + reach)) + 1, int(np.ceil(centre[1] + reach)) + 1
    h, w = img.shape[:2]
    if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
        return np.zeros(2)  # the eye at the image's edge: keep MediaPipe's points
    crop = img[y0:y1, x0:x1].astype(np.float32)
    if crop.ndim == 3:
        crop = crop @ np.array([0.299, 0.587, 0.114], np.float32)  # luma (ITU-R BT.601)
    crop = np.ascontiguousarray(crop)
    ring = np.concatenate([(r + delta) * _DIRECTIONS, (r - delta) * _DIRECTIONS])  # outside, inside
    n = len(_DIRECTIONS)
    best = centre - (x0, y0)
    for grid in _GRIDS:  # coarse to fine
        cand = best + r * grid
        v = ring_samples(crop, cand, ring)
        diff = v[:, :n] - v[:, n:]  # (K, 22) outside - inside, per direction
        k = int(np.argmax(diff.mean(axis=1)))
        best = cand[k]
    d = diff[k]
    t = float(d.mean() / max(float(d.std()), 1e-6) * np.sqrt(n))  # the edge's significance
    trust = (t - IRIS_EDGE_T[0]) / (IRIS_EDGE_T[1] - IRIS_EDGE_T[0])
    return min(max(trust, 0.0), 1.0) * (best + (x0, y0) - centre)


_SECTOR = np.radians(np.linspace(-IRIS_SECTOR_DEG, IRIS_SECTOR_DEG, 11))
_DIRECTIONS = np.stack(
    [np.cos(np.r_[_SECTOR, np.pi + _SECTOR]), np.sin(np.r_[_SECTOR, np.pi + _SECTOR])], axis=1
)  # (22, 2) unit vectors in the two lateral sectors
_GRIDS = tuple(
    np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    for g in (np.linspace(-0.34, 0.34, 9), np.linspace(-0.085, 0.085, 11))
)  # candidate centres in radii: 9 x 9 steps of 0.085, then 11 x 11 steps of 0.017


def eye_aperture(uv: np.ndarray, side: str) -> float:
    """Lid gap over eye width (dimensionless) of one eye from (478, 2) landmarks; NaN if any is missing."""
    _, up, lo, (c0, c1) = EYES[side]
    width = float(np.linalg.norm(uv[c0] - uv[c1]))
    gap = float(np.linalg.norm(uv[up] - uv[lo]))
    return gap / width if width > 1e-6 else float("nan")


class GazeSolver:
    """Per-eye eyeLook weights from iris landmarks, for one rig.

    Parameters
    ----------
    rig : facecap.Rig with MediaPipe landmarks 468-477 on its eyeballs (the built-in rig has them)

    Raises
    ------
    ValueError if the rig lacks the iris landmarks or the eyeLook shapes do not move them.
    """

    def __init__(self, rig) -> None:
        self.eyes = {}
        for side, (iris, *_rest) in EYES.items():
            try:
                rows = [rig.landmark_index(j) for j in iris]
            except KeyError as e:
                raise ValueError(f"rig {rig.name!r} has no iris landmarks ({e}); gaze needs 468-477") from e
            tris, bary = rig.landmark_tris[rows], rig.landmark_bary[rows].astype(np.float64)
            p0 = np.einsum("lq,lqd->ld", bary, rig.neutral[tris].astype(np.float64))  # (5, 3)
            D = np.einsum("lq,klqd->ldk", bary, rig.deltas[:, tris].astype(np.float64))  # (5, 3, 52)
            cols = {k: INDEX[f"eyeLook{k}{side}"] for k in ("In", "Out", "Up", "Down")}
            if min(np.abs(D[:, :, c]).max() for c in cols.values()) < 1e-4:
                raise ValueError(f"the eyeLook shapes of rig {rig.name!r} do not move its {side} iris")
            self.eyes[side] = (p0, D, cols)

    def solve(self, uv, R, t, w, intr, previous=None, iterations: int = 6):
        """eyeLook weights of both eyes that put the rig's iris points on the detected ones.

        Parameters
        ----------
        uv : (478, 2) float landmarks in depth-image pixels (NaN: missing)
        R, t : (3, 3), (3,) rig -> camera pose of the depth fit
        w : (52,) weights of the depth fit (its other shapes move the iris points too; kept fixed)
        intr : (fx, fy, cx, cy) pixels
        previous : dict side -> (h, v) of the last open-eye solution, or None
        iterations : Gauss-Newton iterations

        Returns
        -------
        weights : (52,) float64, ``w`` with the eight eyeLook weights replaced
        solved : dict side -> (h, v) for the eyes solved (open, iris found) or held (closed)
        open_ : dict side -> bool, whether each eye was open (False: closed or its landmarks missing)
        """
        fx, fy, cx, cy = intr
        w = np.array(w, dtype=np.float64)
        out = w.copy()
        solved, open_ = {}, {}
        for side, (p0, D, cols) in self.eyes.items():
            iris = list(EYES[side][0])
            hold = (previous or {}).get(side)
            ap = eye_aperture(uv, side)
            target = uv[iris]
            if not (np.isfinite(ap) and ap >= BLINK_APERTURE and np.isfinite(target).all()):
                open_[side] = False
                if hold is not None:
                    solved[side] = hold
                    _set(out, cols, *hold)
                continue
            open_[side] = True
            base = w.copy()
            for c in cols.values():
                base[c] = 0.0
            x_base = p0 + D @ base  # (5, 3) the iris points with this eye looking straight
            h, v = hold if hold is not None else (0.0, 0.0)
            for _ in range(iterations):
                ww = np.zeros(52)
                _set(ww, cols, h, v)
                x = x_base + D @ ww
                xc = x @ R.T + t
                z = xc[:, 2]
                if (z <= 0.05).any():
                    break
                res = np.concatenate([fx * xc[:, 0] / z + cx - target[:, 0],
                                      fy * xc[:, 1] / z + cy - target[:, 1]])  # fmt: skip
                # d x / d h, d x / d v: the shape on the side of the current sign (the mean at 0)
                dh = _side_column(D, cols["Out"], cols["In"], h)
                dv = _side_column(D, cols["Down"], cols["Up"], v)
                J = np.empty((2 * len(z), 2))
                for j, dx in enumerate((dh, dv)):
                    dc = dx @ R.T
                    J[: len(z), j] = fx * (dc[:, 0] / z - xc[:, 0] * dc[:, 2] / z**2)
                    J[len(z) :, j] = fy * (dc[:, 1] / z - xc[:, 1] * dc[:, 2] / z**2)
                step = np.linalg.solve(J.T @ J + 1e-6 * np.eye(2), -J.T @ res)
                h, v = float(np.clip(h + step[0], -1, 1)), float(np.clip(v + step[1], -1, 1))
                if np.abs(step).max() < 1e-4:
                    break
            if hold is not None and ap < OPEN_APERTURE:  # half closed: trust the iris in proportion
                c = (ap - BLINK_APERTURE) / (OPEN_APERTURE - BLINK_APERTURE)
                h, v = c * h + (1.0 - c) * hold[0], c * v + (1.0 - c) * hold[1]
            solved[side] = (h, v)
            _set(out, cols, h, v)
        return out, solved, open_


def _set(w, cols, h, v) -> None:
    w[cols["Out"]], w[cols["In"]] = max(h, 0.0), max(-h, 0.0)
    w[cols["Down"]], w[cols["Up"]] = max(v, 0.0), max(-v, 0.0)


def _side_column(D, pos, neg, s):
    if s > 1e-9:
        return D[:, :, pos]
    if s < -1e-9:
        return -D[:, :, neg]
    return 0.5 * (D[:, :, pos] - D[:, :, neg])


__all__ = [
    "BLINK_APERTURE",
    "EYES",
    "IRIS_EDGE_T",
    "IRIS_SECTOR_DEG",
    "OPEN_APERTURE",
    "GazeSolver",
    "eye_aperture",
    "refine_iris",
]
