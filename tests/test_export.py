"""Take export: every format read back with its own library; real Live Link takes round-trip identically."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import LIVELINK_TAKES, shared_path
from scipy.spatial.transform import Rotation
from test_take import synthetic_states

from facecap import arkit, livelink
from facecap.cli import main
from facecap.export import (
    CSV_COLUMNS,
    FORMATS,
    default_out_path,
    export_take,
    held_indices,
    infer_format,
    world_pose,
)
from facecap.pose import FRONTAL, head_euler
from facecap.rig import Rig
from facecap.take import Take, TakeRecorder, load_take, take_from_livelink_csv


def small_rig(n: int = 8, seed: int = 0) -> Rig:
    """A curved n x n grid face; each shape moves a random patch (tongueOut moves nothing)."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-0.07, 0.07, n), np.linspace(-0.09, 0.09, n))
    v = np.stack([x, y, 0.08 - 3 * (x**2 + y**2)], -1).reshape(-1, 3).astype(np.float32)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tris = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    deltas = np.zeros((52, n * n, 3), np.float32)
    for k in range(51):
        moved = rng.choice(n * n, size=rng.integers(3, 12), replace=False)
        deltas[k, moved] = rng.normal(0, 0.004, (len(moved), 3))
    mirror = idx[:, ::-1].ravel()
    colors = rng.integers(0, 255, (n * n, 3), dtype=np.uint8)
    no_lm = dict(landmark_ids=np.zeros(0), landmark_tris=np.zeros((0, 3)), landmark_bary=np.zeros((0, 3)))
    masks = {"track": np.ones(n * n, bool)}
    return Rig(
        neutral=v,
        triangles=tris,
        deltas=deltas,
        masks=masks,
        mirror=mirror,
        colors=colors,
        name="grid",
        **no_lm,
    )


@pytest.fixture(scope="module")
def rig() -> Rig:
    return small_rig()


@pytest.fixture(scope="module")
def take(tmp_path_factory) -> Take:
    """A recorded 90-frame take at 30 fps, frames 0-2 and every 11th frame lost."""
    states = synthetic_states(90, fps=30, seed=3, lost_every=11)
    for s in states[:3]:
        s.tracked = False
    p = tmp_path_factory.mktemp("takes") / "take1"
    with TakeRecorder(p, fps=30, start_timecode="09:59:59:20", meta={"slate": "A"}) as rec:
        for s in states:
            rec.write(s)
    return load_take(p)


def _held(take: Take):
    idx = held_indices(take.tracked)
    return idx, take.weights[idx], *world_pose(take.rotations[idx], take.translations[idx])


# ----------------------------------------------------------------------------------------- format choice
def test_format_from_suffix_and_errors(tmp_path, take):
    assert infer_format("a.livelink.csv") == "livelink-csv"
    assert (
        infer_format("a.CSV") == "csv"
        and infer_format("x/y.usda") == "usda"
        and infer_format("a.glb") == "glb"
    )
    assert infer_format("a.ndjson") == "jsonl" and infer_format("a.usd") == "usd"
    with pytest.raises(ValueError, match="cannot tell"):
        infer_format("a.fbx")
    with pytest.raises(ValueError, match="unknown export format"):
        export_take(take, tmp_path / "a.fbx", "fbx")
    with pytest.raises(ValueError, match="writes .glb"):
        export_take(take, tmp_path / "a.usda", "glb")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_take(take, tmp_path / "nope" / "a.csv")
    assert default_out_path(tmp_path / "take1", "livelink-csv") == tmp_path / "take1.livelink.csv"
    assert default_out_path(tmp_path / "take1", "usda") == tmp_path / "take1.usda"
    assert set(FORMATS) == {"livelink-csv", "glb", "gltf", "usd", "usda", "usdc", "csv", "json", "jsonl"}


