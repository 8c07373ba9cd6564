"""Reading glTF 2.0: documents and their buffers, accessors, and rigs from meshes with ARKit morph targets.

:func:`load_gltf` reads a ``.glb``/``.gltf`` file (for :func:`import_rig` and
:func:`facecap.retarget.apply_to_gltf`), :func:`morph_target_names` finds a mesh's target names and
:func:`import_rig` rebuilds a :class:`~facecap.rig.Rig`: exactly, from the layout
:func:`~facecap.gltf.export_rig` writes (:mod:`facecap.gltf.format`), or from any mesh whose morph
targets have ARKit names.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pygltflib as gl

from .. import arkit
from ..rig import Rig, mirror_map
from .format import COMPONENT_DTYPES, FORMAT_VERSION, N_COMPONENTS, linear_to_srgb8

_NORMALIZED_DIVISOR = {gl.BYTE: 127.0, gl.UNSIGNED_BYTE: 255.0, gl.SHORT: 32767.0, gl.UNSIGNED_SHORT: 65535.0}


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


def check_accessors(g: gl.GLTF2, bufs: list[bytes], path: Path) -> None:
    """Raise ``ValueError`` naming ``path`` unless every accessor's data lies inside its buffer (a file
    cut short, or edited, can hold a complete buffer list whose accessors still point past the end)."""
    for i in range(len(g.accessors or [])):
        _accessor(g, bufs, i, f"{path}: accessor {i}")


def _accessor(g: gl.GLTF2, bufs: list[bytes], index: int, where: str) -> np.ndarray:
    """Accessor ``index`` as a (count, ncomp) array (float for normalized integers), sparse applied."""
    try:
        a = g.accessors[index]
        dtype = COMPONENT_DTYPES[a.componentType]
        ncomp = N_COMPONENTS[a.type]
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
                    COMPONENT_DTYPES[s.indices.componentType], 1, where)[:, 0]  # fmt: skip
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

    Files written by :func:`~facecap.gltf.export_rig` come back identical. Other files (Blender, three.js,
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
    """Rebuild a rig from the ``mesh.extras.facecap`` block written by :func:`~facecap.gltf.export_rig`.

    Raises ``ValueError``/``KeyError`` when the block does not describe this mesh (another tool
    re-exported the file and kept the extras but not the accessors they point to).
    """
    if fc.get("version") != FORMAT_VERSION:
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
