"""Synthetic identities: smooth, bounded, symmetric, reproducible, different per seed."""

import numpy as np

from facecap.formats import load_rig
from facecap.synth import random_identity
from facecap.synth.identity import smooth_field


def test_identity_is_bounded_smooth_and_seeded():
    rig = load_rig()
    a, b, a2 = random_identity(rig, 1), random_identity(rig, 2), random_identity(rig, 1)
    d = np.linalg.norm(a.neutral - rig.neutral, axis=1)
    assert 0.005 - 1e-6 <= d.max() <= 0.008 + 1e-6  # 5-8 mm
    assert np.array_equal(a.neutral, a2.neutral) and not np.allclose(a.neutral, b.neutral)
    assert np.array_equal(a.deltas, rig.deltas)  # style 0: the rig's own expressions
    # smooth: neighbouring vertices move alike (edge-length change far below the displacement)
    e = rig.triangles[:, :2]
    stretch = np.abs(np.linalg.norm(a.neutral[e[:, 0]] - a.neutral[e[:, 1]], axis=1)
                     - np.linalg.norm(rig.neutral[e[:, 0]] - rig.neutral[e[:, 1]], axis=1))  # fmt: skip
    assert np.median(stretch) < 0.05 * d.max()
    # symmetric: the displacement of a vertex mirrors its partner's
    disp = a.neutral - rig.neutral
    assert np.abs(disp - disp[rig.mirror] * (-1, 1, 1)).max() < 2e-3
    assert a.meta["identity"]["seed"] == 1 and a.name.endswith("-id1")


def test_expression_style_scales_and_warps_each_delta():
    rig = load_rig()
    s = random_identity(rig, 4, style=0.4)
    peak0 = np.linalg.norm(rig.deltas, axis=2).max(1)
    peak1 = np.linalg.norm(s.deltas, axis=2).max(1)
    moving = peak0 > 1e-4
    ratio = peak1[moving] / peak0[moving]
    assert 0.45 < ratio.min() and ratio.max() < 1.6 and ratio.std() > 0.05
    still = np.abs(rig.deltas).max(axis=2) == 0
    assert np.abs(s.deltas[still]).max() == 0  # a vertex a shape does not move stays still


def test_smooth_field_is_unit_peak():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.1, 0.1, (500, 3))
    f = smooth_field(pts, rng)
    assert np.isclose(np.linalg.norm(f, axis=1).max(), 1.0)
