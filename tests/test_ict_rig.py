"""The scan-based rig (rigs/build_ict_rig.py -> facecap/data/ict_rig.npz), derived from ICT-FaceKit."""

from __future__ import annotations

import math
import shutil
import time
import types

import numpy as np
import pytest
from conftest import ROOT, check_on_other_numeric_stack, load_script, shared_path

from facecap import arkit
from facecap.formats import load_rig
from facecap.rig import MEDIAPIPE_LANDMARKS, Rig

ICT_RIG = ROOT / "facecap" / "data" / "ict_rig.npz"
LICENSE = ROOT / "facecap" / "data" / "LICENSE_ICT-FaceKit.txt"
LM = MEDIAPIPE_LANDMARKS
GENERIC_MASKS = ("track", "eyeballs", "eyelids", "brows", "forehead", "nose", "lips", "mouth", "cheeks",
                 "jaw", "lower_face", "border", "interior", "tongue")  # fmt: skip
PARTS = ("face", "mouth_socket", "eye_sockets", "gums_tongue", "teeth", "eyeballs")


@pytest.fixture(scope="module")
def builder():
    return load_script("build_ict_rig")


@pytest.fixture(scope="module")
def rig() -> Rig:
    return load_rig(ICT_RIG)


@pytest.fixture(scope="module")
def fresh(builder) -> Rig:
    shared_path("ict_facekit")
    shared_path("mediapipe_face_landmarker", "canonical_face_model.obj")
    return builder.build_ict_rig()


def weights(**kw) -> np.ndarray:
    w = np.zeros(arkit.NUM_SHAPES, np.float32)
    for k, v in kw.items():
        w[arkit.index(k)] = v
    return w


def lm(rig: Rig, i: int, w=None) -> np.ndarray:
    """MediaPipe landmark ``i`` (metres, float64) of the neutral or of weights ``w``."""
    v = rig.neutral if w is None else rig.evaluate(w)
    return rig.landmark_points(v)[rig.landmark_index(i)].astype(np.float64)


def part_slices(rig: Rig) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for p in PARTS:
        n = rig.meta["parts"][p]
        m = np.zeros(rig.n_vertices, bool)
        m[start : start + n] = True
        out[p] = m
        start += n
    assert start == rig.n_vertices
    return out


# ------------------------------------------------------------------------------------------- the shipped file
def test_shipped_file_is_small_and_carries_the_licence(rig):
    assert ICT_RIG.stat().st_size <= 8_000_000
    text = LICENSE.read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "USC Institute for Creative Technologies" in text
    assert "MIT" in rig.meta["license"] and LICENSE.name in rig.meta["license"]
    assert rig.name == "facecap-ict" and rig.meta["units"] == "metres"
    assert load_rig().name == rig.name  # the default rig


def test_contents(rig):
    assert rig.deltas.shape == (52, rig.n_vertices, 3) and rig.deltas.dtype == np.float32
    assert tuple(rig.names) == arkit.ARKIT_NAMES
    parts = part_slices(rig)
    assert rig.meta["parts"] == {"face": 9409, "mouth_socket": 2046, "eye_sockets": 768, "gums_tongue": 2977,
                                 "teeth": 4412, "eyeballs": 1540}  # fmt: skip
    for p in ("face", "eyeballs"):
        np.testing.assert_array_equal(rig.masks[p], parts[p])
    assert set(GENERIC_MASKS) <= set(rig.masks)
    assert {"face", "mouth_interior", "teeth", "eye_sockets", "gums"} <= set(rig.masks)
    # every triangle of one part; ICT's vertex ranges recorded to map back
    part_id = np.argmax(np.stack([parts[p] for p in PARTS]), axis=0)
    t = part_id[rig.triangles]
    mixed = t[(t != t[:, :1]).any(1)]
    assert len(mixed) and (mixed <= 2).all() and (mixed == 0).any(1).all()  # only the face joins the sockets
    assert sum(n for _, _, n in rig.meta["ict_index_ranges"]) == rig.n_vertices
    assert len(rig.meta["ict_landmarks_ibug68"]) == 68


