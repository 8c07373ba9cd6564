"""Build facecap's scan-based rig from the ICT Face Model (USC ICT-FaceKit, MIT licence).

The rig is the part of ICT's generic head a depth camera sees: the full face piece (hairline, ears and
upper neck included; scalp and back of the head dropped) and, in its openings, what shows through them:
eyeballs (ICT's sclera/cornea shells), eye sockets, the mouth socket, gums, tongue and teeth. ICT's 53
expressions become the 52 ARKit shapes; what ICT lacks is authored here (``tongueOut``, the eyeballs'
rotation in ``eyeLook*``). All 478 MediaPipe landmarks are placed on it by registering MediaPipe's canonical
face to the ICT neutral, the iris points from ICT's iris geometry.

Construction
------------
* **Parts** (ICT vertex groups, README of ICT-FaceKit; kept in ICT's vertex order, see ``PARTS``): face
  0-9408 (the *full* face: measured, the ring 6706-9408 outside ICT's narrow face is a quarter of the head
  pixels a camera sees at 0-40 deg yaw, and holds 2231 of ICT's 7801 fitting vertices), mouth socket,
  eye sockets, gums and tongue, teeth, the two sclera shells of the eyeballs. Dropped: head and neck
  9409-11247, the iris shells (22221-23020, 23791-24590: behind the cornea, used to measure the iris),
  tear film, eye-blend and occlusion shells and eyelash cards (24591-26718).
* **Shapes**: ``facecap.facekit.load_ict_facekit`` (cm -> m, ``browInnerUp_L+_R``, ``cheekPuff_L+_R``
  summed). ``cheekRaiser_L/R`` are dropped: they move the same region as ``cheekSquint_L/R`` (same peak
  vertex, cosine 0.91, 94 % of the support inside cheekSquint's) and ARKit's cheekSquint *is* the cheek
  raiser (FACS AU6); summing both would double the motion. ``PupilDilate_L/R`` are dropped: they move only
  the iris shells, which are not shipped (no ARKit counterpart either). ICT's ``eyeLook*`` move only the
  lids; here the eyeball shell also turns ``EYE_LOOK_DEG`` about the eye's centre. ``tongueOut`` is
  authored on the tongue (ICT's UV island of the tongue).
* **Landmarks**: similarity (52 iBUG pairs of ICT's landmark vertices) then a nonrigid fit of the
  canonical mesh to the ICT face surface (fixed iterations, Laplacian regularised, the pairs as soft
  constraints); each point is finally projected onto the rig surface: points near the lid and lip slits
  onto their own side of it (the lid contours first onto ICT's lid margin through its eye landmarks), the
  rest onto the ``track`` surface where that is within ``TRACK_SNAP_MM``. Midline points use ICT's
  midline (x = 0) polyline, so a concave midline crease is no tie.
* **Masks**: ``track`` = ICT's fitting vertices of the face plus the lid margins, kept where one of
  ``VIEWS`` sees them (facing it, not hidden: no inner lips, nostrils or ear backs), in front of the ears,
  below the hairline, above the jaw line. Region masks carry the generic rig's names and meanings
  (``eyelids``, ``brows``, ``lips``, ``jaw``...), placed with the registered landmarks.
* **Reproducibility**: the inputs are fixed files, so only BLAS/LAPACK solves and transcendental functions
  can round differently per CPU. Every discrete decision (masks, colours, landmark triangles, selections)
  asserts a margin far above that noise (``_require_margin``); the build fails loudly instead of depending
  on the CPU.

Units are millimetres inside this module and metres in the saved rig (``facecap.rig.Rig``); rig space is
ICT's own frame (y up, z out of the face, subject's left +x), origin ICT's (near the ear canals).

Usage::

    python rigs/build_ict_rig.py            # write facecap/data/ict_rig.npz (+ LICENSE_ICT-FaceKit.txt)
    python rigs/build_ict_rig.py --check    # rebuild in memory, compare with the committed file
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # buildcheck, beside this script

from buildcheck import require_margin  # noqa: E402

from facecap import arkit  # noqa: E402
from facecap.facekit import (  # noqa: E402
    IBUG68_TO_LANDMARK,
    ICT_N_VERTICES,
    INDICES_JSON,
    NEUTRAL_OBJ,
    NPZ_GLOB,
    load_ict_facekit,
    read_obj,
)
from facecap.rig import MEDIAPIPE_LANDMARKS, Rig, compare_rigs, vertex_normals  # noqa: E402

BUILDER_VERSION = 1
RIG_NAME = "facecap-ict"
SHARED = ROOT.parent / "shared" / "data"
ICT_DIR = SHARED / "ict_facekit"
CANONICAL_OBJ = SHARED / "mediapipe_face_landmarker" / "canonical_face_model.obj"
DEFAULT_OUT = ROOT / "facecap" / "data" / "ict_rig.npz"
LICENSE_SOURCE = "LICENSE_ICT-FaceKit_MIT.txt"  # in the ICT folder
LICENSE_NAME = "LICENSE_ICT-FaceKit.txt"  # beside the shipped rig
ICT_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"  # github.com/ICT-VGL/ICT-FaceKit (FaceXModel/)

# ---------------------------------------------------------------------------------------------- design
# Kept ICT vertex ranges [start, stop), in ICT order; a part may have several ranges.
PARTS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("face", ((0, 9409),)),
    ("mouth_socket", ((11248, 13294),)),
    ("eye_sockets", ((13294, 14062),)),
    ("gums_tongue", ((14062, 17039),)),
    ("teeth", ((17039, 21451),)),
    ("eyeballs", ((21451, 22221), (23021, 23791))),  # sclera/cornea shells, left (+x) then right
)
SCLERA = {1: (21451, 22221), -1: (23021, 23791)}  # side (+1 subject's left) -> ICT range
IRIS = {1: (22221, 23021), -1: (23791, 24591)}
MATERIAL_RANGES = {"M_ScleraLeft": SCLERA[1], "M_IrisLeft": IRIS[1], "M_ScleraRight": SCLERA[-1],
                   "M_IrisRight": IRIS[-1]}  # fmt: skip

EYE_LOOK_DEG = 30.0  # eyeball turn of a full eyeLook shape (the tracker reads gaze with about this)
TONGUE_DORSUM = np.array([0.0, -31.0, 70.0])  # mm, ICT frame: a point just above the tongue's back
TONGUE_OUT_MM = 26.0  # tip travel of tongueOut (forward, out of the closed mouth's lips by ~8 mm)
TONGUE_DIRECTION = np.array([0.0, -0.25, 1.0])  # forward and a little down (over the lower lip)
TONGUE_ROOT_Z = (40.0, 85.0)  # mm: weight 0 behind the first, 1 in front of the second (smooth between)
TONGUE_ATTACH_MM = 8.0  # the weight fades to 0 at the tongue's attachment (frenulum, root seams)
TONGUE_NARROW = 0.15  # the protruded part narrows by this fraction

# track: face vertices of ICT's fitting set (and the lid margins) that some camera direction sees
# (`_visible`), in front of the ears, below the hairline and above the jaw line (minus 5 mm).
VIEWS = ((0.0, 0.0, 1.0), (1.0, 0.0, 2.0), (-1.0, 0.0, 2.0), (0.0, 1.0, 3.0), (0.0, -1.0, 3.0))  # ~27/18 deg
FACING_MIN = 0.1  # n . view of a vertex that view sees
OCCLUSION_MM = 0.3  # a surface farther than this in front of a vertex hides it
HAIRLINE_MM = 60.0  # track ends this far above the eye centres
TRACK_LID_MARGINS = True  # track includes the visible lid margins (so the lid landmarks are usable)
LID_MARGIN_MM = 3.0  # ... within this of ICT's lid landmark ring
TRACK_SNAP_MM = 1.5  # a landmark moves onto the track surface if that is at most this much farther
BORDER_MM = 7.0

# registration of MediaPipe's canonical face (mm after the similarity)
REG_ITERATIONS = 12
REG_LAPLACIAN = tuple(30.0 ** (1 - i / (REG_ITERATIONS - 1)) for i in range(REG_ITERATIONS))  # stiffness
REG_LANDMARK_WEIGHT = 10.0
REG_SURFACE_WEIGHT = 1.0
SEAM_MM = 6.0  # canonical points this close to a lid/lip slit project onto their side of it

MM = 1e-3

# MediaPipe contours (face_mesh annotations): inner lips and lids split at the corners.
LIP_UPPER_INNER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LIP_LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
LIP_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LID_UPPER = {-1: (246, 161, 160, 159, 158, 157, 173), 1: (466, 388, 387, 386, 385, 384, 398)}
LID_LOWER = {-1: (7, 163, 144, 145, 153, 154, 155), 1: (249, 390, 373, 374, 380, 381, 382)}
EYE_CORNERS = {-1: (33, 133), 1: (263, 362)}  # (outer, inner)
SLIT_CORNERS = (33, 133, 263, 362, 78, 308)
# ICT's iBUG eye landmarks on the lid margins: (upper corner-to-corner, lower corner-to-corner) per side
LID_IBUG = {-1: ((36, 37, 38, 39), (39, 40, 41, 36)), 1: ((42, 43, 44, 45), (45, 46, 47, 42))}
BROW_UPPER = {-1: (70, 63, 105, 66, 107), 1: (300, 293, 334, 296, 336)}
BROW_LOWER = {-1: (46, 53, 52, 65, 55), 1: (276, 283, 282, 295, 285)}
# Iris points (measured on MediaPipe's output for real faces): 468 centre of the subject's right iris
# (-x), then the contour towards +x (subject's left), up, -x, down; 473-477 the same for the left iris.
IRIS_LANDMARKS = {-1: 468, 1: 473}
IRIS_DIRECTIONS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0))

# albedo (sRGB uint8)
SKIN = (200, 152, 124)
LIP = (172, 88, 88)
BROW = (68, 50, 40)
LASH = (56, 38, 32)
NOSTRIL = (70, 40, 36)
SCLERA_COLOR = (236, 232, 224)
LIMBUS = (58, 44, 34)
IRIS_COLOR = (92, 64, 42)
PUPIL = (14, 14, 16)
CARUNCLE = (206, 134, 130)
MOUTH_DARK = (64, 22, 28)
GUMS = (186, 96, 100)
TONGUE = (184, 86, 92)
TEETH = (226, 220, 204)


# ---------------------------------------------------------------------------------------------- robustness
# Transcendental functions (numpy dispatches SIMD versions by CPU features) and BLAS/LAPACK kernels
# (OpenBLAS picks one per core type) may round the last bit differently on another CPU. The inputs here
# are fixed files, so that is the only noise (~1e-12 mm after the solves). No discrete decision may rest
# on a floating-point tie: each asserts that its inputs keep a margin far above that noise.
TIE_MARGIN = 1e-6  # mm (or unitless): smallest distance of a decided value from its threshold
BARY_SNAP = 1e-9  # barycentric coordinates below this are 0 (the point is on an edge or a vertex)
BARY_GAP = 1e-6  # ... and none may lie in [BARY_SNAP, BARY_GAP)
DIST_TIE = 1e-9  # mm: two closest-point candidates this close in distance must be the same point


def _require_margin(what, value, threshold=0.0, margin=TIE_MARGIN, exact_ok=False):
    """:func:`buildcheck.require_margin` with this builder's margin."""
    require_margin(what, value, threshold, margin, exact_ok)


