"""Import the ICT Face Model (USC ICT-FaceKit, MIT licence) as a facecap :class:`~facecap.rig.Rig`.

Two folder layouts are read:

- **npz** (``../shared/data/ict_facekit``): ``ict_expression_deltas_part*.npz`` with arrays ``names``
  (N,), ``neutral`` (V, 3) and ``deltas`` (N, V, 3) in centimetres, ``generic_neutral_mesh.obj`` for the
  polygons and ``vertex_indices.json`` for the landmark vertices;
- **obj** (upstream ``FaceXModel/``): ``generic_neutral_mesh.obj`` plus one OBJ per expression named
  like ``eyeBlink_L.obj`` with the same topology (other OBJs, e.g. ``identity000.obj``, are ignored).

ICT's frame already is facecap's rig space (y up, z out of the face, the subject's left at +x, checked
on the eye landmarks); only the unit changes (cm -> m). ICT's expressions map to ARKit names
(``eyeBlink_L`` -> ``eyeBlinkLeft``); its split ``browInnerUp_L/_R`` and ``cheekPuff_L/_R`` are summed
into ``browInnerUp`` and ``cheekPuff``; ``PupilDilate_*`` and ``cheekRaiser_*`` are dropped; ``tongueOut``
does not exist in ICT and gets a zero delta. ``rig.meta`` records all of it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from . import arkit
from .rig import MEDIAPIPE_LANDMARKS, Rig, mirror_map

ICT_N_VERTICES = 26719
NEUTRAL_OBJ = "generic_neutral_mesh.obj"
INDICES_JSON = "vertex_indices.json"
NPZ_GLOB = "ict_expression_deltas_part*.npz"
LICENSE = "ICT-FaceKit, MIT licence, Copyright (c) 2020 USC Institute for Creative Technologies"

# Vertex ranges [start, stop) of ICT's geometry pieces (ICT-FaceKit README, "Face Model Topology").
ICT_REGIONS: dict[str, tuple[int, int]] = {
    "face": (0, 9409), "head_neck": (9409, 11248), "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678), "eye_socket_right": (13678, 14062),
    "gums_tongue": (14062, 17039), "teeth": (17039, 21451),
    "eyeball_left": (21451, 23021), "eyeball_right": (23021, 24591),
    "lacrimal_left": (24591, 24795), "lacrimal_right": (24795, 24999),
    "eye_blend_left": (24999, 25023), "eye_blend_right": (25023, 25047),
    "eye_occlusion_left": (25047, 25199), "eye_occlusion_right": (25199, 25351),
    "eyelashes_left": (25351, 26035), "eyelashes_right": (26035, 26719),
}  # fmt: skip

# iBUG-68 landmark index (ICT's ``idx_to_landmark_verts`` order) -> facecap semantic landmark name
# (``rig.MEDIAPIPE_LANDMARKS``). "R"/"L" are the subject's sides (iBUG 36 is the subject's right
# eye's outer corner). Left out: jaw-contour points between named MediaPipe points (2-4, 6, 7, 9, 10,
# 12-14, 0, 16), the nostril points 32/34 and the inner mouth corners 60/64, which have no named
# MediaPipe counterpart. Checked against MediaPipe's canonical face in tests/test_facekit.py.
IBUG68_TO_LANDMARK: dict[int, str] = {
    1: "face_side_R", 5: "jaw_R", 8: "chin_bottom", 11: "jaw_L", 15: "face_side_L",
    17: "brow_outer_R", 18: "brow_mid_outer_R", 19: "brow_mid_R", 20: "brow_mid_inner_R", 21: "brow_inner_R",
    22: "brow_inner_L", 23: "brow_mid_inner_L", 24: "brow_mid_L", 25: "brow_mid_outer_L", 26: "brow_outer_L",
    27: "nose_bridge_top", 28: "nose_bridge_low", 29: "nose_dorsum", 30: "nose_tip",
    31: "alar_base_R", 33: "subnasale", 35: "alar_base_L",
    36: "eye_outer_R", 37: "lid_upper_outer_R", 38: "lid_upper_inner_R", 39: "eye_inner_R",
    40: "lid_lower_inner_R", 41: "lid_lower_outer_R",
    42: "eye_inner_L", 43: "lid_upper_inner_L", 44: "lid_upper_outer_L", 45: "eye_outer_L",
    46: "lid_lower_outer_L", 47: "lid_lower_inner_L",
    48: "mouth_corner_R", 49: "lip_upper_peak_R", 50: "lip_upper_top_R", 51: "lip_upper_top",
    52: "lip_upper_top_L", 53: "lip_upper_peak_L", 54: "mouth_corner_L",
    55: "lip_lower_outer_L", 56: "lip_lower_bottom_L", 57: "lip_lower_bottom", 58: "lip_lower_bottom_R",
    59: "lip_lower_outer_R",
    61: "lip_upper_inner_R", 62: "lip_upper_inner", 63: "lip_upper_inner_L",
    65: "lip_lower_inner_L", 66: "lip_lower_inner", 67: "lip_lower_inner_R",
}  # fmt: skip

# ICT splits these ARKit shapes into halves; facecap sums them.
SPLIT_SHAPES: dict[str, tuple[str, str]] = {
    "browInnerUp": ("browInnerUp_L", "browInnerUp_R"),
    "cheekPuff": ("cheekPuff_L", "cheekPuff_R"),
}
DROPPED_PREFIXES = ("PupilDilate", "cheekRaiser")  # ICT extras with no ARKit counterpart
_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
_OVERLAYS = ("lacrimal", "eye_blend", "eye_occlusion")


# ---------------------------------------------------------------------------------------------- OBJ
def _obj_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise ValueError(f"cannot read {path} ({e})") from e


def _obj_vertices(lines: list[str], path: Path) -> np.ndarray:
    rows = [ln[2:] for ln in lines if ln.startswith("v ")]
    if not rows:
        raise ValueError(f"{path} has no vertices ('v x y z' lines); is it a Wavefront OBJ?")
    try:
        flat = np.array(" ".join(rows).split(), dtype=np.float64)
        if len(flat) % len(rows):
            raise ValueError
        v = flat.reshape(len(rows), -1)[:, :3]
        if v.shape[1] != 3:
            raise ValueError
    except ValueError:  # ragged rows (optional w / colours): parse line by line
        try:
            v = np.array([[float(x) for x in r.split()[:3]] for r in rows], dtype=np.float64)
        except ValueError as e:
            raise ValueError(f"{path}: unreadable vertex line ({e})") from e
        if v.ndim != 2 or v.shape[1] != 3:
            raise ValueError(f"{path}: every 'v' line needs x y z") from None
    if not np.isfinite(v).all():
        raise ValueError(f"{path}: vertices contain NaN or inf")
    return v


def _obj_triangles(lines: list[str], n_vertices: int, path: Path) -> np.ndarray:
    """Polygons of ``f`` lines, fan-triangulated, 0-based (F, 3) int32."""
    tris: list[tuple[int, int, int]] = []
    for ln in lines:
        if not ln.startswith("f "):
            continue
        try:
            idx = [int(tok.split("/", 1)[0]) for tok in ln[2:].split()]
        except ValueError:
            raise ValueError(f"{path}: unreadable face line {ln[:60]!r}") from None
        if len(idx) < 3:
            raise ValueError(f"{path}: face with fewer than 3 vertices: {ln[:60]!r}")
        idx = [i - 1 if i > 0 else n_vertices + i for i in idx]
        tris.extend((idx[0], idx[k], idx[k + 1]) for k in range(1, len(idx) - 1))
    if not tris:
        raise ValueError(f"{path} has no faces ('f' lines)")
    t = np.asarray(tris, dtype=np.int64)
    if t.min() < 0 or t.max() >= n_vertices:
        raise ValueError(f"{path}: face indices outside the {n_vertices} vertices")
    return t.astype(np.int32)


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and fan-triangulated faces of a Wavefront OBJ.

    Returns
    -------
    vertices : (V, 3) float64, file units
    triangles : (F, 3) int32, 0-based
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OBJ file not found: {path}")
    lines = _obj_lines(path)
    v = _obj_vertices(lines, path)
    return v, _obj_triangles(lines, len(v), path)


# ---------------------------------------------------------------------------------------------- names
def _classify(names: list[str]) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """Map ICT names to canonical ARKit names.

    Returns ``({canonical: [ict names summed into it]}, dropped, unknown)``.
    """
    split_of = {half: whole for whole, halves in SPLIT_SHAPES.items() for half in halves}
    groups: dict[str, list[str]] = {}
    dropped, unknown = [], []
    for n in names:
        if n.startswith(DROPPED_PREFIXES):
            dropped.append(n)
            continue
        if n in split_of:
            key = split_of[n]
        else:
            try:
                key = arkit.canonical_name(n)
            except KeyError:
                unknown.append(n)
                continue
        groups.setdefault(key, []).append(n)
    for key, members in groups.items():
        if len(members) > 1 and sorted(members) != sorted(SPLIT_SHAPES.get(key, ())):
            raise ValueError(f"expression {key!r} is given more than once: {members}")
    return groups, dropped, unknown


# ---------------------------------------------------------------------------------------------- loaders
def _load_npz_layout(folder: Path, parts: list[Path]) -> tuple[list[str], np.ndarray, np.ndarray]:
    names: list[str] = []
    deltas, neutral = [], None
    for p in parts:
        try:
            with np.load(p, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("names", "neutral", "deltas") if k in z.files}
        except Exception as e:  # BadZipFile, OSError, EOFError, ValueError (pickled object arrays)
            raise ValueError(f"{p} is not a readable npz ({type(e).__name__}: {e})") from e
        missing = {"names", "neutral", "deltas"} - set(arrays)
        if missing:
            raise ValueError(f"{p} lacks arrays {sorted(missing)} (needs names, neutral, deltas)")
        nm = [str(n) for n in np.atleast_1d(arrays["names"])]
        d, nt = arrays["deltas"], arrays["neutral"]
        if d.ndim != 3 or d.shape[0] != len(nm) or d.shape[2] != 3 or nt.shape != d.shape[1:]:
            raise ValueError(f"{p}: deltas {d.shape} / neutral {nt.shape} do not match {len(nm)} names")
        if neutral is not None and nt.shape != neutral.shape:
            raise ValueError(f"{p}: topology mismatch ({len(nt)} vertices, other parts {len(neutral)})")
        neutral = nt
        names += nm
        deltas.append(d)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{folder}: expressions {dup} appear in more than one npz part")
    return names, np.concatenate(deltas).astype(np.float64), neutral


def _load_obj_layout(folder: Path, neutral: np.ndarray, n_faces: int) -> tuple[list[str], np.ndarray, list]:
    names, deltas, ignored = [], [], []
    for p in sorted(folder.glob("*.obj")):
        if p.name == NEUTRAL_OBJ:
            continue
        if _classify([p.stem])[2]:  # not an expression name (identity000.obj, ...)
            ignored.append(p.name)
            continue
        lines = _obj_lines(p)
        v = _obj_vertices(lines, p)
        nf = sum(1 for ln in lines if ln.startswith("f "))
        if v.shape != neutral.shape or nf != n_faces:
            raise ValueError(
                f"topology mismatch: {p.name} has {len(v)} vertices / {nf} faces, "
                f"{NEUTRAL_OBJ} has {len(neutral)} / {n_faces}; every expression OBJ must share its mesh"
            )
        names.append(p.stem)
        deltas.append(v - neutral)
    if not names:
        raise FileNotFoundError(
            f"{folder} has {NEUTRAL_OBJ} but no expression OBJs (eyeBlink_L.obj, jawOpen.obj, ...) "
            f"and no {NPZ_GLOB}"
        )
    return names, np.stack(deltas), ignored


def load_ict_facekit(folder: str | Path, *, units: str = "cm") -> Rig:
    """Load an ICT-FaceKit folder as a 52-shape ARKit rig in metres.

    Parameters
    ----------
    folder : str or Path
        npz layout (``ict_expression_deltas_part*.npz`` + ``generic_neutral_mesh.obj``
        [+ ``vertex_indices.json``]) or OBJ layout (``generic_neutral_mesh.obj`` + ``eyeBlink_L.obj`` ...).
    units : {"cm", "mm", "m"}
        Unit of the files; ICT ships centimetres.

    Returns
    -------
    Rig
        ``masks``: ``track`` (front of the face: ICT's fitting vertices of the face piece, in front of the
        ears and above the jaw line), ``face``, ``eyeballs``, ``mouth_interior`` and ``overlays``
        (transparent eye layers a renderer should skip) for the full ICT topology; ``track`` = all
        vertices otherwise. Landmarks from ``vertex_indices.json``
        (:data:`IBUG68_TO_LANDMARK`). ``meta`` lists summed, dropped and missing shapes.
    """
    import time

    t0 = time.perf_counter()
    folder = Path(folder)
    if units not in _UNITS:
        raise ValueError(f"units must be one of {sorted(_UNITS)}, got {units!r}")
    if not folder.exists():
        raise FileNotFoundError(f"ICT-FaceKit folder not found: {folder}")
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; give the folder holding {NEUTRAL_OBJ}")
    obj = folder / NEUTRAL_OBJ
    if not obj.is_file():
        raise FileNotFoundError(f"{folder} is not an ICT-FaceKit folder: {NEUTRAL_OBJ} is missing")
    lines = _obj_lines(obj)
    neutral = _obj_vertices(lines, obj)
    triangles = _obj_triangles(lines, len(neutral), obj)
    n_faces = sum(1 for ln in lines if ln.startswith("f "))
    del lines

    parts = sorted(folder.glob(NPZ_GLOB))
    ignored: list[str] = []
    if parts:
        layout = "npz"
        names, deltas, npz_neutral = _load_npz_layout(folder, parts)
        if npz_neutral.shape != neutral.shape:
            raise ValueError(
                f"topology mismatch: the npz parts have {len(npz_neutral)} vertices, "
                f"{NEUTRAL_OBJ} has {len(neutral)}"
            )
        if np.abs(npz_neutral - neutral).max() > 1e-3:
            raise ValueError(f"the npz neutral differs from {NEUTRAL_OBJ}; they come from different models")
    else:
        layout = "obj"
        names, deltas, ignored = _load_obj_layout(folder, neutral, n_faces)
    if not np.isfinite(deltas).all():
        raise ValueError(f"{folder}: expression deltas contain NaN or inf")

    groups, dropped, unknown = _classify(names)
    if unknown:
        warnings.warn(f"{folder}: skipping expressions with no ARKit name: {unknown}", stacklevel=2)
    if not groups:
        raise ValueError(f"{folder}: none of the expressions {names[:5]}... is an ARKit blendshape")
    scale = _UNITS[units]
    row = {n: i for i, n in enumerate(names)}
    named = {k: (deltas[[row[m] for m in ms]].sum(0) * scale).astype(np.float32) for k, ms in groups.items()}
    v = (neutral * scale).astype(np.float32)
    missing = [n for n in arkit.ARKIT_NAMES if n not in named]
    combined = {k: ms for k, ms in groups.items() if len(ms) > 1 or k in SPLIT_SHAPES}

    full = len(v) == ICT_N_VERTICES
    index_file = folder / INDICES_JSON
    indices = _indices_json(index_file)
    lm_vertices = _checked_indices(indices, index_file, "idx_to_landmark_verts", len(v))
    if lm_vertices is not None and len(lm_vertices) != 68:
        raise ValueError(
            f"{index_file}: idx_to_landmark_verts must list 68 iBUG landmarks, got {len(lm_vertices)}"
        )
    fitting = _checked_indices(indices, index_file, "idx_to_fitting_verts", len(v))
    masks = _masks(v, lm_vertices, fitting) if full else {"track": np.ones(len(v), bool)}
    ids, tris, bary, used = _landmarks(lm_vertices)

    mirror = mirror_map(v, tol=np.inf)  # scanned meshes are only nearly symmetric
    dist = np.linalg.norm(v[mirror].astype(np.float64) - v * (-1.0, 1.0, 1.0), axis=1)
    meta = {
        "source": "ICT-FaceKit", "license": LICENSE, "folder": str(folder), "layout": layout,
        "source_units": units, "units": "m", "combined": combined, "dropped": dropped,
        "unknown": unknown, "ignored_files": ignored, "missing": missing,
        "mirror_max_error_m": round(float(dist.max()), 6),
        "landmarks_ibug68": used,
        "regions": {k: list(r) for k, r in ICT_REGIONS.items()} if full else {},
    }  # fmt: skip
    rig = Rig.from_named(
        v, triangles, named, landmark_ids=ids, landmark_tris=tris, landmark_bary=bary, masks=masks,
        mirror=mirror, colors=_albedo(v, lm_vertices) if full else None,
        name="ict_facekit", meta=meta,
    )  # fmt: skip
    rig.meta["load_seconds"] = round(time.perf_counter() - t0, 3)
    return rig


def _indices_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not readable JSON ({e})") from e


def _checked_indices(data: dict, path: Path, key: str, n_vertices: int) -> np.ndarray | None:
    if key not in data:
        return None
    idx = np.asarray(data[key], dtype=np.int64)
    if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= n_vertices)):
        raise ValueError(
            f"{path}: {key} holds indices outside the {n_vertices} vertices (topology mismatch?)"
        )
    return idx


def _landmarks(lm_vertices: np.ndarray | None):
    if lm_vertices is None:
        return np.zeros(0, np.int32), np.zeros((0, 3), np.int32), np.zeros((0, 3), np.float32), {}
    items = sorted(IBUG68_TO_LANDMARK.items())
    ids = np.array([MEDIAPIPE_LANDMARKS[name] for _, name in items], dtype=np.int32)
    verts = lm_vertices[[i for i, _ in items]]
    tris = np.repeat(verts[:, None], 3, axis=1).astype(np.int32)
    bary = np.tile(np.float32([1, 0, 0]), (len(items), 1))
    return ids, tris, bary, {str(MEDIAPIPE_LANDMARKS[name]): i for i, name in items}


def _region(name: str, n: int) -> np.ndarray:
    m = np.zeros(n, bool)
    a, b = ICT_REGIONS[name]
    m[a:b] = True
    return m


def _masks(
    v: np.ndarray, lm_vertices: np.ndarray | None, fitting: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Region masks of the full ICT topology."""
    n = len(v)
    face = _region("face", n)
    track = face.copy()
    if fitting is not None:  # ICT's own fitting set: no lid/lip margins, nostrils or outer rim
        fit = np.zeros(n, bool)
        fit[fitting] = True
        track &= fit
    if lm_vertices is not None:  # in front of the ears, above the jaw line (no neck, no under-chin)
        jaw = v[lm_vertices[:17]]
        track &= v[:, 2] >= jaw[[0, 16], 2].min()
        track &= v[:, 1] >= np.interp(v[:, 0], jaw[:, 0], jaw[:, 1]) - 0.005
    return {
        "track": track,
        "face": face,
        "eyeballs": _region("eyeball_left", n) | _region("eyeball_right", n),
        "mouth_interior": _region("mouth_socket", n) | _region("gums_tongue", n) | _region("teeth", n),
        # ICT's transparent layers over the eyes (tear film, blend and occlusion shells): renderers skip them
        "overlays": np.any([_region(f"{k}_{s}", n) for k in _OVERLAYS for s in ("left", "right")], axis=0),
    }