def test_every_arkit_shape_is_present_and_moves(rig):
    peak = np.linalg.norm(rig.deltas, axis=2).max(1)
    assert (peak > 0.002).all(), dict(zip(rig.names, peak.round(4), strict=True))
    assert set(rig.meta["dropped"]) == {"cheekRaiser_L/R", "PupilDilate_L/R"}
    assert rig.meta["combined"]["browInnerUp"] == ["browInnerUp_L", "browInnerUp_R"]
    assert {"tongueOut", "eyeLook"} <= set(rig.meta["authored"])


def test_masks_have_their_meaning(rig):
    m = rig.masks
    v = rig.neutral
    tr = m["track"]
    assert 3000 < tr.sum() < 7000
    for k in ("eyeballs", "interior", "border", "tongue", "teeth", "mouth_interior"):
        assert not (tr & m[k]).any(), k
    assert (tr <= m["face"]).all()
    assert v[tr, 2].min() > 0.03 and v[tr, 1].max() < 0.1  # in front of the ears, below the hairline
    assert (m["eyelids"] <= m["face"]).all() and (m["lips"] <= m["mouth"]).all()
    assert m["lower_face"][m["jaw"]].all()
    # region centroids where the anatomy is
    c = {k: v[m[k]].mean(0) for k in ("brows", "nose", "lips", "jaw", "forehead")}
    assert c["forehead"][1] > c["brows"][1] > c["nose"][1] > c["lips"][1] > c["jaw"][1]


def test_track_vertices_are_seen_from_the_front(rig):
    """Frontal render: the lips' and eyes' track vertices lie on the visible surface (no inner lips)."""
    from facecap.synth.camera import CAMERAS
    from facecap.synth.render import render_rig

    k = CAMERAS["d415"].intrinsics
    r, t = np.diag([1.0, -1.0, -1.0]), np.array([0.0, 0.0, 0.5])
    res = render_rig(rig, np.zeros(52, np.float32), r, t, k)
    m = rig.masks
    sel = m["track"] & (m["lips"] | m["eyelids"]) & (np.abs(rig.neutral[:, 0]) < 0.02)
    cam = rig.neutral[sel].astype(np.float64) @ r.T + t
    u = np.round(k.fx * cam[:, 0] / cam[:, 2] + k.cx).astype(int)
    v = np.round(k.fy * cam[:, 1] / cam[:, 2] + k.cy).astype(int)
    seen = np.abs(res.depth[v, u] - cam[:, 2]) < 0.0015
    assert sel.sum() > 100 and seen.mean() > 0.95


def test_shapes_stay_in_their_regions(rig, builder):
    for k, name in enumerate(rig.names):
        e2 = np.square(rig.deltas[k].astype(np.float64)).sum(1)
        allowed = np.any([rig.masks[m] for m in builder.shape_region(name)], axis=0)
        assert e2[allowed].sum() / e2.sum() >= builder.SHAPE_REGION_SHARE, name
    tongue = rig.deltas[arkit.index("tongueOut")]
    assert not tongue[~rig.masks["tongue"]].any()


# ------------------------------------------------------------------------------------------- landmarks
def test_landmark_map_covers_all_478_points(rig):
    np.testing.assert_array_equal(rig.landmark_ids, np.arange(478))
    assert (rig.landmark_bary >= 0).all()
    np.testing.assert_allclose(rig.landmark_bary.sum(1), 1.0, atol=1e-6)
    m, tris = rig.masks, rig.landmark_tris

    def within(ids, mask):
        return all(mask[tris[i]].all() for i in ids)

    eyes = [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
            263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398]  # fmt: skip
    brows = [70, 63, 105, 66, 107, 46, 53, 52, 65, 55, 300, 293, 334, 296, 336, 276, 283, 282, 295, 285]
    nose = [1, 2, 4, 5, 6, 195, 197, 98, 327, 129, 358]
    lips = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146]
    lips += [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95]
    jaw = [152, 148, 176, 149, 150, 136, 172, 58, 377, 400, 378, 379, 365, 397, 288]
    assert within(eyes, m["eyelids"])
    assert within(brows, m["brows"])
    assert within(nose, m["nose"])
    assert within(lips, m["lips"] | m["mouth"])
    assert within(jaw, m["lower_face"])
    assert within(range(468, 478), m["eyeballs"])
    assert within(range(468), m["face"])
    # most landmarks are usable by the tracker (all their vertices in the track mask)
    assert m["track"][tris].all(1).sum() >= 400
    assert rig.meta["landmarks"]["on_track"] == int(m["track"][tris[:468]].all(1).sum())


