"""Blendshape rigs: a neutral mask, 52 ARKit expression deltas, landmarks, regions and symmetry.

Rig space is metric (metres), right-handed, **y up, z out of the face** (glTF's convention); the
subject's left is +x. The tracker's head pose maps rig space into the camera frame:
``x_cam = R @ x_rig + t``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import arkit

# Semantic landmarks: name -> MediaPipe Face Landmarker index (468-point mesh + 10 iris points).
# "R"/"L" are the subject's right/left (MediaPipe's 33/133 is the subject's right eye, at -x).
MEDIAPIPE_LANDMARKS: dict[str, int] = {
    # eyes: corners, upper lid, lower lid
    "eye_outer_R": 33,
    "eye_inner_R": 133,
    "eye_outer_L": 263,
    "eye_inner_L": 362,
    "lid_upper_R": 159,
    "lid_upper_outer_R": 160,
    "lid_upper_inner_R": 158,
    "lid_lower_R": 145,
    "lid_lower_outer_R": 144,
    "lid_lower_inner_R": 153,
    "lid_upper_L": 386,
    "lid_upper_outer_L": 387,
    "lid_upper_inner_L": 385,
    "lid_lower_L": 374,
    "lid_lower_outer_L": 373,
    "lid_lower_inner_L": 380,
    # brows (upper contour, inner to outer)
    "brow_inner_R": 107,
    "brow_mid_inner_R": 66,
    "brow_mid_R": 105,
    "brow_mid_outer_R": 63,
    "brow_outer_R": 70,
    "brow_inner_L": 336,
    "brow_mid_inner_L": 296,
    "brow_mid_L": 334,
    "brow_mid_outer_L": 293,
    "brow_outer_L": 300,
    # nose
    "nose_bridge_top": 168,
    "nose_bridge": 6,
    "nose_bridge_low": 197,
    "nose_dorsum": 195,
    "nose_tip": 1,
    "nose_tip_top": 4,
    "subnasale": 2,
    "nose_wing_R": 129,
    "nose_wing_L": 358,
    "alar_base_R": 98,
    "alar_base_L": 327,
    # lips: corners, outer contour, inner contour
    "mouth_corner_R": 61,
    "mouth_corner_L": 291,
    "lip_upper_top": 0,
    "lip_upper_top_R": 37,
    "lip_upper_top_L": 267,
    "lip_upper_peak_R": 40,
    "lip_upper_peak_L": 270,
    "lip_upper_inner": 13,
    "lip_upper_inner_R": 81,
    "lip_upper_inner_L": 311,
    "lip_lower_inner": 14,
    "lip_lower_inner_R": 178,
    "lip_lower_inner_L": 402,
    "lip_lower_bottom": 17,
    "lip_lower_bottom_R": 84,
    "lip_lower_bottom_L": 314,
    "lip_lower_outer_R": 91,
    "lip_lower_outer_L": 321,
    # chin and jaw line
    "chin_front": 199,
    "chin_bottom": 152,
    "chin_R": 176,
    "chin_L": 400,
    "jaw_R": 136,
    "jaw_L": 365,
    "jaw_angle_R": 172,
    "jaw_angle_L": 397,
    "jaw_upper_R": 132,
    "jaw_upper_L": 361,
    # cheeks, forehead, face sides
    "cheek_R": 50,
    "cheek_L": 280,
    "cheekbone_R": 123,
    "cheekbone_L": 352,
    "forehead": 10,
    "forehead_low": 151,
    "glabella": 9,
    "face_side_R": 234,
    "face_side_L": 454,
}

# Region masks every rig must carry; "track" is the front of the face used for fitting.
REQUIRED_MASKS = ("track",)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(eq=False)
class Rig:
    """A linear blendshape rig with the 52 ARKit expressions in canonical order.

    Parameters
    ----------
    neutral : (V, 3) float32, metres
        Rest-pose vertices in rig space.
    triangles : (F, 3) int32
        Vertex indices, counter-clockwise seen from outside.
    deltas : (52, V, 3) float32, metres
        Per-expression vertex offsets at weight 1, canonical ARKit order (``arkit.ARKIT_NAMES``).
        Use :meth:`from_named` to build from a subset or another order.
    landmark_ids : (L,) int32
        MediaPipe landmark index of each rig landmark.
    landmark_tris : (L, 3) int32
        Vertex triple of each landmark; the point is ``bary @ vertices[tris]``.
    landmark_bary : (L, 3) float32
        Barycentric weights (rows sum to 1). A vertex landmark is ``(v, v, v)`` with ``(1, 0, 0)``.
    masks : dict of str -> (V,) bool
        Face regions; ``"track"`` (front of the face used for fitting) is required.
    mirror : (V,) int32
        Index of each vertex's left/right mirror image (x -> -x).
    colors : (V, 3) uint8, optional
        Albedo for rendering (skin, lips, brows, eyes).
    name : str
    meta : dict
        JSON-serialisable provenance (source, units, builder version).
    """

    neutral: np.ndarray
    triangles: np.ndarray
    deltas: np.ndarray
    landmark_ids: np.ndarray
    landmark_tris: np.ndarray
    landmark_bary: np.ndarray
    masks: dict[str, np.ndarray]
    mirror: np.ndarray
    colors: np.ndarray | None = None
    name: str = "rig"
    meta: dict = field(default_factory=dict)

    names: tuple[str, ...] = arkit.ARKIT_NAMES

    def __post_init__(self) -> None:
        self.neutral = np.ascontiguousarray(self.neutral, dtype=np.float32)
        self.triangles = np.ascontiguousarray(self.triangles, dtype=np.int32)
        self.deltas = np.ascontiguousarray(self.deltas, dtype=np.float32)
        self.landmark_ids = np.ascontiguousarray(self.landmark_ids, dtype=np.int32)
        self.landmark_tris = np.ascontiguousarray(self.landmark_tris, dtype=np.int32)
        self.landmark_bary = np.ascontiguousarray(self.landmark_bary, dtype=np.float32)
        self.masks = {k: np.ascontiguousarray(v, dtype=bool) for k, v in self.masks.items()}
        self.mirror = np.ascontiguousarray(self.mirror, dtype=np.int32)
        if self.colors is not None:
            self.colors = np.ascontiguousarray(self.colors, dtype=np.uint8)
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_named(cls, neutral, triangles, named_deltas: dict[str, np.ndarray], **kw) -> Rig:
        """Build a rig from ``{arkit_name: (V, 3) delta}`` in any accepted spelling.

        Shapes that are absent get zero deltas; unknown names raise ``KeyError``; a name given twice
        (e.g. ``eyeBlink_L`` and ``eyeBlinkLeft``) raises ``ValueError``.
        """
        neutral = np.asarray(neutral, dtype=np.float32)
        deltas = np.zeros((arkit.NUM_SHAPES, *neutral.shape), dtype=np.float32)
        seen: set[int] = set()
        for k, d in named_deltas.items():
            i = arkit.index(k)
            _check(i not in seen, f"blendshape {arkit.ARKIT_NAMES[i]!r} given twice (as {k!r})")
            seen.add(i)
            d = np.asarray(d, dtype=np.float32)
            _check(d.shape == neutral.shape, f"delta {k!r} has shape {d.shape}, expected {neutral.shape}")
            deltas[i] = d
        return cls(neutral=neutral, triangles=triangles, deltas=deltas, **kw)

    def validate(self) -> None:
        """Check shapes, dtypes, index ranges and finiteness; raise ``ValueError`` saying what is wrong."""
        v = self.neutral
        _check(v.ndim == 2 and v.shape[1] == 3 and len(v) >= 3, f"neutral must be (V, 3), got {v.shape}")
        nv = len(v)
        _check(bool(np.isfinite(v).all()), "neutral contains NaN or inf")
        t = self.triangles
        _check(t.ndim == 2 and t.shape[1] == 3 and len(t) >= 1, f"triangles must be (F, 3), got {t.shape}")
        _check(bool((t >= 0).all() and (t < nv).all()), f"triangle indices must lie in [0, {nv})")
        d = self.deltas
        _check(
            d.shape == (arkit.NUM_SHAPES, nv, 3),
            f"deltas must be ({arkit.NUM_SHAPES}, {nv}, 3) in canonical ARKit order, got {d.shape}; "
            "use Rig.from_named for a subset or another order",
        )
        _check(bool(np.isfinite(d).all()), "deltas contain NaN or inf")
        n = len(self.landmark_ids)
        _check(self.landmark_ids.shape == (n,), "landmark_ids must be 1-D")
        _check(self.landmark_tris.shape == (n, 3), f"landmark_tris must be ({n}, 3)")
        _check(self.landmark_bary.shape == (n, 3), f"landmark_bary must be ({n}, 3)")
        if n:
            _check(
                bool((self.landmark_ids >= 0).all() and (self.landmark_ids < 478).all()),
                "landmark_ids must be MediaPipe indices in [0, 478)",
            )
            _check(len(set(self.landmark_ids.tolist())) == n, "landmark_ids must be unique")
            lt = self.landmark_tris
            _check(bool((lt >= 0).all() and (lt < nv).all()), f"landmark_tris must lie in [0, {nv})")
            _check(
                bool(np.allclose(self.landmark_bary.sum(1), 1.0, atol=1e-4)),
                "landmark_bary rows must sum to 1",
            )
        for k in REQUIRED_MASKS:
            _check(k in self.masks, f"rig needs a {k!r} mask (front of the face used for tracking)")
        for k, m in self.masks.items():
            _check(m.shape == (nv,), f"mask {k!r} must be ({nv},), got {m.shape}")
        _check(self.mirror.shape == (nv,), f"mirror must be ({nv},), got {self.mirror.shape}")
        _check(bool((self.mirror >= 0).all() and (self.mirror < nv).all()), "mirror indices out of range")
        if self.colors is not None:
            _check(self.colors.shape == (nv, 3), f"colors must be ({nv}, 3) uint8, got {self.colors.shape}")
        _check(tuple(self.names) == arkit.ARKIT_NAMES, "rig names must be the canonical ARKit order")

    # ------------------------------------------------------------------ evaluation
    @property
    def n_vertices(self) -> int:
        return len(self.neutral)

    def evaluate(self, weights: np.ndarray) -> np.ndarray:
        """Vertices for blendshape weights: ``neutral + sum_k w_k deltas_k``.

        Parameters
        ----------
        weights : (52,) or (N, 52) float
            Canonical ARKit order. Values are not clipped.

        Returns
        -------
        (V, 3) or (N, V, 3) float32, metres
        """
        w = np.asarray(weights, dtype=np.float32)
        _check(
            w.ndim in (1, 2) and w.shape[-1] == arkit.NUM_SHAPES,
            f"weights must be (52,) or (N, 52), got {w.shape}",
        )
        _check(bool(np.isfinite(w).all()), "weights contain NaN or inf")
        flat = self.deltas.reshape(arkit.NUM_SHAPES, -1)
        out = (w @ flat).reshape(*w.shape[:-1], self.n_vertices, 3)
        out += self.neutral
        return out

    def vertex_normals(self, vertices: np.ndarray | None = None) -> np.ndarray:
        """Area-weighted unit vertex normals, (V, 3) float32, pointing out of the face."""
        v = self.neutral if vertices is None else np.asarray(vertices, dtype=np.float32)
        _check(v.shape == self.neutral.shape, f"vertices must be {self.neutral.shape}, got {v.shape}")
        return vertex_normals(v, self.triangles)

    def landmark_points(self, vertices: np.ndarray | None = None) -> np.ndarray:
        """3-D landmark positions (L, 3) float32 for given vertices (default: the neutral)."""
        v = self.neutral if vertices is None else np.asarray(vertices, dtype=np.float32)
        return np.einsum("lk,lkd->ld", self.landmark_bary, v[self.landmark_tris])

    def landmark_index(self, mediapipe_index: int) -> int:
        """Row in the landmark arrays of a MediaPipe index (``KeyError`` if the rig lacks it)."""
        hits = np.flatnonzero(self.landmark_ids == mediapipe_index)
        if not len(hits):
            raise KeyError(f"rig {self.name!r} has no landmark for MediaPipe index {mediapipe_index}")
        return int(hits[0])

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | Path) -> Path:
        """Write a compressed ``.npz`` (no pickle) that :meth:`load` reads back exactly; equal rigs give
        identical bytes (numpy stamps every member 1980-01-01)."""
        path = Path(path)
        arrays = {
            "neutral": self.neutral,
            "triangles": self.triangles,
            "deltas": self.deltas,
            "names": np.array(self.names),
            "landmark_ids": self.landmark_ids,
            "landmark_tris": self.landmark_tris,
            "landmark_bary": self.landmark_bary,
            "mirror": self.mirror,
            "meta": np.array(json.dumps({"name": self.name, **self.meta})),
        }
        for k, m in self.masks.items():
            arrays[f"mask_{k}"] = m
        if self.colors is not None:
            arrays["colors"] = self.colors
        from ._io import atomic_path

        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Rig:
        """Read a rig written by :meth:`save`; errors name the file and what is missing."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"rig file not found: {path}")
        try:
            z = np.load(path, allow_pickle=False)
        except Exception as e:  # zipfile.BadZipFile, ValueError, OSError
            raise ValueError(f"{path} is not a readable rig .npz ({e})") from e
        with z:
            missing = {"neutral", "triangles", "deltas", "names", "mirror"} - set(z.files)
            if missing:
                raise ValueError(f"{path} is not a facecap rig: missing arrays {sorted(missing)}")
            names = tuple(str(n) for n in z["names"])
            meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
            name = meta.pop("name", path.stem)
            empty_i, empty_f = np.zeros((0, 3), np.int32), np.zeros((0, 3), np.float32)
            kw = dict(
                triangles=z["triangles"],
                mirror=z["mirror"],
                landmark_ids=z["landmark_ids"] if "landmark_ids" in z.files else np.zeros(0, np.int32),
                landmark_tris=z["landmark_tris"] if "landmark_tris" in z.files else empty_i,
                landmark_bary=z["landmark_bary"] if "landmark_bary" in z.files else empty_f,
                masks={k[5:]: z[k] for k in z.files if k.startswith("mask_")},
                colors=z["colors"] if "colors" in z.files else None,
                name=name,
                meta=meta,
            )
            if names == arkit.ARKIT_NAMES:
                return cls(neutral=z["neutral"], deltas=z["deltas"], **kw)
            return cls.from_named(z["neutral"], named_deltas=dict(zip(names, z["deltas"], strict=True)), **kw)

    def summary(self) -> dict:
        """Facts for ``facecap rig info``: counts, extents (mm) and per-shape peak motion (mm)."""
        ext = (self.neutral.max(0) - self.neutral.min(0)) * 1000
        peak = np.linalg.norm(self.deltas, axis=2).max(1) * 1000
        return {
            "name": self.name,
            "vertices": self.n_vertices,
            "triangles": len(self.triangles),
            "extent_mm": [round(float(e), 1) for e in ext],
            "shapes": len(self.names),
            "landmarks": len(self.landmark_ids),
            "masks": {k: int(m.sum()) for k, m in self.masks.items()},
            "peak_motion_mm": {n: round(float(p), 2) for n, p in zip(self.names, peak, strict=True)},
        }


