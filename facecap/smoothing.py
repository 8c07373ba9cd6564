"""Output smoothing of the weights: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012).

A low-pass filter whose cutoff rises with the speed of the signal: a face at rest is smoothed hard (its
weights jitter several times more than a real face moves), a face that moves passes with little lag. It
filters what the tracker reports, never what it fits with (``TrackerConfig.smoothing``): the fit's own
temporal prior stays as it is, so the tracker itself does not lag.

Measured in ``bench/bench_smoothing.py`` (see there and the README for the figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuro:
    """Parameters of the One Euro filter.

    Attributes
    ----------
    min_cutoff_hz : float, cutoff frequency at rest [Hz]: lower smooths a still face more
    beta : float, how fast the cutoff rises with the weight's speed [1/(weight/s)]: higher lags less
    d_cutoff_hz : float, cutoff of the speed estimate [Hz]
    """

    min_cutoff_hz: float = 1.0
    beta: float = 2.0
    d_cutoff_hz: float = 3.0

    def __post_init__(self):
        for k in ("min_cutoff_hz", "beta", "d_cutoff_hz"):
            v = getattr(self, k)
            if not (np.isfinite(v) and v >= 0) or (k != "beta" and v == 0):
                raise ValueError(f"OneEuro.{k} must be {'>= 0' if k == 'beta' else '> 0'}, got {v}")


class WeightFilter:
    """One Euro filter over a vector signal (the 52 weights), one state per channel.

    Parameters
    ----------
    params : OneEuro
    fps : frame rate assumed when the timestamps do not give a usable step (repeated, going back, or a
        gap over a second: the face was away)
    """

    def __init__(self, params: OneEuro | None = None, fps: float = 30.0):
        self.params = params or OneEuro()
        self.fps = float(fps)
        self.reset()

    def reset(self) -> None:
        """Forget the signal (a lost face): the next value passes unfiltered."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, timestamp: float) -> np.ndarray:
        """The filtered value of ``x`` (n,) at ``timestamp`` [s]; float64, same shape."""
        x = np.asarray(x, np.float64)
        if not np.isfinite(x).all():  # nothing to learn from: passed on, and the next value starts afresh
            self.reset()
            return x.copy()
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(timestamp)
            return x.copy()
        dt = float(timestamp) - self._t
        if not 0.0 < dt <= 1.0:
            dt = 1.0 / self.fps
        self._t = float(timestamp)
        p = self.params
        a_d = _alpha(p.d_cutoff_hz, dt)
        self._dx += a_d * ((x - self._x) / dt - self._dx)
        a = _alpha(p.min_cutoff_hz + p.beta * np.abs(self._dx), dt)
        self._x += a * (x - self._x)
        return self._x.copy()


def _alpha(cutoff_hz, dt: float):
    """Smoothing factor of a first-order low-pass at ``cutoff_hz`` sampled every ``dt`` seconds."""
    tau = 1.0 / (2.0 * np.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt)


__all__ = ["OneEuro", "WeightFilter"]