def test_iris_landmarks(rig):
    v = rig.neutral
    for centre, eye in ((468, -1), (473, 1)):  # 468: the subject's right iris (-x), as MediaPipe's 33/133
        c = lm(rig, centre)
        assert np.sign(c[0]) == eye and abs(c[0] - lm(rig, 33 if eye < 0 else 263)[0]) < 0.02
        ring = np.array([lm(rig, centre + k) for k in range(1, 5)])
        d = ring - c
        assert (
            d[0, 0] > 0.004 and d[1, 1] > 0.004 and d[2, 0] < -0.004 and d[3, 1] < -0.004
        )  # +x, up, -x, down
        assert 0.010 < np.linalg.norm(ring[0] - ring[2]) < 0.013  # iris diameter ~11.7 mm
        eyeball = rig.masks["eyeballs"] & (np.sign(v[:, 0]) == eye)
        assert c[2] >= v[eyeball, 2].max() - 0.0005  # on the front of the cornea
    assert 0.058 < np.linalg.norm(lm(rig, 468) - lm(rig, 473)) < 0.072  # interpupillary distance


def test_landmarks_sit_on_ict_own_landmarks(rig):
    from facecap.facekit import IBUG68_TO_LANDMARK

    ict = np.asarray(rig.meta["ict_landmarks_ibug68"])
    d = np.array(
        [np.linalg.norm(lm(rig, LM[n]) - rig.neutral[ict[i]]) for i, n in IBUG68_TO_LANDMARK.items()]
    )
    assert math.sqrt(np.mean(d**2)) < 0.0005 and d.max() < 0.0015
    reg = rig.meta["landmarks"]
    assert reg["similarity_rms_m"] < 0.006 and reg["ibug_pairs_rms_m"] < 0.0005


def test_landmarks_agree_with_mediapipe_canonical_face(rig):
    from facecap.facekit import read_obj

    mp, _ = read_obj(shared_path("mediapipe_face_landmarker", "canonical_face_model.obj"))
    ours = rig.landmark_points()[:468].astype(np.float64)
    a, b = mp - mp.mean(0), ours - ours.mean(0)
    u, s, vt = np.linalg.svd(b.T @ a)
    r = u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt
    scale = s.sum() / np.square(a).sum()
    res = np.linalg.norm(scale * a @ r.T - b, axis=1)
    assert np.sqrt(np.mean(res**2)) < 0.006  # the canonical face's shape, after a similarity
    assert 0.9 < scale * 100 < 1.2  # the canonical face is in cm


# ------------------------------------------------------------------------------------------- sanity
def test_dimensions(rig):
    assert 0.060 < rig.meta["interpupillary_m"] < 0.070
    assert 0.043 < np.linalg.norm(lm(rig, 61) - lm(rig, 291)) < 0.058  # mouth width ~50 mm
    assert 0.10 < lm(rig, 168)[1] - lm(rig, 152)[1] < 0.13  # nasion to chin ~120 mm
    assert 0.024 < np.linalg.norm(lm(rig, 33) - lm(rig, 133)) < 0.034  # eye width ~30 mm
    assert lm(rig, 1)[2] == pytest.approx(
        rig.neutral[rig.masks["face"], 2].max(), abs=0.003
    )  # nose tip in front
    ext = rig.neutral[rig.masks["face"]].max(0) - rig.neutral[rig.masks["face"]].min(0)
    assert 0.16 < ext[0] < 0.21  # ear to ear