def _round(x, ndigits, what):
    """``round(x, ndigits)`` for a meta value, asserting that ``x`` is not near a rounding tie."""
    s = float(x) * 10.0**ndigits
    _require_margin(f"rounding {what}", s - math.floor(s), 0.5, 1e-6)
    return round(float(x), ndigits)


def _dot(a, b):
    """Row-wise dot product of (n, 3) arrays without BLAS (bit-identical on every CPU)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _norm(a):
    return np.sqrt(_dot(a, a))


def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _unit(v):
    v = np.asarray(v, float)
    return v / math.sqrt(float(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]))


# ---------------------------------------------------------------------------------------------- inputs
def _obj_polygons(path: Path):
    """Material, vertex indices and UV indices of every polygon of an OBJ (0-based, file order)."""
    mats, polys, uvs = [], [], []
    mat = None
    n_vt = 0
    for ln in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if ln.startswith("usemtl "):
            mat = ln.split()[1]
        elif ln.startswith("vt "):
            n_vt += 1
        elif ln.startswith("f "):
            toks = [t.split("/") for t in ln[2:].split()]
            mats.append(mat)
            polys.append([int(t[0]) - 1 for t in toks])
            uvs.append([int(t[1]) - 1 if len(t) > 1 and t[1] else -1 for t in toks])
    return mats, polys, uvs, n_vt


def _check_materials(mats, polys):
    """ICT's eye materials use exactly the vertex ranges this builder assumes."""
    for mat, (a, b) in MATERIAL_RANGES.items():
        used = sorted({v for m, p in zip(mats, polys, strict=True) if m == mat for v in p})
        if used != list(range(a, b)):
            raise RuntimeError(f"material {mat} does not use ICT vertices {a}-{b - 1}: topology changed?")


def _tongue(mats, polys, uvs, n_vt, V):
    """The tongue: ICT's UV island of M_GumsTongue nearest ``TONGUE_DORSUM``.

    Returns
    -------
    tongue : (k,) int, ICT vertex indices of the island's polygons
    attach : (j,) int, those also used by other polygons (where the tongue joins the mouth floor)
    """
    sel = [i for i, m in enumerate(mats) if m == "M_GumsTongue"]
    rows, cols = [], []
    for i in sel:
        t = uvs[i]
        rows += t
        cols += t[1:] + t[:1]
    g = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_vt, n_vt))
    _, lab = connected_components(g, directed=False)
    island = np.array([lab[uvs[i][0]] for i in sel])
    verts = {}
    for i, isl in zip(sel, island, strict=True):
        verts.setdefault(int(isl), set()).update(polys[i])
    dist = {k: float(_norm(V[sorted(s)] - TONGUE_DORSUM).min()) for k, s in verts.items()}
    order = sorted(dist, key=dist.get)
    _require_margin("tongue island", dist[order[1]] - dist[order[0]], 0.0, 3.0)
    best = order[0]
    tongue = np.array(sorted(verts[best]))
    others = set()
    for i, p in enumerate(polys):
        if not (mats[i] == "M_GumsTongue" and lab[uvs[i][0]] == best):
            others.update(p)
    attach = np.array(sorted(set(tongue.tolist()) & others))
    return tongue, attach


def _expression_npz(ict_dir: Path) -> dict[str, np.ndarray]:
    """ICT's expression deltas by ICT name, float64 centimetres (for the dropped shapes' analysis)."""
    out = {}
    for p in sorted(ict_dir.glob(NPZ_GLOB)):
        with np.load(p, allow_pickle=False) as z:
            out.update(zip([str(n) for n in z["names"]], z["deltas"].astype(np.float64), strict=True))
    return out


# ---------------------------------------------------------------------------------------------- surfaces
def _closest_on_triangles(q, a, b, c):
    """Barycentric coordinates (m, 3) of the points of triangles (a, b, c) closest to q (all (m, 3)).

    Ericson, Real-Time Collision Detection (2005) 5.1.5; points on an edge or a vertex get exact zeros.
    """
    ab, ac = b - a, c - a
    ap, bp, cp = q - a, q - b, q - c
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    zero, one = np.zeros(len(q)), np.ones(len(q))
    with np.errstate(divide="ignore", invalid="ignore"):
        den = va + vb + vc
        v, w = vb / den, vc / den
        out = np.column_stack([1 - v - w, v, w])
        regions = [  # lowest priority first: later rows override
            ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), "bc", (d4 - d3) / ((d4 - d3) + (d5 - d6))),
            ((vb <= 0) & (d2 >= 0) & (d6 <= 0), "ac", d2 / (d2 - d6)),
            ((d6 >= 0) & (d5 <= d6), "c", None),
            ((vc <= 0) & (d1 >= 0) & (d3 <= 0), "ab", d1 / (d1 - d3)),
            ((d3 >= 0) & (d4 <= d3), "b", None),
            ((d1 <= 0) & (d2 <= 0), "a", None),
        ]
        for sel, kind, t in regions:
            if kind == "bc":
                val = np.column_stack([zero, 1 - t, t])
            elif kind == "ac":
                val = np.column_stack([1 - t, zero, t])
            elif kind == "ab":
                val = np.column_stack([1 - t, t, zero])
            else:
                val = np.column_stack([one * (kind == "a"), one * (kind == "b"), one * (kind == "c")])
            out = np.where(sel[:, None], val, out)
    return out


class _Segments:
    """Closest-point queries on line segments (millimetres), the interface of ``_Surface``.

    Parameters
    ----------
    V : (n, 3) float64
    E : (k, 2) int, segments into V; ``T`` is (k, 3) with the end vertex repeated.
    """

    def __init__(self, V, E):
        self.V = V
        E = np.asarray(E, np.int64).reshape(-1, 2)
        self.T = np.column_stack([E, E[:, 1]])

    def closest(self, q, what):
        q = np.atleast_2d(np.asarray(q, float))
        a, b = self.V[self.T[:, 0]], self.V[self.T[:, 1]]
        ab = b - a
        tri = np.empty(len(q), np.int64)
        bary = np.zeros((len(q), 3))
        for i in range(len(q)):
            t = np.clip(_dot(q[i] - a, ab) / _dot(ab, ab), 0.0, 1.0)
            p = a + t[:, None] * ab
            d = _norm(p - q[i])
            k = int(np.lexsort((np.arange(len(d)), d))[0])
            near = d <= d[k] + DIST_TIE
            if _norm(p[near] - p[k]).max() > 1e-6:
                raise RuntimeError(f"{what}: point {i} is equidistant from two parts of the midline")
            tri[i], bary[i, :2] = k, (1 - t[k], t[k])
        point = bary[:, :1] * a[tri] + bary[:, 1:2] * b[tri]
        return tri, bary, point, _norm(point - q)


