"""glTF 2.0 exchange: rigs as meshes with 52 named morph targets, takes as morph-weight animations.

The container is written and parsed by ``pygltflib``; this module only lays out the data.

Layout written by :func:`export_rig` (one scene, one node, one mesh, one triangle primitive):

- ``POSITION`` float32 VEC3 (with ``min``/``max``), ``NORMAL`` float32 VEC3, optional ``COLOR_0``
  float32 VEC3 (linear, converted from the rig's sRGB albedo), ``indices`` uint32;
- 52 morph targets (``POSITION`` deltas, metres) in canonical ARKit order, named in
  ``mesh.extras.targetNames`` (the convention Blender and three.js read), ``mesh.weights`` all 0;
- ``mesh.extras.facecap``: what a round trip needs beyond the mesh (rig name and meta as JSON, the
  mirror map, region masks and landmarks as extra accessors), so :func:`import_rig` rebuilds the
  exact :class:`~facecap.rig.Rig`.

Every bufferView starts on a 4-byte boundary, vertex attributes carry ``byteStride`` and the
``ARRAY_BUFFER`` target, indices ``ELEMENT_ARRAY_BUFFER``. glTF's frame is rig space: metres, y up,
z out of the face.
"""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import numpy as np
import pygltflib as gl

from . import arkit
from ._io import atomic_path
from .checks import check_out_path, check_pose_track, check_weight_track
from .pose import quaternions_xyzw
from .rig import Rig, mirror_map

GLTF_SUFFIXES = (".glb", ".gltf")
_FORMAT_VERSION = 1
_GENERATOR = "facecap"

_COMPONENT_DTYPES = {
    gl.BYTE: np.dtype("<i1"),
    gl.UNSIGNED_BYTE: np.dtype("<u1"),
    gl.SHORT: np.dtype("<i2"),
    gl.UNSIGNED_SHORT: np.dtype("<u2"),
    gl.UNSIGNED_INT: np.dtype("<u4"),
    gl.FLOAT: np.dtype("<f4"),
}
_N_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORMALIZED_DIVISOR = {gl.BYTE: 127.0, gl.UNSIGNED_BYTE: 255.0, gl.SHORT: 32767.0, gl.UNSIGNED_SHORT: 65535.0}