def test_jaw_open_drops_the_chin(rig):
    w = weights(jawOpen=1.0)
    d = lm(rig, 152, w) - lm(rig, 152)
    assert d[1] < -0.020 and np.linalg.norm(d) < 0.050
    assert abs(d[0]) < 1e-4
    assert np.linalg.norm(lm(rig, 13, w) - lm(rig, 14, w)) > 0.025  # the lips part
    assert np.linalg.norm(lm(rig, 168, w) - lm(rig, 168)) < 1e-3  # the upper face stays


@pytest.mark.parametrize(
    ("name", "upper", "lower"), [("eyeBlinkLeft", 386, 374), ("eyeBlinkRight", 159, 145)]
)
def test_blink_closes_the_lid(rig, name, upper, lower):
    w = weights(**{name: 1.0})
    travel = np.linalg.norm(lm(rig, upper, w) - lm(rig, upper))
    gap0 = np.linalg.norm(lm(rig, upper) - lm(rig, lower))
    gap1 = np.linalg.norm(lm(rig, upper, w) - lm(rig, lower, w))
    assert travel > 0.006 and gap0 > 0.008 and gap1 < 0.003
    other = lm(rig, 159 if upper == 386 else 386)
    assert np.linalg.norm(lm(rig, 159 if upper == 386 else 386, w) - other) < 1e-4  # one eye only


def test_eye_look_turns_the_eyeball(rig):
    v = rig.neutral.astype(np.float64)
    for name, eye, gaze in (("eyeLookInLeft", 1, -1), ("eyeLookOutLeft", 1, 1), ("eyeLookInRight", -1, 1)):
        sel = rig.masks["eyeballs"] & (np.sign(v[:, 0]) == eye)
        a, b = v[sel], v[sel] + rig.deltas[arkit.index(name)][sel]
        u, _, vt = np.linalg.svd((b - b.mean(0)).T @ (a - a.mean(0)))
        r = u @ vt
        assert math.degrees(math.acos((np.trace(r) - 1) / 2)) == pytest.approx(30.0, abs=0.1)
        assert np.sign((r @ [0, 0, 1.0])[0]) == gaze  # In = towards the nose
        other = rig.masks["eyeballs"] & ~sel
        assert not rig.deltas[arkit.index(name)][other].any()  # the other eye stays
    up = rig.deltas[arkit.index("eyeLookUpLeft")]
    eye = rig.masks["eyeballs"] & (v[:, 0] > 0)
    front = eye & (v[:, 2] > v[eye, 2].max() - 0.002)
    assert up[front, 1].mean() > 0.005


def test_tongue_out(rig):
    tg = rig.masks["tongue"]
    d = rig.deltas[arkit.index("tongueOut")]
    v = rig.neutral
    tip = np.flatnonzero(tg)[np.argmax(v[tg, 2])]
    assert 0.020 < d[tip, 2] < 0.030 and d[tip, 1] < 0  # forward ~2-3 cm and a little down
    root = tg & (v[:, 2] < np.percentile(v[tg, 2], 5))
    assert np.abs(d[root]).max() < 5e-4  # smooth falloff: the root stays
    assert (v[tip, 2] + d[tip, 2]) > lm(rig, 17)[2]  # out past the lower lip
    w = weights(jawOpen=0.5, tongueOut=1.0)
    assert rig.evaluate(w)[tip, 2] > lm(rig, 14, w)[2]  # with the mouth open too