def test_world_pose_makes_a_frontal_face_identity():
    r, t = world_pose(FRONTAL[None], np.array([[0.0, 0.0, 0.6]]))
    np.testing.assert_allclose(r[0], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(t[0], [0, 0, -0.6])
    assert held_indices(np.array([False, True, False, False, True])).tolist() == [1, 1, 1, 1, 4]
    with pytest.raises(ValueError, match="no tracked frame"):
        held_indices(np.zeros(3, bool))


# ----------------------------------------------------------------------------------------- Live Link CSV
def test_livelink_csv_export_reads_back(tmp_path, take):
    out = export_take(take, tmp_path / "t.csv", "livelink-csv")
    lines = out.read_text().splitlines()
    assert lines[0] == ",".join(livelink.LIVELINK_COLUMNS)
    ll = livelink.read_csv(out)
    assert ll.n_frames == len(take)
    np.testing.assert_array_equal(ll.tracked, take.tracked)
    tr = take.tracked
    for i in np.flatnonzero(~tr):
        assert lines[1 + i].endswith(",0") and lines[1 + i].count(",") == 1  # face-lost rows like the app
    np.testing.assert_allclose(ll.weights[tr], take.weights[tr], atol=5e-11)
    # Live Link's convention: facecap's yaw and roll negated, pitch kept (head and eyes)
    np.testing.assert_allclose(ll.head[tr], take.head_euler()[tr] * [-1, 1, -1], atol=5e-11)
    np.testing.assert_allclose(ll.eyes[tr].reshape(-1, 2, 3)[:, :, :2], take.gaze[tr] * [-1, 1], atol=5e-11)
    np.testing.assert_allclose(ll.eyes[tr].reshape(-1, 2, 3)[:, :, 2], 0.0)
    # timecodes: Live Link's 60 fps rate with sub-frames, starting at the take's start
    assert ll.timecodes[0] == "09:59:59:40.000" and ll.timecode_fps == 60
    np.testing.assert_allclose(ll.timestamps, take.timestamps - take.timestamps[0], atol=1e-6)
    assert ll.fps == 30.0


@pytest.mark.parametrize("name", LIVELINK_TAKES)
def test_real_livelink_takes_import_and_reexport_identically(tmp_path, name):
    src = shared_path("arkit_blendshape_takes", name)
    take = take_from_livelink_csv(src)
    ll = livelink.read_csv(src)
    assert len(take) == ll.n_frames and take.fps == ll.fps
    np.testing.assert_array_equal(take.tracked, ll.tracked)
    np.testing.assert_array_equal(take.weights[ll.tracked], ll.weights[ll.tracked].astype(np.float32))
    assert (take.weights[~ll.tracked] == 0).all()
    out = export_take(take, tmp_path / "re.livelink.csv")
    assert out.read_bytes() == src.read_bytes()  # same columns, values, face-lost rows, timecodes


def test_livelink_import_recomputes_angles_after_an_edit(tmp_path):
    src = shared_path("arkit_blendshape_takes", "livelinkface_MySlate_3_JMTechArt.csv")
    take = take_from_livelink_csv(src)
    from facecap.pose import from_euler

    take.rotations[10] = from_euler(0.25, -0.1, 0.05)  # an edit wins over the kept raw columns
    ll = livelink.read_csv(export_take(take, tmp_path / "e.livelink.csv"))
    np.testing.assert_allclose(ll.head[10], [-0.25, -0.1, -0.05], atol=1e-9)  # Live Link: yaw, roll negated
    np.testing.assert_allclose(ll.head[11], livelink.read_csv(src).head[11], atol=0)


def test_livelink_csv_signs_head_and_eyes_toward_the_subjects_right(tmp_path):
    """A head turned toward the subject's right and eyes looking there: HeadYaw > 0 and LeftEyeYaw > 0 in
    the file (read as text, not through facecap's reader), roll negated, pitch kept; re-import restores
    facecap's own angles."""
    from facecap.pose import from_euler
    from facecap.state import FaceState
    from facecap.tracker import gaze_from_weights

    w = np.zeros(52, np.float32)
    w[arkit.INDEX["eyeLookInLeft"]] = w[arkit.INDEX["eyeLookOutRight"]] = 0.5  # toward the subject's right
    gaze = gaze_from_weights(w)
    assert (gaze[:, 0] < 0).all()  # facecap: yaw > 0 is toward the subject's left
    r = from_euler(-0.3, 0.1, 0.2)
    assert (r @ [0, 0, 1.0])[0] < -0.2  # the nose points to image left = the subject's right
    states = [FaceState(timestamp=i / 30, weights=w, rotation=r, translation=np.array([0, 0, 0.6]),
                        tracked=True, quality=1.0, gaze=gaze, index=i) for i in range(3)]  # fmt: skip
    take = Take.from_states(states, fps=30)
    out = export_take(take, tmp_path / "signs.livelink.csv")
    rows = list(csv.DictReader(out.read_text().splitlines()))
    for row in rows:
        v = {k: float(x) for k, x in row.items() if k not in ("Timecode", "BlendShapeCount")}
        assert v["HeadYaw"] == pytest.approx(0.3, abs=1e-9) and v["HeadPitch"] == pytest.approx(0.1, abs=1e-9)
        assert v["HeadRoll"] == pytest.approx(-0.2, abs=1e-9)
        assert v["LeftEyeYaw"] > 0.1 and v["RightEyeYaw"] > 0.1
        assert v["LeftEyeYaw"] == pytest.approx(-float(gaze[0, 0]), abs=1e-7)
        assert v["LeftEyePitch"] == pytest.approx(float(gaze[0, 1]), abs=1e-7)
    back = take_from_livelink_csv(out)
    np.testing.assert_allclose(back.rotations[0], r, atol=1e-9)
    np.testing.assert_allclose(back.gaze[0], gaze, atol=1e-7)


# ----------------------------------------------------------------------------------------- glTF
def _accessor(g, blob: bytes, index: int) -> np.ndarray:
    import pygltflib as gl

    acc = g.accessors[index]
    view = g.bufferViews[acc.bufferView]
    ncomp = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[acc.type]
    assert acc.componentType == gl.FLOAT
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    return np.frombuffer(blob, "<f4", count=acc.count * ncomp, offset=start).reshape(acc.count, ncomp)


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_gltf_export_reads_back_with_pygltflib(tmp_path, take, rig, suffix):
    import pygltflib as gl

    out = export_take(take, tmp_path / f"t{suffix}", rig=rig)
    g = gl.GLTF2().load(str(out))
    blob = g.binary_blob() if suffix == ".glb" else g.get_data_from_buffer_uri(g.buffers[0].uri)
    assert g.meshes[0].extras["targetNames"] == list(arkit.ARKIT_NAMES)
    (anim,) = g.animations
    chans = {c.target.path: anim.samplers[c.sampler] for c in anim.channels}
    assert set(chans) == {"weights", "rotation", "translation"}
    _, w, r, t = _held(take)
    times = _accessor(g, blob, chans["weights"].input)[:, 0]
    np.testing.assert_allclose(times, np.arange(len(take)) / 30, atol=1e-6)
    got_w = _accessor(g, blob, chans["weights"].output).reshape(len(take), 52)
    np.testing.assert_array_equal(got_w, w)
    q = _accessor(g, blob, chans["rotation"].output)
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), r, atol=1e-6)
    np.testing.assert_allclose(_accessor(g, blob, chans["translation"].output), t, atol=1e-6)
    neutral = _accessor(g, blob, g.meshes[0].primitives[0].attributes.POSITION)
    np.testing.assert_array_equal(neutral, rig.neutral)


