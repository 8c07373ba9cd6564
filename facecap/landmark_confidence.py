"""Per-landmark confidence from temporal consistency: how steadily each MediaPipe point moves.

A detector's points are not equally reliable: on a real face some jitter from frame to frame far more than
others (lip corners on a talking mouth, points on a shaded or blurred part). The jitter of a point is its
acceleration, the second difference of its track, less the face's own (the median over all points: the
head moving). :class:`TemporalConfidence` keeps, per point, a running mean of that squared acceleration
(each sample clipped at 9 times the running value, so that one fast move, a blink or a jaw drop, barely
raises it) and gives each point the inverse of it, relative to the median of the fitted points: an
inverse-variance weight, between ``floor`` and 1.
"""

from __future__ import annotations

import numpy as np

RATE = 0.05
"""Weight of each new frame in the running mean (about 20 frames' memory)."""
FLOOR = 0.2
"""The lowest confidence a point gets (it still counts)."""
ENERGY_MIN = 1e-6
"""The running energies never fall below this [px^2]: points that never move (a still image) stay equal."""


def acceleration_energy(u0: np.ndarray, u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Squared acceleration of each point over three frames, less the median acceleration of all points.

    Parameters
    ----------
    u0, u1, u2 : (L, 2) float pixels, the points in three consecutive detections (NaN rows allowed)

    Returns
    -------
    (L,) float64 pixels^2 per frame^4; 0 where a point is missing in any of the three
    """
    a = np.asarray(u2, np.float64) - 2.0 * np.asarray(u1, np.float64) + np.asarray(u0, np.float64)
    ok = np.isfinite(a).all(1)
    if not ok.any():
        return np.zeros(len(a))
    a = a - np.median(a[ok], axis=0)
    return (np.where(ok[:, None], a, 0.0) ** 2).sum(1)


class TemporalConfidence:
    """Running per-landmark confidence from the jitter of each point's track (module docstring).

    Parameters
    ----------
    rate : weight of each new detection in the running mean of the squared acceleration
    floor : the lowest confidence given
    """

    def __init__(self, rate: float = RATE, floor: float = FLOOR):
        if not (0 < rate <= 1 and 0 < floor <= 1):
            raise ValueError(f"need 0 < rate <= 1 and 0 < floor <= 1, got {rate}, {floor}")
        self.rate, self.floor = rate, floor
        self._track: list[np.ndarray] = []
        self._energy: np.ndarray | None = None

    def reset(self) -> None:
        """Forget everything (a new face, a new take)."""
        self._track, self._energy = [], None

    def gap(self) -> None:
        """A frame without a detection: the next accelerations need three new ones (the rates are kept)."""
        self._track = []

    def update(self, uv: np.ndarray) -> None:
        """Take one new detection (L, 2) pixels; a repeat of the last one (a stale detection reused) is
        ignored, and a detection with another number of points starts over."""
        uv = np.asarray(uv, np.float64)
        if self._track and self._track[-1].shape != uv.shape:
            self.reset()
        if self._track and np.array_equal(self._track[-1], uv, equal_nan=True):
            return
        self._track = (self._track + [uv.copy()])[-3:]
        if len(self._track) < 3:
            return
        e = acceleration_energy(*self._track)
        if self._energy is None:
            ok = e > 0
            self._energy = np.full(len(e), max(float(np.median(e[ok])) if ok.any() else 0.0, 1e-4))
        self._energy += self.rate * (np.minimum(e, 9.0 * self._energy) - self._energy)
        np.maximum(self._energy, ENERGY_MIN, out=self._energy)

    def confidences(self, fitted: np.ndarray) -> np.ndarray | None:
        """(L,) float64 in [floor, 1]: the median running energy of the ``fitted`` points (a bool or index
        selection) over each point's own; None until three detections have been seen."""
        if self._energy is None:
            return None
        sel = self._energy[fitted]
        ref = float(np.median(sel if sel.size else self._energy))
        return np.clip(ref / self._energy, self.floor, 1.0)