def test_left_right_symmetry(rig):
    mir = rig.mirror
    assert (mir[mir] == np.arange(rig.n_vertices)).mean() > 0.999
    err = np.linalg.norm(rig.neutral[mir] * (-1, 1, 1) - rig.neutral, axis=1).max()
    assert err < 0.0005
    flip = np.array([-1.0, 1.0, 1.0], np.float32)
    for a, b in (("eyeBlinkLeft", "eyeBlinkRight"), ("mouthSmileLeft", "mouthSmileRight")):
        dl, dr = rig.deltas[arkit.index(a)], rig.deltas[arkit.index(b)]
        assert np.abs(dl[mir] * flip - dr).max() < 0.002  # ICT's pairs are near mirror images
    assert rig.deltas[arkit.index("jawLeft")][rig.landmark_tris[152, 0], 0] > 0.003  # Left = subject's left


def test_colors_are_readable(rig):
    c = rig.colors.astype(float)
    m = rig.masks
    skin = np.median(c[m["track"] & ~m["lips"] & ~m["brows"]], axis=0)
    lips = c[m["lips"] & (rig.neutral[:, 2] > lm(rig, 14)[2])].mean(0)
    assert lips[0] - lips[1] > skin[0] - skin[1] + 20  # redder
    assert np.percentile(c[m["brows"]].sum(1), 10) < 0.6 * skin.sum()  # dark brows
    eye = c[m["eyeballs"]].sum(1)
    assert eye.max() > 650 and eye.min() < 60  # white sclera, black pupil
    at = np.einsum("lk,lkc->lc", rig.landmark_bary, c[rig.landmark_tris]).sum(1)
    assert (at[[468, 473]] < 200).all()  # pupils
    assert (at[469:473] < 0.6 * eye.max()).all() and (at[474:478] < 0.6 * eye.max()).all()  # dark iris rim


# ------------------------------------------------------------------------------------------- tracking
def test_mask_model_builds_and_a_synthetic_face_tracks(rig):
    from facecap import Tracker, TrackerConfig
    from facecap.fit import MaskModel
    from facecap.synth import SyntheticActor

    model = MaskModel.from_rig(rig)
    assert len(model.index) == rig.masks["track"].sum() and len(model.sample) > 1500
    actor = SyntheticActor(rig, camera="d415", distance=0.6, seed=0)
    w = weights(jawOpen=0.5, mouthSmileLeft=0.6, mouthSmileRight=0.6)
    tr = Tracker(rig=rig, intrinsics=actor.intrinsics, config=TrackerConfig.for_camera("d415"))
    for i in range(4):
        s = tr.track(actor.render(w, index=i))
    assert s.tracked and s.rms_mm < 2.0
    r0, t0 = actor.frontal_pose
    assert np.linalg.norm(s.translation - t0) < 0.003
    assert abs(s.weights[arkit.index("jawOpen")] - 0.5) < 0.1
    assert abs(s.weights[arkit.index("mouthSmileLeft")] - 0.6) < 0.2


def test_full_face_is_what_the_camera_sees():
    """The measurement behind PARTS: the ring outside ICT's narrow face is a large share of the head."""
    from facecap import pose
    from facecap.facekit import load_ict_facekit
    from facecap.synth.camera import CAMERAS
    from facecap.synth.render import render_rig

    src = load_ict_facekit(shared_path("ict_facekit"))
    cls = np.full(src.n_vertices, -1)
    cls[:6706], cls[6706:9409], cls[9409:11248], cls[11248:24591] = 0, 1, 2, 3
    tris = src.triangles[(cls[src.triangles] >= 0).all(1)]
    tcls = cls[tris].max(1)
    counts = np.zeros(4)
    for yaw in (0, 20, 40):
        for pitch in (-15, 0, 15):
            r = pose.from_euler(math.radians(yaw), math.radians(pitch), 0.0)
            k = CAMERAS["d415"].intrinsics
            res = render_rig(src, np.zeros(52, np.float32), r, np.array([0, 0, 0.6]), k, triangles=tris)
            counts += np.bincount(tcls[res.triangle[res.triangle >= 0]], minlength=4)
    share = counts / counts.sum()
    assert share[1] > 0.2 and share[0] < 0.5  # narrow face ~46 %, the rest of the full face ~25 %