class _Surface:
    """Closest-point queries on a triangle set (millimetres).

    Parameters
    ----------
    V : (n, 3) float64
    T : (f, 3) int, triangles into V
    """

    def __init__(self, V, T):
        self.V = V
        self.T = np.asarray(T, np.int64)
        self.verts = np.unique(self.T)
        self.tree = cKDTree(V[self.verts])
        e = np.concatenate([V[self.T[:, 1]] - V[self.T[:, 0]], V[self.T[:, 2]] - V[self.T[:, 1]],
                            V[self.T[:, 0]] - V[self.T[:, 2]]])  # fmt: skip
        self.reach = float(_norm(e).max()) + 1.0
        k = np.repeat(np.arange(len(self.T)), 3)
        self.incident = sparse.csr_matrix(
            (np.ones(len(k), bool), (self.T.ravel(), k)), shape=(len(V), len(self.T))
        )

    def closest(self, q, what):
        """Closest surface point of each query point.

        Returns
        -------
        tri : (m,) int, index into ``T``; bary : (m, 3) float64; point : (m, 3); dist : (m,) mm

        Every other candidate point within ``DIST_TIE`` of the best distance must coincide with the best point
        (to 1e-6 mm), else the choice would depend on rounding (``RuntimeError``).
        """
        q = np.atleast_2d(np.asarray(q, float))
        d_nn, _ = self.tree.query(q)
        balls = self.tree.query_ball_point(q, d_nn + self.reach)
        tri = np.empty(len(q), np.int64)
        bary = np.empty((len(q), 3))
        for i, ball in enumerate(balls):
            cand = np.unique(self.incident[self.verts[ball]].indices)
            t = self.T[cand]
            qq = np.broadcast_to(q[i], (len(cand), 3))
            b = _closest_on_triangles(qq, self.V[t[:, 0]], self.V[t[:, 1]], self.V[t[:, 2]])
            p = b[:, :1] * self.V[t[:, 0]] + b[:, 1:2] * self.V[t[:, 1]] + b[:, 2:] * self.V[t[:, 2]]
            d = _norm(p - q[i])
            k = int(np.lexsort((cand, d))[0])
            near = d <= d[k] + DIST_TIE
            spread = _norm(p[near] - p[k]).max()
            if spread > 1e-6:
                raise RuntimeError(f"{what}: point {i} is equidistant from two parts of the surface")
            tri[i], bary[i] = cand[k], b[k]
        point = np.einsum("mk,mkd->md", bary, self.V[self.T[tri]])
        return tri, bary, point, _norm(point - q)


def _canonical_landmark(tri_vertices, bary, what):
    """(vertex triple, weights) in canonical form: zero weights dropped, vertices sorted, padded.

    A landmark on an edge or a vertex is then the same whichever adjacent triangle found it.
    """
    b = np.asarray(bary, float)
    _require_margin(what, np.abs(b), 0.5 * (BARY_SNAP + BARY_GAP), 0.5 * (BARY_GAP - BARY_SNAP))
    on = np.abs(b) > BARY_SNAP
    v = np.asarray(tri_vertices)[on]
    w = b[on] / b[on].sum()
    o = np.argsort(v)
    v, w = v[o], w[o]
    return tuple(int(x) for x in v) + (int(v[-1]),) * (3 - len(v)), tuple(w) + (0.0,) * (3 - len(v))


def _boundary_vertices(T, n):
    e = np.sort(np.concatenate([T[:, [0, 1]], T[:, [1, 2]], T[:, [2, 0]]]), axis=1)
    u, c = np.unique(e, axis=0, return_counts=True)
    out = np.zeros(n, bool)
    out[u[c == 1].ravel()] = True
    return out


