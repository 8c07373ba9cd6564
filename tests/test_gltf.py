"""glTF 2.0 export/import of rigs and morph-weight animations."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pygltflib as gl
import pytest
from conftest import shared_path
from scipy.spatial.transform import Rotation

from facecap import arkit
from facecap.formats import load_rig
from facecap.gltf import export_animation, export_rig, import_rig, linear_to_srgb8, srgb_to_linear
from facecap.rig import DEFAULT_RIG_PATH, Rig, mirror_map


def grid_rig(n: int = 16, seed: int = 0) -> Rig:
    """A symmetric bumpy grid (n x (n+2) vertices) with one localized random delta per shape."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-0.07, 0.07, n), np.linspace(-0.09, 0.09, n + 2))
    z = 0.03 * np.exp(-(x**2 + y**2) / 0.004)
    v = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)
    idx = np.arange(len(v)).reshape(n + 2, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    deltas = np.zeros((52, len(v), 3), np.float32)
    for k in range(52):
        centre = v[rng.integers(len(v))]
        w = np.exp(-((v - centre) ** 2).sum(1) / 0.0004)
        deltas[k] = w[:, None] * rng.normal(0, 0.005, 3)
    bary = rng.dirichlet(np.ones(3), 5).astype(np.float32)
    bary[:, 0] = 1 - bary[:, 1] - bary[:, 2]
    return Rig(
        neutral=v, triangles=tris, deltas=deltas,
        landmark_ids=np.array([33, 263, 1, 61, 291]), landmark_tris=rng.integers(0, len(v), (5, 3)),
        landmark_bary=bary, masks={"track": v[:, 2] > 0.005, "eyes": rng.random(len(v)) > 0.5},
        mirror=mirror_map(v), colors=rng.integers(0, 256, (len(v), 3)).astype(np.uint8), name="grid",
        meta={"source": "test", "empty": [], "none": None, "blank": "", "nested": {"x": 1.5, "l": [1, 2]}},
    )  # fmt: skip


@pytest.fixture(scope="module")
def rig() -> Rig:
    return grid_rig()


def _blob(g: gl.GLTF2, path) -> bytes:
    return g.binary_blob() if g.buffers[0].uri is None else g.get_data_from_buffer_uri(g.buffers[0].uri)


def _read(g: gl.GLTF2, blob: bytes, i: int) -> np.ndarray:
    a = g.accessors[i]
    bv = g.bufferViews[a.bufferView]
    dt = {gl.FLOAT: "<f4", gl.UNSIGNED_INT: "<u4", gl.UNSIGNED_BYTE: "u1"}[a.componentType]
    n = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}[a.type]
    return np.frombuffer(blob, dt, a.count * n, bv.byteOffset + a.byteOffset).reshape(a.count, n)


def assert_same_rig(a: Rig, b: Rig) -> None:
    assert a.neutral.tobytes() == b.neutral.tobytes()
    assert a.deltas.tobytes() == b.deltas.tobytes()
    np.testing.assert_array_equal(a.triangles, b.triangles)
    np.testing.assert_array_equal(a.landmark_ids, b.landmark_ids)
    np.testing.assert_array_equal(a.landmark_tris, b.landmark_tris)
    assert a.landmark_bary.tobytes() == b.landmark_bary.tobytes()
    assert a.masks.keys() == b.masks.keys()
    for k in a.masks:
        np.testing.assert_array_equal(a.masks[k], b.masks[k])
    np.testing.assert_array_equal(a.mirror, b.mirror)
    if a.colors is None:
        assert b.colors is None
    else:
        np.testing.assert_array_equal(a.colors, b.colors)
    assert (a.name, a.meta) == (b.name, b.meta)


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_export_is_a_valid_morph_target_mesh(rig, tmp_path, suffix):
    path = export_rig(rig, tmp_path / f"face{suffix}")
    g = gl.GLTF2.load(str(path))
    blob = _blob(g, path)
    assert len(g.meshes) == 1 and len(g.meshes[0].primitives) == 1
    mesh = g.meshes[0]
    prim = mesh.primitives[0]
    assert mesh.extras["targetNames"] == list(arkit.ARKIT_NAMES)
    assert mesh.weights == [0.0] * 52
    assert len(prim.targets) == 52
    pos = g.accessors[prim.attributes.POSITION]
    assert pos.componentType == gl.FLOAT and pos.type == "VEC3" and pos.count == rig.n_vertices
    np.testing.assert_array_equal(pos.min, rig.neutral.min(0))
    np.testing.assert_array_equal(pos.max, rig.neutral.max(0))
    np.testing.assert_array_equal(_read(g, blob, prim.attributes.POSITION), rig.neutral)
    np.testing.assert_array_equal(_read(g, blob, prim.indices).reshape(-1, 3), rig.triangles)
    normals = _read(g, blob, prim.attributes.NORMAL)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-5)
    for k, t in enumerate(prim.targets):
        acc = g.accessors[t["POSITION"]]
        d = _read(g, blob, t["POSITION"])
        np.testing.assert_array_equal(d, rig.deltas[k])
        np.testing.assert_array_equal(acc.min, d.min(0))
        np.testing.assert_array_equal(acc.max, d.max(0))
    for i, bv in enumerate(g.bufferViews):  # spec: 4-byte alignment, strides only on vertex attributes
        assert bv.byteOffset % 4 == 0, i
        if bv.target == gl.ARRAY_BUFFER:
            assert bv.byteStride == 12
        else:
            assert bv.byteStride is None
    assert g.bufferViews[g.accessors[prim.indices].bufferView].target == gl.ELEMENT_ARRAY_BUFFER
    assert g.nodes[g.scenes[g.scene].nodes[0]].mesh == 0
    if suffix == ".gltf":
        assert g.buffers[0].uri.startswith("data:application/octet-stream;base64,")
        assert not list(tmp_path.glob("*.bin"))


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_trimesh_reads_positions_faces_and_names(rig, tmp_path, suffix):
    trimesh = pytest.importorskip("trimesh")
    path = export_rig(rig, tmp_path / f"face{suffix}")
    scene = trimesh.load(path, force="scene", process=False)
    (geom,) = scene.geometry.values()
    np.testing.assert_array_equal(geom.vertices, rig.neutral)
    np.testing.assert_array_equal(geom.faces, rig.triangles)
    assert list(geom.metadata["targetNames"]) == list(arkit.ARKIT_NAMES)


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_round_trip_is_exact(rig, tmp_path, suffix):
    assert_same_rig(rig, import_rig(export_rig(rig, tmp_path / f"face{suffix}")))


