"""Animating a glTF/GLB puppet: its named morph targets keyed from ARKit weights through a mapping.

Reading and writing are :mod:`facecap.gltf`'s; the mapping (formulas, curves, the JSON format) is
:mod:`facecap.retarget.mapping`'s.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..checks import check_out_path, check_weight_track
from .mapping import Mapping, load_mapping

log = logging.getLogger(__name__)


def apply_to_gltf(
    puppet_path: str | Path,
    mapping: Mapping | str | Path,
    weights: np.ndarray,
    fps: float,
    out_path: str | Path,
    *,
    animation_name: str = "facecap",
) -> Path:
    """Write a copy of a glTF/GLB puppet with a morph-weight animation driven through ``mapping``.

    Every mesh whose morph targets are named (``mesh.extras.targetNames``) gets one channel
    (``target.path = "weights"``) on each node that instances it; a puppet shape the mapping does not
    drive keeps its default weight (``mesh.weights``, else 0). Mapping targets the puppet lacks are
    reported with a warning. Reading and writing are :mod:`facecap.gltf`'s.

    Parameters
    ----------
    puppet_path : str or Path, ``.glb`` or ``.gltf``
    mapping : Mapping, or a path / built-in name for :func:`load_mapping`
    weights : (N, 52) float, canonical ARKit order, one row per frame
    fps : float, frames per second (keyframe ``i`` at ``i / fps`` seconds)
    out_path : str or Path, ``.glb`` (everything packed) or ``.gltf`` (self-contained, data URIs); a
        missing folder is created
    animation_name : str

    Returns
    -------
    Path of the written file.

    Raises
    ------
    ValueError
        Bad weights / fps, no mesh with named morph targets, or no mapping target matching any of them.
    """
    import pygltflib as gl

    from ..gltf import GLTF_SUFFIXES, Writer, load_gltf, morph_target_names
    from ..gltf.read import check_accessors

    if not isinstance(mapping, Mapping):
        mapping = load_mapping(mapping)
    w, fps = check_weight_track(weights, fps)
    src = Path(puppet_path)
    out = check_out_path(out_path, GLTF_SUFFIXES, "out_path", folder=False)
    if out.resolve() == src.resolve():
        raise ValueError(f"out_path {out} is the puppet itself; write the animated copy to a new file")
    try:
        g, bufs = load_gltf(src)
        check_accessors(g, bufs, src)  # a damaged puppet must not become a damaged copy
    except ValueError as e:
        raise ValueError(f"could not read glTF puppet: {e}") from None

    values = mapping.apply_array(w)  # (N, T)
    col = {n: j for j, n in enumerate(mapping.target_names)}
    col_ci = {n.lower(): j for j, n in enumerate(mapping.target_names)}
    used: set[int] = set()
    tracks: list[tuple[int, np.ndarray]] = []  # (mesh index, (N, K) weights)
    unnamed = []
    puppet_names: set[str] = set()
    for mi, mesh in enumerate(g.meshes):
        n_targets = len(mesh.primitives[0].targets or []) if mesh.primitives else 0
        if n_targets == 0:
            continue
        names = morph_target_names(mesh)
        if names is None or len(names) != n_targets:
            unnamed.append(mesh.name or f"mesh {mi}")
            continue
        puppet_names.update(names)
        default = np.zeros(len(names))
        if mesh.weights and len(mesh.weights) == len(names):
            default = np.asarray(mesh.weights, dtype=np.float64)
        k_w = np.tile(default, (len(w), 1))
        hit = False
        for k, tn in enumerate(names):
            j = col.get(tn, col_ci.get(tn.lower()))
            if j is not None:
                k_w[:, k] = values[:, j]
                used.add(j)
                hit = True
        if hit:
            tracks.append((mi, k_w.astype(np.float32)))
    if not tracks:
        have = sorted(puppet_names)
        extra = f"; meshes with unnamed morph targets: {unnamed}" if unnamed else ""
        raise ValueError(
            f"no morph target of {src.name} matches mapping {mapping.name!r} "
            f"(puppet targets: {have[:20] or 'none'}; mapping targets: {list(mapping.target_names[:20])})"
            f"{extra}. Choose a mapping written for this puppet."
        )
    missing = [n for j, n in enumerate(mapping.target_names) if j not in used]
    if missing:
        log.warning("puppet %s lacks %d mapping target(s): %s", src.name, len(missing), ", ".join(missing))

    nodes_of: dict[int, list[int]] = {}
    for ni, node in enumerate(g.nodes):
        if node.mesh is not None:
            nodes_of.setdefault(node.mesh, []).append(ni)

    writer = Writer(g, bufs)  # the puppet's buffers become one, the animation data is appended to it
    t_acc = writer.add_times(len(w), fps)
    anim = gl.Animation(name=animation_name)
    for mi, kw in tracks:
        nodes = nodes_of.get(mi, [])
        if not nodes:
            log.warning(
                "mesh %s has morph targets but no node uses it; not animated", g.meshes[mi].name or mi
            )
            continue
        writer.add_track(anim, t_acc, kw.reshape(-1), gl.SCALAR, "weights", nodes)
    if not anim.channels:
        raise ValueError(f"no node of {src.name} instances a mesh with matching morph targets")
    g.animations.append(anim)
    out.parent.mkdir(parents=True, exist_ok=True)
    return writer.save(out)
