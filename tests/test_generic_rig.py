"""The built-in generic tracking rig (rigs/build_generic_rig.py -> facecap/data/generic_rig.npz)."""

from __future__ import annotations

import shutil
import types

import numpy as np
import pytest
from conftest import check_on_other_numeric_stack, load_script, shared_path

from facecap import arkit
from facecap.formats import load_rig
from facecap.rig import DEFAULT_RIG_PATH, MEDIAPIPE_LANDMARKS, Rig

FLIP = np.array([-1.0, 1.0, 1.0])
PARTS = ("face", "eyeball", "canthus", "cavity", "tongue")


@pytest.fixture(scope="module")
def builder():
    return load_script("build_generic_rig")


@pytest.fixture(scope="module")
def rig() -> Rig:
    return load_rig("generic")


@pytest.fixture(scope="module")
def fresh(builder) -> Rig:
    return builder.build_generic_rig()


def lm(rig: Rig, name: str, vertices=None) -> np.ndarray:
    """A landmark's 3-D point (metres) by its semantic name."""
    return rig.landmark_points(vertices)[rig.landmark_index(MEDIAPIPE_LANDMARKS[name])]


def weights(**kw) -> np.ndarray:
    w = np.zeros(arkit.NUM_SHAPES, np.float32)
    for k, v in kw.items():
        w[arkit.index(k)] = v
    return w


def part_slices(rig: Rig) -> dict[str, np.ndarray]:
    """Vertex masks of the rig's parts (stored in order; counts in meta)."""
    out, start = {}, 0
    for p in PARTS:
        n = rig.meta["parts"][p]
        m = np.zeros(rig.n_vertices, bool)
        m[start : start + n] = True
        out[p] = m
        start += n
    assert start == rig.n_vertices
    return out


# ------------------------------------------------------------------------------------------- basics
def test_load_rig_returns_generic_rig(rig):
    assert DEFAULT_RIG_PATH.is_file()
    assert DEFAULT_RIG_PATH.stat().st_size < 1_000_000
    assert isinstance(rig, Rig)
    assert rig.name == "facecap-generic"
    assert tuple(rig.names) == arkit.ARKIT_NAMES and len(rig.names) == 52
    assert rig.deltas.shape == (52, rig.n_vertices, 3)
    assert 3000 <= rig.n_vertices <= 10000
    assert rig.colors is not None and rig.colors.dtype == np.uint8


def test_every_mediapipe_landmark_is_placed(rig):
    assert sorted(rig.landmark_ids.tolist()) == sorted(MEDIAPIPE_LANDMARKS.values())
    np.testing.assert_allclose(rig.landmark_bary.sum(1), 1.0, atol=1e-6)
    assert (rig.landmark_bary >= -1e-6).all()


def test_masks(rig):
    m = rig.masks
    for k in ("track", "eyeballs", "eyelids", "brows", "nose", "lips", "jaw", "border"):
        assert k in m and m[k].any(), k
    parts = part_slices(rig)
    assert not (m["track"] & (m["eyeballs"] | m["border"] | m["interior"])).any()
    assert (m["eyeballs"] == parts["eyeball"]).all()
    assert not (m["track"] & ~parts["face"]).any()
    # the track region spans forehead to chin, cheek to cheek
    p = rig.neutral[m["track"]]
    ext = (p.max(0) - p.min(0)) * 1000
    assert ext[0] > 120 and ext[1] > 150, ext
    assert m["track"].sum() > 0.6 * parts["face"].sum()


def test_mesh_is_clean_with_eye_and_mouth_openings(rig):
    t = rig.triangles
    v = rig.neutral.astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]]), axis=1)
    assert area.min() > 1e-9
    parts = part_slices(rig)
    face_t = t[parts["face"][t].all(1)]
    assert len(face_t) + len(t[~parts["face"][t].all(1)]) == len(t)
    # consistently oriented 2-manifold: each directed edge once, each undirected edge at most twice
    e = np.concatenate([face_t[:, [0, 1]], face_t[:, [1, 2]], face_t[:, [2, 0]]])
    assert len(np.unique(e, axis=0)) == len(e)
    und, cnt = np.unique(np.sort(e, axis=1), axis=0, return_counts=True)
    assert cnt.max() == 2
    # boundary loops of the face: the rim, two eye openings and the mouth slit
    bnd = und[cnt == 1]
    parent = {int(a): int(a) for a in bnd.ravel()}

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in bnd:
        parent[find(int(a))] = find(int(b))
    assert len({find(a) for a in parent}) == 4