def test_round_trip_without_colors_and_landmarks(rig, tmp_path):
    bare = Rig(
        neutral=rig.neutral, triangles=rig.triangles, deltas=rig.deltas, landmark_ids=np.zeros(0),
        landmark_tris=np.zeros((0, 3)), landmark_bary=np.zeros((0, 3)), masks={"track": rig.masks["track"]},
        mirror=rig.mirror, name="", meta={},
    )  # fmt: skip
    assert_same_rig(bare, import_rig(export_rig(bare, tmp_path / "bare.glb")))


def test_srgb_colour_conversion_round_trips_every_byte():
    c = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(linear_to_srgb8(srgb_to_linear(c / 255.0)), c)
    assert srgb_to_linear(np.array([0.5]))[0] == pytest.approx(0.214, abs=1e-3)


def test_generic_rig_round_trip(tmp_path):
    if not DEFAULT_RIG_PATH.is_file():
        pytest.skip(f"{DEFAULT_RIG_PATH} not built yet")
    rig = load_rig()
    assert_same_rig(rig, import_rig(export_rig(rig, tmp_path / "generic.glb")))


def test_ict_rig_round_trip(tmp_path):
    from facecap.facekit import load_ict_facekit

    rig = load_ict_facekit(shared_path("ict_facekit"))
    assert_same_rig(rig, import_rig(export_rig(rig, tmp_path / "ict.glb")))


# ---------------------------------------------------------------------------------------------- animation
def test_animation_file(rig, tmp_path):
    rng = np.random.default_rng(3)
    n, fps = 25, 30.0
    w = rng.random((n, 52))
    rot = Rotation.from_euler("xyz", rng.normal(0, 0.2, (n, 3)))
    trans = rng.normal(0, 0.05, (n, 3))
    path = export_animation(rig, w, fps, tmp_path / "take.glb", rotations=rot.as_matrix(), translations=trans)
    g = gl.GLTF2.load(str(path))
    blob = _blob(g, path)
    (anim,) = g.animations
    paths = {c.target.path: c for c in anim.channels}
    assert set(paths) == {"weights", "rotation", "translation"}
    node = g.nodes[paths["weights"].target.node]
    assert node.mesh == 0 and all(c.target.node == paths["weights"].target.node for c in anim.channels)
    for c in anim.channels:
        s = anim.samplers[c.sampler]
        assert s.interpolation == "LINEAR"
        t_acc = g.accessors[s.input]
        times = _read(g, blob, s.input)[:, 0]
        np.testing.assert_array_equal(times, (np.arange(n) / fps).astype(np.float32))
        assert t_acc.min == [0.0] and t_acc.max == [float(times[-1])]
    out = g.accessors[anim.samplers[paths["weights"].sampler].output]
    assert out.count == n * 52 and out.type == "SCALAR"
    vals = _read(g, blob, anim.samplers[paths["weights"].sampler].output).reshape(n, 52)
    np.testing.assert_allclose(vals, w, atol=1e-7)
    q = _read(g, blob, anim.samplers[paths["rotation"].sampler].output)
    assert q.shape == (n, 4)
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), rot.as_matrix(), atol=1e-6)
    tr = _read(g, blob, anim.samplers[paths["translation"].sampler].output)
    np.testing.assert_allclose(tr, trans, atol=1e-7)
    assert_same_rig(rig, import_rig(path))  # the take file still carries the rig