def test_animation_exports_refuse_a_take_without_tracked_frames(tmp_path, rig):
    states = synthetic_states(5)
    for s in states:
        s.tracked = False
    t = Take.from_states(states, 60)
    with pytest.raises(ValueError, match="no tracked frame"):
        export_take(t, tmp_path / "x.glb", rig=rig)
    with pytest.raises(ValueError, match="no tracked frame"):
        export_take(t, tmp_path / "x.usda", rig=rig)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------- USD
@pytest.mark.parametrize("suffix", [".usda", ".usdc"])
def test_usd_export_reads_back_with_pxr(tmp_path, take, rig, suffix):
    from pxr import Gf, Usd, UsdGeom, UsdSkel

    out = export_take(take, tmp_path / f"t{suffix}", rig=rig)
    stage = Usd.Stage.Open(str(out))
    assert stage.GetTimeCodesPerSecond() == 30.0 and UsdGeom.GetStageUpAxis(stage) == "Y"
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetStartTimeCode() == 0 and stage.GetEndTimeCode() == len(take) - 1
    anim = UsdSkel.Animation(stage.GetPrimAtPath("/Face/Skel/Anim"))
    assert list(anim.GetBlendShapesAttr().Get()) == list(arkit.ARKIT_NAMES)
    _, w, r, t = _held(take)
    wa = anim.GetBlendShapeWeightsAttr()
    assert wa.GetTimeSamples() == list(range(len(take)))
    for i in (0, 3, 11, len(take) - 1):
        np.testing.assert_array_equal(np.array(wa.Get(i), np.float32), w[i])
    mesh = stage.GetPrimAtPath("/Face/Mesh")
    binding = UsdSkel.BindingAPI(mesh)
    assert list(binding.GetBlendShapesAttr().Get()) == list(arkit.ARKIT_NAMES)
    assert binding.GetSkeletonRel().GetTargets() == ["/Face/Skel"]
    for k in (0, 7, 51):
        bs = UsdSkel.BlendShape(stage.GetPrimAtPath(binding.GetBlendShapeTargetsRel().GetTargets()[k]))
        idx = np.array(bs.GetPointIndicesAttr().Get())
        dense = np.zeros_like(rig.deltas[k])
        dense[idx] = np.array(bs.GetOffsetsAttr().Get())
        np.testing.assert_array_equal(dense, rig.deltas[k])
        if k < 51:  # sparse: exactly the vertices that move
            assert set(idx.tolist()) == set(np.flatnonzero(np.abs(rig.deltas[k]).max(1) > 0).tolist())
    # USD's own validators (stage metadata, SkelBindingAPI applied and valid, ...) find nothing
    from pxr import UsdValidation

    validators = UsdValidation.ValidationRegistry().GetOrLoadAllValidators()
    errors = UsdValidation.ValidationContext(validators).Validate(stage)
    assert not errors, [e.GetMessage() for e in errors]
    # the binding resolves: UsdSkel bakes the skinned, blended mesh where we expect it
    cache = UsdSkel.Cache()
    root = UsdSkel.Root(stage.GetPrimAtPath("/Face"))
    cache.Populate(root, Usd.PrimDefaultPredicate)
    assert cache.GetSkinningQuery(mesh).HasBlendShapes()
    assert UsdSkel.BakeSkinning(root, Gf.Interval(0, len(take) - 1))
    geom = UsdGeom.Mesh(mesh)
    for i in (0, 12, len(take) - 1):
        pts = np.array(geom.GetPointsAttr().Get(i), np.float64)
        m = np.array(geom.ComputeLocalToWorldTransform(i))  # rigid skinning bakes into the xform
        world = pts @ m[:3, :3] + m[3, :3]
        expect = rig.evaluate(w[i]).astype(np.float64) @ r[i].T + t[i]
        np.testing.assert_allclose(world, expect, atol=2e-6)