def mesh_edges(triangles: np.ndarray, n_vertices: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The unique edges of a triangle mesh: (E, 2) int64 vertex pairs ``(i, j)``, ``i < j``, in
    lexicographic order, and (E,) how many triangles use each (1: a boundary edge). ``n_vertices``
    defaults to the largest index + 1."""
    t = np.asarray(triangles, np.int64)
    n = int(n_vertices) if n_vertices is not None else (int(t.max()) + 1 if len(t) else 1)
    e = np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1)
    keys, counts = np.unique(e[:, 0] * n + e[:, 1], return_counts=True)  # 1-D: 10x faster than rows
    return np.stack([keys // n, keys % n], axis=1), counts


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals.

    Parameters
    ----------
    vertices : (V, 3) float, metres
    triangles : (F, 3) int

    Returns
    -------
    (V, 3) float32; isolated vertices get (0, 0, 1).
    """
    v = np.asarray(vertices, dtype=np.float32)
    t = np.asarray(triangles)
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, t[:, k], fn)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    out = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    out[length[:, 0] == 0] = (0.0, 0.0, 1.0)
    return out


def mirror_map(vertices: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Index of the nearest vertex to each vertex's mirror image ``(-x, y, z)``.

    Raises ``ValueError`` if some mirror image is farther than ``tol`` metres from any vertex
    (the mesh is not left/right symmetric); ``tol=np.inf`` accepts any mesh (nearest vertex wins).
    """
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, dtype=np.float64)
    d, idx = cKDTree(v).query(v * (-1.0, 1.0, 1.0))
    if d.max() > tol:
        raise ValueError(
            f"mesh is not symmetric: a mirrored vertex is {d.max() * 1000:.2f} mm from any vertex"
        )
    return idx.astype(np.int32)


def compare_rigs(a: Rig, b: Rig, atol: float = 1e-7) -> list[str]:
    """Differences between two rigs (empty when equal): float arrays within ``atol``, the rest exactly.

    Parameters
    ----------
    a, b : Rig
    atol : float
        Tolerance of the float arrays (``neutral``, ``deltas`` in metres, ``landmark_bary``).

    Returns
    -------
    list of str
        One message per differing field; triangles, landmark ids and triangles, mirror, colors, masks,
        name and meta are compared exactly.

    Notes
    -----
    On any CPU the discrete outputs are identical (no decision rests on a tie, `_require_margin`). The
    float arrays are float32 roundings of float64 values that other BLAS kernels or SIMD transcendental
    functions move by ~1e-12 mm, so at most their last float32 bit can differ (< 1e-7 in metres and in
    barycentric weights); ``atol = 1e-7`` leaves room for that bit.
    """
    diffs = []
    for k in ("neutral", "deltas", "landmark_bary"):
        x, y = getattr(a, k), getattr(b, k)
        if x.shape != y.shape:
            diffs.append(f"{k}: shape {x.shape} != {y.shape}")
        elif not np.allclose(x, y, rtol=0, atol=atol):
            diffs.append(f"{k}: max difference {float(np.abs(x - y).max()):.3g}")
    for k in ("triangles", "landmark_ids", "landmark_tris", "mirror", "colors"):
        x, y = getattr(a, k), getattr(b, k)
        if x is None or y is None or x.shape != y.shape or not np.array_equal(x, y):
            diffs.append(f"{k}: differs")
    if set(a.masks) != set(b.masks):
        diffs.append(f"masks: {sorted(a.masks)} != {sorted(b.masks)}")
    else:
        diffs += [f"mask {k}: differs" for k in a.masks if not np.array_equal(a.masks[k], b.masks[k])]
    if a.name != b.name or a.meta != b.meta:
        diffs.append("name/meta: differ")
    return diffs


DEFAULT_RIG_PATH = Path(__file__).with_name("data") / "ict_rig.npz"