def test_normals_point_out_of_the_face(rig):
    parts = part_slices(rig)
    n = rig.vertex_normals()
    face = parts["face"]
    # the face is star-shaped about the rig origin (head centre): normals point away from it
    radial = rig.neutral[face] / np.linalg.norm(rig.neutral[face], axis=1, keepdims=True)
    assert (np.einsum("ij,ij->i", n[face], radial) > 0).mean() > 0.99
    assert n[rig.masks["track"], 2].mean() > 0.6
    front = (
        rig.masks["track"] & (np.abs(rig.neutral[:, 0]) < 0.03) & (np.abs(rig.neutral[:, 1] - 0.03) < 0.02)
    )
    assert (n[front, 2] > 0.5).all()
    # eyeballs face outwards from their centres
    for c in rig.meta["eye_centers_m"]:
        m = parts["eyeball"] & (np.sign(rig.neutral[:, 0]) == np.sign(c[0]))
        q = rig.neutral[m] - np.asarray(c, np.float32)
        assert (np.einsum("ij,ij->i", n[m], q) > 0).all()
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), rig.meta["eye_radius_m"], atol=1e-5)


# ------------------------------------------------------------------------------------------- dimensions
def test_metric_dimensions_are_adult(rig):
    def eye_center(side):
        return 0.5 * (lm(rig, f"lid_upper_{side}") + lm(rig, f"lid_lower_{side}"))

    mm = 1000.0
    ipd = np.linalg.norm(eye_center("L") - eye_center("R")) * mm
    assert 55 < ipd < 70, ipd
    pupils = np.array(rig.meta["eye_centers_m"])
    assert 55 < abs(pupils[1, 0] - pupils[0, 0]) * mm < 70
    cheekbones = np.linalg.norm(lm(rig, "cheekbone_L") - lm(rig, "cheekbone_R")) * mm
    assert 115 < cheekbones < 160, cheekbones
    width = np.ptp(rig.neutral[part_slices(rig)["face"], 0]) * mm  # ear to ear
    assert 140 < width < 175, width
    nasion_chin = np.linalg.norm(lm(rig, "nose_bridge_top") - lm(rig, "chin_bottom")) * mm
    assert 105 < nasion_chin < 140, nasion_chin
    nose_len = np.linalg.norm(lm(rig, "nose_bridge_top") - lm(rig, "nose_tip")) * mm
    assert 40 < nose_len < 60, nose_len
    protrusion = (lm(rig, "nose_tip")[2] - 0.5 * (lm(rig, "alar_base_L") + lm(rig, "alar_base_R"))[2]) * mm
    assert 15 < protrusion < 30, protrusion
    mouth = np.linalg.norm(lm(rig, "mouth_corner_L") - lm(rig, "mouth_corner_R")) * mm
    assert 40 < mouth < 60, mouth
    eye_w = np.linalg.norm(lm(rig, "eye_outer_L") - lm(rig, "eye_inner_L")) * mm
    eye_h = np.linalg.norm(lm(rig, "lid_upper_L") - lm(rig, "lid_lower_L")) * mm
    assert 25 < eye_w < 34 and 7 < eye_h < 13, (eye_w, eye_h)
    # the origin sits near the head's rotation centre: ~9-10 cm behind the bridge, at eye height
    assert 0.085 < lm(rig, "nose_bridge_top")[2] < 0.105
    assert abs(eye_center("L")[1]) < 0.01


