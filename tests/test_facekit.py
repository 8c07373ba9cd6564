"""ICT-FaceKit import: names, units, orientation, landmarks, masks, mirror, both folder layouts, errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import shared_path

from facecap import arkit
from facecap.facekit import IBUG68_TO_LANDMARK, ICT_REGIONS, load_ict_facekit, read_obj
from facecap.formats import load_rig
from facecap.rig import MEDIAPIPE_LANDMARKS

LM = MEDIAPIPE_LANDMARKS


@pytest.fixture(scope="module")
def ict_dir():
    return shared_path("ict_facekit")


@pytest.fixture(scope="module")
def ict(ict_dir):
    t0 = time.perf_counter()
    rig = load_ict_facekit(ict_dir)
    rig.meta["test_load_seconds"] = time.perf_counter() - t0
    return rig


def _vertex(rig, name: str) -> int:
    return int(rig.landmark_tris[rig.landmark_index(LM[name]), 0])


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising |s R src + t - dst|^2 (Umeyama 1991), proper rotation."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sv, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    s = float(np.trace(np.diag(sv) @ d) / a.var(0).sum())
    return s, r, md - s * r @ ms


def _aligned_rms(src: np.ndarray, dst: np.ndarray) -> tuple[float, float]:
    s, r, t = umeyama(src, dst)
    res = np.linalg.norm(s * src @ r.T + t - dst, axis=1)
    return float(np.sqrt((res**2).mean())), float(res.max())


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(20, 3))
    r = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    r *= np.sign(np.linalg.det(r))
    s, r2, t = umeyama(p, 1.7 * p @ r.T + [1, 2, 3])
    assert s == pytest.approx(1.7) and np.allclose(r2, r) and np.allclose(t, [1, 2, 3])


# ---------------------------------------------------------------------------------------------- shared data
def test_loads_fast_with_52_shapes(ict):
    assert ict.meta["test_load_seconds"] < 5.0
    assert ict.deltas.shape == (52, 26719, 3) and ict.n_vertices == 26719
    assert tuple(ict.names) == arkit.ARKIT_NAMES
    assert ict.meta["layout"] == "npz" and ict.meta["units"] == "m"
    assert ict.meta["dropped"] == ["PupilDilate_L", "PupilDilate_R", "cheekRaiser_L", "cheekRaiser_R"]
    assert ict.meta["missing"] == ["tongueOut"]
    assert ict.meta["combined"] == {
        "browInnerUp": ["browInnerUp_L", "browInnerUp_R"],
        "cheekPuff": ["cheekPuff_L", "cheekPuff_R"],
    }
    assert not ict.deltas[arkit.INDEX["tongueOut"]].any()
    peak = np.linalg.norm(ict.deltas, axis=2).max(1)
    assert (np.delete(peak, arkit.INDEX["tongueOut"]) > 1e-3).all()  # every other shape moves > 1 mm


def test_units_are_metres_and_the_head_has_human_size(ict):
    ext = ict.neutral.max(0) - ict.neutral.min(0)
    assert 0.25 < ext[1] < 0.40  # crown to neck
    assert 0.20 < ext[0] < 0.30  # ear to ear
    eyes = [ict.neutral[slice(*ICT_REGIONS[f"eyeball_{s}"])].mean(0) for s in ("left", "right")]
    assert 0.055 < np.linalg.norm(eyes[0] - eyes[1]) < 0.072  # interpupillary distance ~63 mm
    nasion_chin = ict.neutral[_vertex(ict, "nose_bridge_top")] - ict.neutral[_vertex(ict, "chin_bottom")]
    assert 0.10 < nasion_chin[1] < 0.14


def test_orientation_is_rig_space(ict):
    v = ict.neutral
    assert v[_vertex(ict, "eye_outer_L")][0] > 0.03 > -0.03 > v[_vertex(ict, "eye_outer_R")][0]  # left = +x
    assert v[slice(*ICT_REGIONS["eyeball_left"])][:, 0].mean() > 0
    assert (
        v[_vertex(ict, "brow_inner_L")][1]
        > v[_vertex(ict, "nose_tip")][1]
        > v[_vertex(ict, "chin_bottom")][1]
    )
    tip = _vertex(ict, "nose_tip")
    assert v[tip][2] == pytest.approx(v[: ICT_REGIONS["face"][1], 2].max(), abs=0.005)  # z out of the face
    n = ict.vertex_normals()
    assert n[tip][2] > 0.9  # triangles wind counter-clockwise seen from outside
    eye = ict.masks["eyeballs"] & (v[:, 0] > 0)
    front = v[eye][:, 2] > v[eye][:, 2].max() - 0.002
    assert n[eye][front][:, 2].mean() > 0.7  # eyeballs face forward too


def test_jaw_open_matches_the_original_obj(ict, ict_dir):
    target, tris = read_obj(ict_dir / "jawOpen.obj")
    np.testing.assert_array_equal(tris, ict.triangles)
    got = ict.neutral.astype(np.float64) + ict.deltas[arkit.INDEX["jawOpen"]]
    np.testing.assert_allclose(got, target * 0.01, atol=1e-6, rtol=0)
    chin = _vertex(ict, "chin_bottom")
    d = ict.deltas[arkit.INDEX["jawOpen"], chin]
    assert d[1] < -0.015  # the chin drops more than 15 mm
    assert abs(d[0]) < 1e-4


def test_split_shapes_are_summed(ict, ict_dir):
    parts = {}
    for p in sorted(ict_dir.glob("ict_expression_deltas_part*.npz")):
        with np.load(p) as z:
            parts.update(zip([str(n) for n in z["names"]], z["deltas"], strict=True))
    for whole in ("browInnerUp", "cheekPuff"):
        expect = (parts[f"{whole}_L"].astype(np.float64) + parts[f"{whole}_R"]) * 0.01
        np.testing.assert_allclose(ict.deltas[arkit.INDEX[whole]], expect, atol=1e-9)
    np.testing.assert_allclose(ict.deltas[arkit.INDEX["eyeBlinkLeft"]], parts["eyeBlink_L"] * 0.01, atol=1e-9)
    blink = np.linalg.norm(ict.deltas[arkit.INDEX["eyeBlinkLeft"]], axis=1)
    assert ict.neutral[blink.argmax(), 0] > 0  # ICT's _L is the subject's left, like ARKit's Left


def test_landmarks_agree_with_mediapipe_canonical_face(ict, ict_dir):
    obj = shared_path("mediapipe_face_landmarker", "canonical_face_model.obj")
    mp, _ = read_obj(obj)
    assert len(ict.landmark_ids) == len(IBUG68_TO_LANDMARK) == 52
    assert set(ict.landmark_ids.tolist()) <= set(LM.values())
    np.testing.assert_array_equal(ict.landmark_bary, np.tile([1, 0, 0], (52, 1)))
    lm68 = json.loads((ict_dir / "vertex_indices.json").read_text())["idx_to_landmark_verts"]
    for ibug, name in IBUG68_TO_LANDMARK.items():
        assert ict.landmark_tris[ict.landmark_index(LM[name]), 0] == lm68[ibug]
    ours = ict.landmark_points().astype(np.float64)
    theirs = mp[ict.landmark_ids]  # canonical face, centimetres
    rms, worst = _aligned_rms(theirs, ours)  # metres, in the rig's frame
    print(f"ICT vs MediaPipe canonical landmarks: RMS {rms * 1000:.2f} mm, max {worst * 1000:.2f} mm")
    assert rms < 0.006 and worst < 0.012
    # a left/right swap of the mapping can only be matched by a reflection: the fit must be far worse
    mirrored = np.array([LM[n.replace("_L", "_X").replace("_R", "_L").replace("_X", "_R")] for n in
                         (IBUG68_TO_LANDMARK[k] for k in sorted(IBUG68_TO_LANDMARK))])  # fmt: skip
    assert _aligned_rms(mp[mirrored], ours)[0] > 3 * rms
    s, _, _ = umeyama(theirs, ours)
    assert 0.008 < s < 0.012  # canonical face is in cm, a similar size


def test_mirror_is_sane(ict):
    v, m = ict.neutral, ict.mirror
    assert m[_vertex(ict, "eye_outer_L")] == _vertex(ict, "eye_outer_R")
    assert m[_vertex(ict, "mouth_corner_R")] == _vertex(ict, "mouth_corner_L")
    assert m[_vertex(ict, "nose_tip")] == _vertex(ict, "nose_tip")
    err = np.linalg.norm(v[m] * [-1, 1, 1] - v, axis=1)
    assert err.max() < 1e-3 and ict.meta["mirror_max_error_m"] == pytest.approx(err.max(), abs=1e-6)
    assert (m[m] == np.arange(len(m))).mean() > 0.95


def test_masks(ict):
    v, masks = ict.neutral, ict.masks
    assert set(masks) == {"track", "face", "eyeballs", "mouth_interior", "overlays"}
    t = masks["track"]
    assert 4000 < t.sum() < 7000
    assert not (t & ~masks["face"]).any()
    assert not (t & (masks["eyeballs"] | masks["mouth_interior"] | masks["overlays"])).any()
    for name in ("nose_tip", "mouth_corner_L", "nose_bridge_top", "brow_mid_L", "lip_lower_bottom"):
        assert t[_vertex(ict, name)], name
    z_side = v[_vertex(ict, "face_side_L"), 2]
    assert v[t, 2].min() >= z_side - 0.01  # nothing behind the face sides: no ears, no back of head
    assert v[t, 1].min() > v[_vertex(ict, "chin_bottom"), 1] - 0.01  # no neck
    assert masks["eyeballs"].sum() == 2 * 1570
    assert ict.colors is not None and ict.colors.shape == (26719, 3)
    top_of_track = np.flatnonzero(t)[np.argmax(v[t, 1])]  # forehead skin
    assert tuple(ict.colors[_vertex(ict, "lip_upper_top")]) != tuple(ict.colors[top_of_track])


def test_load_rig_dispatches_folders(ict_dir):
    rig = load_rig(ict_dir)
    assert rig.name == "ict_facekit" and rig.n_vertices == 26719


# ---------------------------------------------------------------------------------------------- tiny folders
QUADS = np.array([[0, 1, 4, 3], [1, 2, 5, 4], [3, 4, 7, 6], [4, 5, 8, 7]])


def _grid_cm() -> np.ndarray:
    x, y = np.meshgrid([-2.0, 0.0, 2.0], [-2.0, 0.0, 2.0])
    return np.stack([x.ravel(), y.ravel(), 1.0 - 0.1 * x.ravel() ** 2], 1)


def _write_obj(path, v, polys=QUADS, *, style="plain"):
    lines = ["# tiny test mesh", "o test"] + [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in v]
    lines += ["vt 0.5 0.5" for _ in v]
    for p in polys:
        if style == "slashes":
            lines.append("f " + " ".join(f"{i + 1}/{i + 1}/1" for i in p))
        elif style == "negative":
            lines.append("f " + " ".join(str(i - len(v)) for i in p))
        else:
            lines.append("f " + " ".join(str(i + 1) for i in p))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def tiny(tmp_path):
    v = _grid_cm()
    _write_obj(tmp_path / "generic_neutral_mesh.obj", v)
    shapes = {}
    for k, name in enumerate(["eyeBlink_L", "browInnerUp_L", "browInnerUp_R", "jawOpen", "PupilDilate_L"]):
        d = np.zeros_like(v)
        d[k] = [0.5, -1.0, 0.25]
        shapes[name] = d
        _write_obj(tmp_path / f"{name}.obj", v + d, style="slashes" if k % 2 else "negative")
    _write_obj(tmp_path / "identity000.obj", v * 2)  # not an expression: ignored
    return tmp_path, v, shapes


def test_obj_folder_imports(tiny):
    folder, v, shapes = tiny
    rig = load_ict_facekit(folder)
    assert rig.meta["layout"] == "obj" and rig.meta["ignored_files"] == ["identity000.obj"]
    np.testing.assert_allclose(rig.neutral, v * 0.01, atol=1e-7)
    assert len(rig.triangles) == 8  # 4 quads, fan-triangulated
    np.testing.assert_allclose(
        rig.deltas[arkit.INDEX["eyeBlinkLeft"]], shapes["eyeBlink_L"] * 0.01, atol=1e-7
    )
    both = (shapes["browInnerUp_L"] + shapes["browInnerUp_R"]) * 0.01
    np.testing.assert_allclose(rig.deltas[arkit.INDEX["browInnerUp"]], both, atol=1e-7)
    assert rig.meta["dropped"] == ["PupilDilate_L"]
    assert "tongueOut" in rig.meta["missing"] and "jawOpen" not in rig.meta["missing"]
    assert list(rig.masks) == ["track"] and rig.masks["track"].all()
    assert len(rig.landmark_ids) == 0 and rig.colors is None
    np.testing.assert_array_equal(rig.mirror[[0, 1, 2]], [2, 1, 0])
    n = rig.vertex_normals()
    assert (n[:, 2] > 0).all()  # winding preserved
    mm = load_ict_facekit(folder, units="mm")
    np.testing.assert_allclose(mm.neutral, v * 0.001, atol=1e-8)


def test_npz_folder_imports(tmp_path):
    v = _grid_cm()
    _write_obj(tmp_path / "generic_neutral_mesh.obj", v)
    deltas = np.zeros((2, 9, 3), np.float32)
    deltas[0, 4] = [0, -2, 0]
    deltas[1, 0] = [1, 0, 0]
    np.savez(tmp_path / "ict_expression_deltas_part1.npz", names=np.array(["jawOpen", "mouthSmile_L"]),
             neutral=v.astype(np.float32), deltas=deltas)  # fmt: skip
    rig = load_ict_facekit(tmp_path)
    assert rig.meta["layout"] == "npz"
    np.testing.assert_allclose(rig.deltas[arkit.INDEX["jawOpen"], 4], [0, -0.02, 0])
    np.testing.assert_allclose(rig.deltas[arkit.INDEX["mouthSmileLeft"], 0], [0.01, 0, 0])


@pytest.mark.parametrize("style", ["plain", "slashes", "negative"])
def test_read_obj_triangulates_polygons(tmp_path, style):
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0.5, 1.5, 0], [0, 1, 0]], float)
    _write_obj(tmp_path / "p.obj", v, polys=[[0, 1, 2, 3, 4]], style=style)
    verts, tris = read_obj(tmp_path / "p.obj")
    np.testing.assert_array_equal(tris, [[0, 1, 2], [0, 2, 3], [0, 3, 4]])
    np.testing.assert_allclose(verts, v)


def test_bad_folders(tmp_path, tiny):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_ict_facekit(tmp_path / "nowhere")
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        load_ict_facekit(f)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="generic_neutral_mesh.obj is missing"):
        load_ict_facekit(empty)
    _write_obj(empty / "generic_neutral_mesh.obj", _grid_cm())
    with pytest.raises(FileNotFoundError, match="no expression OBJs"):
        load_ict_facekit(empty)
    folder, v, _ = tiny
    with pytest.raises(ValueError, match="units"):
        load_ict_facekit(folder, units="inch")


def test_topology_mismatch_and_corrupt_files(tmp_path):
    v = _grid_cm()
    _write_obj(tmp_path / "generic_neutral_mesh.obj", v)
    _write_obj(tmp_path / "jawOpen.obj", v[:8], polys=QUADS[:2])
    with pytest.raises(ValueError, match="topology mismatch: jawOpen.obj has 8 vertices"):
        load_ict_facekit(tmp_path)
    _write_obj(tmp_path / "jawOpen.obj", v, polys=QUADS[:3])
    with pytest.raises(ValueError, match="topology mismatch"):
        load_ict_facekit(tmp_path)
    bad = v.copy()
    bad[3, 1] = np.nan
    _write_obj(tmp_path / "jawOpen.obj", bad)
    with pytest.raises(ValueError, match="NaN"):
        load_ict_facekit(tmp_path)
    (tmp_path / "jawOpen.obj").unlink()
    (tmp_path / "ict_expression_deltas_part1.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable npz"):
        load_ict_facekit(tmp_path)
    np.savez(tmp_path / "ict_expression_deltas_part1.npz", names=np.array(["jawOpen"]),
             neutral=np.zeros((5, 3), np.float32), deltas=np.zeros((1, 5, 3), np.float32))  # fmt: skip
    with pytest.raises(ValueError, match="topology mismatch"):
        load_ict_facekit(tmp_path)
    np.savez(tmp_path / "ict_expression_deltas_part1.npz", names=np.array(["jawOpen"]))
    with pytest.raises(ValueError, match=r"lacks arrays \['deltas', 'neutral'\]"):
        load_ict_facekit(tmp_path)
    (tmp_path / "generic_neutral_mesh.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 7\n")
    with pytest.raises(ValueError, match="face indices outside"):
        load_ict_facekit(tmp_path)


def test_a_shape_given_twice_is_an_error(tiny):
    folder, v, _ = tiny
    _write_obj(folder / "browInnerUp.obj", v)
    with pytest.raises(ValueError, match="'browInnerUp' is given more than once"):
        load_ict_facekit(folder)


def test_bad_vertex_indices_json(tmp_path, tiny):
    folder, _, _ = tiny
    (folder / "vertex_indices.json").write_text(json.dumps({"idx_to_landmark_verts": [99] * 68}))
    with pytest.raises(ValueError, match="outside the 9 vertices"):
        load_ict_facekit(folder)
    (folder / "vertex_indices.json").write_text("{broken")
    with pytest.raises(ValueError, match="not readable JSON"):
        load_ict_facekit(folder)
