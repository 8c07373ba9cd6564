"""Retargeting: mapping formulas, curves, validation, the shipped mappings, glTF puppet animation."""

from __future__ import annotations

import fnmatch
import json
import logging
import tomllib
from pathlib import Path

import numpy as np
import pygltflib as gl
import pytest

import facecap
from facecap import arkit
from facecap.retarget import (
    Mapping,
    MappingError,
    apply_to_gltf,
    builtin_mappings,
    identity_mapping,
    load_mapping,
)


def weights(**named) -> np.ndarray:
    return arkit.weights_from_dict(named)


def write(tmp_path, data, name="m.json"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


# ------------------------------------------------------------------------------------------- formulas
def test_formula_gain_offset_clamp():
    m = Mapping.from_dict({
        "targets": {
            "Mix": {"sources": {"jawOpen": 0.5, "mouthClose": -1.0}, "gain": 2.0, "offset": 0.1,
                    "min": -1.0, "max": 5.0},
            "Clamped": {"sources": ["mouthSmileLeft", "mouthSmileRight"]},
            "Single": {"sources": "eyeBlink_L"},
        }
    })  # fmt: skip
    w = weights(jawOpen=0.6, mouthClose=0.2, mouthSmileLeft=0.8, mouthSmileRight=0.7, eyeBlinkLeft=0.3)
    out = m.apply(w)
    assert out["Mix"] == pytest.approx(2.0 * (0.5 * 0.6 - 0.2) + 0.1, abs=1e-6)
    assert out["Clamped"] == pytest.approx(1.0)  # 1.5 clipped to the default max 1
    assert out["Single"] == pytest.approx(0.3)
    low = m.apply(weights(mouthClose=1.0))
    assert low["Mix"] == pytest.approx(-1.0)  # 2 * -1 + 0.1 = -1.9 -> min -1


def test_curves():
    spec = {
        "targets": {
            "ss": {"sources": "jawOpen", "curve": {"type": "smoothstep", "edge0": 0.2, "edge1": 0.6}},
            "ss01": {"sources": "jawOpen", "curve": "smoothstep"},
            "gam": {"sources": "jawOpen", "curve": {"type": "gamma", "exponent": 2.2}},
            "pw": {
                "sources": "jawOpen",
                "curve": {"type": "piecewise", "points": [[0, 0], [0.5, 1], [1, 0.25]]},
            },
            "lin": {"sources": "jawOpen", "curve": "linear"},
        }
    }
    m = Mapping.from_dict(spec)
    x = np.linspace(0, 1, 41)
    w = np.zeros((len(x), 52))
    w[:, arkit.index("jawOpen")] = x
    out = m.apply(w)
    assert out.shape == (41, 5) and out.dtype == np.float32
    col = {n: out[:, j] for j, n in enumerate(m.target_names)}
    t = np.clip((x - 0.2) / 0.4, 0, 1)
    assert np.allclose(col["ss"], t * t * (3 - 2 * t), atol=1e-6)
    assert np.allclose(col["ss01"], x * x * (3 - 2 * x), atol=1e-6)
    assert np.allclose(col["gam"], x**2.2, atol=1e-6)
    assert np.allclose(col["pw"], np.interp(x, [0, 0.5, 1], [0, 1, 0.25]), atol=1e-6)
    assert np.allclose(col["lin"], x, atol=1e-7)
    # batch equals per-frame dicts
    for i in (0, 13, 40):
        d = m.apply(w[i])
        assert [d[n] for n in m.target_names] == pytest.approx(out[i].tolist(), abs=1e-7)


def test_mirroring():
    spec = {"targets": {"Blink_L": "eyeBlinkLeft", "Smile_R": {"sources": {"mouthSmileRight": 1.0}},
                        "Jaw": "jawOpen"}}  # fmt: skip
    w = weights(eyeBlinkRight=0.9, mouthSmileLeft=0.4, jawOpen=0.5)
    plain = Mapping.from_dict(spec).apply(w)
    assert plain == pytest.approx({"Blink_L": 0.0, "Smile_R": 0.0, "Jaw": 0.5})
    mirrored = Mapping.from_dict({**spec, "mirror": True})
    assert mirrored.apply(w) == pytest.approx({"Blink_L": 0.9, "Smile_R": 0.4, "Jaw": 0.5})
    assert Mapping.from_dict(spec).mirrored().apply(w) == mirrored.apply(w)
    assert mirrored.mirrored().apply(w) == plain


def test_roundtrip_to_dict_and_save(tmp_path):
    m = load_mapping("vrm0")
    p = m.save(tmp_path / "copy.json")
    m2 = load_mapping(p)
    w = np.random.default_rng(0).random((20, 52))
    assert m2.target_names == m.target_names
    assert np.array_equal(m2.apply(w), m.apply(w))


# ------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"targets": {"Joy": {"sources": {"mouthSmilLeft": 1}}}},
            r"target 'Joy'.*did you mean mouthSmileLeft",
        ),
        ({"targets": {"Joy": {"sources": {"mouthSmileLeft": "lots"}}}}, r"'Joy'.*must be a number"),
        ({"targets": {"Joy": {"sources": "jawOpen", "gain": "2"}}}, r"'Joy'.*gain must be a number"),
        ({"targets": {"Joy": {"gain": 2}}}, r"'Joy'.*missing 'sources'"),
        ({"targets": {"Joy": {"sources": "jawOpen", "gian": 2}}}, r"'Joy'.*unknown key 'gian'.*'gain'"),
        (
            {"targets": {"Joy": {"sources": "jawOpen", "min": 1, "max": 0}}},
            r"min \(1.0\) is greater than max",
        ),
        ({"targets": {"Joy": {"sources": "jawOpen", "curve": "cubic"}}}, r"unknown curve 'cubic'"),
        ({"targets": {"J": {"sources": "jawOpen", "curve": {"type": "gamma"}}}}, r"needs an 'exponent'"),
        ({"targets": {"J": {"sources": "jawOpen", "curve": {"type": "gamma", "exponent": 0}}}}, r"> 0"),
        (
            {
                "targets": {
                    "J": {"sources": "jawOpen", "curve": {"type": "piecewise", "points": [[0, 0], [0, 1]]}}
                }
            },
            r"strictly increasing",
        ),
        (
            {"targets": {"J": {"sources": "jawOpen", "curve": {"type": "smoothstep", "edge0": 1}}}},
            r"edge0 < edge1",
        ),
        ({"targets": {}}, r"non-empty"),
        ({"name": "x"}, r"missing 'targets'"),
        ({"targets": {"J": "jawOpen"}, "mirror": "yes"}, r"'mirror' must be true or false"),
        ({"targets": {"J": "jawOpen"}, "taregts": 1}, r"unknown key 'taregts'.*'targets'"),
        ([1, 2], r"must be a JSON object"),
    ],
)
def test_validation_errors_name_file_and_target(tmp_path, data, match):
    p = write(tmp_path, data, "puppet.json")
    with pytest.raises(MappingError, match=match) as e:
        load_mapping(p)
    assert str(p) in str(e.value)