def _umeyama(src: np.ndarray, dst: np.ndarray):
    """Similarity (s, R, t) minimising |s R src + t - dst|^2."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    s = np.trace(np.diag(sig) @ d) / (a**2).sum(1).mean()
    return s, r, md - s * r @ ms


def test_landmarks_align_with_mediapipe_canonical_face(rig):
    obj = shared_path("mediapipe_face_landmarker", "canonical_face_model.obj")
    can = np.array([ln.split()[1:4] for ln in obj.read_text().splitlines() if ln.startswith("v ")], float)
    assert can.shape == (468, 3)
    src = rig.landmark_points().astype(np.float64)
    dst = can[rig.landmark_ids] * 10.0  # cm -> mm
    s, r, t = _umeyama(src, dst)
    res = np.linalg.norm((s * (r @ src.T)).T + t - dst, axis=1)
    rms = float(np.sqrt((res**2).mean()))
    print(
        f"landmark alignment to the canonical face: RMS {rms:.2f} mm, max {res.max():.1f} mm, scale {s:.1f}"
    )
    assert rms < 6.0
    assert res.max() < 12.0
    assert 900 < s < 1100  # same size as MediaPipe's canonical (metric) face
    assert np.linalg.det(r) > 0 and r[0, 0] > 0.95 and r[1, 1] > 0.95  # same handedness and axes


# ------------------------------------------------------------------------------------------- expressions
def test_left_right_symmetry(rig):
    mir = rig.mirror
    assert (mir[mir] == np.arange(rig.n_vertices)).all()
    np.testing.assert_allclose(rig.neutral[mir] * FLIP, rig.neutral, atol=1e-6)
    for i, name in enumerate(arkit.ARKIT_NAMES):
        j = arkit.MIRROR_PERM[i]
        np.testing.assert_allclose(rig.deltas[j][mir] * FLIP, rig.deltas[i], atol=1e-6, err_msg=name)
    for k, m in rig.masks.items():
        assert (m[mir] == m).all(), k
    np.testing.assert_array_equal(rig.colors[mir], rig.colors)
    for name in MEDIAPIPE_LANDMARKS:
        if name.endswith("_L"):
            np.testing.assert_allclose(lm(rig, name) * FLIP, lm(rig, name[:-2] + "_R"), atol=1e-6)


def test_each_shape_is_local_to_its_region(rig):
    x = rig.neutral[:, 0]
    for i, name in enumerate(arkit.ARKIT_NAMES):
        moving = np.abs(rig.deltas[i]).max(1) > 0
        assert moving.any(), name
        allowed = np.zeros(rig.n_vertices, bool)
        for m in rig.meta["shape_regions"][name]:
            allowed |= rig.masks[m]
        assert not (moving & ~allowed).any(), name
        strict = name.startswith(("eye", "brow", "cheekSquint"))
        lenient = name.startswith(("mouthSmile", "mouthFrown", "mouthDimple", "mouthStretch", "noseSneer"))
        if name.endswith("Left") and (strict or lenient):
            assert x[moving].min() > (0.0 if strict else -0.012), name
        if name.endswith("Right") and (strict or lenient):
            assert x[moving].max() < (0.0 if strict else 0.012), name
    # spot checks in plain words
    blink = np.abs(rig.deltas[arkit.index("eyeBlinkLeft")]).max(1) > 0
    assert not (blink & ~(rig.masks["eyelids"] & (x > 0))).any()
    look = np.abs(rig.deltas[arkit.index("eyeLookUpRight")]).max(1) > 0
    assert (look == (rig.masks["eyeballs"] & (x < 0))).all()
    assert not (np.abs(rig.deltas[arkit.index("jawOpen")]).max(1)[rig.masks["forehead"]] > 0).any()


def test_magnitudes_are_plausible(rig):
    peak = np.linalg.norm(rig.deltas, axis=2).max(1) * 1000
    for name, p in zip(arkit.ARKIT_NAMES, peak, strict=True):
        assert 1.5 < p < 26.0, (name, p)
    assert np.median(peak) > 3.0


def test_jaw_open_moves_the_chin_down_and_a_little_back(rig):
    v1 = rig.evaluate(weights(jawOpen=1))
    for name in ("chin_front", "chin_bottom"):
        d = (lm(rig, name, v1) - lm(rig, name)) * 1000
        assert 20 < np.linalg.norm(d) < 30, (name, d)
        assert d[1] < -15 and d[2] < 0 and abs(d[2]) < abs(d[1]) and abs(d[0]) < 1e-3, (name, d)
    # the lips separate; the upper lip stays
    gap0 = lm(rig, "lip_upper_inner")[1] - lm(rig, "lip_lower_inner")[1]
    gap1 = lm(rig, "lip_upper_inner", v1)[1] - lm(rig, "lip_lower_inner", v1)[1]
    assert gap1 - gap0 > 0.015
    assert np.linalg.norm(lm(rig, "lip_upper_inner", v1) - lm(rig, "lip_upper_inner")) < 1e-4
    # mouthClose brings the lips back together with the jaw open
    v2 = rig.evaluate(weights(jawOpen=1, mouthClose=1))
    assert np.linalg.norm(lm(rig, "lip_upper_inner", v2) - lm(rig, "lip_lower_inner", v2)) < 0.004
    assert np.linalg.norm(lm(rig, "chin_front", v2) - lm(rig, "chin_front", v1)) < 1e-4


@pytest.mark.parametrize("side", ["Left", "Right"])
def test_blink_closes_the_eye(rig, side):
    s = side[0]
    v = rig.evaluate(weights(**{f"eyeBlink{side}": 1}))
    for up, lo in (("lid_upper", "lid_lower"), ("lid_upper_inner", "lid_lower_inner"),
                   ("lid_upper_outer", "lid_lower_outer")):  # fmt: skip
        gap0 = np.linalg.norm(lm(rig, f"{up}_{s}") - lm(rig, f"{lo}_{s}"))
        gap1 = np.linalg.norm(lm(rig, f"{up}_{s}", v) - lm(rig, f"{lo}_{s}", v))
        assert gap0 > 0.006 and gap1 < 0.0015, (up, gap0, gap1)
    # the lid slides over the eyeball (stays in front of it)
    c = np.array(rig.meta["eye_centers_m"][0 if s == "R" else 1])
    assert np.linalg.norm(lm(rig, f"lid_upper_{s}", v) - c) > rig.meta["eye_radius_m"]
    # wide raises the upper lid
    vw = rig.evaluate(weights(**{f"eyeWide{side}": 1}))
    assert lm(rig, f"lid_upper_{s}", vw)[1] - lm(rig, f"lid_upper_{s}")[1] > 0.0015


def test_eye_look_rotates_the_eyeball(rig):
    parts = part_slices(rig)
    for side, si in (("Left", 1), ("Right", 0)):
        c = np.array(rig.meta["eye_centers_m"][si])
        ball = parts["eyeball"] & (np.sign(rig.neutral[:, 0]) == np.sign(c[0]))
        apex = np.flatnonzero(ball)[np.argmax(rig.neutral[ball, 2])]
        a0 = rig.neutral[apex] - c
        nasal = -np.sign(c[0])  # the nose is towards x = 0
        for shape, axis, sign in (("In", 0, nasal), ("Out", 0, -nasal), ("Up", 1, 1), ("Down", 1, -1)):
            v = rig.evaluate(weights(**{f"eyeLook{shape}{side}": 1}))
            a1 = v[apex] - c
            ang = np.degrees(np.arccos(np.clip(a0 @ a1 / np.linalg.norm(a0) / np.linalg.norm(a1), -1, 1)))
            assert 24 < ang < 32, (shape, side, ang)
            assert np.sign(a1[axis]) == sign, (shape, side)
            np.testing.assert_allclose(
                np.linalg.norm(v[ball] - c, axis=1), rig.meta["eye_radius_m"], atol=2e-4
            )


def test_directions_of_some_shapes(rig):
    def move(shape, name, **kw):
        v = rig.evaluate(weights(**{shape: 1}, **kw))
        return (lm(rig, name, v) - lm(rig, name)) * 1000

    assert move("mouthSmileLeft", "mouth_corner_L")[1] > 3 and move("mouthSmileLeft", "mouth_corner_L")[0] > 2
    assert move("mouthFrownRight", "mouth_corner_R")[1] < -3
    assert move("mouthStretchRight", "mouth_corner_R")[0] < -3
    assert move("mouthPucker", "lip_upper_top")[2] > 4 and move("mouthPucker", "mouth_corner_L")[0] < -3
    assert move("browInnerUp", "brow_inner_L")[1] > 4
    assert move("browDownLeft", "brow_mid_inner_L")[1] < -3
    assert move("browOuterUpRight", "brow_outer_R")[1] > 4
    assert move("noseSneerLeft", "nose_wing_L")[1] > 1.5
    assert move("jawLeft", "chin_front")[0] > 6 and move("jawRight", "chin_front")[0] < -6
    assert move("jawForward", "chin_front")[2] > 4
    assert move("mouthLeft", "lip_upper_inner")[0] > 3
    assert move("mouthUpperUpRight", "lip_upper_top_R")[1] > 2.5
    assert move("mouthLowerDownLeft", "lip_lower_bottom_L")[1] < -2.5
    assert move("mouthRollLower", "lip_lower_bottom")[2] < -1.5
    assert move("mouthShrugLower", "chin_front")[1] > 1.5
    assert move("cheekSquintLeft", "cheek_L")[1] > 1.0
    n = rig.vertex_normals()
    puff = rig.deltas[arkit.index("cheekPuff")]
    moving = np.linalg.norm(puff, axis=1) > 1e-3
    assert (np.einsum("ij,ij->i", puff[moving], n[moving]) > 0).all()
    tongue = rig.masks["tongue"]
    assert rig.deltas[arkit.index("tongueOut")][tongue, 2].min() > 0.010


def test_shapes_are_distinguishable_on_the_track_region(rig):
    tr = rig.masks["track"]
    d = rig.deltas[:, tr].reshape(52, -1).astype(np.float64)
    norm = np.linalg.norm(d, axis=1)
    big = norm > 0.02 * norm.max()  # eyeLook* and tongueOut barely touch the track region
    c = (d @ d.T) / np.outer(norm, norm).clip(1e-12)
    np.fill_diagonal(c, 0)
    c = np.abs(c[np.ix_(big, big)])
    i, j = np.unravel_index(np.argmax(c), c.shape)
    names = np.array(arkit.ARKIT_NAMES)[big]
    print(f"max |cos| between shapes on the track region: {c.max():.3f} ({names[i]} / {names[j]})")
    assert c.max() < 0.9
    # and the stacked basis has full rank there
    sv = np.linalg.svd(d[big] / norm[big, None], compute_uv=False)
    assert sv.min() > 0.05


def test_evaluate_is_linear(rig):
    rng = np.random.default_rng(7)
    w1, w2 = rng.uniform(0, 1, 52).astype(np.float32), rng.uniform(0, 1, 52).astype(np.float32)
    lhs = rig.evaluate(0.3 * w1 + 0.6 * w2) - rig.neutral
    rhs = 0.3 * (rig.evaluate(w1) - rig.neutral) + 0.6 * (rig.evaluate(w2) - rig.neutral)
    np.testing.assert_allclose(lhs, rhs, atol=2e-6)
    np.testing.assert_array_equal(rig.evaluate(np.zeros(52)), rig.neutral)


# ------------------------------------------------------------------------------------------- files
def test_npz_round_trip_is_exact(rig, tmp_path):
    p = rig.save(tmp_path / "r.npz")
    back = Rig.load(p)
    for k in ("neutral", "triangles", "deltas", "landmark_ids", "landmark_tris", "landmark_bary", "mirror",
              "colors"):  # fmt: skip
        np.testing.assert_array_equal(getattr(back, k), getattr(rig, k), err_msg=k)
    assert back.masks.keys() == rig.masks.keys()
    for k in rig.masks:
        np.testing.assert_array_equal(back.masks[k], rig.masks[k])
    assert back.name == rig.name and back.meta == rig.meta


def test_committed_file_equals_a_fresh_build(builder, rig, fresh):
    assert builder.compare_rigs(fresh, rig) == []


def test_build_is_deterministic(builder, fresh):
    assert builder.compare_rigs(builder.build_generic_rig(), fresh, atol=0.0) == []


def test_check_command_detects_a_stale_file(builder, fresh, tmp_path, capsys):
    good = tmp_path / "good.npz"
    shutil.copy(DEFAULT_RIG_PATH, good)
    assert builder.main(["--check", "--out", str(good)]) == 0
    stale = Rig.load(good)
    stale.deltas[arkit.index("jawOpen")] *= 1.01
    stale.save(tmp_path / "stale.npz")
    assert builder.main(["--check", "--out", str(tmp_path / "stale.npz")]) == 1
    assert "deltas" in capsys.readouterr().err
    assert builder.main(["--check", "--out", str(tmp_path / "missing.npz")]) == 1
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert builder.main(["--check", "--out", str(tmp_path / "junk.npz")]) == 1
    out = tmp_path / "sub" / "new.npz"
    assert builder.main(["--out", str(out)]) == 0
    assert builder.compare_rigs(Rig.load(out), fresh, atol=0.0) == []


# ------------------------------------------------------------------------------------------- reproducibility
# Transcendental functions and BLAS kernels may round the last bit differently on another CPU (numpy picks
# SIMD implementations by CPU features, OpenBLAS a kernel per core type). The build must not depend on it.
NOISY = ("sin", "cos", "tan", "arctan", "arctan2", "arcsin", "arccos", "exp", "log", "power", "hypot")


def _noisy_numpy(seed: int):
    """The numpy namespace with the outputs of NOISY moved by -1, 0 or +1 ulp at random.

    Results that every implementation returns exactly (0, +-1, as sin(0), cos(0)) stay exact.
    """
    rng = np.random.default_rng(seed)
    ns = types.ModuleType("noisy_numpy")
    ns.__dict__.update(np.__dict__)

    def wrap(fn):
        def noisy(*args, **kwargs):
            out = fn(*args, **kwargs)
            x = np.asarray(out)
            if x.dtype.kind != "f":
                return out
            step = rng.integers(-1, 2, x.shape) * (np.isfinite(x) & (x != 0) & (np.abs(x) != 1))
            y = np.where(step == 0, x, np.nextafter(x, np.where(step > 0, np.inf, -np.inf)))
            return y if isinstance(out, np.ndarray) else y[()]

        return noisy

    for name in NOISY:
        setattr(ns, name, wrap(getattr(np, name)))
    return ns


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_build_does_not_depend_on_last_bit_rounding(builder, fresh, seed, monkeypatch):
    mod = load_script("build_generic_rig")
    monkeypatch.setattr(mod, "np", _noisy_numpy(seed))
    # floats within compare_rigs' tolerance; triangles, landmarks, masks, colors exactly
    assert builder.compare_rigs(mod.build_generic_rig(), fresh) == []


def test_check_passes_with_other_simd_and_blas_kernels():
    r = check_on_other_numeric_stack("build_generic_rig")
    assert r.returncode == 0, r.stderr
    assert "matches a fresh build" in r.stdout


def test_a_tie_fails_the_build(builder, monkeypatch):
    mod = load_script("build_generic_rig")
    monkeypatch.setattr(mod, "TRI_SHEAR", 0.0)  # plain Delaunay: grid rectangles are co-circular
    with pytest.raises(RuntimeError, match="co-circular"):
        mod.build_generic_rig()
    with pytest.raises(RuntimeError, match="threshold"):
        builder._require_margin("test", [0.3, 1.0 + 1e-12], 1.0)
    builder._require_margin("test", [0.3, 1.0], 1.0, exact_ok=True)
    assert builder._round_int(2.4, "test") == 2
    with pytest.raises(RuntimeError):
        builder._round_int(2.5, "test")


def test_landmarks_on_edges_are_canonical(builder):
    XY = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    T = np.array([[0, 1, 3], [0, 3, 2]])
    tris, bary = builder._barycentric_locate(XY, T, np.array([[0.5, 0.5], [1.0, 1.0], [0.6, 0.2]]))
    assert tris.tolist() == [[0, 3, 3], [3, 3, 3], [0, 1, 3]]
    np.testing.assert_allclose(bary, [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.4, 0.4, 0.2]], atol=1e-12)


def test_colors_give_a_face_contrast(rig):
    c = rig.colors.astype(float)
    parts = part_slices(rig)
    skin = np.median(c[rig.masks["track"] & ~rig.masks["lips"] & ~rig.masks["brows"]], axis=0)
    lips = c[rig.masks["lips"]].mean(0)
    assert lips[0] - lips[1] > skin[0] - skin[1] + 20  # redder
    brow_dark = np.percentile(c[rig.masks["brows"]].sum(1), 5)
    assert brow_dark < 0.6 * skin.sum()
    eye = c[parts["eyeball"]].sum(1)
    assert eye.max() > 600 and eye.min() < 100  # white sclera, dark pupil


def test_builder_is_a_script_with_help():
    mod = load_script("build_generic_rig")
    with pytest.raises(SystemExit) as e:
        mod.main(["--help"])
    assert e.value.code == 0