def _visible(V, N, T, candidates):
    """Vertices of ``candidates`` that one of ``VIEWS`` sees: facing it and not hidden by ``T``.

    An orthographic ray from the vertex towards the camera; a triangle it passes through farther than
    ``OCCLUSION_MM`` in front hides the vertex.
    """
    idx = np.flatnonzero(candidates)
    seen = np.zeros(len(V), bool)
    for view in VIEWS:
        d = _unit(view)
        e1 = _unit(np.cross(d, (0.0, 1.0, 0.0)) if abs(d[1]) < 0.9 else np.cross(d, (1.0, 0.0, 0.0)))
        e2 = np.cross(d, e1)
        facing = _dot(N[idx], np.broadcast_to(d, (len(idx), 3)))
        _require_margin("track: facing the view", facing, FACING_MIN)
        rays = idx[facing > FACING_MIN]
        P2 = np.column_stack([_dot(V, np.broadcast_to(e1, V.shape)), _dot(V, np.broadcast_to(e2, V.shape))])
        H = _dot(V, np.broadcast_to(d, V.shape))
        tri2 = P2[T]
        cen = (tri2[:, 0] + tri2[:, 1] + tri2[:, 2]) / 3
        rad = _norm2(tri2 - cen[:, None]).max(1)
        r = float(rad.max()) + 1e-3
        tree = cKDTree(cen)
        hidden = np.zeros(len(rays), bool)
        for j, cand in enumerate(tree.query_ball_point(P2[rays], r)):
            cand = np.asarray(cand, np.int64)
            cand = cand[_norm2(cen[cand] - P2[rays[j]]) <= rad[cand] + 1e-3]
            if not len(cand):
                continue
            a, b, c = tri2[cand, 0], tri2[cand, 1], tri2[cand, 2]
            p = P2[rays[j]]
            den = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
            ok = den != 0
            with np.errstate(divide="ignore", invalid="ignore"):
                l0 = ((b[:, 1] - c[:, 1]) * (p[0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (p[1] - c[:, 1])) / den
                l1 = ((c[:, 1] - a[:, 1]) * (p[0] - c[:, 0]) + (a[:, 0] - c[:, 0]) * (p[1] - c[:, 1])) / den
            l2 = 1 - l0 - l1
            inside = ok & (l0 >= -1e-9) & (l1 >= -1e-9) & (l2 >= -1e-9)
            if not inside.any():
                continue
            t = T[cand[inside]]
            h = l0[inside] * H[t[:, 0]] + l1[inside] * H[t[:, 1]] + l2[inside] * H[t[:, 2]] - H[rays[j]]
            _require_margin("track: occlusion", h, OCCLUSION_MM)
            hidden[j] = bool((h > OCCLUSION_MM).any())
        seen[rays[~hidden]] = True
    return seen


def _norm2(a):
    return np.sqrt(a[..., 0] * a[..., 0] + a[..., 1] * a[..., 1])


# ---------------------------------------------------------------------------------------------- eyes
def _kabsch(a, b):
    """Rotation R and translation t with R a + t ~ b (least squares, proper rotation)."""
    ma, mb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((b - mb).T @ (a - ma))
    s = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ s @ vt
    return r, mb - r @ ma


def _eye(V, side, pupil_delta):
    """Measure one eye on ICT's geometry (mm).

    The eye's centre is a sphere fitted to the sclera shell's back and sides (more than 60 deg from +z
    around its centroid); the pupil centre the centroid of the iris shell's vertices that ICT's
    PupilDilate moves by half its maximum or more; the gaze axis runs from the centre through the pupil.
    The iris is the flat disc of the iris shell in front of (>= -1 mm along the axis) the pupil centre:
    its largest and smallest distances from the axis are the iris and pupil radii.
    """
    sc = np.arange(*SCLERA[side])
    ir = np.arange(*IRIS[side])
    p = V[sc]
    c0 = p.mean(0)
    d = p - c0
    cosang = d[:, 2] / _norm(d)
    _require_margin("eye: sclera back", cosang, 0.5)
    back = p[cosang < 0.5]
    A = np.column_stack([2 * back, np.ones(len(back))])
    sol = np.linalg.lstsq(A, _dot(back, back), rcond=None)[0]
    centre = sol[:3]
    radius = math.sqrt(float(sol[3] + centre @ centre))
    m = _norm(pupil_delta[ir])
    _require_margin("eye: pupil rim", m, 0.5 * m.max())
    pupil = V[ir[m >= 0.5 * m.max()]].mean(0)
    axis = _unit(pupil - centre)
    r = V[ir] - pupil
    h = _dot(r, np.broadcast_to(axis, r.shape))
    rho = _norm(r - h[:, None] * axis)
    _require_margin("eye: iris disc", h, -1.0, 0.05)
    disc = h >= -1.0
    return {
        "centre": centre, "radius": radius, "pupil": pupil, "axis": axis,
        "iris_radius": float(rho[disc].max()), "pupil_radius": float(rho[disc].min()),
    }  # fmt: skip


def _rotation(axis, deg):
    """Rotation matrix (Rodrigues) with the trigonometry of Python's math (not numpy's SIMD loops)."""
    k = _unit(axis)
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def _eye_look(V, eyes, new):
    """Displacements (mm) of the eyeball shells for each eyeLook shape: a turn of EYE_LOOK_DEG.

    In = towards the nose, Out = away from it, Up = gaze +y, Down = gaze -y; Left/Right = the subject's
    eye at +x/-x. A turn about the vertical axis by +a moves the gaze towards +x.
    """
    out = {}
    for side, sname in ((1, "Left"), (-1, "Right")):
        sel = new[np.arange(*SCLERA[side])]
        c = eyes[side]["centre"]
        q = V[sel] - c
        turns = {"In": ((0, 1, 0), -side), "Out": ((0, 1, 0), side), "Up": ((1, 0, 0), -1),
                 "Down": ((1, 0, 0), 1)}  # fmt: skip
        for k, (ax, sgn) in turns.items():
            R = _rotation(ax, sgn * EYE_LOOK_DEG)
            d = np.zeros_like(V)
            d[sel] = q @ R.T - q
            out[f"eyeLook{k}{sname}"] = d
    return out


# ---------------------------------------------------------------------------------------------- jaw, tongue
def _jaw_weight(V, jaw, teeth):
    """How much each vertex follows the mandible in jawOpen (projection onto the rigid lower-teeth motion)."""
    m = _norm(jaw[teeth])
    _require_margin("jaw: lower teeth", m, 0.5 * m.max())
    low = teeth[m >= 0.5 * m.max()]
    R, t = _kabsch(V[low], V[low] + jaw[low])
    rigid = V @ R.T + t - V
    rr = _dot(rigid, rigid)
    w = np.clip(_dot(jaw, rigid) / np.maximum(rr, 1e-12), 0.0, 1.0)
    res = float(_norm(V[low] @ R.T + t - V[low] - jaw[low]).max())
    return w, res


def _tongue_out(V, tongue, attach):
    """tongueOut (mm): the tongue slides forward and a little down, out of the mouth, the tip farthest.

    Weight: smoothstep over ``TONGUE_ROOT_Z`` along z (the root stays), times a smoothstep fade to 0
    within ``TONGUE_ATTACH_MM`` of where the tongue joins the mouth floor; the moving part also narrows.
    """
    p = V[tongue]
    dist = cKDTree(V[attach]).query(p)[0]
    _require_margin("tongueOut: attachment fade", dist, TONGUE_ATTACH_MM, exact_ok=True)
    w = _smoothstep((p[:, 2] - TONGUE_ROOT_Z[0]) / (TONGUE_ROOT_Z[1] - TONGUE_ROOT_Z[0]))
    w = w * _smoothstep(dist / TONGUE_ATTACH_MM)
    tip = float(p[:, 2].max())
    dirn = _unit(TONGUE_DIRECTION)
    d = np.zeros_like(V)
    d[tongue] = w[:, None] * TONGUE_OUT_MM * dirn
    d[tongue, 0] -= TONGUE_NARROW * w * p[:, 0]
    return d, tip


# ---------------------------------------------------------------------------------------------- landmarks
def _umeyama(src, dst):
    """Similarity (s, R, t) minimising |s R src + t - dst|^2 (Umeyama 1991), proper rotation."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sv, vt = np.linalg.svd(b.T @ a / len(src))
    dd = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    r = u @ dd @ vt
    s = float(np.trace(np.diag(sv) @ dd) / a.var(0).sum())
    return s, r, md - s * r @ ms


def _laplacian(tris, n):
    """Uniform graph Laplacian (n, n) of a triangle mesh: x_i - mean of its neighbours."""
    e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    A = sparse.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), (n, n))
    A = A.tocsr()
    deg = np.asarray(A.sum(1)).ravel()
    return (sparse.identity(n) - sparse.diags(1 / deg) @ A).toarray()


def _seam_sides(C):
    """Side label of each canonical vertex near a slit: {name: vertex ids} (mm canonical coordinates).

    A canonical vertex within ``SEAM_MM`` of a lid or lip slit (the polyline through the corners and the
    midpoints of the upper and lower contour) projects onto the ICT surface of its own side only.
    """
    groups = {}

    def split(upper, lower, corners, name):
        up, lo = np.array(upper), np.array(lower)
        mid = 0.5 * (C[up] + C[lo])
        line = np.vstack([C[corners[0]], mid, C[corners[1]]])
        line = line[np.argsort(line[:, 0])]
        x = C[:, 0]
        inside = (x > line[0, 0]) & (x < line[-1, 0])
        y_seam = np.interp(x, line[:, 0], line[:, 1])
        dy = C[:, 1] - y_seam
        _require_margin(f"{name} slit: side", dy[inside], 0.0)
        _require_margin(f"{name} slit: reach", np.abs(dy[inside]), SEAM_MM)
        near = inside & (np.abs(dy) < SEAM_MM)
        near[list(corners)] = False
        groups[f"{name}_upper"] = np.flatnonzero(near & (dy > 0))
        groups[f"{name}_lower"] = np.flatnonzero(near & (dy < 0))

    split(LIP_UPPER_INNER, LIP_LOWER_INNER, (78, 308), "lips")
    for side in (-1, 1):
        up = LID_UPPER[side]
        lo = LID_LOWER[side]
        # pair upper and lower contour points by x order
        ups = sorted(up, key=lambda i: C[i, 0])
        los = sorted(lo, key=lambda i: C[i, 0])
        split(ups, los, EYE_CORNERS[side], f"lids{side:+d}")
    return groups


def _register(C0, ctri, pairs_mp, pairs_ict, mid, surfaces, groups):
    """Nonrigid fit of the canonical mesh (after a similarity) to the ICT face surface (mm).

    Returns the registered (468, 3) points and facts for meta.
    """
    s, R, t = _umeyama(C0[pairs_mp], pairs_ict)
    X0 = s * C0 @ R.T + t
    sim = _norm(X0[pairs_mp] - pairs_ict)
    L = _laplacian(ctri, len(C0))
    LtL = L.T @ L
    lap0 = L @ X0
    S = np.zeros(len(C0))
    S[pairs_mp] = REG_LANDMARK_WEIGHT
    target = np.zeros_like(X0)
    target[pairs_mp] = REG_LANDMARK_WEIGHT * pairs_ict
    X = X0.copy()
    for it in range(REG_ITERATIONS):
        Cp = _closest_all(X, mid, surfaces, groups, f"registration iteration {it}")
        g = REG_LAPLACIAN[it]
        A = g * LtL + np.diag(S + REG_SURFACE_WEIGHT)
        rhs = g * (L.T @ lap0) + target + REG_SURFACE_WEIGHT * Cp
        X = np.linalg.solve(A, rhs)
    return X, {
        "scale": s,
        "similarity_rms_mm": float(np.sqrt(np.mean(sim**2))),
        "similarity_max_mm": float(sim.max()),
    }


def _closest_all(X, mid, surfaces, groups, what):
    """Closest points of the registered canonical points on their surfaces (``_Surface``/``_Segments``).

    ``groups`` names the surface of each point (``""`` = the whole face); points on the canonical
    midline (``mid``) use the face's midline polyline of that surface (a concave midline crease would
    otherwise be a tie between its two sides).
    """
    out = np.empty_like(X)
    for name in sorted(set(groups)):
        sel = np.asarray(groups) == name
        for on_mid in (False, True):
            ids = np.flatnonzero(sel & (mid == on_mid))
            if len(ids):
                out[ids] = surfaces[name][int(on_mid)].closest(X[ids], f"{what} ({name or 'face'})")[2]
    return out


def _ray_surface(origin, direction, surf, what):
    """First hit (tri, bary) of a ray (mm) on a surface's triangles, from the origin's far side."""
    T = surf.T
    a, b, c = surf.V[T[:, 0]], surf.V[T[:, 1]], surf.V[T[:, 2]]
    d = np.broadcast_to(direction, a.shape)
    e1, e2 = b - a, c - a
    pvec = np.cross(d, e2)
    det = _dot(e1, pvec)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1 / det
        tvec = origin - a
        u = _dot(tvec, pvec) * inv
        qvec = np.cross(tvec, e1)
        v = _dot(d, qvec) * inv
        dist = _dot(e2, qvec) * inv
    hit = (np.abs(det) > 1e-12) & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9)
    if not hit.any():
        raise RuntimeError(f"{what}: ray misses the surface")
    k = np.flatnonzero(hit)
    k = k[np.lexsort((k, -dist[k]))]  # farthest along the ray = frontmost for a ray into the eye
    best = k[0]
    same = np.abs(dist[k] - dist[best]) < 1e-6
    _require_margin(f"{what}: layers", np.abs(dist[k[~same]] - dist[best]), 0.0, 1e-3)
    bary = np.array([1 - u[best] - v[best], u[best], v[best]])
    bary = np.clip(bary, 0, None)
    return best, bary / bary.sum()


# ---------------------------------------------------------------------------------------------- masks
def _polygon(points2d):
    return MplPath(np.asarray(points2d, float))


def _inside(poly_pts, pts, what, where=None):
    """Points (n, 2) inside a closed polygon (m, 2); none of ``where`` (bool (n,), default all) within
    ``TIE_MARGIN`` of its edges."""
    P = np.asarray(poly_pts, float)
    if where is not None:
        out = np.zeros(len(pts), bool)
        out[where] = _inside(P, pts[where], what)
        return out
    a = P[None]
    e = np.roll(P, -1, axis=0)[None] - a
    q = pts[:, None, :] - a
    t = np.clip((q[..., 0] * e[..., 0] + q[..., 1] * e[..., 1]) / (e[..., 0] ** 2 + e[..., 1] ** 2), 0, 1)
    r = q - t[..., None] * e
    dist = np.sqrt(r[..., 0] ** 2 + r[..., 1] ** 2).min(1)
    _require_margin(what, dist, 0.0)
    return _polygon(P).contains_points(pts)


def _polyline_distance(pts, line, step=0.2):
    """Distance (mm) from points (n, 3) to a densely resampled 3-D polyline (m, 3)."""
    seg = np.diff(line, axis=0)
    n = np.maximum(1, np.ceil(_norm(seg) / step).astype(int))
    dense = np.vstack(
        [line[i] + np.outer(np.arange(n[i]) / n[i], seg[i]) for i in range(len(seg))] + [line[-1:]]
    )
    return cKDTree(dense).query(pts)[0]


# Masks whose union must contain most (SHAPE_REGION_SHARE) of each shape's squared motion.
SHAPE_REGIONS = {
    "browDown": ("brows", "forehead", "eyelids", "nose"),
    "browInnerUp": ("brows", "forehead", "eyelids", "nose"),
    "browOuterUp": ("brows", "forehead", "eyelids"), "cheekPuff": ("cheeks", "mouth", "interior"),
    "cheekSquint": ("cheeks", "eyelids", "mouth"), "eyeBlink": ("eyelids", "interior"),
    "eyeLook": ("eyeballs", "eyelids", "interior"), "eyeSquint": ("eyelids", "cheeks", "interior"),
    "eyeWide": ("eyelids", "interior"), "jaw": ("lower_face", "interior"),
    "mouthClose": ("lips", "mouth", "interior"), "mouth": ("mouth", "cheeks", "interior"),
    "noseSneer": ("nose", "cheeks", "mouth", "eyelids", "interior"), "tongueOut": ("tongue",),
}  # fmt: skip
SHAPE_REGION_SHARE = 0.75


def shape_region(name: str) -> tuple[str, ...]:
    """Mask names whose union holds most of the motion of blendshape ``name``."""
    for prefix in sorted(SHAPE_REGIONS, key=len, reverse=True):
        if name.startswith(prefix):
            return SHAPE_REGIONS[prefix]
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------- build
def build_ict_rig(ict_dir: str | Path = ICT_DIR, canonical_obj: str | Path = CANONICAL_OBJ) -> Rig:
    """Build the ICT-FaceKit rig (deterministic; a few seconds).

    Parameters
    ----------
    ict_dir : str or Path
        The ICT-FaceKit folder (``generic_neutral_mesh.obj``, ``vertex_indices.json``,
        ``ict_expression_deltas_part*.npz``, as in ``../shared/data/ict_facekit``).
    canonical_obj : str or Path
        MediaPipe's ``canonical_face_model.obj`` (468 vertices, centimetres).

    Returns
    -------
    Rig
        Metres, 52 ARKit shapes, all 478 MediaPipe landmarks, masks, colours, mirror and ``meta``
        (provenance, decisions, measurements).
    """
    ict_dir, canonical_obj = Path(ict_dir), Path(canonical_obj)
    for p in (ict_dir / NEUTRAL_OBJ, ict_dir / INDICES_JSON, canonical_obj):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p} is missing; the ICT rig is built from ICT-FaceKit and MediaPipe files in ../shared/data"
            )
    src = load_ict_facekit(ict_dir)
    if src.n_vertices != ICT_N_VERTICES:
        raise RuntimeError(f"expected ICT's {ICT_N_VERTICES}-vertex head, got {src.n_vertices}")
    indices = json.loads((ict_dir / INDICES_JSON).read_text(encoding="utf-8"))
    lm68 = np.asarray(indices["idx_to_landmark_verts"], np.int64)
    fitting = np.zeros(ICT_N_VERTICES, bool)
    fitting[indices["idx_to_fitting_verts"]] = True
    raw = _expression_npz(ict_dir)
    mats, polys, uvs, n_vt = _obj_polygons(ict_dir / NEUTRAL_OBJ)
    _check_materials(mats, polys)
    Vi = src.neutral.astype(np.float64) / MM  # ICT numbering, mm
    g = _select(src, Vi)
    V, T, face, new = g["V"], g["T"], g["face"], g["new"]

    # eyes, jaw, tongue (measured on ICT's full geometry)
    eyes = {s: _eye(Vi, s, raw[f"PupilDilate_{'L' if s > 0 else 'R'}"] * 10.0) for s in (1, -1)}
    jaw_ict = src.deltas[arkit.index("jawOpen")].astype(np.float64) / MM
    w_jaw, jaw_res = _jaw_weight(Vi, jaw_ict, np.arange(*dict(PARTS)["teeth"][0]))
    w_jaw = w_jaw[g["kept"]]
    tongue_ict, attach_ict = _tongue(mats, polys, uvs, n_vt, Vi)
    tongue = new[tongue_ict]

    # shapes: ICT's (float32 metres, exactly load_ict_facekit's values) + eyeball turns + tongueOut
    deltas = src.deltas[:, g["kept"]].copy()
    for name, d in _eye_look(V, eyes, new).items():
        k = arkit.index(name)
        deltas[k] = (deltas[k].astype(np.float64) + d * MM).astype(np.float32)
    d_tongue, tongue_tip = _tongue_out(V, tongue, new[attach_ict])
    deltas[arkit.index("tongueOut")] = (d_tongue * MM).astype(np.float32)

    eye_y = 0.5 * (eyes[1]["centre"][1] + eyes[-1]["centre"][1])
    track = _track(V, T, face, fitting[g["kept"]], Vi, lm68, eye_y)
    lm_tris, lm_bary, reg = _landmarks(V, T, face, track, w_jaw, eyes, new, Vi, lm68, canonical_obj)
    lm_pts = np.einsum("lk,lkd->ld", lm_bary, V[lm_tris])
    masks = _masks(V, T, g["part"], face, track, w_jaw, tongue, lm_pts, eyes, eye_y, Vi[lm68])
    sclera = [new[np.arange(*SCLERA[s])] for s in (1, -1)]
    colors = _colors(
        V, g["part"], face, fitting[g["kept"]], masks, lm_pts, eyes, tongue, sclera, V[new[lm68]]
    )
    mirror, mirror_err = _mirror(src.neutral[g["kept"]])

    # checks
    names = arkit.ARKIT_NAMES
    peak = _norm(deltas.astype(np.float64)).max(1) / MM
    if (peak <= 0.5).any():
        raise RuntimeError(f"shapes without motion: {[names[i] for i in np.flatnonzero(peak <= 0.5)]}")
    share = {}
    for k, name in enumerate(names):
        e2 = _dot(deltas[k].astype(np.float64), deltas[k].astype(np.float64))
        allowed = np.any([masks[m] for m in shape_region(name)], axis=0)
        share[name] = float(e2[allowed].sum() / e2.sum())
    low = {k: round(v, 3) for k, v in share.items() if v < SHAPE_REGION_SHARE}
    if low:
        raise RuntimeError(f"shapes moving mostly outside their regions: {low}")

    d68 = np.array(
        [_norm(lm_pts[MEDIAPIPE_LANDMARKS[nm]] - Vi[lm68[i]]) for i, nm in IBUG68_TO_LANDMARK.items()]
    )
    cr, cs = raw["cheekRaiser_L"], raw["cheekSquint_L"]
    cos_cr = float(np.sum(cr * cs) / math.sqrt(float(np.sum(cr * cr)) * float(np.sum(cs * cs))))
    sup_r, sup_s = _norm(cr) * 10.0 > 0.25, _norm(cs) * 10.0 > 0.25
    facts = {
        "parts": {name: int((g["part"] == k).sum()) for k, (name, _) in enumerate(PARTS)},
        "ranges": g["ranges"], "cos_cr": cos_cr, "overlap_cr": 100.0 * (sup_r & sup_s).sum() / sup_r.sum(),
        "tongue_n": len(tongue), "tongue_tip": tongue_tip, "eyes": eyes, "jaw_chin": _norm(jaw_ict[lm68[8]]),
        "jaw_res": jaw_res, "lm68": new[lm68].tolist(), "reg": reg, "d68": d68, "on_track": reg["on_track"],
        "mirror_err": mirror_err, "share": share,
    }  # fmt: skip
    return Rig(
        neutral=src.neutral[g["kept"]], triangles=T.astype(np.int32), deltas=deltas,
        landmark_ids=np.arange(478, dtype=np.int32), landmark_tris=lm_tris.astype(np.int32),
        landmark_bary=lm_bary.astype(np.float32), masks=masks, mirror=mirror, colors=colors, name=RIG_NAME,
        meta=_meta(facts),
    )  # fmt: skip


def _select(src, Vi):
    """The kept vertices (``PARTS``, ICT order) and the triangles among them."""
    keep = np.zeros(ICT_N_VERTICES, bool)
    part_of = np.full(ICT_N_VERTICES, -1)
    ranges, start = [], 0
    for k, (_, rngs) in enumerate(PARTS):
        for a, b in rngs:
            keep[a:b] = True
            part_of[a:b] = k
            ranges.append([start, a, b - a])
            start += b - a
    kept = np.flatnonzero(keep)
    new = -np.ones(ICT_N_VERTICES, np.int64)
    new[kept] = np.arange(len(kept))
    T = new[src.triangles[keep[src.triangles].all(1)]]
    part = part_of[kept]
    return {
        "kept": kept,
        "new": new,
        "V": Vi[kept],
        "T": T,
        "part": part,
        "face": part == 0,
        "ranges": ranges,
    }


def _track(V, T, face, fitting, Vi, lm68, eye_y):
    """The ``track`` mask: ICT's fitting vertices of the face (plus the lid margins) that a camera sees,
    in front of the ears, below the hairline and above the jaw line (ICT's jaw landmarks minus 5 mm)."""
    N = vertex_normals(V, T).astype(np.float64)
    jaw_line = Vi[lm68[:17]]
    o = np.argsort(jaw_line[:, 0])
    cand = face & fitting
    ear_z = float(jaw_line[[0, 16], 2].min())
    _require_margin("track: in front of the ears", V[cand, 2], ear_z, exact_ok=True)
    _require_margin("track: hairline", V[cand, 1], eye_y + HAIRLINE_MM)
    y_jaw = np.interp(V[:, 0], jaw_line[o, 0], jaw_line[o, 1]) - 5.0
    _require_margin("track: jaw line", V[cand, 1], y_jaw[cand])
    cand &= (V[:, 2] > ear_z) & (V[:, 1] < eye_y + HAIRLINE_MM) & (V[:, 1] > y_jaw)
    if TRACK_LID_MARGINS:  # the lid margins (outside ICT's fitting set) where a camera sees them
        for ring in (lm68[36:42], lm68[42:48]):
            d_lid = _polyline_distance(V, Vi[np.r_[ring, ring[:1]]])
            _require_margin("track: lid margin", d_lid[face], LID_MARGIN_MM)
            cand |= face & ~fitting & (d_lid <= LID_MARGIN_MM)
    return _visible(V, N, T, cand)


def _landmarks(V, T, face, track, w_jaw, eyes, new, Vi, lm68, canonical_obj):
    """All 478 MediaPipe landmarks as (tris (478, 3), bary (478, 3)) on the rig, and registration facts."""
    C0, ctri = read_obj(canonical_obj)
    C0 = C0 * 10.0  # cm -> mm
    if len(C0) != 468:
        raise RuntimeError(f"{canonical_obj} has {len(C0)} vertices, expected MediaPipe's 468")
    pairs = sorted(IBUG68_TO_LANDMARK.items())
    pairs_mp = np.array([MEDIAPIPE_LANDMARKS[name] for _, name in pairs])
    pairs_ict = Vi[lm68[[i for i, _ in pairs]]]
    Tf = T[face[T].all(1)]
    # each side of the lip slit (by how much the vertex follows the mandible) and of each lid slit
    # (above or below the line through ICT's eye corners and the midpoints of its lid landmarks; beyond
    # the corners both)
    _require_margin("jaw weight: lips", w_jaw[face], 0.5)
    side_sets = {"": face, "lips_upper": face & (w_jaw < 0.5), "lips_lower": face & (w_jaw >= 0.5)}
    for side, (up, lo) in LID_IBUG.items():
        P = Vi[lm68]
        seam = np.vstack([P[up[0]], 0.5 * (P[up[1]] + P[lo[2]]), 0.5 * (P[up[2]] + P[lo[1]]), P[up[3]]])
        seam = seam[np.argsort(seam[:, 0])]
        inside = face & (V[:, 0] > seam[0, 0]) & (V[:, 0] < seam[-1, 0])
        dy = V[:, 1] - np.interp(V[:, 0], seam[:, 0], seam[:, 1])
        _require_margin("lid side: corners", V[face, 0], seam[[0, -1], 0][:, None], exact_ok=True)
        _require_margin("lid side", dy[inside], 0.0)
        side_sets[f"lids{side:+d}_upper"] = face & ~(inside & (dy < 0))
        side_sets[f"lids{side:+d}_lower"] = face & ~(inside & (dy > 0))
    edges = np.unique(np.sort(np.concatenate([Tf[:, [0, 1]], Tf[:, [1, 2]], Tf[:, [2, 0]]]), axis=1), axis=0)
    on_mid = V[:, 0] == 0.0  # ICT's midline column (131 face vertices at x = 0 exactly)

    def surfaces(allowed):
        ok_e = edges[on_mid[edges].all(1) & allowed[edges].all(1)]
        return _Surface(V, Tf[allowed[Tf].all(1)]), _Segments(V, ok_e)

    surf = {k: surfaces(m) for k, m in side_sets.items()}
    groups = np.full(468, "", object)
    for name, ids in _seam_sides(C0).items():
        groups[ids] = name
    mid = C0[:, 0] == 0.0
    X, reg = _register(C0, ctri, pairs_mp, pairs_ict, mid, surf, groups)
    # final projection: own side of a slit (lid contours onto ICT's lid margin first), then onto the
    # track surface where that is at most TRACK_SNAP_MM farther (not the slit contours)
    surf_track = surfaces(track)
    chords = {}
    for side, rings in LID_IBUG.items():
        for ring, ids in zip(rings, (LID_UPPER[side], LID_LOWER[side]), strict=True):
            seg = _Segments(Vi[lm68[list(ring)]], [[0, 1], [1, 2], [2, 3]])
            chords.update(dict.fromkeys(ids, seg))
    lm_tris = np.zeros((478, 3), np.int64)
    lm_bary = np.zeros((478, 3))
    for i in range(468):
        s = surf[groups[i]][int(mid[i])]
        q = X[i : i + 1] if i not in chords else chords[i].closest(X[i : i + 1], f"lid landmark {i}")[2]
        tri, bary, _, d = s.closest(q, f"landmark {i}")
        tv, bv = s.T[tri[0]], bary[0]
        if not track[tv].all() and not (groups[i] or i in SLIT_CORNERS):
            st = surf_track[int(mid[i])]
            tt, bt, _, dt = st.closest(X[i : i + 1], f"landmark {i} (track)")
            _require_margin(f"landmark {i}: track snap", dt[0] - d[0], TRACK_SNAP_MM)
            if dt[0] - d[0] <= TRACK_SNAP_MM:
                tv, bv = st.T[tt[0]], bt[0]
        lm_tris[i], lm_bary[i] = _canonical_landmark(tv, bv, f"landmark {i}")
    # iris points: on the cornea, along the gaze axis from the centre and the rim of ICT's iris disc
    for side in (1, -1):
        e = eyes[side]
        sel = new[np.arange(*SCLERA[side])]
        es = _Surface(V, T[np.isin(T, sel).all(1)])
        ax = e["axis"]
        pts = [e["pupil"]]
        for dvec in IRIS_DIRECTIONS:
            u = np.asarray(dvec) - _dot(np.asarray(dvec), ax) * ax
            pts.append(e["pupil"] + e["iris_radius"] * _unit(u))
        for k, p0 in enumerate(pts):
            j = IRIS_LANDMARKS[side] + k
            tri, bary = _ray_surface(p0 - 20.0 * ax, ax, es, f"iris landmark {j}")
            lm_tris[j], lm_bary[j] = _canonical_landmark(es.T[tri], bary, f"iris landmark {j}")
    reg["on_track"] = int(track[lm_tris[:468]].all(1).sum())
    return lm_tris, lm_bary, reg


def _mirror(Vm):
    """Mirror map (nearest vertex to each mirror image, ``facecap.rig.mirror_map``) and its largest error
    (metres); no vertex's mirror image may be nearly as close to a second vertex."""
    from facecap.rig import mirror_map

    mirror = mirror_map(Vm, tol=np.inf)
    V = Vm.astype(np.float64)
    dd, _ = cKDTree(V).query(V * (-1.0, 1.0, 1.0), k=2)
    _require_margin("mirror: nearest vertex", (dd[:, 1] - dd[:, 0]) / MM, 0.0, 1e-3)
    return mirror, float(dd[:, 0].max())


def _meta(f):
    """JSON provenance, decisions and measurements (every rounded number asserted off a rounding tie)."""
    eyes, reg, d68 = f["eyes"], f["reg"], f["d68"]
    overlap = _round(f["overlap_cr"], 0, "overlap")
    cos_cr = _round(f["cos_cr"], 2, "cosine")
    tip = _round(f["tongue_tip"], 1, "tip")
    n_tongue = f["tongue_n"]
    return {
        "source": "ICT-FaceKit (USC ICT, MIT licence), github.com/ICT-VGL/ICT-FaceKit FaceXModel/ at "
                  f"{ICT_COMMIT}; built by rigs/build_ict_rig.py",
        "license": "ICT-FaceKit, MIT licence, Copyright (c) 2020 USC Institute for Creative Technologies; "
                   f"full text in {LICENSE_NAME} beside this file",
        "builder_version": BUILDER_VERSION, "units": "metres",
        "axes": "x subject's left, y up, z out of the face (ICT's frame)",
        "origin": "ICT's: ~107 mm behind the nasion, ~36 mm below the eye centres, near the ear canals",
        "float_format": "float32; ICT's shapes are its float32 centimetre deltas x 0.01 rounded to float32 "
                        "(no float16)",
        "parts": f["parts"],
        "ict_index_ranges": f["ranges"],
        "face_choice": "full face (ICT 0-9408): the ring outside the narrow face (6706-9408: ears, temples, "
                       "upper neck, hairline) is ~25 % of the head pixels a camera sees at 0-40 deg yaw and "
                       "+-15 deg pitch (the narrow face ~46 %) and holds 2231 of ICT's 7801 fitting vertices",
        "dropped_geometry": "head and neck 9409-11247, iris shells 22221-23020 and 23791-24590 (behind the "
                            "cornea; measured for the iris), tear film, eye-blend and occlusion shells and "
                            "eyelash cards 24591-26718",
        "combined": {"browInnerUp": ["browInnerUp_L", "browInnerUp_R"],
                     "cheekPuff": ["cheekPuff_L", "cheekPuff_R"]},
        "dropped": {
            "cheekRaiser_L/R": "moves the region of cheekSquint_L/R (same peak vertex, cosine "
                               f"{cos_cr}, {overlap:.0f} % of its support > 0.25 mm inside cheekSquint's); "
                               "ARKit's cheekSquint is the cheek raiser (FACS AU6): summing both would "
                               "double the motion",
            "PupilDilate_L/R": "moves only ICT's iris shells, which are not shipped; no ARKit counterpart",
        },
        "authored": {
            "tongueOut": f"the tongue (ICT's UV island, {n_tongue} vertices) slides {TONGUE_OUT_MM:g} mm "
                         "forward and a little down (direction (0, -0.25, 1)), the tip farthest: smooth "
                         f"falloff to the root (z {TONGUE_ROOT_Z[0]:g} -> {TONGUE_ROOT_Z[1]:g} mm) and "
                         f"within {TONGUE_ATTACH_MM:g} mm of its seam to the mouth floor, narrowing by "
                         f"{100 * TONGUE_NARROW:.0f} %; the tip moves from z = "
                         f"{tip} mm past the lips; jaw shapes untouched (use it "
                         "with jawOpen: with the jaw closed it passes through the lower lip)",
            "eyeLook": "ICT's eyeLook shapes move only the lids; here the eyeball shell also turns "
                       f"{EYE_LOOK_DEG:g} deg about the eye centre (In = towards the nose)",
        },
        "eye_centers_m": [[_round(x * MM, 6, "eye centre") for x in eyes[s]["centre"]] for s in (-1, 1)],
        "eye_radius_m": _round(eyes[1]["radius"] * MM, 5, "eye radius"),
        "gaze_axes": [[_round(x, 4, "gaze axis") for x in eyes[s]["axis"]] for s in (-1, 1)],
        "iris_radius_m": _round(eyes[1]["iris_radius"] * MM, 5, "iris radius"),
        "pupil_radius_m": _round(eyes[1]["pupil_radius"] * MM, 5, "pupil radius"),
        "interpupillary_m": _round(_norm(eyes[1]["pupil"] - eyes[-1]["pupil"]) * MM, 5, "ipd"),
        "jaw_open_chin_travel_m": _round(f["jaw_chin"] * MM, 5, "chin travel"),
        "jaw_rigid_residual_m": _round(f["jaw_res"] * MM, 6, "jaw residual"),
        "ict_landmarks_ibug68": f["lm68"],
        "landmarks": {
            "mediapipe": "all 478: 0-467 by registering MediaPipe's canonical_face_model.obj to the ICT "
                         "neutral (similarity on the 52 iBUG pairs of facecap.facekit.IBUG68_TO_LANDMARK, "
                         f"{REG_ITERATIONS} nonrigid iterations); 468-477 on the cornea from ICT's iris disc "
                         "(468/473 centre of the subject's right/left iris, then towards +x, up, -x, down)",
            "similarity_rms_m": _round(reg["similarity_rms_mm"] * MM, 5, "similarity rms"),
            "similarity_max_m": _round(reg["similarity_max_mm"] * MM, 5, "similarity max"),
            "ibug_pairs_rms_m": _round(math.sqrt(float(np.mean(d68**2))) * MM, 5, "pairs rms"),
            "ibug_pairs_max_m": _round(float(d68.max()) * MM, 5, "pairs max"),
            "on_track": int(f["on_track"]),
        },
        "mirror": "nearest vertex (ICT is nearly symmetric)",
        "mirror_max_error_m": _round(f["mirror_err"], 6, "mirror error"),
        "shape_regions": {k: list(shape_region(k)) for k in arkit.ARKIT_NAMES},
        "shape_region_share": {k: _round(v, 3, "region share") for k, v in f["share"].items()},
    }  # fmt: skip


def _masks(V, T, part, face, track, w_jaw, tongue, lm, eyes, eye_y, nz):
    """Region masks: the generic rig's names and meanings (rigs/README.md), plus ICT's parts."""
    n = len(V)
    names = [p for p, _ in PARTS]
    m = {p: part == k for k, p in enumerate(names)}
    tg = np.zeros(n, bool)
    tg[tongue] = True
    rim = _boundary_vertices(T, n) & face  # the cut to the dropped head and neck
    d_rim = cKDTree(V[rim]).query(V)[0]
    fi = np.flatnonzero(face)
    _require_margin("mask border", d_rim[fi], BORDER_MM)
    xy = V[:, :2]
    out = {
        "track": track,
        "face": m["face"],
        "eyeballs": m["eyeballs"],
        "eye_sockets": m["eye_sockets"],
        "mouth_socket": m["mouth_socket"],
        "teeth": m["teeth"],
        "gums": m["gums_tongue"] & ~tg,
        "tongue": tg,
        "mouth_interior": m["mouth_socket"] | m["gums_tongue"] | m["teeth"],
        "interior": m["eye_sockets"] | m["mouth_socket"] | m["gums_tongue"] | m["teeth"],
        "border": face & (d_rim <= BORDER_MM),
    }
    # eyelids: within 11.5 mm of the lid contour
    lids = np.zeros(n, bool)
    for side in (-1, 1):
        ring = [EYE_CORNERS[side][0], *sorted(LID_UPPER[side], key=lambda i: lm[i, 0] * -side),
                EYE_CORNERS[side][1], *sorted(LID_LOWER[side], key=lambda i: lm[i, 0] * side)]  # fmt: skip
        ring = lm[np.r_[ring, ring[:1]]]
        d = _polyline_distance(V, ring)
        _require_margin("mask eyelids", d[fi], 11.5)
        lids |= face & (d <= 11.5)
    out["eyelids"] = lids
    # brows: within 12 mm of the brow's mid line; forehead: above the brows' upper contour
    brows = np.zeros(n, bool)
    top = []
    for side in (-1, 1):
        mid = 0.5 * (lm[list(BROW_UPPER[side])] + lm[list(BROW_LOWER[side])])
        d = _polyline_distance(V, mid)
        _require_margin("mask brows", d[fi], 12.0)
        brows |= face & (d <= 12.0)
        top.append(lm[list(BROW_UPPER[side])])
    out["brows"] = brows
    top = np.vstack(top)
    top = top[np.argsort(top[:, 0])]
    y_top = np.interp(V[:, 0], top[:, 0], top[:, 1])
    _require_margin("mask forehead", V[fi, 1], y_top[fi])
    out["forehead"] = face & (V[:, 1] > y_top) & ~out["border"]
    # nose: hull of ICT's nose landmarks, widened
    poly = np.array([nz[27] + (-10, 1, 0), nz[31] + (-12, -3, 0), nz[33] + (0, -3, 0), nz[35] + (12, -3, 0),
                     nz[27] + (10, 1, 0)])[:, :2]  # fmt: skip
    out["nose"] = face & _inside(poly, xy, "mask nose", face) & (V[:, 2] > nz[31, 2] - 15.0)
    _require_margin("mask nose depth", V[fi, 2], nz[31, 2] - 15.0)
    # lips: inside MediaPipe's outer lip contour; mouth: perioral ellipse
    out["lips"] = (
        face & _inside(lm[list(LIP_OUTER), :2], xy, "mask lips", face) & (V[:, 2] > lm[61, 2] - 15.0)
    )
    _require_margin("mask lips depth", V[fi, 2], lm[61, 2] - 15.0)
    centre = 0.5 * (lm[61] + lm[291])
    half = 0.5 * abs(lm[291, 0] - lm[61, 0])
    e = np.hypot((V[:, 0] - centre[0]) / (half + 24.0), (V[:, 1] - centre[1] + 6.0) / 34.0)
    _require_margin("mask mouth", e[fi], 1.0)
    out["mouth"] = face & (e <= 1.0)
    ex = 0.5 * (abs(eyes[1]["centre"][0]) + abs(eyes[-1]["centre"][0])) + 14.5
    e = np.hypot((np.abs(V[:, 0]) - ex) / 42.0, (V[:, 1] - (eye_y - 38.0)) / 40.0)
    _require_margin("mask cheeks", e[fi], 1.0)
    ear_z = float(nz[[0, 16], 2].min())
    _require_margin("mask cheeks: ears", V[fi, 2], ear_z, exact_ok=True)
    out["cheeks"] = face & (e <= 1.0) & (V[:, 2] > ear_z)  # in front of the ears
    notes = ~(m["eyeballs"] | m["eye_sockets"])
    nonzero = w_jaw[notes]
    _require_margin("mask jaw", nonzero, 0.5)
    _require_margin("mask lower_face", nonzero, 0.05)
    out["jaw"] = notes & (w_jaw >= 0.5)
    out["lower_face"] = notes & (w_jaw > 0.05)
    return out


def _colors(V, part, face, fitting, masks, lm, eyes, tongue, sclera_sel, ict_lm):
    """Albedo per vertex (uint8): skin, lips, brows, lash line, nostrils, eyes, mouth interior."""
    n = len(V)
    c = np.tile(np.array(SKIN, np.uint8), (n, 1))
    names = [p for p, _ in PARTS]
    c[masks["lips"]] = LIP
    fi = np.flatnonzero(face)
    for side in (-1, 1):
        poly = np.vstack([lm[list(BROW_UPPER[side])], lm[list(BROW_LOWER[side])][::-1]])[:, :2]
        ins = (
            face
            & _inside(poly, V[:, :2], "brow colour", face)
            & (V[:, 2] > lm[BROW_UPPER[side][0], 2] - 20.0)
        )
        _require_margin("brow colour depth", V[fi, 2], lm[BROW_UPPER[side][0], 2] - 20.0)
        c[ins] = BROW
        # lash line: lid margin (outside ICT's fitting set) within 4 mm of the lid contour
        ring = [EYE_CORNERS[side][0], *sorted(LID_UPPER[side], key=lambda i: lm[i, 0] * -side),
                EYE_CORNERS[side][1], *sorted(LID_LOWER[side], key=lambda i: lm[i, 0] * side)]  # fmt: skip
        d = _polyline_distance(V, lm[np.r_[ring, ring[:1]]])
        _require_margin("lash colour", d[fi], 4.0)
        c[face & ~fitting & (d <= 4.0)] = LASH
    # nostrils: outside the fitting set, near the subnasale, under the nose tip
    sub, tip = ict_lm[33], ict_lm[30]
    dn = _norm(V - sub)
    _require_margin("nostril colour", dn[fi], 16.0)
    _require_margin("nostril colour height", V[fi, 1], tip[1], exact_ok=True)
    c[face & ~fitting & (dn <= 16.0) & (V[:, 1] < tip[1]) & ~masks["lips"]] = NOSTRIL
    c[part == names.index("eye_sockets")] = CARUNCLE
    c[part == names.index("mouth_socket")] = MOUTH_DARK
    c[part == names.index("gums_tongue")] = GUMS
    c[tongue] = TONGUE
    c[part == names.index("teeth")] = TEETH
    for side, sel in zip((1, -1), sclera_sel, strict=True):
        e = eyes[side]
        r = V[sel] - e["pupil"]
        h = _dot(r, np.broadcast_to(e["axis"], r.shape))
        rho = _norm(r - h[:, None] * e["axis"])
        front = h > -2.0
        _require_margin("iris colour: front", h, -2.0)
        for radius in (e["iris_radius"], e["iris_radius"] - 0.6, 0.8 * e["iris_radius"], e["pupil_radius"]):
            _require_margin("iris colour: rings", rho[front], radius)
        col = np.tile(np.array(SCLERA_COLOR, np.uint8), (len(sel), 1))
        col[front & (rho <= e["iris_radius"])] = LIMBUS
        col[front & (rho <= e["iris_radius"] - 0.6)] = IRIS_COLOR
        col[front & (rho <= 0.8 * e["iris_radius"])] = tuple(int(round(x * 0.85)) for x in IRIS_COLOR)
        col[front & (rho <= e["pupil_radius"])] = PUPIL
        c[sel] = col
    return c


# ---------------------------------------------------------------------------------------------- compare, CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="build_ict_rig.py",
        description="Build facecap's scan-based rig from the ICT Face Model (ICT-FaceKit, MIT): the face a "
        "depth camera sees with eyeballs, mouth interior, 52 ARKit expressions, 478 MediaPipe landmarks, "
        "masks and colours, saved as a compressed .npz with the ICT licence beside it.",
        epilog="examples:\n"
        "  python rigs/build_ict_rig.py            rebuild facecap/data/ict_rig.npz\n"
        "  python rigs/build_ict_rig.py --check    verify the committed file matches a fresh build\n"
        "  python rigs/build_ict_rig.py --out /tmp/ict_rig.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"rig file (default: {DEFAULT_OUT})")
    ap.add_argument(
        "--check", action="store_true",
        help="rebuild in memory and compare with --out instead of writing; exit 1 on mismatch",
    )  # fmt: skip
    ap.add_argument("--ict", type=Path, default=ICT_DIR, help=f"ICT-FaceKit folder (default: {ICT_DIR})")
    ap.add_argument("--mediapipe-obj", type=Path, default=CANONICAL_OBJ,
                    help=f"MediaPipe canonical_face_model.obj (default: {CANONICAL_OBJ})")  # fmt: skip
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        rig = build_ict_rig(args.ict, args.mediapipe_obj)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    licence = (args.ict / LICENSE_SOURCE).read_bytes()
    lic_out = args.out.parent / LICENSE_NAME
    if args.check:
        try:
            saved = Rig.load(args.out)
        except (OSError, ValueError) as e:
            print(f"check failed: {e}", file=sys.stderr)
            return 1
        diffs = compare_rigs(rig, saved)
        if not lic_out.is_file() or lic_out.read_bytes() != licence:
            diffs.append(f"{lic_out} is missing or differs from ICT's licence")
        if diffs:
            print(
                f"check failed: {args.out} differs from a fresh build: " + "; ".join(diffs), file=sys.stderr
            )
            print("rebuild it with `python rigs/build_ict_rig.py`", file=sys.stderr)
            return 1
        print(f"{args.out} matches a fresh build ({rig.n_vertices} vertices, built in {dt:.1f} s)")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rig.save(args.out)
    lic_out.write_bytes(licence)
    size = args.out.stat().st_size
    print(f"wrote {args.out} and {lic_out.name}: {rig.n_vertices} vertices, {len(rig.triangles)} triangles, "
          f"{len(rig.landmark_ids)} landmarks, {size / 1e6:.2f} MB, built in {dt:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