def test_animation_weights_only_gltf_and_quaternions(rig, tmp_path):
    q = np.tile([0.0, 0.0, 0.0, 1.0], (3, 1))
    path = export_animation(rig, np.zeros((3, 52)), 60, tmp_path / "take.gltf", rotations=q)
    g = gl.GLTF2.load(str(path))
    assert sorted(c.target.path for c in g.animations[0].channels) == ["rotation", "weights"]
    path = export_animation(rig, np.ones((1, 52)), 24, tmp_path / "one.glb")
    assert [c.target.path for c in gl.GLTF2.load(str(path)).animations[0].channels] == ["weights"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": np.zeros((4, 51))}, r"\(N, 52\)"),
        ({"weights": np.zeros(52)}, r"\(N, 52\)"),
        ({"weights": np.zeros((0, 52))}, r"\(N, 52\)"),
        ({"weights": np.full((4, 52), np.nan)}, "NaN"),
        ({"fps": 0}, "positive"),
        ({"fps": float("nan")}, "positive"),
        ({"fps": "fast"}, "number"),
        ({"rotations": np.zeros((4, 4))}, "unit length"),
        ({"rotations": np.zeros((3, 4))}, r"\(4, 4\) quaternions"),
        ({"rotations": -np.tile(np.eye(3), (4, 1, 1))}, "det"),
        ({"rotations": np.full((4, 4), np.nan)}, "NaN"),
        ({"translations": np.zeros((4, 2))}, r"\(4, 3\)"),
        ({"translations": np.full((4, 3), np.inf)}, "NaN"),
    ],
)
def test_animation_rejects_bad_input(rig, tmp_path, kwargs, match):
    args = {"weights": np.zeros((4, 52)), "fps": 30, **kwargs}
    w, fps = args.pop("weights"), args.pop("fps")
    with pytest.raises(ValueError, match=match):
        export_animation(rig, w, fps, tmp_path / "take.glb", **args)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_export_rejects_bad_paths_and_objects(rig, tmp_path):
    with pytest.raises(ValueError, match=r"\.glb"):
        export_rig(rig, tmp_path / "face.obj")
    with pytest.raises(FileNotFoundError, match="folder"):
        export_rig(rig, tmp_path / "missing" / "face.glb")
    with pytest.raises(TypeError, match="Rig"):
        export_rig("not a rig", tmp_path / "face.glb")


# ---------------------------------------------------------------------------------------------- foreign files
def _foreign(rig: Rig, tmp_path, names, *, node=None, edit=None):
    """The rig as .gltf with facecap extras removed and targets renamed (what another tool would write)."""
    path = export_rig(rig, tmp_path / "src.gltf")
    doc = json.loads(path.read_text())
    doc["meshes"][0]["extras"] = {"targetNames": list(names)}
    if node:
        doc["nodes"][0].update(node)
    if edit:
        edit(doc)
    out = tmp_path / "foreign.gltf"
    out.write_text(json.dumps(doc))
    return out


def test_import_foreign_names_in_any_spelling(rig, tmp_path):
    names = [
        arkit.raw_name(n) if i % 3 == 0 else arkit.pascal_name(n) for i, n in enumerate(arkit.ARKIT_NAMES)
    ]
    r = import_rig(_foreign(rig, tmp_path, names))
    assert r.deltas.tobytes() == rig.deltas.tobytes()
    assert r.neutral.tobytes() == rig.neutral.tobytes()
    assert list(r.masks) == ["track"] and r.masks["track"].all()
    np.testing.assert_array_equal(r.mirror, mirror_map(rig.neutral))
    assert len(r.landmark_ids) == 0
    assert r.name == "grid" and r.meta["missing_shapes"] == []


def test_import_skips_unknown_names_with_a_warning(rig, tmp_path):
    names = list(arkit.ARKIT_NAMES)
    names[5] = "cheekRaiser_L"
    with pytest.warns(UserWarning, match="cheekRaiser_L"):
        r = import_rig(_foreign(rig, tmp_path, names))
    assert not r.deltas[arkit.INDEX["cheekPuff"]].any()
    assert r.meta["skipped_targets"] == ["cheekRaiser_L"] and r.meta["missing_shapes"] == ["cheekPuff"]