def test_usd_export_keeps_gaps_in_time(tmp_path, rig):
    from facecap.usd import read_usd

    states = synthetic_states(10, fps=30)
    states = states[:4] + states[7:]
    t = Take.from_states(states, 30)
    r = read_usd(export_take(t, tmp_path / "g.usd", rig=rig))
    assert r["time_codes"].tolist() == [0, 1, 2, 3, 7, 8, 9]
    np.testing.assert_array_equal(r["weights"], t.weights)
    np.testing.assert_allclose(r["deltas"], rig.deltas, atol=1e-7)
    assert r["fps"] == 30.0 and r["up_axis"] == "Y"


# ----------------------------------------------------------------------------------------- csv / json
def test_plain_csv_export_reads_back_exactly(tmp_path, take):
    out = export_take(take, tmp_path / "t.csv")
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = rows[1:]
    assert len(body) == len(take)
    col = {c: i for i, c in enumerate(CSV_COLUMNS)}
    num = np.array([[float(x) for i, x in enumerate(r) if i != col["timecode"]] for r in body])
    c = {k: (v if v < col["timecode"] else v - 1) for k, v in col.items()}
    assert [r[col["timecode"]] for r in body] == take.timecodes
    np.testing.assert_array_equal(num[:, c["frame"]], take.indices)
    np.testing.assert_array_equal(num[:, c["tracked"]].astype(bool), take.tracked)
    np.testing.assert_array_equal(num[:, c["time"]], take.timestamps - take.timestamps[0])
    w = num[:, c["browDownLeft"] : c["tongueOut"] + 1].astype(np.float32)
    np.testing.assert_array_equal(w, take.weights)  # 9 significant digits: float32 exact
    q = num[:, c["qx"] : c["qw"] + 1]
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), take.rotations, atol=1e-12)
    np.testing.assert_array_equal(num[:, c["tx"] : c["tz"] + 1], take.translations)
    eul = num[:, c["head_yaw"] : c["head_roll"] + 1]
    np.testing.assert_allclose(eul, [head_euler(r) for r in take.rotations], atol=1e-15)
    gaze = num[:, c["left_eye_yaw"] : c["right_eye_pitch"] + 1].astype(np.float32).reshape(-1, 2, 2)
    np.testing.assert_array_equal(gaze, take.gaze)
    np.testing.assert_array_equal(num[:, c["rms_mm"]].astype(np.float32), take.rms_mm)  # nan == nan here


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_exports_read_back_exactly(tmp_path, take, suffix):
    out = export_take(take, tmp_path / f"t{suffix}")
    text = out.read_text()
    if suffix == ".json":
        doc = json.loads(text)
        head, frames = doc, doc["frames"]
        assert head["format"] == "facecap-take-json"
    else:
        lines = [json.loads(ln) for ln in text.splitlines()]
        head, frames = lines[0], lines[1:]
        assert head["format"] == "facecap-take-jsonl" and "frames" not in head
    assert (
        head["fps"] == 30.0
        and head["n_frames"] == len(take)
        and head["blendshapes"] == list(arkit.ARKIT_NAMES)
    )
    assert head["meta"]["user"] == {"slate": "A"}
    assert len(frames) == len(take)
    np.testing.assert_array_equal(np.array([f["weights"] for f in frames], np.float32), take.weights)
    np.testing.assert_array_equal(np.array([f["rotation"] for f in frames]), take.rotations)
    np.testing.assert_array_equal(np.array([f["translation"] for f in frames]), take.translations)
    np.testing.assert_array_equal(np.array([f["gaze"] for f in frames], np.float32), take.gaze)
    assert [f["tracked"] for f in frames] == take.tracked.tolist()
    assert [f["timecode"] for f in frames] == take.timecodes
    assert frames[10]["rms_mm"] is None and frames[5]["rms_mm"] == pytest.approx(float(take.rms_mm[5]))
    np.testing.assert_allclose(np.array([f["head_euler"] for f in frames]), take.head_euler(), atol=1e-15)