def test_file_errors(tmp_path):
    with pytest.raises(MappingError, match=r"invalid JSON at line 2"):
        load_mapping(write(tmp_path, '{"targets":\n {"A": }}'))
    with pytest.raises(FileNotFoundError, match="built-in mappings"):
        load_mapping(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="vrm0"):
        load_mapping("no_such_mapping")
    with pytest.raises(ValueError, match=r"\(52,\) or \(N, 52\)"):
        load_mapping("vrm0").apply(np.zeros(51))
    with pytest.raises(MappingError, match="duplicate"):
        m = load_mapping("vrm0")
        Mapping(m.targets + m.targets[:1])


# ------------------------------------------------------------------------------------------- shipped
def test_builtin_files_and_identity():
    assert {"vrm0", "perfect_sync", "arkit"} <= set(builtin_mappings())
    w = np.random.default_rng(3).random((5, 52)).astype(np.float32)
    ps = load_mapping("perfect_sync")
    assert ps.target_names == tuple(arkit.pascal_name(n) for n in arkit.ARKIT_NAMES)
    assert np.array_equal(ps.apply(w), w)
    canon = load_mapping("arkit")
    assert canon.target_names == arkit.ARKIT_NAMES and np.array_equal(canon.apply(w), w)
    raw = identity_mapping("raw")
    assert raw.target_names[arkit.index("eyeBlinkLeft")] == "eyeBlink_L"


