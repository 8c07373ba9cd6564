"""Head-pose conventions: the vectorised quaternion conversion against scipy and the per-frame closed form."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facecap.pose import FRONTAL, quat_xyzw, quaternions_xyzw


def _rotations(seed: int) -> np.ndarray:
    """Uniform random rotations plus camera-frame head poses (half turns about x, w near 0)."""
    rng = np.random.default_rng(seed)
    uniform = Rotation.random(300, random_state=seed).as_matrix()
    heads = FRONTAL @ Rotation.from_euler("YXZ", rng.normal(0, 0.3, (100, 3))).as_matrix()
    return np.concatenate([uniform, heads, np.eye(3)[None]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quaternions_match_scipy_and_the_closed_form(seed):
    r = _rotations(seed)
    q = quaternions_xyzw(r)
    assert q.shape == (len(r), 4) and q.dtype == np.float64
    np.testing.assert_array_equal(q, Rotation.from_matrix(r).as_quat())  # bit for bit: outputs unchanged
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-15)
    # sign convention: the largest component is positive
    assert (q[np.arange(len(q)), np.abs(q).argmax(1)] > 0).all()
    for qi, ri in zip(q, r, strict=True):  # quat_xyzw is w >= 0: the same rotation, up to sign
        ref = np.array(quat_xyzw(ri.tolist()))
        np.testing.assert_allclose(qi * np.sign(qi[3]), ref, atol=1e-12)


def test_quaternions_nan_rows_and_shapes():
    r = np.tile(FRONTAL, (4, 1, 1))
    r[1, 0, 0] = np.nan
    r[3, 2, 1] = np.inf
    q = quaternions_xyzw(r)
    assert np.isnan(q[[1, 3]]).all()
    np.testing.assert_array_equal(q[[0, 2]], [[1.0, 0.0, 0.0, 0.0]] * 2)  # half turn about x, x > 0
    assert quaternions_xyzw(np.full((2, 3, 3), np.nan)).shape == (2, 4)
    assert quaternions_xyzw(np.zeros((0, 3, 3))).shape == (0, 4)
    with pytest.raises(ValueError, match=r"\(N, 3, 3\)"):
        quaternions_xyzw(np.eye(3))
