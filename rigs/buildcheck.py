"""Checks the rig build scripts share: no build decision may rest on a floating-point tie.

numpy's SIMD transcendental functions and OpenBLAS kernels round the last bit differently per CPU, so a
build whose decision (a mask threshold, a Delaunay flip, an argmax) sits within a few ulps of its threshold
would give another rig on another machine. :func:`require_margin` stops the build instead.
"""

from __future__ import annotations

import numpy as np


def require_margin(what: str, value, threshold=0.0, margin: float = 1e-7, exact_ok: bool = False) -> None:
    """Raise unless every decided value keeps a margin from the threshold it is compared with.

    Parameters
    ----------
    what : str
        The decision, for the error message.
    value : array_like of float
        Values the caller compares with ``threshold``; non-finite values are ignored.
    threshold : float or array_like of float
        The threshold (broadcast against ``value``).
    margin : float
        Smallest allowed ``|value - threshold|``, in the values' unit.
    exact_ok : bool
        Allow values exactly equal to the threshold: values computed exactly (from the input files, or with
        correctly rounded ``+ - * / sqrt`` only), which every IEEE-754 CPU computes identically.

    Raises
    ------
    RuntimeError
        If a value lies closer than ``margin`` to the threshold: the result would depend on the CPU's
        floating-point rounding.
    """
    d = np.abs(np.asarray(value, float) - np.asarray(threshold, float))
    bad = np.isfinite(d) & (d < margin)
    if exact_ok:
        bad &= d != 0
    if bad.any():
        raise RuntimeError(
            f"{what}: {int(bad.sum())} value(s) within {margin:g} of the threshold (closest "
            f"{float(d[bad].min()):.3g}); the result would depend on floating-point rounding, so move a "
            "design constant slightly"
        )