def _albedo(v: np.ndarray, lm_vertices: np.ndarray | None) -> np.ndarray:
    """Simple per-vertex sRGB albedo: skin, lips, brows, eyes (white, iris, pupil), mouth, lashes."""
    from matplotlib.path import Path as Polygon

    n = len(v)
    c = np.tile(np.uint8([222, 170, 140]), (n, 1))
    paint = {
        "mouth_socket": (120, 45, 50), "gums_tongue": (190, 95, 100), "teeth": (235, 228, 210),
        "eyelashes_left": (35, 28, 25), "eyelashes_right": (35, 28, 25),
        "eye_socket_left": (170, 105, 100), "eye_socket_right": (170, 105, 100),
        **{f"{k}_{s}": (240, 236, 232) for k in _OVERLAYS for s in ("left", "right")},
    }  # fmt: skip
    for region, rgb in paint.items():
        c[_region(region, n)] = rgb
    for side in ("left", "right"):
        eye = _region(f"eyeball_{side}", n)
        p = v[eye]
        centre = (p.max(0) + p.min(0)) / 2
        d = p - centre
        cos = d[:, 2] / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        col = np.tile(np.uint8([240, 238, 232]), (len(p), 1))
        col[cos > np.cos(np.radians(32))] = (80, 60, 45)
        col[cos > np.cos(np.radians(13))] = (15, 12, 12)
        c[eye] = col
    if lm_vertices is not None:
        face = _region("face", n)
        lm = v[lm_vertices]
        lips = Polygon(lm[48:60, :2]).contains_points(v[:, :2]) & face & (v[:, 2] > lm[[48, 54], 2].min())
        c[lips] = (185, 100, 100)
        for brow in (lm[17:22], lm[22:27]):  # a band around each brow line
            seg_y = np.interp(v[:, 0], *(brow[:, :2][np.argsort(brow[:, 0])].T))
            inside = (v[:, 0] >= brow[:, 0].min() - 0.003) & (v[:, 0] <= brow[:, 0].max() + 0.003)
            band = (
                face
                & inside
                & (np.abs(v[:, 1] - seg_y + 0.002) < 0.005)
                & (v[:, 2] > brow[:, 2].min() - 0.01)
            )
            c[band] = (95, 65, 50)
    return c


RIG_LOADERS = {"folder": load_ict_facekit}