# ------------------------------------------------------------------------------------------- the build
def test_the_source_shapes_are_ict_own(rig):
    from facecap.facekit import load_ict_facekit

    src = load_ict_facekit(shared_path("ict_facekit"))
    kept = np.concatenate([np.arange(a, a + n) for _, a, n in rig.meta["ict_index_ranges"]])
    np.testing.assert_array_equal(rig.neutral, src.neutral[kept])
    own = [i for i, n in enumerate(arkit.ARKIT_NAMES) if not n.startswith("eyeLook") and n != "tongueOut"]
    np.testing.assert_array_equal(rig.deltas[own], src.deltas[own][:, kept])
    face = rig.masks["face"]
    for n in arkit.ARKIT_NAMES:
        if n.startswith("eyeLook"):  # ICT's lid motion kept, the eyeball turn added
            np.testing.assert_array_equal(
                rig.deltas[arkit.index(n)][face], src.deltas[arkit.index(n)][kept][face]
            )


def test_shipped_rig_matches_a_fresh_build(builder, rig, fresh):
    assert builder.compare_rigs(fresh, rig) == []


@pytest.mark.slow
def test_two_builds_give_the_same_bytes(builder, tmp_path):
    shared_path("ict_facekit")
    a, b = tmp_path / "a" / "ict_rig.npz", tmp_path / "b" / "ict_rig.npz"
    assert builder.main(["--out", str(a)]) == 0
    assert builder.main(["--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes() == ICT_RIG.read_bytes()
    assert (a.parent / LICENSE.name).read_bytes() == LICENSE.read_bytes()


@pytest.mark.slow
def test_check_passes_with_other_simd_and_blas_kernels():
    shared_path("ict_facekit")
    r = check_on_other_numeric_stack("build_ict_rig")
    assert r.returncode == 0, r.stderr
    assert "matches a fresh build" in r.stdout


@pytest.mark.slow
def test_check_command_detects_a_stale_file(builder, rig, tmp_path, capsys):
    shared_path("ict_facekit")
    good = tmp_path / "ict_rig.npz"
    shutil.copy(ICT_RIG, good)
    shutil.copy(LICENSE, tmp_path / LICENSE.name)
    assert builder.main(["--check", "--out", str(good)]) == 0
    stale = Rig.load(good)
    stale.deltas[arkit.index("tongueOut")] *= 1.01
    stale.save(good)
    assert builder.main(["--check", "--out", str(good)]) == 1
    assert "deltas" in capsys.readouterr().err
    shutil.copy(ICT_RIG, good)
    (tmp_path / LICENSE.name).unlink()
    assert builder.main(["--check", "--out", str(good)]) == 1
    assert builder.main(["--check", "--out", str(tmp_path / "missing.npz")]) == 1


def _ulp_noise(fn, rng):
    """``fn`` with its float outputs moved by -1, 0 or +1 ulp at random (another BLAS/LAPACK kernel)."""

    def noisy(*args, **kwargs):
        out = fn(*args, **kwargs)
        parts = out if isinstance(out, tuple) else (out,)
        moved = []
        for x in parts:
            a = np.asarray(x)
            if a.dtype.kind == "f":
                step = rng.integers(-1, 2, a.shape) * (a != 0)
                a = np.where(step == 0, a, np.nextafter(a, np.where(step > 0, np.inf, -np.inf)))
            moved.append(a if isinstance(x, np.ndarray) else a[()])
        return tuple(moved) if isinstance(out, tuple) else moved[0]

    return noisy


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_build_does_not_depend_on_last_bit_rounding(fresh, seed, monkeypatch):
    mod = load_script("build_ict_rig")
    rng = np.random.default_rng(seed)
    linalg = types.SimpleNamespace(
        **{k: getattr(np.linalg, k) for k in dir(np.linalg) if not k.startswith("_")}
    )
    for k in ("solve", "svd", "lstsq"):
        setattr(linalg, k, _ulp_noise(getattr(np.linalg, k), rng))
    ns = types.ModuleType("noisy_numpy")
    ns.__dict__.update(np.__dict__)
    ns.linalg = linalg
    ns.einsum = _ulp_noise(np.einsum, rng)
    fake_math = types.SimpleNamespace(**{k: getattr(math, k) for k in dir(math) if not k.startswith("_")})
    fake_math.cos = lambda x: math.nextafter(math.cos(x), math.inf)
    fake_math.sin = lambda x: math.nextafter(math.sin(x), -math.inf)
    monkeypatch.setattr(mod, "np", ns)
    monkeypatch.setattr(mod, "math", fake_math)
    # floats within compare_rigs' tolerance; triangles, landmarks, masks, colors, meta exactly
    assert mod.compare_rigs(mod.build_ict_rig(), fresh) == []


# ------------------------------------------------------------------------------------------- helpers
def test_closest_point_on_triangles_matches_brute_force(builder):
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(size=(200, 3)) for _ in range(3))
    q = rng.normal(size=(200, 3)) * 2
    bary = builder._closest_on_triangles(q, a, b, c)
    assert (bary >= 0).all() and np.allclose(bary.sum(1), 1)
    got = np.linalg.norm(bary[:, :1] * a + bary[:, 1:2] * b + bary[:, 2:] * c - q, axis=1)
    s, t = np.meshgrid(np.linspace(0, 1, 201), np.linspace(0, 1, 201))
    s, t = s[s + t <= 1], t[s + t <= 1]
    pts = a[:, None] + s[None, :, None] * (b - a)[:, None] + t[None, :, None] * (c - a)[:, None]
    ref = np.linalg.norm(pts - q[:, None], axis=2).min(1)
    assert (got <= ref + 1e-12).all() and (ref - got < 0.02 * np.linalg.norm(b - a, axis=1)).all()
    # on an edge or a vertex: exact zeros
    corners = (np.array([p, p]) for p in ([0, 0, 0.0], [1, 0, 0.0], [0, 1, 0.0]))
    e = builder._closest_on_triangles(np.array([[0.5, -1.0, 0.0], [-1.0, -1.0, 0.0]]), *corners)
    np.testing.assert_array_equal(e, [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])


def test_landmarks_on_edges_are_canonical(builder):
    assert builder._canonical_landmark([7, 3, 5], [0.25, 0.0, 0.75], "t") == ((5, 7, 7), (0.75, 0.25, 0.0))
    assert builder._canonical_landmark([7, 3, 5], [0.0, 1.0, 0.0], "t") == ((3, 3, 3), (1.0, 0.0, 0.0))
    with pytest.raises(RuntimeError, match="rounding"):
        builder._canonical_landmark([7, 3, 5], [0.5 - 1e-8, 0.5, 1e-8], "t")


def test_a_tie_fails_the_build(builder):
    with pytest.raises(RuntimeError, match="threshold"):
        builder._require_margin("test", [0.3, 1.0 + 1e-9], 1.0)
    builder._require_margin("test", [0.3, 1.0], 1.0, exact_ok=True)
    assert builder._round(0.123, 2, "t") == 0.12
    with pytest.raises(RuntimeError):
        builder._round(0.125, 2, "t")


def test_save_gives_the_same_bytes(rig, tmp_path):
    a = rig.save(tmp_path / "a.npz")
    time.sleep(2.1)  # a zip timestamp has 2 s resolution: a wall-clock stamp would differ
    b = rig.save(tmp_path / "b.npz")
    assert a.read_bytes() == b.read_bytes()
    back = Rig.load(a)
    np.testing.assert_array_equal(back.deltas, rig.deltas)
    assert back.meta == rig.meta and back.masks.keys() == rig.masks.keys()


def test_builder_is_a_script_with_help(builder, capsys):
    with pytest.raises(SystemExit) as e:
        builder.main(["--help"])
    assert e.value.code == 0
    assert "--check" in capsys.readouterr().out