def test_builtin_mappings_are_package_data():
    """They load from inside the installed package (a wheel has no repo-level rigs/ folder)."""
    pkg = Path(facecap.__file__).resolve().parent
    pyproject = tomllib.loads((pkg.parent / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["facecap"]
    for name in ("vrm0", "perfect_sync", "arkit"):
        src = Path(load_mapping(name).source).resolve()
        assert src.is_relative_to(pkg), src
        assert any(fnmatch.fnmatch(src.relative_to(pkg).as_posix(), g) for g in globs), (src, globs)


def test_vrm0_mapping_is_sane():
    m = load_mapping("vrm0")
    presets = "A I U E O Blink Blink_L Blink_R Joy Angry Sorrow Fun LookUp LookDown LookLeft LookRight"
    assert set(m.target_names) == set(presets.split())
    neutral = m.apply(np.zeros(52))
    assert max(neutral.values()) == 0.0

    smile = m.apply(
        weights(mouthSmileLeft=0.9, mouthSmileRight=0.9, cheekSquintLeft=0.5, cheekSquintRight=0.5)
    )
    assert smile["Joy"] > 0.9 and smile["Angry"] == 0 and smile["Sorrow"] == 0 and smile["Blink"] == 0

    blink = m.apply(weights(eyeBlinkLeft=1.0, eyeBlinkRight=1.0))
    assert blink["Blink"] == blink["Blink_L"] == blink["Blink_R"] == 1.0 and blink["A"] == 0
    wink = m.apply(weights(eyeBlinkLeft=0.9))
    assert wink["Blink_L"] > 0.95 and wink["Blink_R"] == 0.0

    vowel = {
        "A": weights(jawOpen=0.8),
        "U": weights(mouthPucker=0.9),
        "O": weights(mouthFunnel=0.8, jawOpen=0.3),
        "I": weights(mouthStretchLeft=0.6, mouthStretchRight=0.6),
        "E": weights(
            mouthLowerDownLeft=0.7, mouthLowerDownRight=0.7, mouthUpperUpLeft=0.3, mouthUpperUpRight=0.3
        ),
    }
    for expect, w in vowel.items():
        out = m.apply(w)
        best = max("AIUEO", key=lambda k: out[k])
        assert best == expect, (expect, {k: round(out[k], 2) for k in "AIUEO"})

    angry = m.apply(weights(browDownLeft=0.9, browDownRight=0.9, noseSneerLeft=0.5, noseSneerRight=0.5))
    assert angry["Angry"] > 0.8 and angry["Joy"] == 0
    sad = m.apply(weights(browInnerUp=0.9, mouthFrownLeft=0.7, mouthFrownRight=0.7))
    assert sad["Sorrow"] > 0.8
    # the avatar looks to its own left when the performer does: left eye out, right eye in
    left = m.apply(weights(eyeLookOutLeft=0.8, eyeLookInRight=0.8))
    assert left["LookLeft"] == pytest.approx(0.8) and left["LookRight"] == 0
    assert m.apply(weights(eyeLookUpLeft=0.6, eyeLookUpRight=0.6))["LookUp"] == pytest.approx(0.6)


# ------------------------------------------------------------------------------------------- glTF
def make_puppet(path, names=("A", "I", "U", "Blink", "Extra"), default=None, with_node=True):
    """A 3-vertex puppet with one morph target per name (each moves one vertex)."""
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    blob = bytearray(pos.tobytes())
    g = gl.GLTF2(scene=0, scenes=[gl.Scene(nodes=[0] if with_node else [])])
    g.buffers = [gl.Buffer()]
    g.bufferViews = [gl.BufferView(buffer=0, byteOffset=0, byteLength=len(blob))]
    g.accessors = [gl.Accessor(bufferView=0, componentType=gl.FLOAT, count=3, type=gl.VEC3,
                               min=pos.min(0).tolist(), max=pos.max(0).tolist())]  # fmt: skip
    targets = []
    for k in range(len(names)):
        d = np.zeros((3, 3), np.float32)
        d[k % 3, 2] = 0.1 * (k + 1)
        off = len(blob)
        blob += d.tobytes()
        g.bufferViews.append(gl.BufferView(buffer=0, byteOffset=off, byteLength=d.nbytes))
        view = len(g.bufferViews) - 1
        lo, hi = d.min(0).tolist(), d.max(0).tolist()
        g.accessors.append(
            gl.Accessor(bufferView=view, componentType=gl.FLOAT, count=3, type=gl.VEC3, min=lo, max=hi)
        )
        targets.append({"POSITION": len(g.accessors) - 1})
    prim = gl.Primitive(attributes=gl.Attributes(POSITION=0), targets=targets)
    g.meshes = [gl.Mesh(name="face", primitives=[prim], extras={"targetNames": list(names)}, weights=default)]
    g.nodes = [gl.Node(name="face", mesh=0)] if with_node else []
    g.buffers[0].byteLength = len(blob)
    g.set_binary_blob(bytes(blob))
    g.save_binary(str(path))
    return path


def read_animation(path):
    g = gl.GLTF2().load(str(path))
    blobs = []
    for b in g.buffers:
        blobs.append(g.get_data_from_buffer_uri(b.uri))

    def acc(i):
        a = g.accessors[i]
        v = g.bufferViews[a.bufferView]
        n = a.count * {"SCALAR": 1, "VEC3": 3}[a.type]
        raw = blobs[v.buffer][(v.byteOffset or 0) + (a.byteOffset or 0) :][: n * 4]
        return np.frombuffer(raw, "<f4", count=n)

    return g, acc


@pytest.mark.parametrize("suffix", [".glb", ".gltf"])
def test_apply_to_gltf_roundtrip(tmp_path, caplog, suffix):
    puppet = make_puppet(tmp_path / "puppet.glb", default=[0, 0, 0, 0, 0.3])
    m = load_mapping("vrm0")
    rng = np.random.default_rng(5)
    w = rng.random((12, 52)).astype(np.float32) * 0.6
    with caplog.at_level(logging.WARNING, logger="facecap.retarget"):
        out = apply_to_gltf(puppet, m, w, 30.0, tmp_path / f"anim{suffix}")
    assert "lacks" in caplog.text and "Joy" in caplog.text  # mapping targets the puppet lacks
    g, acc = read_animation(out)
    assert len(g.animations) == 1
    an = g.animations[0]
    assert an.name == "facecap" and len(an.channels) == 1
    ch = an.channels[0]
    assert ch.target.node == 0 and ch.target.path == "weights"
    s = an.samplers[ch.sampler]
    assert np.allclose(acc(s.input), np.arange(12) / 30.0)
    assert g.accessors[s.input].max == pytest.approx([11 / 30.0])
    vals = acc(s.output).reshape(12, 5)
    ref = m.apply(w)
    for k, n in enumerate(["A", "I", "U", "Blink"]):
        assert np.allclose(vals[:, k], ref[:, m.target_names.index(n)], atol=1e-7)
    assert np.allclose(vals[:, 4], 0.3)  # "Extra" keeps its default weight
    # the original geometry and morph targets are intact
    assert np.array_equal(acc(0).reshape(3, 3), [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert acc(g.meshes[0].primitives[0].targets[4]["POSITION"]).reshape(3, 3)[1, 2] == np.float32(0.5)


def test_apply_to_gltf_errors(tmp_path):
    w = np.zeros((4, 52))
    nomatch = make_puppet(tmp_path / "other.glb", names=("browsUp", "grin"))
    with pytest.raises(ValueError, match=r"no morph target of other.glb matches mapping 'vrm0'"):
        apply_to_gltf(nomatch, "vrm0", w, 30, tmp_path / "x.glb")
    puppet = make_puppet(tmp_path / "p.glb")
    with pytest.raises(ValueError, match=r"\(N, 52\)"):
        apply_to_gltf(puppet, "vrm0", np.zeros((4, 51)), 30, tmp_path / "x.glb")
    with pytest.raises(ValueError, match="NaN"):
        apply_to_gltf(puppet, "vrm0", np.full((2, 52), np.nan), 30, tmp_path / "x.glb")
    with pytest.raises(ValueError, match="fps"):
        apply_to_gltf(puppet, "vrm0", w, 0, tmp_path / "x.glb")
    with pytest.raises(ValueError, match=".glb or .gltf"):
        apply_to_gltf(puppet, "vrm0", w, 30, tmp_path / "x.fbx")
    with pytest.raises(ValueError, match="puppet itself"):
        apply_to_gltf(puppet, "vrm0", w, 30, puppet)
    with pytest.raises(FileNotFoundError):
        apply_to_gltf(tmp_path / "nope.glb", "vrm0", w, 30, tmp_path / "x.glb")
    (tmp_path / "junk.glb").write_bytes(b"not a glb at all")
    with pytest.raises(ValueError, match="could not read"):
        apply_to_gltf(tmp_path / "junk.glb", "vrm0", w, 30, tmp_path / "x.glb")
    orphan = make_puppet(tmp_path / "orphan.glb", with_node=False)
    with pytest.raises(ValueError, match="no node"):
        apply_to_gltf(orphan, "vrm0", w, 30, tmp_path / "x.glb")


def test_apply_to_gltf_external_files_come_out_self_contained(tmp_path):
    """A .gltf puppet whose buffer and texture sit beside it: the copy embeds both, in a new folder."""
    g = gl.GLTF2().load(str(make_puppet(tmp_path / "p.glb", default=[0, 0, 0, 0, 0.3])))
    (tmp_path / "p.bin").write_bytes(g.binary_blob())
    (tmp_path / "skin.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    doc = json.loads(g.gltf_to_json())
    doc["buffers"][0]["uri"] = "p.bin"
    doc["images"] = [{"uri": "skin.png"}]
    (tmp_path / "p.gltf").write_text(json.dumps(doc))
    w = np.random.default_rng(2).random((6, 52))
    out = apply_to_gltf(tmp_path / "p.gltf", "vrm0", w, 24, tmp_path / "new" / "anim.gltf")
    g, acc = read_animation(out)
    assert [b.uri[:5] for b in g.buffers] == ["data:"] and g.images[0].uri.startswith("data:image/png")
    assert np.array_equal(acc(0).reshape(3, 3), [[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    s = g.animations[0].samplers[0]
    assert np.allclose(acc(s.input), np.arange(6) / 24)
    vals = acc(s.output).reshape(6, 5)
    m = load_mapping("vrm0")
    assert np.allclose(vals[:, 0], m.apply(w)[:, m.target_names.index("A")], atol=1e-7)
    assert np.allclose(vals[:, 4], 0.3)


def test_a_truncated_or_inconsistent_puppet_is_refused_and_nothing_is_written(tmp_path):
    """Cut anywhere in its binary chunk, or with an accessor pointing past its view, a puppet gives a
    clear error and no output file (before: exit 0 and an animated copy with accessors past the buffer)."""
    w = np.zeros((4, 52))
    puppet = make_puppet(tmp_path / "p.glb")
    data = puppet.read_bytes()
    for frac in (0.5, 0.8, 0.95, 0.99):
        cut = tmp_path / f"cut{frac}.glb"
        cut.write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(ValueError, match="could not read glTF puppet"):
            apply_to_gltf(cut, "vrm0", w, 30, tmp_path / "x.glb")
        assert not (tmp_path / "x.glb").exists()
    g = gl.GLTF2().load(str(puppet))
    g.accessors[2].count = 40  # runs past its 36-byte view
    g.save_binary(str(tmp_path / "bad.glb"))
    with pytest.raises(ValueError, match="accessor 2: accessor data runs past"):
        apply_to_gltf(tmp_path / "bad.glb", "vrm0", w, 30, tmp_path / "x.glb")
    assert not (tmp_path / "x.glb").exists()


def test_a_mapping_with_200k_targets_builds_in_linear_time():
    """The duplicate-name check was quadratic (list.count per name): 200k targets hung."""
    from facecap.retarget.mapping import Mapping, Target

    targets = [Target(f"shape{i}", (("jawOpen", 1.0),)) for i in range(200_000)]
    m = Mapping(targets)  # about a second; quadratically it did not finish
    assert len(m.target_names) == 200_000
    with pytest.raises(Exception, match=r"duplicate target names \['shape1'\]"):
        Mapping([*targets[:3], Target("shape1", (("jawOpen", 1.0),))])