# ----------------------------------------------------------------------------------------- CLI
def test_cli_export_and_take_info(tmp_path, take, capsys):
    p = tmp_path / "cli_take"
    with TakeRecorder(p, fps=30, start_timecode="01:00:00:00") as rec:
        for s in synthetic_states(45, fps=30, lost_every=5):
            rec.write(s)
    assert main(["take", "info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "45 at 30 fps" in out and "01:00:00:00 -> 01:00:01:14" in out and "36 frames (80.0 %)" in out
    assert main(["take", "info", str(p), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 45 and info["meta"]["complete"] is True
    assert main(["export", str(p), "--format", "livelink-csv"]) == 0
    assert livelink.read_csv(tmp_path / "cli_take.livelink.csv").n_frames == 45
    assert main(["export", str(p), "--out", str(tmp_path / "x.jsonl")]) == 0
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 46
    assert main(["export", str(p)]) == 2  # neither --format nor --out: a clear error
    assert "give --format" in capsys.readouterr().err
    assert main(["take", "info", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_lost_frames_holding_nan_export_everywhere(tmp_path, rig):
    states = synthetic_states(20, fps=60, lost_every=4)
    for s in states:
        if not s.tracked:  # a tracker may leave garbage in lost frames
            s.weights = np.full(52, np.nan, np.float32)
            s.rotation = np.full((3, 3), np.nan)
            s.translation = np.full(3, np.nan)
    t = Take.from_states(states, 60)
    for name in ("a.livelink.csv", "a.csv", "a.json", "a.jsonl", "a.glb", "a.usda"):
        export_take(t, tmp_path / name, rig=rig)
    ll = livelink.read_csv(tmp_path / "a.livelink.csv")
    np.testing.assert_array_equal(ll.tracked, t.tracked)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["frames"][3]["weights"][0] is None and doc["frames"][3]["rotation"][0][0] is None
    from facecap.usd import read_usd

    np.testing.assert_array_equal(read_usd(tmp_path / "a.usda")["weights"][3], t.weights[2])  # held
