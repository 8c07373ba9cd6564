"""The ARKit name table: every order, every spelling, the mirror permutation."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import shared_path

from facecap import arkit

SWAPPED = {"jawLeft": "jawRight", "jawRight": "jawLeft", "mouthLeft": "mouthRight", "mouthRight": "mouthLeft"}


def test_canonical_is_alphabetical_and_complete():
    assert len(arkit.ARKIT_NAMES) == arkit.NUM_SHAPES == 52
    assert list(arkit.ARKIT_NAMES) == sorted(arkit.ARKIT_NAMES)
    assert len(set(arkit.ARKIT_NAMES)) == 52
    assert arkit.ORDERS["canonical"] == arkit.ARKIT_NAMES


@pytest.mark.parametrize("order", sorted(arkit.ORDERS))
def test_every_order_round_trips(order):
    rng = np.random.default_rng(1)
    w = rng.random((7, 52)).astype(np.float32)
    names = arkit.ORDERS[order]
    out = arkit.to_order(w, order)
    assert out.shape == (7, len(names))
    for j, n in enumerate(names):  # each column holds the named shape
        expect = w[:, arkit.INDEX[n]] if n in arkit.INDEX else 0.0
        np.testing.assert_array_equal(out[:, j], expect)
    back = arkit.from_order(out, order)
    if order == "mediapipe":  # no tongueOut there: it comes back 0
        w[:, arkit.INDEX["tongueOut"]] = 0
    np.testing.assert_array_equal(back, w)
    # and the other way round: foreign -> canonical -> foreign
    v = rng.random((3, len(names))).astype(np.float32)
    if order == "mediapipe":
        v[:, 0] = 0  # _neutral has no canonical slot
    np.testing.assert_array_equal(arkit.to_order(arkit.from_order(v, order), order), v)


def test_orders_are_permutations_of_the_52():
    for order, names in arkit.ORDERS.items():
        arkit_names = [n for n in names if n in arkit.INDEX]
        assert len(arkit_names) == len(set(arkit_names)), order
        if order != "mediapipe":
            assert sorted(arkit_names) == sorted(arkit.ARKIT_NAMES), order


def test_livelink_csv_order_matches_a_real_take_header():
    path = shared_path("arkit_blendshape_takes", "livelinkface_alexdjulin_S07-001.csv")
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    assert header[:2] == ["Timecode", "BlendShapeCount"]
    shapes = header[2:54]  # columns 3..54
    assert shapes == [arkit.pascal_name(n) for n in arkit.ORDERS["livelink_csv"]]
    assert [arkit.canonical_name(h) for h in shapes] == list(arkit.ORDERS["livelink_csv"])
    assert tuple(header[54:]) == arkit.UNREAL_POSE_NAMES
    assert len(header) == 63


def test_unreal_order_is_csv_with_jaw_and_mouth_sides_swapped():
    csv_order = arkit.ORDERS["livelink_csv"]
    assert arkit.ORDERS["unreal"] == tuple(SWAPPED.get(n, n) for n in csv_order)
    diff = [i for i, (a, b) in enumerate(zip(csv_order, arkit.ORDERS["unreal"], strict=True)) if a != b]
    assert len(diff) == 4


def test_mediapipe_order():
    mp = arkit.ORDERS["mediapipe"]
    assert mp[0] == "_neutral" and len(mp) == 52
    assert mp[1:] == tuple(n for n in arkit.ARKIT_NAMES if n != "tongueOut")
    w = np.arange(52, dtype=np.float32)
    assert arkit.to_order(w, "mediapipe")[0] == 0.0  # _neutral is written as 0


def test_facecap_osc_order():
    fc = arkit.ORDERS["facecap_osc"]
    assert len(fc) == 52 and len(set(fc)) == 52
    assert fc[:3] == ("browInnerUp", "browDownLeft", "browDownRight")
    assert fc[-1] == "tongueOut"


@pytest.mark.parametrize(
    "spelling", ["eyeBlinkLeft", "EyeBlinkLeft", "eyeBlink_L", "EyeBlink_L", "EYEBLINKLEFT", " eyeblink_l "]
)
def test_canonical_name_accepts_all_spellings(spelling):
    assert arkit.canonical_name(spelling) == "eyeBlinkLeft"
    assert arkit.index(spelling) == arkit.INDEX["eyeBlinkLeft"]


def test_every_name_in_every_spelling():
    for n in arkit.ARKIT_NAMES:
        for s in (n, arkit.pascal_name(n), arkit.raw_name(n), n.lower(), n.upper()):
            assert arkit.canonical_name(s) == n


def test_unknown_names_raise_with_suggestions():
    with pytest.raises(KeyError, match="did you mean.*eyeBlinkLeft"):
        arkit.canonical_name("eyeBlinkLeftt")
    with pytest.raises(KeyError, match="not an ARKit blendshape"):
        arkit.canonical_name("PupilDilate_L")
    with pytest.raises(TypeError):
        arkit.canonical_name(3)


def test_raw_and_pascal_names():
    assert arkit.raw_name("eyeBlinkLeft") == "eyeBlink_L"
    assert arkit.raw_name("browOuterUpRight") == "browOuterUp_R"
    assert arkit.raw_name("jawLeft") == "jawLeft"  # ARKit keeps these without _L
    assert arkit.raw_name("mouthRight") == "mouthRight"
    assert arkit.raw_name("jawOpen") == "jawOpen"
    assert arkit.pascal_name("eyeBlink_L") == "EyeBlinkLeft"
    assert arkit.pascal_name("tongueOut") == "TongueOut"
    raws = [arkit.raw_name(n) for n in arkit.ARKIT_NAMES]
    assert len(set(raws)) == 52


def test_mirror_perm_is_an_involution_swapping_sides():
    p = arkit.MIRROR_PERM
    np.testing.assert_array_equal(p[p], np.arange(52))
    for i, n in enumerate(arkit.ARKIT_NAMES):
        m = arkit.ARKIT_NAMES[p[i]]
        if n.endswith("Left"):
            assert m == n[:-4] + "Right"
        elif n.endswith("Right"):
            assert m == n[:-5] + "Left"
        else:
            assert m == n
    assert (p != np.arange(52)).sum() == 40  # 20 left/right pairs, 12 centre shapes


def test_weights_from_dict_and_bad_shapes():
    w = arkit.weights_from_dict({"EyeBlinkLeft": 0.5, "jaw_open": 0.1} | {"jawOpen": 0.2}, strict=False)
    assert w[arkit.INDEX["eyeBlinkLeft"]] == 0.5 and w[arkit.INDEX["jawOpen"]] == pytest.approx(0.2)
    with pytest.raises(KeyError):
        arkit.weights_from_dict({"nope": 1.0})
    with pytest.raises(ValueError, match="last dimension 52"):
        arkit.to_order(np.zeros(51), "unreal")
    with pytest.raises(ValueError, match="unknown order"):
        arkit.to_order(np.zeros(52), "blender")
    with pytest.raises(ValueError, match="52 entries"):
        arkit.from_order(np.zeros(53), "livelink_csv")