# ---------------------------------------------------------------------------------------------- colour
def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear, float32 (glTF's COLOR_0 is linear)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb8(c: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] -> sRGB uint8."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    s = np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.round(s * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- writing
class Writer:
    """Accumulates one binary buffer and the bufferViews/accessors that describe it.

    Parameters
    ----------
    gltf : pygltflib.GLTF2, optional
        A document to append to (from :func:`load_gltf`); default a new, empty one.
    buffers : sequence of bytes
        The data of ``gltf.buffers``, in order. They are merged into the writer's single buffer and
        ``gltf``'s bufferViews re-pointed into it (the document is modified in place), so
        :meth:`save` writes one self-contained file.
    """

    def __init__(self, gltf: gl.GLTF2 | None = None, buffers=()) -> None:
        self.gltf = (
            gltf if gltf is not None else gl.GLTF2(asset=gl.Asset(generator=_GENERATOR, version="2.0"))
        )
        self.blob = bytearray()
        starts = []
        for data in buffers:
            self.blob.extend(b"\0" * (-len(self.blob) % 4))
            starts.append(len(self.blob))
            self.blob.extend(data)
        for i, bv in enumerate(self.gltf.bufferViews):
            if not (isinstance(bv.buffer, int) and 0 <= bv.buffer < len(starts)):
                raise ValueError(f"bufferView {i} refers to buffer {bv.buffer!r}, which does not exist")
            bv.byteOffset = (bv.byteOffset or 0) + starts[bv.buffer]
            bv.buffer = 0

    def add(
        self,
        data: np.ndarray,
        component: int,
        kind: str,
        *,
        target: int | None = None,
        minmax: bool = False,
        name: str | None = None,
    ) -> int:
        """Append ``data`` (count, ncomp) as a new 4-byte-aligned bufferView + accessor; return its index."""
        dtype = _COMPONENT_DTYPES[component]
        ncomp = _N_COMPONENTS[kind]
        arr = np.ascontiguousarray(data, dtype=dtype).reshape(-1, ncomp)
        if len(arr) == 0:
            raise ValueError(f"cannot write an empty accessor {name!r}")
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        offset = len(self.blob)
        raw = arr.tobytes()
        self.blob.extend(raw)
        stride = arr.itemsize * ncomp if target == gl.ARRAY_BUFFER else None
        self.gltf.bufferViews.append(
            gl.BufferView(buffer=0, byteOffset=offset, byteLength=len(raw), byteStride=stride, target=target)
        )
        acc = gl.Accessor(
            bufferView=len(self.gltf.bufferViews) - 1, byteOffset=0, componentType=component,
            count=len(arr), type=kind, name=name,
        )  # fmt: skip
        if minmax:
            acc.min = [float(x) for x in arr.min(axis=0)]
            acc.max = [float(x) for x in arr.max(axis=0)]
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1

    def add_times(self, n: int, fps: float, *, name: str | None = None) -> int:
        """Accessor of the key times ``i / fps`` seconds, ``i < n`` (float32, with min/max); its index."""
        times = (np.arange(n, dtype=np.float64) / fps).astype(np.float32)
        return self.add(times, gl.FLOAT, gl.SCALAR, minmax=True, name=name)

    def add_track(
        self,
        anim: gl.Animation,
        times: int,
        values: np.ndarray,
        kind: str,
        target_path: str,
        nodes,
        *,
        name: str | None = None,
    ) -> None:
        """Key ``values`` (float, one ``kind`` element per key) at accessor ``times``, LINEAR, on
        ``target_path`` (``"weights"``, ``"rotation"``, ``"translation"``) of each of ``nodes``."""
        out = self.add(values, gl.FLOAT, kind, name=name)
        anim.samplers.append(gl.AnimationSampler(input=times, output=out, interpolation=gl.ANIM_LINEAR))
        for node in nodes:
            anim.channels.append(
                gl.AnimationChannel(
                    sampler=len(anim.samplers) - 1,
                    target=gl.AnimationChannelTarget(node=node, path=target_path),
                )
            )

    def save(self, path: Path) -> Path:
        """Write ``.glb`` or ``.gltf`` (embedded base64 buffer and images) atomically."""
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        blob = bytes(self.blob)
        if any(img.uri and not img.uri.startswith("data:") for img in self.gltf.images):
            self.gltf.convert_images(
                gl.ImageFormat.DATAURI
            )  # external images, read from the loaded file's folder
        with atomic_path(path) as tmp:
            if path.suffix.lower() == ".glb":
                self.gltf.buffers = [gl.Buffer(byteLength=len(blob))]
                self.gltf.set_binary_blob(blob)
                ok = self.gltf.save_binary(str(tmp))
            else:
                uri = gl.DATA_URI_HEADER + base64.b64encode(blob).decode("ascii")
                self.gltf.buffers = [gl.Buffer(byteLength=len(blob), uri=uri)]
                tmp.write_text(self.gltf.gltf_to_json(), encoding="utf-8")
                ok = True
            if not ok:
                raise OSError(f"pygltflib could not write {path}")
        return path


def _rig_gltf(rig: Rig) -> tuple[Writer, int]:
    """Lay out ``rig`` as one mesh on one node; return the writer and the node index."""
    if not isinstance(rig, Rig):
        raise TypeError(f"expected a facecap Rig, got {type(rig).__name__}")
    rig.validate()
    w = Writer()
    attrs = gl.Attributes(
        POSITION=w.add(rig.neutral, gl.FLOAT, gl.VEC3, target=gl.ARRAY_BUFFER, minmax=True, name="neutral"),
        NORMAL=w.add(rig.vertex_normals(), gl.FLOAT, gl.VEC3, target=gl.ARRAY_BUFFER, name="normals"),
    )
    if rig.colors is not None:
        lin = srgb_to_linear(rig.colors / 255.0)
        attrs.COLOR_0 = w.add(lin, gl.FLOAT, gl.VEC3, target=gl.ARRAY_BUFFER, name="albedo")
    indices = w.add(rig.triangles.reshape(-1), gl.UNSIGNED_INT, gl.SCALAR, target=gl.ELEMENT_ARRAY_BUFFER)
    targets = [
        gl.Attributes(POSITION=w.add(d, gl.FLOAT, gl.VEC3, target=gl.ARRAY_BUFFER, minmax=True, name=n))
        for n, d in zip(rig.names, rig.deltas, strict=True)
    ]
    facecap: dict = {
        "version": _FORMAT_VERSION,
        "rig": json.dumps({"name": rig.name, "meta": rig.meta}),
        "mirror": w.add(rig.mirror, gl.UNSIGNED_INT, gl.SCALAR, name="mirror"),
        "masks": {k: w.add(m, gl.UNSIGNED_BYTE, gl.SCALAR, name=f"mask_{k}") for k, m in rig.masks.items()},
    }
    if len(rig.landmark_ids):
        facecap["landmarks"] = {
            "ids": w.add(rig.landmark_ids, gl.UNSIGNED_INT, gl.SCALAR, name="landmark_ids"),
            "tris": w.add(rig.landmark_tris, gl.UNSIGNED_INT, gl.VEC3, name="landmark_tris"),
            "bary": w.add(rig.landmark_bary, gl.FLOAT, gl.VEC3, name="landmark_bary"),
        }
    w.gltf.materials.append(
        gl.Material(
            name="skin",
            pbrMetallicRoughness=gl.PbrMetallicRoughness(
                baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.6
            ),
        )
    )
    prim = gl.Primitive(attributes=attrs, indices=indices, mode=gl.TRIANGLES, material=0, targets=targets)
    w.gltf.meshes.append(
        gl.Mesh(
            name=rig.name or "face",
            primitives=[prim],
            weights=[0.0] * len(targets),
            extras={"targetNames": list(rig.names), "facecap": facecap},
        )
    )
    w.gltf.nodes.append(gl.Node(name=rig.name or "face", mesh=0))
    w.gltf.scenes.append(gl.Scene(name="facecap", nodes=[0]))
    w.gltf.scene = 0
    return w, 0


def export_rig(rig: Rig, path: str | Path) -> Path:
    """Write a rig as glTF 2.0 with 52 named morph targets.

    Parameters
    ----------
    rig : Rig
    path : str or Path
        ``*.glb`` for binary glTF, ``*.gltf`` for JSON with the buffer embedded as base64.

    Returns
    -------
    Path
        The written file. It opens in Blender / three.js with the ARKit names on the shape keys, and
        :func:`import_rig` reads it back into an identical rig.
    """
    path = check_out_path(path, GLTF_SUFFIXES, "glTF output")
    w, _ = _rig_gltf(rig)
    return w.save(path)


def export_animation(
    rig: Rig,
    weights: np.ndarray,
    fps: float,
    path: str | Path,
    *,
    rotations: np.ndarray | None = None,
    translations: np.ndarray | None = None,
    name: str = "take",
) -> Path:
    """Write the rig mesh plus an animation of its 52 morph weights (and optionally the head node).

    Parameters
    ----------
    rig : Rig
    weights : (N, 52) float
        Blendshape weights per frame, canonical ARKit order (= the mesh's target order).
    fps : float
        Frame rate; frame ``i`` is keyed at ``i / fps`` seconds, LINEAR interpolation.
    path : str or Path
        ``*.glb`` or ``*.gltf``.
    rotations : (N, 4) float (x, y, z, w unit quaternions) or (N, 3, 3) float, optional
        Head node rotation per frame.
    translations : (N, 3) float, metres, optional
        Head node translation per frame.
    name : str
        Animation name (Blender shows it as the action name).

    Returns
    -------
    Path
    """
    path = check_out_path(path, GLTF_SUFFIXES, "glTF output")
    w, fps = check_weight_track(weights, fps)
    n = len(w)
    rots, trans = check_pose_track(rotations, translations, n, quaternions=True)

    writer, node = _rig_gltf(rig)
    t_acc = writer.add_times(n, fps, name="time")
    anim = gl.Animation(name=name)
    outputs = [("weights", w.astype(np.float32).reshape(-1), gl.SCALAR)]
    if rots is not None:
        quats = quaternions_xyzw(rots) if rots.ndim == 3 else rots  # x, y, z, w: glTF's order
        outputs.append(("rotation", quats.astype(np.float32), gl.VEC4))
    if trans is not None:
        outputs.append(("translation", trans.astype(np.float32), gl.VEC3))
    for target_path, values, kind in outputs:
        writer.add_track(anim, t_acc, values, kind, target_path, [node], name=target_path)
    anim.extras = {"fps": fps, "frames": n}
    writer.gltf.animations.append(anim)
    return writer.save(path)


# ---------------------------------------------------------------------------------------------- reading
def load_gltf(path: str | Path) -> tuple[gl.GLTF2, list[bytes]]:
    """Read a ``.glb`` or ``.gltf`` file (embedded or external ``.bin`` buffers).

    Returns
    -------
    gltf : pygltflib.GLTF2
        The document; relative URIs resolve against the file's folder.
    buffers : list of bytes
        The data of each of ``gltf.buffers``, checked to be present and complete.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a file, not glTF 2.0, or a buffer missing or truncated; the message names the file.
    """
    path = Path(path)
    g = _load_document(path)
    return g, _buffers(g, path)


def _load_document(path: Path) -> gl.GLTF2:
    if not path.exists():
        raise FileNotFoundError(f"glTF file not found: {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file; give a .glb or .gltf file")
    data = path.read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if data[:4] == b"glTF":
                (n,) = np.frombuffer(data, "<u4", 1, 12)
                if data[16:20] != b"JSON":
                    raise ValueError("the first GLB chunk is not JSON")
                doc = json.loads(data[20 : 20 + int(n)].decode("utf-8"))
                g = gl.GLTF2.load_from_bytes(data)
            else:
                text = data.decode("utf-8")
                doc = json.loads(text)
                g = gl.GLTF2.from_json(text, infer_missing=True)
    except Exception as e:  # json, struct, unicode, dataclass errors
        raise ValueError(f"{path} is not a readable glTF 2.0 file ({type(e).__name__}: {e})") from e
    asset = doc.get("asset") if isinstance(doc, dict) else None
    if not isinstance(asset, dict) or not str(asset.get("version", "")).startswith("2") or g is None:
        raise ValueError(f"{path} is not a glTF 2.0 file (asset.version missing or not 2.x)")
    g._path = path.parent
    return g


def _buffers(g: gl.GLTF2, path: Path) -> list[bytes]:
    out = []
    for i, b in enumerate(g.buffers):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = g.get_data_from_buffer_uri(b.uri)
        except Exception as e:
            raise ValueError(f"{path}: cannot read buffer {i} ({e})") from e
        if data is None:
            where = "the GLB binary chunk" if b.uri is None else repr(b.uri[:60])
            raise ValueError(f"{path}: buffer {i} ({where}) is missing; keep .bin files next to the .gltf")
        if b.byteLength is not None and len(data) < b.byteLength:
            raise ValueError(f"{path}: buffer {i} is truncated ({len(data)} of {b.byteLength} bytes)")
        out.append(bytes(data))
    return out


def _view(g: gl.GLTF2, bufs: list[bytes], view: int, offset: int, count: int, dtype, ncomp: int, where: str):
    try:
        bv = g.bufferViews[view]
        buf = bufs[bv.buffer]
    except (IndexError, TypeError):
        raise ValueError(f"{where}: bufferView {view} or its buffer does not exist") from None
    item = dtype.itemsize * ncomp
    stride = bv.byteStride or item
    start = (bv.byteOffset or 0) + (offset or 0)
    end = start + stride * (count - 1) + item if count else start
    if end > (bv.byteOffset or 0) + bv.byteLength or end > len(buf):
        raise ValueError(f"{where}: accessor data runs past the end of its bufferView (truncated file?)")
    if count == 0:
        return np.zeros((0, ncomp), dtype)
    return np.ndarray(
        (count, ncomp), dtype=dtype, buffer=buf, offset=start, strides=(stride, dtype.itemsize)
    ).copy()


def _accessor(g: gl.GLTF2, bufs: list[bytes], index: int, where: str) -> np.ndarray:
    """Accessor ``index`` as a (count, ncomp) array (float for normalized integers), sparse applied."""
    try:
        a = g.accessors[index]
        dtype = _COMPONENT_DTYPES[a.componentType]
        ncomp = _N_COMPONENTS[a.type]
    except (IndexError, KeyError, TypeError):
        raise ValueError(f"{where}: accessor {index} is missing or has an unknown type") from None
    count = int(a.count or 0)
    if a.bufferView is None:
        arr = np.zeros((count, ncomp), dtype)
    else:
        arr = _view(g, bufs, a.bufferView, a.byteOffset, count, dtype, ncomp, where)
    if a.sparse is not None and a.sparse.count:
        s = a.sparse
        idx = _view(g, bufs, s.indices.bufferView, s.indices.byteOffset, s.count,
                    _COMPONENT_DTYPES[s.indices.componentType], 1, where)[:, 0]  # fmt: skip
        val = _view(g, bufs, s.values.bufferView, s.values.byteOffset, s.count, dtype, ncomp, where)
        if (idx >= count).any():
            raise ValueError(f"{where}: sparse accessor {index} has indices out of range")
        arr[idx.astype(np.intp)] = val
    if a.normalized and a.componentType in _NORMALIZED_DIVISOR:
        arr = np.maximum(arr.astype(np.float32) / np.float32(_NORMALIZED_DIVISOR[a.componentType]), -1.0)
    return arr


def _triangles(mode: int, idx: np.ndarray) -> np.ndarray | None:
    if mode == gl.TRIANGLES:
        return idx[: len(idx) // 3 * 3].reshape(-1, 3)
    if mode == gl.TRIANGLE_STRIP and len(idx) >= 3:
        k = np.arange(len(idx) - 2)
        tri = np.stack([idx[k], idx[k + 1], idx[k + 2]], 1)
        tri[1::2] = tri[1::2][:, [1, 0, 2]]
        return tri
    if mode == gl.TRIANGLE_FAN and len(idx) >= 3:
        k = np.arange(1, len(idx) - 1)
        return np.stack([np.full_like(k, idx[0]), idx[k], idx[k + 1]], 1)
    return None


def _node_matrix(node: gl.Node) -> np.ndarray:
    if node.matrix:
        return np.asarray(node.matrix, dtype=np.float64).reshape(4, 4).T  # column-major
    m = np.eye(4)
    if node.scale:
        m = np.diag([*node.scale, 1.0]) @ m
    if node.rotation:
        from scipy.spatial.transform import Rotation

        r = np.eye(4)
        r[:3, :3] = Rotation.from_quat(node.rotation).as_matrix()
        m = r @ m
    if node.translation:
        m[:3, 3] += node.translation
    return m


def _mesh_world_matrix(g: gl.GLTF2, mesh_index: int) -> np.ndarray:
    """World transform of the first node that instances the mesh (identity if none)."""
    parent = {c: i for i, n in enumerate(g.nodes) for c in (n.children or [])}
    for i, n in enumerate(g.nodes):
        if n.mesh == mesh_index:
            m, j, seen = np.eye(4), i, set()
            while j is not None and j not in seen:
                seen.add(j)
                m = _node_matrix(g.nodes[j]) @ m
                j = parent.get(j)
            return m
    return np.eye(4)


def morph_target_names(mesh: gl.Mesh) -> list[str] | None:
    """The mesh's morph target names: the first non-empty ``extras.targetNames`` of the mesh or, failing
    that, of one of its primitives (where Blender and three.js write them); None when there is none."""
    for extras in (mesh.extras or {}, *((p.extras or {}) for p in mesh.primitives)):
        names = extras.get("targetNames") if isinstance(extras, dict) else None
        if names and isinstance(names, list):
            return [str(n) for n in names]
    return None


def _target_names(mesh: gl.Mesh, n_targets: int, path: Path) -> list[str]:
    names = morph_target_names(mesh)
    if names is not None:
        if len(names) != n_targets:
            raise ValueError(f"{path}: targetNames lists {len(names)} names for {n_targets} morph targets")
        return names
    raise ValueError(
        f"{path}: the morph targets have no names; facecap needs ARKit names in mesh.extras.targetNames "
        "(Blender and three.js write them there)"
    )


def import_rig(path: str | Path) -> Rig:
    """Read a glTF/GLB mesh with ARKit-named morph targets as a :class:`~facecap.rig.Rig`.

    Files written by :func:`export_rig` come back identical. Other files (Blender, three.js,
    Face Cap...) need one mesh with morph targets whose names are ARKit names in any spelling
    (``eyeBlinkLeft``, ``EyeBlinkLeft``, ``eyeBlink_L``); targets with other names are skipped with a
    warning, absent shapes get zero deltas. Such rigs get ``masks={"track": all}``, a mirror map from
    the nearest mirrored vertex and no landmarks. The mesh node's world transform is applied;
    units are taken as metres (glTF's unit). Several primitives are merged into one mesh.

    Parameters
    ----------
    path : str or Path
        ``.glb`` or ``.gltf`` (embedded or external ``.bin`` buffers).

    Returns
    -------
    Rig
    """
    path = Path(path)
    g, bufs = load_gltf(path)
    if not g.meshes:
        raise ValueError(f"{path} contains no mesh; export the face mesh with its shape keys")
    with_targets = [i for i, m in enumerate(g.meshes) if any(p.targets for p in m.primitives)]
    if not with_targets:
        raise ValueError(
            f"{path} has no morph targets (shape keys); facecap needs the ARKit blendshapes as morph targets"
        )
    if len(with_targets) > 1:
        names = [g.meshes[i].name or f"mesh {i}" for i in with_targets]
        raise ValueError(f"{path} has several meshes with morph targets ({names}); export only the face mesh")
    mi = with_targets[0]
    mesh = g.meshes[mi]
    where = f"{path} mesh {mesh.name or mi}"

    n_targets = max(len(p.targets or []) for p in mesh.primitives)
    names = _target_names(mesh, n_targets, path)
    verts, tris, deltas, colors = [], [], [], []
    base = 0
    for pi, p in enumerate(mesh.primitives):
        pw = f"{where} primitive {pi}"
        if p.attributes.POSITION is None:
            raise ValueError(f"{pw} has no POSITION attribute")
        v = _accessor(g, bufs, p.attributes.POSITION, pw).astype(np.float32)
        if p.indices is not None:
            idx = _accessor(g, bufs, p.indices, pw)[:, 0].astype(np.int64)
        else:
            idx = np.arange(len(v), dtype=np.int64)
        t = _triangles(gl.TRIANGLES if p.mode is None else p.mode, idx)
        if t is None:
            warnings.warn(f"{pw}: skipping non-triangle primitive (mode {p.mode})", stacklevel=2)
            continue
        if len(t) and (t.max() >= len(v) or t.min() < 0):
            raise ValueError(f"{pw}: indices reference vertices beyond the {len(v)} positions")
        targets = p.targets or []
        if len(targets) != n_targets:
            raise ValueError(f"{pw} has {len(targets)} morph targets, other primitives {n_targets}")
        d = np.zeros((n_targets, len(v), 3), np.float32)
        for k, tg in enumerate(targets):
            pos = tg.get("POSITION") if isinstance(tg, dict) else getattr(tg, "POSITION", None)
            if pos is not None:
                dk = _accessor(g, bufs, pos, f"{pw} target {names[k]!r}")
                if dk.shape != (len(v), 3):
                    raise ValueError(f"{pw} target {names[k]!r} has {len(dk)} deltas for {len(v)} vertices")
                d[k] = dk
        c = None
        if p.attributes.COLOR_0 is not None:
            c = _accessor(g, bufs, p.attributes.COLOR_0, pw)[:, :3].astype(np.float32)
        verts.append(v)
        tris.append(t + base)
        deltas.append(d)
        colors.append(c)
        base += len(v)
    if not verts:
        raise ValueError(f"{where} has no triangle primitive")
    neutral = np.concatenate(verts)
    triangles = np.concatenate(tris)
    all_deltas = np.concatenate(deltas, axis=1)
    if not np.isfinite(neutral).all():
        raise ValueError(f"{where}: vertex positions contain NaN or inf")
    if not np.isfinite(all_deltas).all():
        bad = sorted({names[k] for k in np.flatnonzero(~np.isfinite(all_deltas).all(axis=(1, 2)))})
        raise ValueError(f"{where}: morph targets {bad} contain NaN or inf")
    rig_colors = None
    if all(c is not None for c in colors):
        rig_colors = linear_to_srgb8(np.concatenate(colors))

    m = _mesh_world_matrix(g, mi)
    if not np.allclose(m, np.eye(4)):
        lin = m[:3, :3]
        neutral = (neutral.astype(np.float64) @ lin.T + m[:3, 3]).astype(np.float32)
        all_deltas = (all_deltas.astype(np.float64) @ lin.T).astype(np.float32)
        if np.linalg.det(lin) < 0:
            triangles = triangles[:, [0, 2, 1]]

    named: dict[str, np.ndarray] = {}
    skipped = []
    for n, d in zip(names, all_deltas, strict=True):
        try:
            arkit.canonical_name(n)
        except KeyError:
            skipped.append(n)
            continue
        named[n] = d
    if not named:
        raise ValueError(
            f"{where}: none of the {len(names)} morph target names is an ARKit blendshape name "
            f"(first few: {names[:5]}); rename the shape keys to ARKit names (eyeBlinkLeft or eyeBlink_L)"
        )
    if skipped:
        warnings.warn(f"{path}: skipping {len(skipped)} non-ARKit morph targets: {skipped}", stacklevel=2)

    fc = (mesh.extras or {}).get("facecap") if isinstance(mesh.extras, dict) else None
    if isinstance(fc, dict) and len(verts) == 1:
        try:
            return _facecap_rig(g, bufs, fc, neutral, triangles, named, rig_colors)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
            warnings.warn(
                f"{where}: ignoring facecap extras that do not fit this mesh (edited in another tool?): {e}",
                stacklevel=2,
            )
    meta = {"source": str(path), "format": "glTF", "skipped_targets": skipped}
    missing = [n for n in arkit.ARKIT_NAMES if n not in {arkit.canonical_name(k) for k in named}]
    meta["missing_shapes"] = missing
    try:
        mirror = mirror_map(neutral)
    except ValueError:
        mirror = mirror_map(neutral, tol=np.inf)
        meta["mirror"] = "nearest neighbour (mesh not exactly symmetric)"
    return Rig.from_named(
        neutral, triangles, named,
        landmark_ids=np.zeros(0, np.int32), landmark_tris=np.zeros((0, 3), np.int32),
        landmark_bary=np.zeros((0, 3), np.float32), masks={"track": np.ones(len(neutral), bool)},
        mirror=mirror, colors=rig_colors, name=mesh.name or path.stem, meta=meta,
    )  # fmt: skip


def _facecap_rig(g, bufs, fc: dict, neutral, triangles, named, colors) -> Rig:
    """Rebuild a rig from the ``mesh.extras.facecap`` block written by :func:`export_rig`.

    Raises ``ValueError``/``KeyError`` when the block does not describe this mesh (another tool
    re-exported the file and kept the extras but not the accessors they point to).
    """
    if fc.get("version") != _FORMAT_VERSION:
        raise ValueError(f"unknown facecap extras version {fc.get('version')!r}")
    nv = len(neutral)

    def read(index, name: str, shape: tuple) -> np.ndarray:
        acc = g.accessors[int(index)]
        if acc.name != name:
            raise ValueError(f"accessor {index} is {acc.name!r}, expected {name!r}")
        a = _accessor(g, bufs, int(index), name)
        a = a[:, 0] if len(shape) == 1 else a
        if a.shape != shape:
            raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
        return a

    info = json.loads(fc["rig"])
    if not isinstance(info, dict):
        raise ValueError("facecap extras 'rig' is not a JSON object")
    mirror = read(fc["mirror"], "mirror", (nv,))
    masks = {str(k): read(a, f"mask_{k}", (nv,)) != 0 for k, a in fc["masks"].items()}
    lm = fc.get("landmarks")
    if lm:
        ids = read(lm["ids"], "landmark_ids", (g.accessors[int(lm["ids"])].count,))
        lt = read(lm["tris"], "landmark_tris", (len(ids), 3))
        lb = read(lm["bary"], "landmark_bary", (len(ids), 3))
    else:
        ids, lt, lb = np.zeros(0, np.int32), np.zeros((0, 3), np.int32), np.zeros((0, 3), np.float32)
    return Rig.from_named(
        neutral, triangles, named, landmark_ids=ids, landmark_tris=lt, landmark_bary=lb, masks=masks,
        mirror=mirror, colors=colors, name=info.get("name", "rig"), meta=info.get("meta", {}),
    )  # fmt: skip


RIG_LOADERS = {".glb": import_rig, ".gltf": import_rig}
RIG_SAVERS = {".glb": export_rig, ".gltf": export_rig}
