"""A prior on the 52 ARKit weights learned from real performances: how people's expressions co-activate.

Depth alone cannot tell many shapes apart (mouthClose from mouthRollLower, cheekSquint from eyeSquint...);
an L1 prior picks the sparsest explanation and shrinks the rest toward 0. A Gaussian on the weights fitted
to real ARKit takes (mean and covariance of the 52 weights over their tracked frames) instead pulls each
frame toward the combinations people actually make. The fit adds ``lambda_prior * (w - mean)^T P (w - mean)``
(``P`` the precision, the inverse of the ridged covariance) to its energy (:class:`facecap.fit.FitParams`).

The built-in prior (``facecap/data/expression_prior.npz``) is fitted by ``rigs/build_prior.py`` on the 7
real Live Link Face takes in ``../shared/data/arkit_blendshape_takes`` (MIT); benchmarks that score on
those takes fit it on the other takes only (:func:`fit_prior`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .arkit import ARKIT_NAMES, NUM_SHAPES

DEFAULT_PRIOR_PATH = Path(__file__).with_name("data") / "expression_prior.npz"
RIDGE = 1e-3
"""Added to the covariance's diagonal [weight^2]: shapes the takes never use stay finite (sd ~0.03)."""


@dataclass(frozen=True)
class ExpressionPrior:
    """Gaussian prior on the weights.

    mean : (52,) float64, canonical ARKit order
    covariance : (52, 52) float64, ridged [weight^2]
    meta : dict, where it was fitted from
    """

    mean: np.ndarray
    covariance: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        m = np.asarray(self.mean, dtype=np.float64)
        c = np.asarray(self.covariance, dtype=np.float64)
        if m.shape != (NUM_SHAPES,) or c.shape != (NUM_SHAPES, NUM_SHAPES):
            raise ValueError(
                f"a prior needs a (52,) mean and a (52, 52) covariance, got {m.shape}, {c.shape}"
            )
        if not (np.isfinite(m).all() and np.isfinite(c).all()) or not np.allclose(c, c.T):
            raise ValueError("the prior's mean and covariance must be finite and the covariance symmetric")
        object.__setattr__(self, "mean", m)
        object.__setattr__(self, "covariance", c)

    @property
    def precision(self) -> np.ndarray:
        """(52, 52) float64 inverse covariance."""
        return np.linalg.inv(self.covariance)

    def save(self, path: str | Path) -> Path:
        from ._io import atomic_path

        path = Path(path)
        arrays = {"mean": self.mean, "covariance": self.covariance, "names": np.array(ARKIT_NAMES),
                  "meta": np.array(json.dumps(self.meta, sort_keys=True))}  # fmt: skip
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)  # fixed member timestamps: the same prior, the same bytes
        return path


def fit_prior(
    weights: list[np.ndarray] | np.ndarray, ridge: float = RIDGE, meta: dict | None = None
) -> ExpressionPrior:
    """Fit the prior to performances.

    Parameters
    ----------
    weights : (n, 52) float array or a list of them (one per take), canonical ARKit order, in [0, 1]; rows
        with NaN (face lost) are skipped
    ridge : float, added to the covariance's diagonal

    Returns
    -------
    ExpressionPrior
    """
    X = np.concatenate([np.asarray(w, dtype=np.float64).reshape(-1, NUM_SHAPES) for w in
                        (weights if isinstance(weights, list) else [weights])])  # fmt: skip
    X = X[np.isfinite(X).all(1)]
    if len(X) < NUM_SHAPES:
        raise ValueError(f"need at least {NUM_SHAPES} frames with a face to fit a prior, got {len(X)}")
    X = np.clip(X, 0.0, 1.0)
    mean = X.mean(0)
    Xc = X - mean
    cov = sum(np.outer(r, r) for r in Xc) / (len(X) - 1)  # row by row: the same sums on every CPU and BLAS
    cov = 0.5 * (cov + cov.T) + ridge * np.eye(NUM_SHAPES)
    return ExpressionPrior(mean, cov, {"frames": int(len(X)), "ridge": ridge, **(meta or {})})


def load_prior(path: str | Path | None = None) -> ExpressionPrior:
    """The built-in prior, or one saved by :meth:`ExpressionPrior.save`."""
    path = Path(path) if path is not None else DEFAULT_PRIOR_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"expression prior not found: {path} (rebuild it with `python rigs/build_prior.py`)"
        )
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError
        raise ValueError(f"{path} is not a readable prior .npz ({e})") from e
    with z:
        missing = {"mean", "covariance", "names"} - set(z.files)
        if missing:
            raise ValueError(f"{path} is not a facecap expression prior: missing arrays {sorted(missing)}")
        if tuple(str(n) for n in z["names"]) != ARKIT_NAMES:
            raise ValueError(f"{path}: the prior's shapes are not the 52 ARKit names in canonical order")
        meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
        return ExpressionPrior(z["mean"], z["covariance"], meta)


__all__ = ["DEFAULT_PRIOR_PATH", "ExpressionPrior", "fit_prior", "load_prior"]
