"""USD export of a take: the rig as a skinned mesh with 52 blend shapes, animated by UsdSkel.

Layout written by :func:`export_usd` (usd-core, ``pxr``)::

    /Face                  SkelRoot (default prim)
        Skel               Skeleton, one joint "head" (bind and rest transforms identity),
                           skel:animationSource -> Anim
            Anim           SkelAnimation: blendShapes (token[52], canonical ARKit names),
                           blendShapeWeights (float[52] per time code), head joint translations /
                           rotations / scales (time-sampled when a pose is given)
        Mesh               Mesh (points, faceVertexCounts, faceVertexIndices, vertex normals) with
                           SkelBindingAPI: skel:skeleton -> Skel, skel:blendShapes, skel:blendShapeTargets,
                           every vertex bound rigidly to "head"
            <shape> x 52   BlendShape: offsets + pointIndices (only vertices that move)

Stage metadata: ``upAxis = "Y"``, ``metersPerUnit = 1`` (rig units are metres; DCCs working in
centimetres scale on import), ``timeCodesPerSecond = framesPerSecond = fps``, start time code 0 and
end time code ``N - 1`` (or the last of ``time_codes``).

Head pose is joint animation of the single ``head`` joint, so ``UsdSkel.BakeSkinning`` and DCC importers
move the mesh with it. The joint transform is the *world* pose given by the caller; for facecap takes
:mod:`facecap.export` passes the pose in the viewer frame (x right, y up, z toward the camera, camera
at the origin looking down -z), so a frontal face has identity rotation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import arkit
from ._io import atomic_path
from .checks import check_out_path, check_pose_track, check_weight_track
from .pose import quaternions_xyzw
from .rig import Rig

USD_SUFFIXES = (".usd", ".usda", ".usdc")
JOINT = "head"


def _check_inputs(rig, weights, fps, rotations, translations, time_codes):
    if not isinstance(rig, Rig):
        raise TypeError(f"rig must be a facecap.rig.Rig, got {type(rig).__name__}")
    w, fps = check_weight_track(weights, fps)
    w = w.astype(np.float32)
    n = len(w)
    r, t = check_pose_track(rotations, translations, n)
    if time_codes is None:
        tc = np.arange(n, dtype=np.float64)
    else:
        tc = np.asarray(time_codes, dtype=np.float64)
        if tc.shape != (n,) or not np.isfinite(tc).all() or (n > 1 and not np.all(np.diff(tc) > 0)):
            raise ValueError(f"time_codes must be ({n},) finite and strictly increasing")
    return w, fps, r, t, tc


def _sparse(delta: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """(point indices, offsets) of the vertices a delta moves by more than ``tol`` in some axis."""
    idx = np.flatnonzero(np.abs(delta).max(axis=1) > tol).astype(np.int32)
    if not len(idx):  # an empty pointIndices would read as "dense"; keep one zero offset instead
        idx = np.zeros(1, np.int32)
    return idx, delta[idx]


def export_usd(
    rig: Rig,
    weights: np.ndarray,
    fps: float,
    path: str | Path,
    *,
    rotations: np.ndarray | None = None,
    translations: np.ndarray | None = None,
    time_codes: np.ndarray | None = None,
    sparse_tol: float = 1e-7,
    progress: bool = False,
) -> Path:
    """Write a UsdSkel stage animating the rig's 52 blend shapes (and its head pose).

    Parameters
    ----------
    rig : Rig
    weights : (N, 52) float
        Blend-shape weights per frame, canonical ARKit order.
    fps : float
        Frames per second: the stage's ``timeCodesPerSecond``.
    path : str or Path
        ``.usda`` (text), ``.usdc`` or ``.usd`` (binary crate).
    rotations : (N, 3, 3) float, optional
        World rotation of the head per frame (rig space -> world).
    translations : (N, 3) float, metres, optional
        World position of the rig origin per frame.
    time_codes : (N,) float, optional
        Time code of each frame (strictly increasing); default ``0 .. N-1``.
    sparse_tol : float, metres
        Vertices a blend shape moves by at most this much (every axis) are left out of its
        ``pointIndices``.
    progress : bool
        Show a tqdm bar while writing the time samples.

    Returns
    -------
    Path
        The file is written under a temporary name and renamed, so a failure leaves no partial file.
    """
    from pxr import Gf, Usd, UsdGeom, UsdSkel, Vt

    path = check_out_path(path, USD_SUFFIXES, "USD output")
    w, fps, rots, trans, tcs = _check_inputs(rig, weights, fps, rotations, translations, time_codes)
    n = len(w)

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    stage.SetTimeCodesPerSecond(fps)
    stage.SetFramesPerSecond(fps)
    stage.SetStartTimeCode(float(tcs[0]))
    stage.SetEndTimeCode(float(tcs[-1]))

    root = UsdSkel.Root.Define(stage, "/Face")
    stage.SetDefaultPrim(root.GetPrim())
    root.GetPrim().SetMetadata("comment", f"facecap take: {n} frames at {fps:g} fps, rig {rig.name!r}")

    skel = UsdSkel.Skeleton.Define(stage, "/Face/Skel")
    skel.CreateJointsAttr(Vt.TokenArray([JOINT]))
    ident = Vt.Matrix4dArray([Gf.Matrix4d(1.0)])
    skel.CreateBindTransformsAttr(ident)
    skel.CreateRestTransformsAttr(ident)

    anim = UsdSkel.Animation.Define(stage, "/Face/Skel/Anim")
    anim.CreateJointsAttr(Vt.TokenArray([JOINT]))
    names = Vt.TokenArray(list(arkit.ARKIT_NAMES))
    anim.CreateBlendShapesAttr(names)
    w_attr = anim.CreateBlendShapeWeightsAttr()
    t_attr = anim.CreateTranslationsAttr()
    r_attr = anim.CreateRotationsAttr()
    anim.CreateScalesAttr(Vt.Vec3hArray([Gf.Vec3h(1.0, 1.0, 1.0)]))
    if trans is None:
        t_attr.Set(Vt.Vec3fArray([Gf.Vec3f(0.0, 0.0, 0.0)]))
    if rots is None:
        r_attr.Set(Vt.QuatfArray([Gf.Quatf(1.0, 0.0, 0.0, 0.0)]))
        q = None
    else:
        q = quaternions_xyzw(rots)  # x, y, z, w
    frames = range(n)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, unit="frame", desc=f"writing {path.name}")
    for i in frames:
        tc = Usd.TimeCode(float(tcs[i]))
        w_attr.Set(Vt.FloatArray.FromNumpy(w[i]), tc)
        if trans is not None:
            t_attr.Set(Vt.Vec3fArray([Gf.Vec3f(*trans[i].tolist())]), tc)
        if q is not None:
            x, y, z, s = q[i].tolist()
            r_attr.Set(Vt.QuatfArray([Gf.Quatf(s, x, y, z)]), tc)
    UsdSkel.BindingAPI.Apply(skel.GetPrim()).CreateAnimationSourceRel().SetTargets([anim.GetPath()])

    mesh = UsdGeom.Mesh.Define(stage, "/Face/Mesh")
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(rig.neutral))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray([3] * len(rig.triangles)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(rig.triangles.reshape(-1)))
    mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(rig.vertex_normals()))
    mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    lo, hi = rig.neutral.min(0).tolist(), rig.neutral.max(0).tolist()
    mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*lo), Gf.Vec3f(*hi)]))
    if rig.colors is not None:
        from .gltf import srgb_to_linear

        pv = mesh.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex)
        pv.Set(Vt.Vec3fArray.FromNumpy(srgb_to_linear(rig.colors / 255.0)))

    binding = UsdSkel.BindingAPI.Apply(mesh.GetPrim())
    binding.CreateSkeletonRel().SetTargets([skel.GetPath()])
    binding.CreateJointIndicesPrimvar(True, 1).Set(Vt.IntArray([0]))
    binding.CreateJointWeightsPrimvar(True, 1).Set(Vt.FloatArray([1.0]))
    binding.CreateGeomBindTransformAttr(Gf.Matrix4d(1.0))
    binding.CreateBlendShapesAttr(names)
    targets = []
    for k, name in enumerate(arkit.ARKIT_NAMES):
        bs = UsdSkel.BlendShape.Define(stage, mesh.GetPath().AppendChild(name))
        idx, off = _sparse(rig.deltas[k], float(sparse_tol))
        bs.CreateOffsetsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(off, dtype=np.float32)))
        bs.CreatePointIndicesAttr(Vt.IntArray.FromNumpy(idx))
        targets.append(bs.GetPath())
    binding.CreateBlendShapeTargetsRel().SetTargets(targets)

    with atomic_path(path) as tmp:
        if not stage.GetRootLayer().Export(str(tmp)):
            raise RuntimeError(f"USD could not write {tmp}")
    return path


def read_usd(path: str | Path) -> dict:
    """Read back what :func:`export_usd` wrote (for checks and tools).

    Returns
    -------
    dict with ``fps``, ``time_codes`` (N,), ``names`` (52 str), ``weights`` (N, 52) float32,
    ``points`` (V, 3) float32, ``triangles`` (F, 3) int32, ``deltas`` (52, V, 3) float32 (dense, from
    offsets + pointIndices), ``rotations`` (N, 4) float64 quaternions (x, y, z, w) or None,
    ``translations`` (N, 3) float64 or None.
    """
    from pxr import Usd, UsdGeom, UsdSkel

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"USD file not found: {p}")
    stage = Usd.Stage.Open(str(p))
    if stage is None:
        raise ValueError(f"{p} is not a readable USD file")
    mesh = UsdGeom.Mesh(stage.GetPrimAtPath("/Face/Mesh"))
    anim = UsdSkel.Animation(stage.GetPrimAtPath("/Face/Skel/Anim"))
    if not mesh or not anim:
        raise ValueError(f"{p} was not written by facecap.usd.export_usd (no /Face/Mesh or /Face/Skel/Anim)")
    points = np.array(mesh.GetPointsAttr().Get(), dtype=np.float32)
    tri = np.array(mesh.GetFaceVertexIndicesAttr().Get(), dtype=np.int32).reshape(-1, 3)
    names = [str(t) for t in anim.GetBlendShapesAttr().Get()]
    w_attr = anim.GetBlendShapeWeightsAttr()
    times = np.array(w_attr.GetTimeSamples(), dtype=np.float64)
    weights = np.array([np.array(w_attr.Get(t), dtype=np.float32) for t in times]).reshape(len(times), -1)
    binding = UsdSkel.BindingAPI(mesh.GetPrim())
    shape_names = [str(t) for t in binding.GetBlendShapesAttr().Get()]
    target_paths = binding.GetBlendShapeTargetsRel().GetTargets()
    deltas = np.zeros((len(shape_names), len(points), 3), np.float32)
    for k, tp in enumerate(target_paths):
        bs = UsdSkel.BlendShape(stage.GetPrimAtPath(tp))
        off = np.array(bs.GetOffsetsAttr().Get(), dtype=np.float32).reshape(-1, 3)
        idx_attr = bs.GetPointIndicesAttr()
        idx = (
            np.array(idx_attr.Get(), dtype=np.int64)
            if idx_attr.HasAuthoredValue()
            else np.arange(len(points))
        )
        deltas[k, idx] = off
    order = [shape_names.index(nm) for nm in names] if sorted(shape_names) == sorted(names) else None
    r_attr, t_attr = anim.GetRotationsAttr(), anim.GetTranslationsAttr()
    rot = tr = None
    if r_attr.GetNumTimeSamples():
        rot = np.array([[q.GetImaginary()[0], q.GetImaginary()[1], q.GetImaginary()[2], q.GetReal()]
                        for q in (r_attr.Get(t)[0] for t in times)], dtype=np.float64)  # fmt: skip
    if t_attr.GetNumTimeSamples():
        tr = np.array([list(t_attr.Get(t)[0]) for t in times], dtype=np.float64)
    return {
        "fps": stage.GetTimeCodesPerSecond(),
        "start": stage.GetStartTimeCode(),
        "end": stage.GetEndTimeCode(),
        "up_axis": str(UsdGeom.GetStageUpAxis(stage)),
        "meters_per_unit": UsdGeom.GetStageMetersPerUnit(stage),
        "time_codes": times,
        "names": names,
        "weights": weights,
        "points": points,
        "triangles": tri,
        "deltas": deltas[order] if order is not None else deltas,
        "shape_names": shape_names,
        "rotations": rot,
        "translations": tr,
    }