def test_import_names_from_primitive_extras_and_node_transform(rig, tmp_path):
    def move_names(doc):
        doc["meshes"][0]["primitives"][0]["extras"] = doc["meshes"][0].pop("extras")

    path = _foreign(rig, tmp_path, arkit.ARKIT_NAMES, node={"scale": [2.0, 2.0, 2.0]}, edit=move_names)
    r = import_rig(path)
    np.testing.assert_allclose(r.neutral, 2 * rig.neutral, atol=1e-7)
    np.testing.assert_allclose(r.deltas, 2 * rig.deltas, atol=1e-7)


def test_import_asymmetric_mesh_falls_back_to_nearest_mirror(tmp_path):
    rig = grid_rig()
    v = rig.neutral.copy()
    v[:, 0] += 0.01 * (v[:, 1] > 0)  # shear the top half: no longer symmetric
    bent = Rig(
        neutral=v, triangles=rig.triangles, deltas=rig.deltas, landmark_ids=np.zeros(0),
        landmark_tris=np.zeros((0, 3)), landmark_bary=np.zeros((0, 3)), masks={"track": rig.masks["track"]},
        mirror=np.arange(len(v)), name="bent",
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = import_rig(_foreign(bent, tmp_path, arkit.ARKIT_NAMES))
    np.testing.assert_array_equal(r.mirror, mirror_map(v, tol=np.inf))
    assert "nearest" in r.meta["mirror"]


def test_import_errors(rig, tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        import_rig(tmp_path / "nope.glb")
    with pytest.raises(ValueError, match="not a file"):
        import_rig(tmp_path)
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ValueError, match="not a readable glTF"):
        import_rig(junk)
    text = tmp_path / "notes.gltf"
    text.write_text('{"hello": "world"}')
    with pytest.raises(ValueError, match="glTF 2.0"):
        import_rig(text)
    good = export_rig(rig, tmp_path / "good.glb")
    cut = tmp_path / "cut.glb"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match="glTF|truncated|past the end"):
        import_rig(cut)

    def no_mesh(doc):
        doc["meshes"], doc["nodes"][0] = [], {"name": "empty"}

    with pytest.raises(ValueError, match="no mesh"):
        import_rig(_foreign(rig, tmp_path, arkit.ARKIT_NAMES, edit=no_mesh))

    def no_targets(doc):
        del doc["meshes"][0]["primitives"][0]["targets"]
        del doc["meshes"][0]["weights"]

    with pytest.raises(ValueError, match="no morph targets"):
        import_rig(_foreign(rig, tmp_path, arkit.ARKIT_NAMES, edit=no_targets))
    with pytest.raises(ValueError, match="none of the 52 morph target names"):
        import_rig(_foreign(rig, tmp_path, [f"shape{i}" for i in range(52)]))

    def unnamed(doc):
        del doc["meshes"][0]["extras"]

    with pytest.raises(ValueError, match="no names"):
        import_rig(_foreign(rig, tmp_path, arkit.ARKIT_NAMES, edit=unnamed))
    with pytest.raises(ValueError, match="51 names for 52"):
        import_rig(_foreign(rig, tmp_path, arkit.ARKIT_NAMES[:51]))


@pytest.mark.parametrize(
    "damage",
    [
        lambda fc: fc.update(mirror=0),  # points at POSITION (another tool renumbered the accessors)
        lambda fc: fc["masks"].update(track=10**6),
        lambda fc: fc.update(rig="{not json"),
        lambda fc: fc.update(version=99),
        lambda fc: fc.pop("mirror"),
    ],
)
def test_stale_facecap_extras_fall_back_to_a_plain_import(rig, tmp_path, damage):
    path = export_rig(rig, tmp_path / "face.gltf")
    doc = json.loads(path.read_text())
    damage(doc["meshes"][0]["extras"]["facecap"])
    path.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="ignoring facecap extras"):
        r = import_rig(path)
    assert r.deltas.tobytes() == rig.deltas.tobytes()
    assert list(r.masks) == ["track"] and len(r.landmark_ids) == 0


@pytest.mark.parametrize("what", ["neutral", "deltas"])
def test_import_rejects_nan(tmp_path, what):
    rig = grid_rig()
    path = export_rig(rig, tmp_path / "face.glb")
    g = gl.GLTF2.load(str(path))
    blob = bytearray(g.binary_blob())
    prim = g.meshes[0].primitives[0]
    acc = prim.attributes.POSITION if what == "neutral" else prim.targets[24]["POSITION"]
    off = g.bufferViews[g.accessors[acc].bufferView].byteOffset
    blob[off : off + 4] = np.float32(np.nan).tobytes()
    g.set_binary_blob(bytes(blob))
    g.save_binary(str(path))
    with pytest.raises(ValueError, match="jawOpen.*NaN" if what == "deltas" else "positions contain NaN"):
        import_rig(path)
