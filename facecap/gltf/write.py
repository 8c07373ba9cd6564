"""Writing glTF 2.0: a rig as a mesh with 52 named morph targets, a take as a morph-weight animation.

:class:`Writer` lays out one binary buffer with its bufferViews and accessors (and re-packs a loaded
document's buffers, for :func:`facecap.retarget.apply_to_gltf`); :func:`export_rig` and
:func:`export_animation` write the layout described in :mod:`facecap.gltf.format`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pygltflib as gl

from .._io import atomic_path
from ..checks import check_out_path, check_pose_track, check_weight_track
from ..pose import quaternions_xyzw
from ..rig import Rig
from .format import COMPONENT_DTYPES, FORMAT_VERSION, GLTF_SUFFIXES, N_COMPONENTS, srgb_to_linear

_GENERATOR = "facecap"


class Writer:
    """Accumulates one binary buffer and the bufferViews/accessors that describe it.

    Parameters
    ----------
    gltf : pygltflib.GLTF2, optional
        A document to append to (from :func:`~facecap.gltf.load_gltf`); default a new, empty one.
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
        dtype = COMPONENT_DTYPES[component]
        ncomp = N_COMPONENTS[kind]
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
        "version": FORMAT_VERSION,
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
        :func:`~facecap.gltf.import_rig` reads it back into an identical rig.
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
