"""Build facecap's generic tracking rig from analytic definitions (no third-party mesh).

The rig is the front of an adult head (ear to ear, hairline to under the chin) with real eye openings,
an eyeball patch behind each, a mouth slit whose lips are not joined, a dark mouth cavity with teeth and a
small tongue, and all 52 ARKit expressions as localized deltas.

Construction
------------
* **Parameter domain.** Each face vertex has parameter coordinates ``(X, Y)`` in millimetres:
  ``X = R0 * azimuth``, ``Y = R0 * elevation`` of the ray from the rig origin (the head's rotation centre,
  at eye height, ~95 mm behind the nose bridge). The surface point is ``r(X, Y) * direction(X, Y)``.
* **Surface.** ``r`` is the ray's exit distance from an implicit base head (super-elliptic cross-sections,
  a rounded jaw underside) smoothly united with an implicit nose (ridge, tip, alae, columella), plus smooth
  radial features (eye sockets, brow ridge, cheekbones, muzzle, lips, chin), smoothly maxed with a prolate
  "lid" spheroid over each eyeball so the lids rest on the eye.
* **Topology.** Points of the right half (``X <= 0``): a graded grid, rings that follow the eyelid margins
  and the lip contact line, and the domain rim; Delaunay-triangulated in ``(X, Y)`` (slightly sheared, so
  the grid's co-circular rectangles get one diagonal by rule, not by rounding), triangles inside the eye and
  mouth openings removed, then mirrored, so the mesh is exactly left/right symmetric.
* **Reproducibility.** Every discrete decision asserts a margin over floating-point noise (see
  ``_require_margin``), so the rig is the same on any CPU.
* **Expressions.** Each right-side shape is a displacement field with compact smooth support; left shapes
  are their exact mirror images; centre shapes are symmetrized.

Units are millimetres inside this module and metres in the saved rig (``facecap.rig.Rig``).

Usage::

    python rigs/build_generic_rig.py            # write facecap/data/generic_rig.npz
    python rigs/build_generic_rig.py --check    # rebuild in memory, compare with the committed file
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath
from scipy.interpolate import CubicSpline
from scipy.spatial import Delaunay

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # buildcheck, beside this script

from buildcheck import require_margin  # noqa: E402

from facecap import arkit  # noqa: E402
from facecap.rig import (  # noqa: E402
    DEFAULT_RIG_PATH,
    MEDIAPIPE_LANDMARKS,
    Rig,
    compare_rigs,
    mirror_map,
    vertex_normals,
)

BUILDER_VERSION = 1
RIG_NAME = "facecap-generic"

# ---------------------------------------------------------------------------------------------- design
R0 = 90.0  # mm: parameter scale, X = R0 * azimuth, Y = R0 * elevation

# Domain: rounded rectangle (super-ellipse) in parameter space.
DOMAIN_X = 132.0  # half width (about 84 degrees of azimuth: in front of the ears)
DOMAIN_Y = (-101.0, 68.0)  # bottom (under the chin) and top (hairline)
DOMAIN_P = 3.2

# Base head: super-elliptic cross-sections x^n / a(y)^n + z^n / b(y)^n = 1, front half.
_BASE_Y = np.array([-140, -125, -110, -95, -80, -60, -40, -20, 0, 20, 40, 60, 80, 100, 120], float)
_BASE_A = np.array([26, 32, 44, 56, 65, 72, 76, 77, 76, 75, 74, 72, 68, 60, 48], float)  # half width
_BASE_B = np.array([74, 82, 88, 91, 92, 93, 93, 92, 90, 92.5, 90, 84, 73, 58, 40], float)  # depth
_BASE_N = np.array([2.0, 2.0, 2.1, 2.2, 2.3, 2.4, 2.4, 2.4, 2.3, 2.2, 2.1, 2.1, 2.0, 2.0, 2.0], float)
JAW_UNDER_Y = -119.0  # under-chin plane height at the chin (z = 80), rising towards the neck
JAW_UNDER_SLOPE = 0.45

# Eyes (left eye, +x; the right eye is its mirror image).
EYE_CENTER = np.array([31.5, 0.0, 67.0])  # eyeball centre
EYE_RADIUS = 12.0
LID_RADIUS = 13.5  # spheroid radius around its long axis: the lids rest 1.5 mm over the eyeball
LID_LENGTH = 20.5  # spheroid semi-major axis
EYE_TILT = np.radians(12.0)  # the spheroid's long axis turns back laterally (outer corner deeper)
EYE_HALF_WIDTH = 14.5  # corners at s = EYE_S_CENTER -+ 14.5 mm along the long axis
EYE_S_CENTER = -2.0  # centres the opening over the pupil
LID_UPPER = np.radians(24.0)  # upper margin angle above the axis plane at the middle
LID_LOWER = np.radians(18.0)
CANTHUS = (np.radians(2.0), np.radians(3.0))  # corner angle: mean, lateral rise
MARGIN_N = 32  # margin intervals per lid
IRIS_DEG, PUPIL_DEG = 27.0, 11.0

# Mouth, in parameter space: lip contact line Y = MOUTH_Y - MOUTH_CURVE * (X / MOUTH_W)^2.
MOUTH_Y = -56.5
MOUTH_W = 26.0
MOUTH_CURVE = 2.8
MOUTH_GAP = 0.8  # gap between the lips at the middle (parameter mm); 0 at the corners
UPPER_LIP_H = 6.6  # vermilion height at the cupid's bow dip
LOWER_LIP_H = 6.0

MM = 1e-3


def _lip_line(X):
    return MOUTH_Y - MOUTH_CURVE * (np.asarray(X) / MOUTH_W) ** 2


def _lip_gap(X):
    t = np.clip(1 - (np.asarray(X) / MOUTH_W) ** 2, 0, None)
    return MOUTH_GAP * np.sqrt(t)


# ---------------------------------------------------------------------------------------------- helpers
def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _bump(d):
    """Compact smooth bump: (1 - d^2)^3 for d < 1, exactly 0 beyond."""
    return np.clip(1 - np.square(d), 0.0, None) ** 3


def _ell(X, Y, cx, cy, rx, ry):
    return np.hypot((X - cx) / rx, (Y - cy) / ry)


def _eb(X, Y, cx, cy, rx, ry):
    """Elliptic compact bump centred at (cx, cy) with radii (rx, ry)."""
    return _bump(_ell(X, Y, cx, cy, rx, ry))


def _smax(a, b, k):
    """Polynomial smooth maximum (>= max(a, b); equal to it where |a - b| >= k)."""
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.maximum(a, b) + h * h * k * 0.25


def _smin(a, b, k):
    return -_smax(-a, -b, k)


# ---------------------------------------------------------------------------------------------- robustness
# The build must give the same rig on every CPU. Transcendental functions (numpy dispatches SIMD versions by
# CPU features; libm builds differ) and BLAS kernels (OpenBLAS picks one per core type) may round the last
# bit differently, which moves computed values here by ~1e-13 mm (1e-12 mm where the ray bisection of
# `_ray_exit` stops). So no discrete decision of the build (a comparison, a rounding, an argmin, a
# triangulation) may rest on a floating-point tie: each asserts that its inputs keep a margin far above
# that noise, and the build fails loudly instead of depending on the CPU. Continuous steps (bisection,
# clip, smooth maxima, interpolation) only pass the noise on; the float32 rig absorbs it (`compare_rigs`).
TIE_MARGIN = 1e-7  # smallest distance of a decided value from its threshold (mm, or unitless)
TRI_SHEAR = 1e-3  # Delaunay runs on (X, Y + TRI_SHEAR * X): every grid rectangle gets the same diagonal
INCIRCLE_MARGIN = 1e-6  # smallest relative distance of a quad's fourth point from the circumcircle
BARY_SNAP = 1e-9  # landmark barycentric coordinates below this are on an edge/vertex by construction
LID_TOL = 1e-7  # rad (and in tau): lid margin vertices count as above/below the opening; corners as neither


def _require_margin(what, value, threshold=0.0, margin=TIE_MARGIN, exact_ok=False):
    """:func:`buildcheck.require_margin` with this builder's margin."""
    require_margin(what, value, threshold, margin, exact_ok)


def _argbest(values, what, largest=True, margin=TIE_MARGIN):
    """Index of the largest (or smallest) value, which must beat the runner-up by ``margin``."""
    v = np.asarray(values, float) * (1 if largest else -1)
    k = int(np.argmax(v))
    if len(v) > 1:
        _require_margin(what, v[k] - np.max(np.delete(v, k)), 0.0, margin)
    return k


def _round_int(x, what):
    """``round(x)`` as an int; ``x`` must not lie within ``TIE_MARGIN`` of a half-integer."""
    _require_margin(what, x % 1.0, 0.5)
    return int(round(x))


def _dirs(X, Y):
    u, v = np.asarray(X) / R0, np.asarray(Y) / R0
    cv = np.cos(v)
    return np.stack([np.sin(u) * cv, np.sin(v), np.cos(u) * cv], -1)


def _to_param(p):
    p = np.asarray(p, float)
    return R0 * np.arctan2(p[..., 0], p[..., 2]), R0 * np.arctan2(p[..., 1], np.hypot(p[..., 0], p[..., 2]))


# ---------------------------------------------------------------------------------------------- base + nose
_SPL_A = CubicSpline(_BASE_Y, _BASE_A)
_SPL_B = CubicSpline(_BASE_Y, _BASE_B)
_SPL_N = CubicSpline(_BASE_Y, _BASE_N)


def _f_base(p):
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    yc = np.clip(y, _BASE_Y[0], _BASE_Y[-1])
    a, b, n = _SPL_A(yc), _SPL_B(yc), _SPL_N(yc)
    rho = ((np.abs(x) / a) ** n + (np.clip(z, 0, None) / b) ** n) ** (1 / n)
    f_head = (rho - 1.0) * 80.0
    f_under = JAW_UNDER_Y + JAW_UNDER_SLOPE * (80.0 - z) - y
    f_top = y - 118.0
    return _smax(_smax(f_head, f_under, 14.0), f_top, 10.0)


# Nose ridge depth (z) and shape along height y.
_NOSE_Y = np.array([-48, -42, -36, -30, -22, -15, -8, 0, 8, 20], float)
_NOSE_Z = np.array([104.0, 112.5, 116.5, 116.3, 112.5, 108.2, 103.5, 98.3, 92.5, 86], float)
_NOSE_S = np.array([1.5, 1.5, 1.5, 1.5, 1.5, 1.6, 1.7, 1.8, 1.9, 1.9], float)  # side wall slope
_NOSE_R = np.array([5.0, 5.0, 5.0, 4.6, 4.0, 3.5, 3.2, 3.0, 3.0, 3.0], float)  # ridge roundness
_SPL_NZ = CubicSpline(_NOSE_Y, _NOSE_Z)
_SPL_NS = CubicSpline(_NOSE_Y, _NOSE_S)
_SPL_NR = CubicSpline(_NOSE_Y, _NOSE_R)
ALA_C = np.array([12.5, -40.0, 92.0])  # left ala centre
ALA_R = np.array([6.0, 5.0, 7.5])


def _f_nose(p):
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    yc = np.clip(y, _NOSE_Y[0], _NOSE_Y[-1])
    zr, s, rr = _SPL_NZ(yc), _SPL_NS(yc), _SPL_NR(yc)
    ridge = zr - s * (np.sqrt(x * x + rr * rr) - rr)
    f_ridge = z - ridge
    # underside: from below the tip back to the subnasale, sloping up-back
    under = -40.5 - 0.68 * (113.0 - z)
    f_under = under - y
    f_top = y - 18.0
    f_back = 84.0 - z  # the wedge only exists in front of the face
    f = _smax(_smax(_smax(f_ridge, f_under, 4.0), f_top, 6.0), f_back, 2.0)
    # alae
    q = (np.stack([np.abs(x), y, z], -1) - ALA_C) / ALA_R
    f_ala = (np.linalg.norm(q, axis=-1) - 1.0) * 6.0
    return _smin(f, f_ala, 3.0)


def _f_head(p):
    return _smin(_f_base(p), _f_nose(p), 5.0)


def _ray_exit(X, Y, lo=25.0, hi=260.0, iters=48):
    """Distance along each ray where the implicit head ends (bisection; inside is f < 0)."""
    d = _dirs(X, Y)
    a = np.full(d.shape[:-1], lo)
    b = np.full(d.shape[:-1], hi)
    for _ in range(iters):
        m = 0.5 * (a + b)
        inside = _f_head(d * m[..., None]) < 0
        a = np.where(inside, m, a)
        b = np.where(inside, b, m)
    return 0.5 * (a + b)


# ---------------------------------------------------------------------------------------------- eyes
def _eye_frame(side):
    """Eyeball centre, spheroid long axis (pointing laterally) and forward axis for side +1 (left) / -1."""
    E = EYE_CENTER * (side, 1, 1)
    a = np.array([side * np.cos(EYE_TILT), 0.0, -np.sin(EYE_TILT)])
    f = np.array([side * np.sin(EYE_TILT), 0.0, np.cos(EYE_TILT)])
    return E, a, f


def _lid_rho(s):
    return LID_RADIUS * np.sqrt(np.clip(1 - (s / LID_LENGTH) ** 2, 0, None))


def _spheroid_point(side, s, alpha):
    E, a, f = _eye_frame(side)
    up = np.array([0.0, 1.0, 0.0])
    rho = _lid_rho(s)[..., None]
    return E + s[..., None] * a + rho * (np.cos(alpha)[..., None] * f + np.sin(alpha)[..., None] * up)


def _spheroid_coords(side, p):
    """(s, alpha, radial distance) of points about a spheroid's axis."""
    E, a, f = _eye_frame(side)
    q = p - E
    s = q @ a
    w = q - s[..., None] * a
    return s, np.arctan2(w[..., 1], w @ f), np.linalg.norm(w, axis=-1)


def _margin_alpha(tau):
    """Upper and lower lid margin angles at normalized position tau in [-1 (inner), 1 (outer)]."""
    tau = np.asarray(tau, float)
    c = CANTHUS[0] + CANTHUS[1] * tau
    t2 = np.clip(1 - tau * tau, 0, None)
    up = c + LID_UPPER * t2**0.7 * (1 - 0.15 * tau)
    lo = c - LID_LOWER * t2**0.8 * (1 + 0.15 * tau)
    return up, lo


def _lid_margin(side):
    """Margin vertices (3-D) of the upper and lower lid, tau = -1..1, corners shared (in `upper`)."""
    tau = np.linspace(-1, 1, MARGIN_N + 1)
    s = EYE_S_CENTER + tau * EYE_HALF_WIDTH
    up, lo = _margin_alpha(tau)
    return tau, _spheroid_point(side, s, up), _spheroid_point(side, s, lo)


def _spheroid_exit(side, d):
    """Far intersection distance of rays from the origin with a lid spheroid (-1e9 where missed)."""
    E, a, _ = _eye_frame(side)
    c1 = 1 / LID_LENGTH**2 - 1 / LID_RADIUS**2
    da = d @ a
    de = d @ E
    ea = E @ a
    a2 = c1 * da * da + 1 / LID_RADIUS**2
    a1 = -2 * c1 * da * ea - 2 * de / LID_RADIUS**2
    a0 = c1 * ea * ea + (E @ E) / LID_RADIUS**2 - 1
    disc = a1 * a1 - 4 * a2 * a0
    _require_margin("lid spheroid: ray tangency", disc)
    t = (-a1 + np.sqrt(np.clip(disc, 0, None))) / (2 * a2)
    return np.where(disc > 0, t, -1e9)


# ------------------------------------------------------------------------------------------ radial features
def _radial_features(X, Y, lips=True):
    """Radial offsets (mm) of the face surface over the base head and nose."""
    ax = np.abs(X)
    r = np.zeros_like(X, dtype=float)
    # eye socket, brow ridge, glabella, temples
    r -= 11.0 * _eb(ax, Y, 34.0, 0.5, 23.0, 17.0)
    r -= 4.0 * _eb(ax, Y, 24.0, 4.0, 11.0, 10.0)  # deeper on the nose side of the eye
    r += 3.5 * _eb(ax, Y, 30.0, 19.5, 28.0, 8.5)
    r += 1.5 * _eb(X, Y, 0.0, 20.0, 14.0, 10.0)
    r -= 3.0 * _eb(ax, Y, 70.0, 22.0, 20.0, 20.0)
    # cheekbones, cheeks, under-eye hollow
    r += 4.0 * _eb(ax, Y, 60.0, -22.0, 28.0, 17.0)
    r += 2.5 * _eb(ax, Y, 44.0, -30.0, 22.0, 18.0)
    # muzzle (dental arch), philtrum
    r += 3.8 * _eb(X, Y, 0.0, -56.0, 40.0, 24.0)
    r -= 1.5 * _eb(ax, Y, MOUTH_W + 2.0, _lip_line(MOUTH_W), 7.0, 7.0)  # modiolus
    r += 0.8 * _eb(ax, Y, 4.5, -45.0, 2.5, 6.0)
    # nasolabial fold: a shallow crease from the ala to beside the mouth corner
    r -= 1.2 * _nasolabial(ax, Y)
    # chin: mentolabial sulcus and chin boss
    r -= 2.0 * _eb(X, Y, 0.0, -67.5, 17.0, 4.5)
    r += 4.5 * _eb(X, Y, 0.0, -78.0, 22.0, 12.0)
    if lips:
        r += _lip_profile(X, Y)
    return r


def _nasolabial(ax, Y):
    # distance to the segment from (20, -36) to (34, -66)
    p0, p1 = np.array([20.0, -36.0]), np.array([34.0, -66.0])
    dv = p1 - p0
    t = np.clip(((ax - p0[0]) * dv[0] + (Y - p0[1]) * dv[1]) / (dv @ dv), 0, 1)
    dist = np.hypot(ax - p0[0] - t * dv[0], Y - p0[1] - t * dv[1])
    return _bump(dist / 3.5) * np.sin(np.pi * t) ** 0.5


def _upper_border(X):
    """Height of the upper vermilion border above the contact line (cupid's bow)."""
    x = np.abs(X) / MOUTH_W
    taper = np.clip(1 - x * x, 0, None) ** 0.6
    bow = 1.0 + 0.18 * np.exp(-(((x - 0.25) / 0.12) ** 2)) - 0.05 * np.exp(-((x / 0.1) ** 2))
    return UPPER_LIP_H * taper * bow


def _lower_border(X):
    x = np.abs(X) / MOUTH_W
    return LOWER_LIP_H * np.clip(1 - x * x, 0, None) ** 0.55


def _lip_coords(X, Y):
    """(is_upper, t) with t = 0 at the contact line and 1 at the vermilion border."""
    L = _lip_line(X)
    g = _lip_gap(X) / 2
    upper = Y >= L
    hu = np.maximum(_upper_border(X), 1e-6)
    hl = np.maximum(_lower_border(X), 1e-6)
    t = np.where(upper, (Y - L - g) / hu, (L - g - Y) / hl)
    return upper, t


def _lip_profile(X, Y):
    upper, t = _lip_coords(X, Y)
    x = np.abs(X) / MOUTH_W
    taper = np.clip(1 - x * x, 0, None) ** 0.5

    # vermilion volume: bulges forward, rolls back into the mouth at the contact line
    def vol(t, amp, peak, width):  # bulge that is 0 at the contact line (t = 0)
        return amp * (_bump((t - peak) / width) - _bump(peak / width) * _bump(t / 0.45))

    up = vol(t, 3.2, 0.7, 0.95) - 0.6 * _bump(t / 0.45)
    lo = vol(t, 4.2, 0.5, 0.9) - 0.6 * _bump(t / 0.45)
    return taper * np.where(upper, up, lo)


def _lip_mask(X, Y):
    upper, t = _lip_coords(X, Y)
    return (np.abs(X) <= MOUTH_W) & (t <= 1.0)


# ---------------------------------------------------------------------------------------------- brows
def _brow_band(X, Y):
    """(lower edge, upper edge) of the eyebrow at |X| (parameter mm); nan outside."""
    ax = np.abs(X)
    x = (ax - 12.0) / 52.0  # 0 inner end, 1 outer end
    mid = 17.0 + 6.5 * np.sin(np.pi * np.clip(x, 0, 1) ** 0.8) - 6.0 * np.clip(x - 0.55, 0, None) ** 1.5 * 3
    half = 3.6 - 2.0 * np.clip(x, 0, 1)
    return mid - half, mid + half, x


def _brow_weight(X, Y):
    lo, hi, x = _brow_band(X, Y)
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    across = 1 - _smoothstep((np.abs(Y - mid) - half + 1.5) / 3.0)
    along = _smoothstep(x / 0.08) * (1 - _smoothstep((x - 0.95) / 0.1))
    return across * along


# ---------------------------------------------------------------------------------------------- face domain
def _domain_rho(X, Y):
    yc = 0.5 * (DOMAIN_Y[0] + DOMAIN_Y[1])
    ay = 0.5 * (DOMAIN_Y[1] - DOMAIN_Y[0])
    return (np.abs(X / DOMAIN_X) ** DOMAIN_P + np.abs((Y - yc) / ay) ** DOMAIN_P) ** (1 / DOMAIN_P)


def _domain_boundary_half(spacing):
    """Boundary points of the domain with X <= 0, from the top midline round to the bottom midline."""
    yc = 0.5 * (DOMAIN_Y[0] + DOMAIN_Y[1])
    ay = 0.5 * (DOMAIN_Y[1] - DOMAIN_Y[0])
    th = np.linspace(np.pi / 2, 3 * np.pi / 2, 4001)
    c, s = np.cos(th), np.sin(th)
    pts = np.stack(
        [-DOMAIN_X * np.abs(c) ** (2 / DOMAIN_P), yc + ay * np.sign(s) * np.abs(s) ** (2 / DOMAIN_P)], -1
    )
    return _resample_open(pts, spacing)


def _resample_open(pts, spacing):
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0], np.cumsum(seg)])
    n = max(2, _round_int(cum[-1] / spacing, "resampled polyline: number of points"))
    t = np.linspace(0, cum[-1], n + 1)
    return np.stack([np.interp(t, cum, pts[:, 0]), np.interp(t, cum, pts[:, 1])], -1)


def _resample_closed(pts, spacing, start_angle=0.0):
    c = pts.mean(0)
    ang = np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0])
    k = _argbest(
        np.abs(np.angle(np.exp(1j * (ang - start_angle)))), "closed ring: start point", largest=False
    )
    pts = np.roll(pts, -k, axis=0)
    closed = np.vstack([pts, pts[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    cum = np.concatenate([[0], np.cumsum(seg)])
    n = max(8, _round_int(cum[-1] / spacing, "resampled ring: number of points"))
    t = np.linspace(0, cum[-1], n, endpoint=False)
    return np.stack([np.interp(t, cum, closed[:, 0]), np.interp(t, cum, closed[:, 1])], -1)


def _offset_polyline(pts, d, closed, arc_step=0.14):
    """Offset a counter-clockwise polyline outwards by d; sharp corners get circular arcs."""
    P = np.vstack([pts, pts[:1]]) if closed else pts
    e = np.diff(P, axis=0)
    n = np.stack([e[:, 1], -e[:, 0]], -1) / np.linalg.norm(e, axis=1, keepdims=True)
    out = []
    m = len(pts)
    for i in range(m):
        if closed:
            n_in, n_out = n[i - 1], n[i % len(n)]
        else:
            n_in = n[max(i - 1, 0)]
            n_out = n[min(i, len(n) - 1)]
        a0, a1 = np.arctan2(n_in[1], n_in[0]), np.arctan2(n_out[1], n_out[0])
        da = np.angle(np.exp(1j * (a1 - a0)))
        _require_margin("offset polyline: corner test", abs(da), np.radians(20))
        if abs(da) > np.radians(20):
            steps = abs(da) / arc_step
            _require_margin("offset polyline: arc steps", steps - np.round(steps))
            k = int(np.ceil(steps))
            for a in a0 + da * np.linspace(0, 1, k + 1):
                out.append(pts[i] + d * np.array([np.cos(a), np.sin(a)]))
        else:
            nv = n_in + n_out
            nv /= np.linalg.norm(nv)
            out.append(pts[i] + d * nv / np.cos(da / 2))
    return np.array(out)


def _graded(total_lo, total_hi, spacing_fn, n_fine=4000):
    """Coordinates from 0 outwards to total_hi (and to total_lo) with local spacing spacing_fn(coord)."""
    out = [0.0]
    for sgn, end in ((1, total_hi), (-1, total_lo)):
        c = 0.0
        while True:
            c += sgn * spacing_fn(c)
            if sgn * c > sgn * end:
                break
            out.append(c)
    return np.array(sorted(out))


# ---------------------------------------------------------------------------------------------- the face mesh
def _eye_margin_param(side):
    tau, up, lo = _lid_margin(side)
    Xu, Yu = _to_param(up)
    Xl, Yl = _to_param(lo)
    return tau, np.stack([Xu, Yu], -1), np.stack([Xl, Yl], -1)


def _mouth_lens(n=57):
    X = np.linspace(-MOUTH_W, MOUTH_W, n)
    L, g = _lip_line(X), _lip_gap(X) / 2
    upper = np.stack([X, L + g], -1)
    lower = np.stack([X, L - g], -1)
    return upper, lower


def _face_points_half():
    """Parameter points of the right half (X <= 0) and bookkeeping of special vertices."""
    pts, tags = [], []

    def add(p, tag):
        p = np.atleast_2d(np.asarray(p, float))
        pts.append(p)
        tags.extend([tag] * len(p))

    # eye: margin loop, rings
    tau, mu, ml = _eye_margin_param(-1)
    add(mu, "margin_upper")  # includes both corners (tau = -1, 1)
    add(ml[1:-1], "margin_lower")
    loop = np.vstack([mu, ml[1:-1][::-1]])
    _require_margin("eye loop orientation", _signed_area(loop))
    if _signed_area(loop) < 0:
        loop = loop[::-1]
    eye_rings = [(1.0, 1.0), (2.1, 1.25), (3.4, 1.5), (4.9, 1.8), (6.6, 2.1), (8.5, 2.4)]
    for d, h in eye_rings:
        add(_resample_closed(_offset_polyline(loop, d, True), h, np.pi / 2), "eye_ring")
    eye_excl = _offset_polyline(loop, eye_rings[-1][0] + 1.7, True)
    # mouth: contact contours (upper and lower inner lip), rings round the right corner
    up, lo = _mouth_lens()
    half = up[:, 0] <= 0
    add(up[half], "lip_upper_inner")  # includes the corner (shared) and the midline point
    add(lo[half & (lo[:, 0] > -MOUTH_W)], "lip_lower_inner")
    lens = np.vstack([up[::-1], lo[1:-1]])  # counter-clockwise
    mid = len(up) // 2
    half_lens = np.vstack([up[mid::-1], lo[1 : mid + 1]])  # top midline -> right corner -> bottom midline
    mouth_rings = [(0.9, 1.0), (1.9, 1.1), (3.0, 1.2), (4.2, 1.35), (5.5, 1.5), (7.0, 1.7), (8.7, 2.0),
                   (10.6, 2.3)]  # fmt: skip
    for d, h in mouth_rings:
        arc = _resample_open(_offset_polyline(half_lens, d, False), h)
        arc[0, 0] = arc[-1, 0] = 0.0
        add(arc, "mouth_ring")
    mouth_excl = _offset_polyline(lens, mouth_rings[-1][0] + 1.6, True)
    # domain rim
    rim = _domain_boundary_half(3.2)
    rim[0, 0] = rim[-1, 0] = 0.0
    add(rim, "rim")

    # graded background grid (spacing in parameter mm)
    def hx(c):
        return 3.0 + 1.8 * _smoothstep((abs(c) - 45) / 80)

    def hy(c):
        return 3.0 - 0.6 * _smoothstep((-c - 45) / 30) + 0.8 * _smoothstep((c - 25) / 40)

    gx = _graded(-DOMAIN_X, 0.0, hx)
    gy = _graded(DOMAIN_Y[0], DOMAIN_Y[1], hy)
    GX, GY = np.meshgrid(gx[gx <= 0], gy)
    g = np.stack([GX.ravel(), GY.ravel()], -1)
    rho = _domain_rho(g[:, 0], g[:, 1])
    _require_margin("grid points: domain rim", rho, 1 - 2.2 / 100)
    keep = rho < 1 - 2.2 / 100
    keep &= ~_inside_polygon(g, eye_excl, "grid points: eye exclusion")
    keep &= ~_inside_polygon(g, mouth_excl, "grid points: mouth exclusion")
    add(g[keep], "grid")
    P = np.vstack(pts)
    _require_margin("midline snap", np.abs(P[:, 0]), 1e-6)
    P[np.abs(P[:, 0]) < 1e-6, 0] = 0.0
    tags = np.array(tags)
    # drop near-duplicates (keep the first, i.e. the feature points)
    order_keep = _dedupe(P, 0.25)
    return P[order_keep], tags[order_keep], loop, lens


def _signed_area(poly):
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _segment_distance(pts, poly):
    """Distance (mm) from points ``(n, 2)`` to the edges of a closed polygon ``(m, 2)``."""
    a = poly[None, :, :]
    e = np.roll(poly, -1, axis=0)[None, :, :] - a
    q = pts[:, None, :] - a
    t = np.clip(np.sum(q * e, -1) / np.sum(e * e, -1), 0.0, 1.0)
    return np.sqrt(np.sum(np.square(q - t[..., None] * e), -1)).min(1)


def _inside_polygon(pts, poly, what):
    """Points inside a closed polygon; none may lie within ``TIE_MARGIN`` of its edges."""
    _require_margin(what, _segment_distance(pts, poly))
    return MplPath(poly).contains_points(pts)


def _dedupe(P, tol):
    from scipy.spatial import cKDTree

    tree = cKDTree(P)
    near = np.array(sorted(tree.query_pairs(2 * tol)), dtype=int).reshape(-1, 2)
    _require_margin("near-duplicate points", np.linalg.norm(P[near[:, 0]] - P[near[:, 1]], axis=1), tol)
    drop = np.zeros(len(P), bool)
    for i, j in sorted(tree.query_pairs(tol)):
        if not drop[i] and not drop[j]:
            drop[j] = True
    return np.flatnonzero(~drop)


def _triangulate_half(P, eye_loop, lens):
    """Triangles (counter-clockwise in (X, Y)) of the right half's points, eye and mouth openings removed.

    Parameters
    ----------
    P : (n, 2) float64
        Parameter points (mm) of the right half.
    eye_loop, lens : (m, 2) float64
        Closed polygons of the eye opening and the mouth slit.

    Returns
    -------
    (f, 3) int64
        Vertex indices into ``P``.

    Notes
    -----
    The rectangles of the background grid have co-circular corners, so a plain Delaunay triangulation would
    pick their diagonals by the last bits of the coordinates. It runs on the sheared points
    ``(X, Y + TRI_SHEAR * X)`` instead, which turns each rectangle into a parallelogram whose shorter
    diagonal (upper left to lower right) wins by a margin, and every quad of the result is checked to be
    decided by at least ``INCIRCLE_MARGIN`` (`_require_delaunay_margin`). The shear is exact on the midline
    (``X = 0``), so the half still ends on a straight edge there. The triangles are returned in a canonical
    order (`_canonical_order`).
    """
    Q = np.column_stack([P[:, 0], P[:, 1] + TRI_SHEAR * P[:, 0]])
    tri = Delaunay(Q).simplices
    a, b, c = P[tri[:, 0]], P[tri[:, 1]], P[tri[:, 2]]
    area = 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    _require_margin("triangle area", np.abs(area), 1e-6)
    tri = np.where((area < 0)[:, None], tri[:, [0, 2, 1]], tri)
    tri = tri[np.abs(area) > 1e-6]
    _require_delaunay_margin(Q, tri)
    cen = P[tri].mean(1)
    holes = _inside_polygon(cen, eye_loop, "eye opening") | _inside_polygon(cen, lens, "mouth slit")
    return _canonical_order(tri[~holes])


def _canonical_order(tri):
    """Triangles rotated to start at their smallest index (orientation kept) and sorted.

    Qhull lists the triangles in an order that depends on the coordinates' last bits.
    """
    k = np.argmin(tri, axis=1)[:, None]
    tri = np.take_along_axis(tri, (k + np.arange(3)) % 3, axis=1)
    return tri[np.lexsort(tri.T[::-1])]


def _incircle_margin(Q, tri):
    """Relative distance of each interior edge's far point from the circumcircle across the edge.

    Parameters
    ----------
    Q : (n, 2) float64
        Points.
    tri : (f, 3) int
        Triangles of a triangulation of ``Q``.

    Returns
    -------
    (e,) float64
        ``(|d - o| - r) / r`` for every pair of triangles sharing an edge, with ``o, r`` the circumcircle of
        one triangle and ``d`` the other triangle's vertex opposite the edge: > 0 where the edge is locally
        Delaunay, 0 for co-circular quads (where either diagonal would do).
    """
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    opposite = np.concatenate([tri[:, 2], tri[:, 0], tri[:, 1]])
    owner = np.tile(np.arange(len(tri)), 3)
    key = edges[:, 0] * len(Q) + edges[:, 1]
    order = np.argsort(key, kind="stable")
    shared = np.flatnonzero(key[order][1:] == key[order][:-1])
    t_own, d = owner[order[shared]], opposite[order[shared + 1]]
    a, b, c = (Q[tri[t_own, k]] for k in range(3))
    ba, ca = b - a, c - a
    den = 2.0 * (ba[:, 0] * ca[:, 1] - ba[:, 1] * ca[:, 0])
    bb, cc = np.sum(ba * ba, 1), np.sum(ca * ca, 1)
    o = np.column_stack([ca[:, 1] * bb - ba[:, 1] * cc, ba[:, 0] * cc - ca[:, 0] * bb]) / den[:, None]
    r = np.linalg.norm(o, axis=1)
    return (np.linalg.norm(Q[d] - a - o, axis=1) - r) / r


def _require_delaunay_margin(Q, tri):
    """Raise unless every interior edge of ``tri`` is Delaunay by at least ``INCIRCLE_MARGIN``."""
    _require_margin(
        "Delaunay triangulation (co-circular quad)", _incircle_margin(Q, tri), 0.0, INCIRCLE_MARGIN
    )


def _mirror_assemble(P3, tri, is_mid, mirror_cols=(0,)):
    """Right-half vertices (with midline flags) -> full symmetric mesh [right, mid, left]."""
    order = np.concatenate([np.flatnonzero(~is_mid), np.flatnonzero(is_mid)])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    P3 = P3[order]
    tri = inv[tri]
    nr = int((~is_mid).sum())
    nm = len(P3) - nr
    flip = np.ones(P3.shape[1])
    flip[list(mirror_cols)] = -1
    left = P3[:nr] * flip
    V = np.vstack([P3, left])
    mirror = np.concatenate([np.arange(nr) + nr + nm, np.arange(nr, nr + nm), np.arange(nr)])
    T = np.vstack([tri, mirror[tri][:, [0, 2, 1]]])
    return V, T, mirror, order


def _surface(X, Y):
    """Face surface points and their lid-spheroid blend weight for parameter points."""
    d = _dirs(X, Y)
    r_face = _ray_exit(X, Y) + _radial_features(X, Y)
    _require_margin("surface: side of the midline", X, exact_ok=True)
    side = np.where(X < 0, -1, 1)
    r_lid = np.where(side < 0, _spheroid_exit(-1, d), _spheroid_exit(1, d))
    r = _smax(r_face, r_lid, 2.5)
    return d * r[..., None], r_face, r_lid


# ---------------------------------------------------------------------------------------------- other parts
EYE_RINGS_DEG = (4.5, 8.0, 11.0, 15.0, 20.0, 24.0, 27.0, 30.0, 37.0, 48.0, 62.0, 80.0, 100.0)
EYE_SECTORS = 20


def _eyeball_half():
    """Right eyeball cap (looking along +z): vertices, triangles, polar angle (deg) per vertex."""
    E = EYE_CENTER * (-1, 1, 1)
    th = np.radians(np.array(EYE_RINGS_DEG))
    ph = np.linspace(0, 2 * np.pi, EYE_SECTORS, endpoint=False)
    T_, P_ = np.meshgrid(th, ph, indexing="ij")
    ring = np.stack([np.sin(T_) * np.cos(P_), np.sin(T_) * np.sin(P_), np.cos(T_)], -1).reshape(-1, 3)
    V = E + EYE_RADIUS * np.vstack([[0.0, 0.0, 1.0], ring])
    polar = np.concatenate([[0.0], np.repeat(EYE_RINGS_DEG, EYE_SECTORS)])  # exact, for colour thresholds
    tris = []
    n = EYE_SECTORS
    for j in range(n):  # apex fan, counter-clockwise seen from outside (+z)
        tris.append((0, 1 + j, 1 + (j + 1) % n))
    for i in range(len(th) - 1):
        for j in range(n):
            a, b = 1 + i * n + j, 1 + i * n + (j + 1) % n
            c, d = a + n, b + n
            tris += [(a, c, d), (a, d, b)]
    return V, np.array(tris), polar


def _canthus_half():
    """Right eye's corner backing: small surfaces of revolution about the lid axis that fill the eye
    corners (beyond the eyeball's silhouette) behind the lids; their inner edges dive into the eyeball."""
    E, a, f = _eye_frame(-1)
    up = np.array([0.0, 1.0, 0.0])
    al = np.radians(np.linspace(-90, 90, 13))
    pts, tris = [], []
    for s0, s1, n in ((-8.5, -20.3, 9), (8.5, 20.3, 9)):
        sv = np.linspace(s0, s1, n)
        S, A = np.meshgrid(sv, al, indexing="ij")
        rho = np.maximum(_lid_rho(S) - 1.0 - 5.5 * (1 - _smoothstep((np.abs(S) - 8.5) / 3.5)), 0.3)
        P = E + S[..., None] * a + rho[..., None] * (np.cos(A)[..., None] * f + np.sin(A)[..., None] * up)
        base = sum(len(p) for p in pts)
        pts.append(P.reshape(-1, 3))
        ns, na = S.shape
        for i in range(ns - 1):
            for j in range(na - 1):
                v00, v01, v10, v11 = (base + i * na + j, base + i * na + j + 1, base + (i + 1) * na + j,
                                      base + (i + 1) * na + j + 1)  # fmt: skip
                tris += [(v00, v10, v11), (v00, v11, v01)]
    V = np.vstack(pts)
    T = np.array(tris)
    # orient counter-clockwise seen from outside (away from the axis)
    q = V[T].mean(1) - E
    outward = q - (q @ a)[:, None] * a
    n = np.cross(V[T[:, 1]] - V[T[:, 0]], V[T[:, 2]] - V[T[:, 0]])
    facing = np.einsum("ij,ij->i", n, outward)
    _require_margin("corner backing: orientation", facing)
    flip = facing < 0
    T[flip] = T[flip][:, [0, 2, 1]]
    return V, T


CAVITY_ROWS = (9.0, 6.5, 5.0, 4.2, 3.8, 3.4, -3.4, -3.8, -4.2, -5.0, -6.5, -9.0)  # offsets from the lip line
CAVITY_DEPTH = (4.5, 4.5, 4.6, 5.0, 5.8, 13.0, 13.0, 5.8, 5.0, 4.6, 4.5, 4.5)
CAVITY_HALF_WIDTH = MOUTH_W + 3.0
CAVITY_SHIFT = 2.5  # rows sit lower: seen from the front through the slit, the deeper cavity appears lower
TONGUE_ROWS = (-2.2, -3.4, -4.6, -5.8, -7.0, -8.2)
TONGUE_HALF_WIDTH = 15.0


def _grid_half(xs_half, rows, fn):
    """Structured right-half grid (columns xs_half from -w to 0) -> (points, triangles, is_mid, row)."""
    nx, ny = len(xs_half), len(rows)
    Xg, Rg = np.meshgrid(xs_half, np.arange(ny), indexing="xy")
    P = fn(Xg.ravel(), np.asarray(rows)[Rg.ravel()], Rg.ravel())
    idx = np.arange(nx * ny).reshape(ny, nx)
    tris = []
    for r in range(ny - 1):  # rows go downwards: (r, c) top-left
        for c in range(nx - 1):
            a, b, cc, d = idx[r, c], idx[r, c + 1], idx[r + 1, c], idx[r + 1, c + 1]
            tris += [(a, cc, d), (a, d, b)]
    return P, np.array(tris), Xg.ravel() == 0, Rg.ravel()


def _r_ref(X, Y):
    """Face surface radius without the lips (reference for the mouth interior)."""
    return _ray_exit(X, Y) + _radial_features(X, Y, lips=False)


def _cavity_half():
    xs = -np.linspace(CAVITY_HALF_WIDTH, 0, 16)
    depth = np.array(CAVITY_DEPTH)

    def fn(X, rows, ri):
        Y = _lip_line(X) - CAVITY_SHIFT + rows
        dep = depth[ri] + 7.0 * (X / MOUTH_W) ** 2
        r = _r_ref(X, Y) - dep
        return np.column_stack([_dirs(X, Y) * r[:, None], X, Y])

    return _grid_half(xs, CAVITY_ROWS, fn)


def _tongue_half():
    xs = -np.linspace(TONGUE_HALF_WIDTH, 0, 11)

    def fn(X, rows, ri):
        tip = (rows - TONGUE_ROWS[0]) / (TONGUE_ROWS[-1] - TONGUE_ROWS[0])  # 0 top row, 1 tip
        X = X * (1 - 0.45 * tip**2)  # rounded tip
        Y = _lip_line(X) - CAVITY_SHIFT + rows
        dome = 2.5 * np.clip(1 - (X / TONGUE_HALF_WIDTH) ** 2, 0, None) ** 0.5
        r = _r_ref(X, Y) - 12.0 + dome
        return np.column_stack([_dirs(X, Y) * r[:, None], X, Y])

    return _grid_half(xs, TONGUE_ROWS, fn)


# ---------------------------------------------------------------------------------------------- build
PARTS = ("face", "eyeball", "canthus", "cavity", "tongue")


def build_geometry():
    """The neutral mesh with its parts and per-vertex design data (millimetres).

    Returns a dict: V (n, 3), T (f, 3), mirror (n,), part (n,) index into PARTS, XY (n, 2) parameter
    coordinates (nan on eyeballs), tag (n,) str (face feature tags), polar (n,) degrees on eyeballs.
    """
    Vs, Ts, Ms, parts, XYs, tags, polars = [], [], [], [], [], [], []
    off = 0

    def push(V, T, mirror, part, XY, tag, polar):
        nonlocal off
        Vs.append(V)
        Ts.append(T + off)
        Ms.append(mirror + off)
        parts.append(np.full(len(V), PARTS.index(part)))
        XYs.append(XY)
        tags.append(tag)
        polars.append(polar)
        off += len(V)

    # face
    P, tg, eye_loop, lens = _face_points_half()
    tri = _triangulate_half(P, eye_loop, lens)
    X, Y = P[:, 0], P[:, 1]
    P3, _, _ = _surface(X, Y)
    is_mid = X == 0
    V, T, mirror, order = _mirror_assemble(np.column_stack([P3, X, Y]), tri, is_mid, (0, 3))
    nr = int((~is_mid).sum())
    t = tg[order]
    push(V[:, :3], T, mirror, "face", V[:, 3:5], np.concatenate([t, t[:nr]]), np.full(len(V), np.nan))
    # eyeballs (no midline vertices)
    Ve, Te, pol = _eyeball_half()
    V, T, mirror, order = _mirror_assemble(Ve, Te, np.zeros(len(Ve), bool))
    nan2 = np.full((len(V), 2), np.nan)
    push(V, T, mirror, "eyeball", nan2, np.full(len(V), "eyeball"), np.concatenate([pol, pol]))
    Vc, Tc = _canthus_half()
    V, T, mirror, order = _mirror_assemble(Vc, Tc, np.zeros(len(Vc), bool))
    push(
        V,
        T,
        mirror,
        "canthus",
        np.full((len(V), 2), np.nan),
        np.full(len(V), "canthus"),
        np.full(len(V), np.nan),
    )
    # mouth cavity and tongue
    for name, half in (("cavity", _cavity_half), ("tongue", _tongue_half)):
        Pc, Tc, mid, _ = half()
        V, T, mirror, order = _mirror_assemble(Pc, Tc, mid, (0, 3))
        push(V[:, :3], T, mirror, name, V[:, 3:5], np.full(len(V), name), np.full(len(V), np.nan))
    return {
        "V": np.vstack(Vs), "T": np.vstack(Ts), "mirror": np.concatenate(Ms), "part": np.concatenate(parts),
        "XY": np.vstack(XYs), "tag": np.concatenate(tags), "polar": np.concatenate(polars),
    }  # fmt: skip


SKIN = np.array([200, 152, 124], float)
BROW = np.array([68, 50, 40], float)
LIP = np.array([172, 88, 88], float)
LASH = np.array([56, 38, 32], float)  # 55 would put the upper lash line exactly on a rounding tie
NOSTRIL = np.array([70, 40, 36], float)
SCLERA = np.array([236, 232, 224], float)
IRIS = np.array([92, 64, 42], float)
LIMBUS = np.array([58, 44, 34], float)
PUPIL = np.array([14, 14, 16], float)
TEETH = np.array([226, 220, 204], float)
MOUTH_DARK = np.array([64, 22, 28], float)
TONGUE = np.array([184, 86, 92], float)
CANTHUS_COLOR = np.array([222, 196, 188], float)
CARUNCLE = np.array([206, 134, 130], float)


def _colors(g):
    """Albedo per vertex (uint8): skin, brows, lips, lash line, nostrils, eyes, teeth, tongue."""
    V, part, XY, tag = g["V"], g["part"], g["XY"], g["tag"]
    n = len(V)
    col = np.tile(SKIN, (n, 1))
    face = part == 0
    X, Y = XY[:, 0], XY[:, 1]

    def mix(mask, target, w):
        w = np.where(mask, np.clip(w, 0, 1), 0.0)[:, None]
        col[:] = col * (1 - w) + target * w

    ax = np.abs(np.nan_to_num(X))
    Yf = np.nan_to_num(Y)
    mix(face, SKIN + (14, -8, -6), 0.8 * _eb(ax, Yf, 46.0, -30.0, 24.0, 18.0))  # rosier cheeks
    mix(face, SKIN + (10, 8, 8), 0.6 * _eb(np.nan_to_num(X), Yf, 0.0, 45.0, 50.0, 25.0))  # lighter forehead
    mix(face, BROW, 0.92 * _brow_weight(np.nan_to_num(X), Yf))
    upper, t = _lip_coords(np.nan_to_num(X), Yf)
    _require_margin("lip colour: mouth width", ax[face], MOUTH_W, exact_ok=True)  # exact: the corners
    w_lip = (1 - _smoothstep((t - 0.8) / 0.35)) * (ax < MOUTH_W)
    mix(face, LIP, w_lip)
    mix(face, LASH, (tag == "margin_upper").astype(float) * 0.9)
    mix(face, LASH, (tag == "margin_lower").astype(float) * 0.45)
    # nostrils: the nose underside facing down, near the alae
    nrm = vertex_normals(V, g["T"])
    under = _smoothstep((-nrm[:, 1] - 0.6) / 0.25) * _eb(ax, Yf, 7.5, -36.5, 7.0, 3.5)
    mix(face, NOSTRIL, 0.9 * under)
    eye = part == 1
    pol = np.nan_to_num(g["polar"])
    col[eye] = SCLERA
    col[eye & (pol <= 30.0)] = LIMBUS
    col[eye & (pol <= 27.0)] = IRIS
    col[eye & (pol <= 18.0)] = IRIS * 1.25
    col[eye & (pol <= 11.0)] = PUPIL
    can = part == 2
    col[can] = CANTHUS_COLOR
    _require_margin("caruncle colour", np.abs(V[can, 0]), EYE_CENTER[0])
    col[can & (g["V"][:, 0] * np.sign(g["V"][:, 0]) < EYE_CENTER[0])] = CARUNCLE
    cav = part == 3
    col[cav] = MOUTH_DARK
    row = Yf - _lip_line(np.nan_to_num(X)) + CAVITY_SHIFT
    _require_margin("teeth colour: width", np.abs(X[cav]), 21.0)
    _require_margin("teeth colour: rows", np.abs(row[cav]), 3.6)
    teeth = cav & (np.abs(np.nan_to_num(X)) < 21.0) & (np.abs(row) > 3.6)
    col[teeth] = TEETH
    col[part == 4] = TONGUE
    _require_margin("colour quantisation", col[face] % 1.0, 0.5)  # the other parts have constant colours
    return np.clip(np.round(col), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- landmarks
# Design points (left side, mm) for landmarks without a sharper anatomical definition on this mesh:
# the ray from the origin through each point picks the surface point.
_LANDMARK_DIRECTIONS = {
    "cheek": (47.0, -33.0, 76.0), "cheekbone": (63.0, -31.0, 59.0), "chin": (23.0, -114.0, 78.0),
    "jaw": (51.0, -98.0, 48.0), "jaw_angle": (59.0, -88.0, 34.0), "jaw_upper": (72.0, -55.0, 18.0),
    "face_side": (76.0, -20.0, 16.0), "nose_wing": tuple(ALA_C + (0.85 * ALA_R[0], 0.7 * ALA_R[1], -3.0)),
    "alar_base": tuple(ALA_C + (-1.0, -0.8 * ALA_R[1], -1.0)),
}  # fmt: skip
# Brow landmarks on the brow's upper edge at fractions of its length (inner -> outer).
_BROW_STATIONS = {"brow_inner": 0.03, "brow_mid_inner": 0.28, "brow_mid": 0.52, "brow_mid_outer": 0.74,
                  "brow_outer": 0.94}  # fmt: skip


def _midline_profile():
    Y = np.arange(DOMAIN_Y[0] + 1.0, DOMAIN_Y[1] - 1.0, 0.05)
    p, _, _ = _surface(np.zeros_like(Y), Y)
    return Y, p


def _landmark_params():
    """Right-side/midline landmark locations: name -> ("param", (X, Y)) or ("margin"/"lip", key)."""
    out = {}
    Y, p = _midline_profile()

    def arg(what, lo, hi, largest=True):  # sample of the midline profile with the largest/smallest depth
        sel = (Y >= lo) & (Y <= hi)
        return float(Y[sel][_argbest(p[sel, 2], what, largest)])

    y_tip = arg("nose tip", -45, -15)
    y_glab = arg("glabella", 10, 35)
    y_border = float(_lip_line(0.0) + _lip_gap(0.0) / 2 + _upper_border(0.0))
    # subnasale: where the profile below the tip turns from the columella (shallow) to the lip (steep)
    slope = np.abs(np.gradient(p[:, 2]) / np.gradient(p[:, 1]))
    idx = np.flatnonzero((Y > y_border) & (Y < y_tip))[::-1]  # from the tip downwards
    k0 = int(np.argmax(slope[idx] > 1.0))
    k1 = k0 + int(np.argmax(slope[idx[k0:]] < 1.0))
    _require_margin("subnasale", slope[idx[: k1 + 1]], 1.0)
    y_sub = float(Y[idx[k1]])
    y_sulcus = arg("mentolabial sulcus", -75, -62, largest=False)
    y_pog = arg("pogonion", -92, y_sulcus)
    # menton as seen from the front: where the chin's midline turns 70 degrees away from the view
    tz = np.gradient(p[:, 2]) / np.hypot(np.gradient(p[:, 1]), np.gradient(p[:, 2]))
    _require_margin("menton", np.abs(tz[Y < y_pog]), np.cos(np.radians(20)))
    below = (Y < y_pog) & (np.abs(tz) > np.cos(np.radians(20)))
    y_men = float(Y[below][-1]) if below.any() else float(Y[0])

    def at_height(y_real):  # midline parameter Y whose surface point is at real height y
        return float(np.interp(y_real, p[:, 1], Y))

    h = lambda yy: float(np.interp(yy, Y, p[:, 1]))  # noqa: E731
    out["nose_tip"] = (0.0, y_tip)
    out["nose_tip_top"] = (0.0, at_height(h(y_tip) + 6.0))
    # sellion: the bridge's root at the height of the upper lid margin (+1.5 mm)
    y_lid = float(_lid_margin(1)[1][MARGIN_N // 2, 1])
    y_nasion = at_height(y_lid + 1.5)
    out["nose_bridge_top"] = (0.0, y_nasion)
    for name, frac in (("nose_bridge", 0.21), ("nose_bridge_low", 0.40), ("nose_dorsum", 0.58)):
        out[name] = (0.0, at_height(h(y_nasion) + frac * (h(y_tip) - h(y_nasion))))
    out["subnasale"] = (0.0, y_sub)
    out["glabella"] = (0.0, y_glab)
    out["forehead_low"] = (0.0, at_height(h(y_glab) + 17.0))
    out["forehead"] = (0.0, at_height(h(y_glab) + 34.0))
    out["chin_front"] = (0.0, y_pog)
    out["chin_bottom"] = (0.0, y_men)
    # lips (contour points in parameter space)
    W = MOUTH_W

    def border_up(x):
        return (x, float(_lip_line(x) + _lip_gap(x) / 2 + _upper_border(x)))

    def border_lo(x):
        return (x, float(_lip_line(x) - _lip_gap(x) / 2 - _lower_border(x)))

    out["lip_upper_top"] = border_up(0.0)
    out["lip_upper_top_R"] = border_up(-0.27 * W)
    out["lip_upper_peak_R"] = border_up(-0.72 * W)
    out["lip_lower_bottom"] = border_lo(0.0)
    out["lip_lower_bottom_R"] = border_lo(-0.27 * W)
    out["lip_lower_outer_R"] = border_lo(-0.70 * W)
    out["lip_upper_inner"] = ("lip_upper", 0.0)
    out["lip_upper_inner_R"] = ("lip_upper", -0.40 * W)
    out["lip_lower_inner"] = ("lip_lower", 0.0)
    out["lip_lower_inner_R"] = ("lip_lower", -0.42 * W)
    out["mouth_corner_R"] = ("lip_upper", -W)
    # eyes (margin vertices: tau = -1 inner corner, +1 outer corner)
    for name, key in (("eye_outer", ("upper", 1.0)), ("eye_inner", ("upper", -1.0)),
                      ("lid_upper", ("upper", 0.0)), ("lid_upper_outer", ("upper", 0.375)),
                      ("lid_upper_inner", ("upper", -0.375)), ("lid_lower", ("lower", 0.0)),
                      ("lid_lower_outer", ("lower", 0.375)),
                      ("lid_lower_inner", ("lower", -0.375))):  # fmt: skip
        out[name + "_R"] = ("margin",) + key
    for name, frac in _BROW_STATIONS.items():
        xb = -(12.0 + 52.0 * frac)
        out[name + "_R"] = (xb, float(_brow_band(xb, 0.0)[1]))
    for name, q in _LANDMARK_DIRECTIONS.items():
        Xq, Yq = _to_param(np.array(q) * (-1, 1, 1))
        out[name + "_R"] = (float(Xq), float(Yq))
    return out


def _barycentric_locate(XY, T, pts):
    """Triangle and barycentric coordinates of 2-D points in a 2-D triangulation.

    Parameters
    ----------
    XY : (n, 2) float64
        Vertex positions.
    T : (f, 3) int
        Triangles.
    pts : (k, 2) float64
        Query points; each must lie in the triangulation.

    Returns
    -------
    tris : (k, 3) int
        A triangle ``T[j]`` containing each point or, for a point on an edge or at a vertex (barycentric
        coordinates below ``BARY_SNAP``, which several triangles share), the canonical ``(a, b, b)`` or
        ``(a, a, a)`` with ``a < b``, so the choice does not depend on rounding.
    bary : (k, 3) float64
        Barycentric coordinates (sum 1, zero for the repeated vertices).
    """
    a, b, c = XY[T[:, 0]], XY[T[:, 1]], XY[T[:, 2]]
    v0, v1 = b - a, c - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    tris, bary = [], []
    for q in pts:
        v2 = q - a
        l1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
        l2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
        l0 = 1 - l1 - l2
        k = int(np.argmax(np.minimum(np.minimum(l0, l1), l2)))
        lam = np.array([l0[k], l1[k], l2[k]])
        if lam.min() < -BARY_SNAP:
            raise ValueError(f"landmark point {q} lies outside the face mesh")
        _require_margin("landmark on an edge or inside a triangle", np.abs(lam), BARY_SNAP, 0.9 * BARY_SNAP)
        on = np.abs(lam) > BARY_SNAP
        if on.all():
            tris.append(T[k])
            bary.append(tuple(lam))
            continue
        order = np.argsort(T[k][on])
        v, w = T[k][on][order], lam[on][order] / lam[on].sum()
        tris.append(tuple(v) + (v[-1],) * (3 - len(v)))
        bary.append(tuple(w) + (0.0,) * (3 - len(v)))
    return np.array(tris), np.array(bary)


def _landmarks(g):
    """(ids, tris, bary) for every entry of MEDIAPIPE_LANDMARKS."""
    face = g["part"] == 0
    fidx = np.flatnonzero(face)
    XY = g["XY"]
    Tf = g["T"][face[g["T"]].all(1)]
    specs = _landmark_params()
    # margin vertices of the right eye by tau
    tau, mu, ml = _eye_margin_param(-1)

    def vertex_at(xy):
        d = np.linalg.norm(XY[fidx] - xy, axis=1)
        k = int(np.argmin(d))
        _require_margin("landmark vertex", d[k], 1e-6, 0.5e-6)
        if d[k] > 1e-6:
            raise RuntimeError(f"no face vertex at {xy}")
        return int(fidx[k])

    def contour(tag):
        sel = fidx[(g["tag"][fidx] == tag) & (XY[fidx, 0] <= 0)]
        if tag == "lip_lower_inner":  # the corner vertex is shared and tagged as upper
            sel = np.concatenate([sel, [vertex_at(np.array([-MOUTH_W, _lip_line(MOUTH_W)]))]])
        return sel[np.argsort(XY[sel, 0])]

    rows = {}
    mir = g["mirror"]
    for name, spec in specs.items():
        if spec[0] == "margin":
            k = int(np.argmin(np.abs(tau - spec[2])))
            v = vertex_at((mu if spec[1] == "upper" else ml)[k])
            rows[name] = ((v, v, v), (1.0, 0.0, 0.0))
        elif spec[0] in ("lip_upper", "lip_lower"):
            c = contour(spec[0] + "_inner")
            xs = XY[c, 0]
            x = spec[1]
            j = int(np.clip(np.searchsorted(xs, x), 1, len(xs) - 1))
            t = float((x - xs[j - 1]) / (xs[j] - xs[j - 1]))
            _require_margin("lip landmark at a vertex", [t, 1 - t], 1e-9, 0.5e-9)
            if t < 1e-9:
                rows[name] = ((c[j - 1],) * 3, (1.0, 0.0, 0.0))
            elif t > 1 - 1e-9:
                rows[name] = ((c[j],) * 3, (1.0, 0.0, 0.0))
            else:
                rows[name] = ((c[j - 1], c[j], c[j]), (1 - t, t, 0.0))
        else:
            tri, bary = _barycentric_locate(XY, Tf, np.array([spec], float))
            rows[name] = (tuple(tri[0]), tuple(bary[0]))
    # left side: mirror images of the right-side rows
    for name in list(rows):
        if name.endswith("_R"):
            tri, bary = rows[name]
            rows[name[:-2] + "_L"] = (tuple(int(mir[v]) for v in tri), bary)
    missing = set(MEDIAPIPE_LANDMARKS) - set(rows)
    if missing:
        raise RuntimeError(f"landmarks not placed: {sorted(missing)}")
    names = list(MEDIAPIPE_LANDMARKS)
    ids = np.array([MEDIAPIPE_LANDMARKS[n] for n in names], np.int32)
    tris = np.array([rows[n][0] for n in names], np.int32)
    bary = np.array([rows[n][1] for n in names], np.float64)
    return ids, tris, bary


# ---------------------------------------------------------------------------------------------- fields
def _polyline_distance(pts, poly):
    """Distance from points to a densely sampled polyline (both (n, 2))."""
    from scipy.spatial import cKDTree

    return cKDTree(poly).query(pts)[0]


def _fields(g):
    """Per-vertex design data the masks and expressions are built from."""
    V, part, XY = g["V"], g["part"], g["XY"]
    face = part == 0
    X, Y = np.nan_to_num(XY[:, 0]), np.nan_to_num(XY[:, 1])
    side = np.where(V[:, 0] < 0, -1, 1)
    f = {"face": face, "X": X, "Y": Y, "ax": np.abs(X), "side": side, "N": vertex_normals(V, g["T"])}
    # eyelids: spheroid coordinates about each side's lid axis, distances to the lid margins
    s = np.zeros(len(V))
    alpha = np.zeros(len(V))
    d_up = np.full(len(V), np.inf)
    d_lo = np.full(len(V), np.inf)
    tau_d = np.linspace(-1, 1, 1201)
    s_d = EYE_S_CENTER + tau_d * EYE_HALF_WIDTH
    a_up, a_lo = _margin_alpha(tau_d)
    for sd in (-1, 1):
        m = side == sd
        s[m], alpha[m], _ = _spheroid_coords(sd, V[m])
        up = np.stack(_to_param(_spheroid_point(sd, s_d, a_up)), -1)
        lo = np.stack(_to_param(_spheroid_point(sd, s_d, a_lo)), -1)
        d_up[m] = _polyline_distance(np.column_stack([X[m], Y[m]]), up)
        d_lo[m] = _polyline_distance(np.column_stack([X[m], Y[m]]), lo)
    tau = (s - EYE_S_CENTER) / EYE_HALF_WIDTH
    au, al = _margin_alpha(np.clip(tau, -1, 1))
    # the eye corners (|tau| = 1 up to rounding) are neither above nor below the opening
    _require_margin("eye corners", np.abs(tau[face]), 1 - LID_TOL, LID_TOL / 2)
    inside = face & (np.abs(tau) < 1 - LID_TOL)
    f.update(tau=tau, alpha=alpha, d_up=d_up, d_lo=d_lo)
    _require_margin("above the upper lid margin", alpha[inside], au[inside] - LID_TOL, LID_TOL / 2)
    _require_margin("below the lower lid margin", alpha[inside], al[inside] + LID_TOL, LID_TOL / 2)
    f["above"] = inside & (alpha >= au - LID_TOL)
    f["below"] = inside & (alpha <= al + LID_TOL)
    f["lid_open"] = np.where(np.abs(tau) < 1, au - al, 0.0)  # margin gap angle (rad)
    # lips and jaw (exactly on the contact line: only the mouth corners)
    _require_margin("upper or lower lip", Y[face], _lip_line(X[face]), exact_ok=True)
    upper, t = _lip_coords(X, Y)
    f["upper"] = face & upper
    f["lower"] = face & ~upper
    f["t"] = np.where(face, t, np.inf)
    f["lip_taper"] = np.clip(1 - (X / (MOUTH_W + 2.0)) ** 2, 0, None) ** 0.5
    f["w_jaw"] = _jaw_weight(g, X, Y)
    return f


def _jaw_weight(g, X, Y):
    """How much each vertex follows the mandible (0..1)."""
    part = g["part"]
    ax = np.abs(X)
    e = np.clip(ax - MOUTH_W, 0, None)
    seam = np.where(ax <= MOUTH_W, _lip_line(X), _lip_line(MOUTH_W) + 0.42 * e * e / (e + 12.0))
    width = 0.5 + 23.5 * _smoothstep((ax - (MOUTH_W - 4.0)) / 24.0)
    u = (seam - Y) / width + 0.5
    _require_margin("jaw weight: support", u[part == 0])  # w > 0 decides the lower_face mask
    _require_margin("jaw weight: one half", u[part == 0], 0.5, exact_ok=True)  # jaw mask; exact: corners
    w = np.where(part == 0, _smoothstep(u), 0.0)
    cav_row = Y - _lip_line(X) + CAVITY_SHIFT
    _require_margin("jaw weight: mouth cavity", cav_row[part == 3])
    w = np.where(part == 3, (cav_row < 0).astype(float), w)
    return np.where(part == 4, 1.0, w)


def _masks(g, f):
    part = g["part"]
    face = f["face"]
    X, Y, ax = f["X"], f["Y"], f["ax"]
    rim = _domain_boundary_half(0.5)
    rim = np.vstack([rim, rim * (-1, 1)])
    d_rim = _polyline_distance(np.column_stack([X, Y]), rim)
    border = face & (d_rim <= 7.0)
    nose_w = 10.0 + 16.0 * _smoothstep((12.0 - Y) / 40.0)
    _require_mask_margins(f, d_rim, nose_w)
    m = {
        "eyeballs": part == 1,
        "eyelids": face & (np.minimum(f["d_up"], f["d_lo"]) <= 11.5),
        "brows": face & (_ell(ax, Y, 34.0, 17.0, 41.0, 18.0) <= 1),
        "forehead": face & (Y >= 14.0) & ~border,
        "nose": face & (ax <= nose_w) & (Y <= 12.0) & (Y >= -44.0),
        "lips": face & _lip_mask(X, Y),
        "mouth": face & (_ell(X, Y, 0.0, MOUTH_Y - 6.0, MOUTH_W + 24.0, 34.0) <= 1),
        "cheeks": face & (_ell(ax, Y, 46.0, -38.0, 42.0, 40.0) <= 1),
        "jaw": (part != 1) & (part != 2) & (f["w_jaw"] >= 0.5),
        "lower_face": (part != 1) & (part != 2) & (f["w_jaw"] > 0),
        "border": border,
        "interior": (part == 2) | (part == 3) | (part == 4),
        "tongue": part == 4,
    }
    m["track"] = face & ~border & (ax <= 108.0) & (Y <= 60.0) & (Y >= -96.0)
    return m


def _require_mask_margins(f, d_rim, nose_w):
    """Assert that no face vertex lies on a threshold of the masks in `_masks` (see `_require_margin`)."""
    face = f["face"]
    X, Y, ax = f["X"][face], f["Y"][face], f["ax"][face]
    _, t = _lip_coords(X, Y)
    fields = (
        ("border", d_rim[face], 7.0), ("eyelids", np.minimum(f["d_up"], f["d_lo"])[face], 11.5),
        ("brows", _ell(ax, Y, 34.0, 17.0, 41.0, 18.0), 1.0), ("lips", t, 1.0),
        ("mouth", _ell(X, Y, 0.0, MOUTH_Y - 6.0, MOUTH_W + 24.0, 34.0), 1.0),
        ("cheeks", _ell(ax, Y, 46.0, -38.0, 42.0, 40.0), 1.0),
    )  # fmt: skip
    for name, value, threshold in fields:
        _require_margin(f"mask {name}", value, threshold)
    # on coordinates: grid lines (exact arithmetic) and the mouth corners may lie exactly on a threshold
    coords = (
        ("forehead", Y, 14.0), ("nose", ax, nose_w[face]), ("nose", Y, 12.0), ("nose", Y, -44.0),
        ("lips", ax, MOUTH_W), ("track", ax, 108.0), ("track", Y, 60.0), ("track", Y, -96.0),
    )  # fmt: skip
    for name, value, threshold in coords:
        _require_margin(f"mask {name} (coordinates)", value, threshold, exact_ok=True)


# Masks whose union must contain each shape's support (checked by the builder and the tests).
SHAPE_REGIONS = {
    "browDown": ("brows", "forehead"), "browInnerUp": ("brows", "forehead"),
    "browOuterUp": ("brows", "forehead"), "cheekPuff": ("cheeks", "mouth"),
    "cheekSquint": ("cheeks", "eyelids"), "eyeBlink": ("eyelids",), "eyeLook": ("eyeballs",),
    "eyeSquint": ("eyelids", "cheeks"), "eyeWide": ("eyelids",), "jaw": ("lower_face",),
    "mouthClose": ("lips", "mouth"), "mouthDimple": ("mouth", "cheeks"), "mouthFrown": ("mouth",),
    "mouthFunnel": ("mouth",), "mouthLeft": ("mouth",), "mouthRight": ("mouth",),
    "mouthLowerDown": ("mouth",), "mouthPress": ("mouth",), "mouthPucker": ("mouth",),
    "mouthRoll": ("mouth",), "mouthShrug": ("mouth",), "mouthSmile": ("mouth", "cheeks"),
    "mouthStretch": ("mouth", "cheeks"), "mouthUpperUp": ("mouth",), "noseSneer": ("nose",),
    "tongueOut": ("tongue", "lips"),
}  # fmt: skip


def shape_region(name: str) -> tuple[str, ...]:
    """Mask names whose union contains the support of blendshape ``name``."""
    for prefix in sorted(SHAPE_REGIONS, key=len, reverse=True):
        if name.startswith(prefix):
            return SHAPE_REGIONS[prefix]
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------- expressions
JAW_HINGE = np.array([0.0, -22.0, 6.0])  # mm; the axis is parallel to x
JAW_OPEN_DEG = 14.0
JAW_GLIDE = np.array([0.0, -1.5, 11.0])  # condyle glides forward as the jaw opens
EYE_LOOK_DEG = 28.0


def _lid_rotation(side, p, phi):
    """Displacement rotating points about a lid spheroid's axis by phi (rad; + raises); exactly 0 at 0."""
    E, _, f = _eye_frame(side)
    q = p - E
    cf, cu = q @ f, q[:, 1]
    c, sn = np.cos(phi), np.sin(phi)
    dcf = cf * (c - 1) - cu * sn
    dcu = cf * sn + cu * (c - 1)
    out = dcf[:, None] * f
    out[:, 1] += dcu
    return out


def _rot_delta(p, center, axis, angle):
    """Displacement of rotating points about an axis through center (Rodrigues); exactly 0 at angle 0."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    q = p - center
    c, sn = np.cos(angle)[:, None], np.sin(angle)[:, None]
    kq = q @ k
    return (c - 1) * (q - kq[:, None] * k) + sn * np.cross(k, q)


def _falloff(d, full, zero):
    """1 for d <= full, smooth to 0 at d >= zero."""
    return 1 - _smoothstep((d - full) / (zero - full))


def _right_shapes(g, f):
    """Displacement fields (mm) of the right-side shapes (subject's right, -x) and the centre shapes."""
    V = g["V"]
    n = len(V)
    X, Y, ax = f["X"], f["Y"], f["ax"]
    face, N = f["face"], f["N"]
    R = (f["side"] < 0) & face
    t, taper = f["t"], f["lip_taper"]
    upper, lower = f["upper"], f["lower"]
    Lc = float(_lip_line(MOUTH_W))
    out = {}

    def vec(w, d):
        return np.asarray(w, float)[:, None] * np.asarray(d, float)

    # brows
    med = 1 - _smoothstep((ax - 10.0) / 40.0)
    w = _falloff(_ell(X, Y, -33.0, 20.0, 31.0, 12.0), 0.4, 1.0) * face
    out["browDownRight"] = (
        vec(w, (0, -4.5, -0.8))
        + vec(w * med, (2.5, 0, 0))
        + vec(_eb(X, Y, -7.0, 16.0, 7.0, 8.0) * face, (1.2, -1.0, 0.8))
    )
    w = _falloff(_ell(ax, Y, 15.0, 22.0, 19.0, 12.0), 0.35, 1.0) * face
    out["browInnerUp"] = (
        vec(w, (0, 6.0, 0.5))
        + vec(-np.sign(X) * w, (0.8, 0, 0))
        + vec(_eb(X, Y, 0.0, 38.0, 32.0, 18.0) * face, (0, 2.5, 0))
    )
    out["browOuterUpRight"] = vec(
        _falloff(_ell(X, Y, -50.0, 19.0, 24.0, 13.0), 0.35, 1.0) * face, (0, 6.0, 0)
    ) + vec(_eb(X, Y, -40.0, 36.0, 22.0, 14.0) * face, (0, 2.0, 0))
    # cheeks
    out["cheekPuff"] = vec(_eb(ax, Y, 44.0, -50.0, 23.0, 21.0) * face * 7.0, (1, 1, 1)) * N
    w = _falloff(_ell(X, Y, -44.0, -22.0, 24.0, 14.0), 0.4, 1.0) * face
    out["cheekSquintRight"] = vec(w, (0, 3.0, 0.3)) + vec(w * 1.2, (1, 1, 1)) * N
    # eyelids (rotations about the right lid spheroid's axis)
    corner = np.sqrt(np.clip(1 - f["tau"] ** 2, 0, None))
    up_r, lo_r = f["above"] & R, f["below"] & R
    phi = np.where(up_r, -f["lid_open"] * _falloff(f["d_up"], 3.5, 10.0), 0.0)
    out["eyeBlinkRight"] = _lid_rotation(-1, V, phi)
    phi = np.where(up_r, np.radians(10.0) * corner * _falloff(f["d_up"], 2.0, 11.0), 0.0)
    phi += np.where(lo_r, -np.radians(5.0) * corner * _falloff(f["d_lo"], 1.0, 6.0), 0.0)
    fold = np.where(up_r, _bump((f["d_up"] - 6.0) / 4.5) * corner, 0.0)  # the lid folds back into the orbit
    out["eyeWideRight"] = _lid_rotation(-1, V, phi) - vec(fold * 1.2, (1, 1, 1)) * N
    phi = np.where(lo_r, np.radians(11.0) * corner * _falloff(f["d_lo"], 1.5, 7.5), 0.0)
    out["eyeSquintRight"] = _lid_rotation(-1, V, phi) + vec(
        _eb(X, Y, -33.0, -13.0, 17.0, 8.0) * R, (0, 1.8, 0.8)
    )
    # eyeballs (right eye): rotate the cap about the eyeball centre
    eye_r = (g["part"] == 1) & (V[:, 0] < 0)
    E = EYE_CENTER * (-1, 1, 1)
    ang = np.where(eye_r, np.radians(EYE_LOOK_DEG), 0.0)
    out["eyeLookInRight"] = _rot_delta(V, E, (0, 1, 0), ang)  # towards the nose (+x)
    out["eyeLookOutRight"] = _rot_delta(V, E, (0, 1, 0), -ang)
    out["eyeLookUpRight"] = _rot_delta(V, E, (1, 0, 0), -ang)
    out["eyeLookDownRight"] = _rot_delta(V, E, (1, 0, 0), ang)
    # jaw
    wj = f["w_jaw"]
    jaw_open = _rot_delta(V, JAW_HINGE, (1, 0, 0), np.full(n, np.radians(JAW_OPEN_DEG))) + JAW_GLIDE
    out["jawOpen"] = jaw_open * wj[:, None]
    out["jawForward"] = vec(wj, (0, -0.5, 6.0))
    # lateral excursion: a turn about a vertical axis behind the mouth, the jaw dropping and advancing
    yaw = np.where(wj > 0, -np.radians(5.5), 0.0)
    out["jawRight"] = (_rot_delta(V, np.array([0.0, 0.0, -10.0]), (0, 1, 0), yaw) + (0, -3.5, 2.0)) * wj[
        :, None
    ]
    # lips
    lip_lo = lower & (t <= 2.2)
    w_lo = np.where(lip_lo, _falloff(t, 1.0, 2.2), 0.0) * taper
    w_up = np.where(upper & (t <= 2.0), _falloff(t, 1.0, 2.0), 0.0) * taper
    k = _argbest(np.where(lower, np.abs(X) + np.abs(t), np.inf), "lower lip centre", largest=False)
    drop = float(np.linalg.norm(jaw_open[k]))
    out["mouthClose"] = -0.85 * jaw_open * w_lo[:, None] + vec(w_up, (0, -0.15 * drop, 0))
    w = _eb(X, Y, -(MOUTH_W + 2.0), Lc, 9.0, 9.0) * face
    out["mouthDimpleRight"] = vec(w, (-1.2, 0.3, -3.5))
    out["mouthFrownRight"] = vec(_eb(X, Y, -(MOUTH_W - 1.0), Lc - 3.0, 12.0, 13.0) * face, (-0.8, -5.0, -0.5))
    lipreg = np.where(upper, w_up, w_lo)
    inner = np.clip(1 - t / 1.2, 0, 1) * (lipreg > 0)
    out["mouthFunnel"] = (vec(lipreg, (0, 0, 3.0)) + vec(inner * lipreg, (0, 0, 2.5))
                          + vec(lipreg * np.where(upper, 1.0, -1.0) * np.clip(1 - t / 2, 0, 1), (0, 3.5, 0))
                          + vec(-X / MOUTH_W * lipreg, (2.5, 0, 0)))  # fmt: skip
    wp = _eb(X, Y, 0.0, MOUTH_Y, MOUTH_W + 12.0, 17.0) * face
    wn = _falloff(_ell(X, Y, 0.0, MOUTH_Y, MOUTH_W + 20.0, 18.0), 0.5, 1.0) * face  # narrowing
    out["mouthPucker"] = (
        vec(wp, (0, 0, 6.0))
        + vec(lipreg, (0, 0, 2.0))
        + vec(-X / MOUTH_W * wn, (6.5, 0, 0))
        + vec(lipreg * np.where(upper, -0.7, 0.7), (0, 1, 0))
    )
    wm = _eb(X, Y, 0.0, MOUTH_Y - 3.0, MOUTH_W + 16.0, 20.0) * face
    w_side = _eb(X, Y, -(MOUTH_W + 2.0), Lc, 14.0, 12.0) * face  # the corner the mouth moves towards
    out["mouthRight"] = vec(wm, (-5.0, 0, 0)) + vec(lipreg, (0, 0, 2.0)) + vec(w_side, (-1.0, 1.5, -2.5))
    w = np.where(lip_lo, _falloff(t, 1.0, 2.5), 0.0) * _falloff(
        _ell(X, Y, -12.0, Lc + 1.0, 18.0, 12.0), 0.4, 1.0
    )
    out["mouthLowerDownRight"] = vec(w, (-0.5, -4.5, 1.0))
    w = np.where(upper, _falloff(t, 1.5, 3.0), 0.0) * _falloff(
        _ell(X, Y, -11.0, Lc + 6.0, 16.0, 11.0), 0.4, 1.0
    )
    out["mouthUpperUpRight"] = vec(w, (-0.3, 4.0, 1.2))
    w = _eb(X, Y, -13.0, _lip_line(13.0), 17.0, 9.0) * face
    thin = 1.0 + 1.2 * np.clip(t, 0, 1)
    out["mouthPressRight"] = vec(w * np.where(upper, -thin, thin), (0, 1, 0)) + vec(w, (0, 0, -2.0))
    wr = np.where(lower, w_lo, 0.0)
    out["mouthRollLower"] = vec(wr * (1 - 0.3 * np.clip(t, 0, 1)), (0, 0, -3.5)) + vec(
        wr * np.clip(t, 0, 1), (0, 1.8, 0)
    )
    wr = np.where(upper, w_up, 0.0)
    out["mouthRollUpper"] = vec(wr * (1 - 0.3 * np.clip(t, 0, 1)), (0, 0, -3.0)) + vec(
        wr * np.clip(t, 0, 1), (0, -1.8, 0)
    )
    out["mouthShrugLower"] = vec(_eb(X, Y, 0.0, -74.0, 24.0, 14.0) * lower, (0, 3.0, 2.0)) + vec(
        _eb(X, Y, 0.0, MOUTH_Y - 3.0, MOUTH_W, 8.0) * lower, (0, 2.0, 1.5)
    )
    out["mouthShrugUpper"] = vec(_eb(X, Y, 0.0, MOUTH_Y + 5.0, MOUTH_W + 2.0, 11.0) * upper, (0, 3.2, 1.5))
    w1 = _eb(X, Y, -(MOUTH_W + 1.0), Lc + 1.0, 17.0, 15.0) * face
    w2 = _eb(X, Y, -37.0, -42.0, 15.0, 12.0) * face
    out["mouthSmileRight"] = (
        vec(w1, (-4.0, 6.0, -3.0)) + vec(w2, (-0.5, 2.0, 0)) + vec(w2 * 1.5, (1, 1, 1)) * N
    )
    out["mouthStretchRight"] = vec(
        _eb(X, Y, -(MOUTH_W + 4.0), Lc - 5.0, 20.0, 19.0) * face, (-4.5, -2.8, -1.2)
    )
    # nose
    out["noseSneerRight"] = vec(
        _falloff(_ell(X, Y, -13.0, -32.0, 13.0, 11.0), 0.4, 1.0) * face, (0.8, 3.2, 0.3)
    ) + vec(_eb(X, Y, -5.0, 3.0, 7.0, 8.0) * face, (0.5, -0.8, -0.3))
    # tongue: pushed out of the mouth; the lower lip's inner rim is pushed out and down with it
    tg = g["part"] == 4
    rows = np.where(tg, Y - _lip_line(X) + CAVITY_SHIFT, 0.0)
    front = np.clip((rows - TONGUE_ROWS[-1]) / (TONGUE_ROWS[0] - TONGUE_ROWS[-1]), 0, 1)
    out["tongueOut"] = (
        vec(tg, (0, 0.5, 13.0))
        + vec(tg * (1 - front), (0, -3.0, 7.0))
        + vec(
            np.where(lower, np.clip(1 - t / 0.8, 0, 1), 0.0) * np.clip(1 - (X / 16.0) ** 2, 0, None),
            (0, -1.5, 2.0),
        )
    )
    for k, d in out.items():
        out[k] = np.where(np.isfinite(d), d, 0.0)
    return out


def _all_shapes(g, f):
    """All 52 deltas (mm): right shapes mirrored to left, centre shapes symmetrized."""
    right = _right_shapes(g, f)
    mir = g["mirror"]
    flip = np.array([-1.0, 1.0, 1.0])
    out = {}
    for name in arkit.ARKIT_NAMES:
        if name.endswith("Left") or name in ("jawLeft", "mouthLeft"):
            src = name[:-4] + "Right"
            out[name] = right[src][mir] * flip
        elif name in right:
            d = right[name]
            if not (name.endswith("Right") or name in ("jawRight", "mouthRight")):
                d = 0.5 * (d + d[mir] * flip)
            out[name] = d
        else:
            raise RuntimeError(f"no definition for {name}")
    return out


def build_generic_rig() -> Rig:
    """Build the generic tracking rig (deterministic; a few seconds)."""
    g = build_geometry()
    f = _fields(g)
    masks = _masks(g, f)
    shapes = _all_shapes(g, f)
    ids, tris, bary = _landmarks(g)
    mirror = mirror_map(g["V"] * MM, tol=1e-6)
    if not np.array_equal(mirror, g["mirror"]):
        raise RuntimeError("mesh is not exactly left/right symmetric")
    deltas = np.stack([shapes[n] for n in arkit.ARKIT_NAMES]) * MM
    errors = []
    for k, name in enumerate(arkit.ARKIT_NAMES):
        moving = np.abs(deltas[k]).max(1) > 0
        allowed = np.zeros(len(moving), bool)
        for m in shape_region(name):
            allowed |= masks[m]
        if (moving & ~allowed).any():
            errors.append(
                f"{name} moves {int((moving & ~allowed).sum())} vertices outside {shape_region(name)}"
            )
    if errors:
        raise RuntimeError("; ".join(errors))
    meta = {
        "source": "rigs/build_generic_rig.py (analytic definitions, no third-party mesh)",
        "builder_version": BUILDER_VERSION, "units": "metres",
        "axes": "x subject's left, y up, z out of the face",
        "parts": {p: int((g["part"] == i).sum()) for i, p in enumerate(PARTS)},
        "shape_regions": {n: list(shape_region(n)) for n in arkit.ARKIT_NAMES},
        "jaw_hinge_m": (JAW_HINGE * MM).tolist(),
        "eye_centers_m": [(EYE_CENTER * (s, 1, 1) * MM).tolist() for s in (-1, 1)],
        "eye_radius_m": EYE_RADIUS * MM,
    }  # fmt: skip
    return Rig(
        neutral=(g["V"] * MM).astype(np.float32), triangles=g["T"].astype(np.int32),
        deltas=deltas.astype(np.float32), landmark_ids=ids, landmark_tris=tris,
        landmark_bary=bary.astype(np.float32), masks=masks, mirror=mirror, colors=_colors(g),
        name=RIG_NAME, meta=meta,
    )  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="build_generic_rig.py",
        description="Build facecap's generic tracking rig (face mask, eyes, mouth, 52 ARKit expressions) "
        "from analytic definitions and save it as a compressed .npz that facecap.rig.load_rig() reads.",
        epilog="examples:\n"
        "  python rigs/build_generic_rig.py            rebuild facecap/data/generic_rig.npz\n"
        "  python rigs/build_generic_rig.py --check    verify the committed file matches a fresh build\n"
        "  python rigs/build_generic_rig.py --out /tmp/rig.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_RIG_PATH, help=f"rig file (default: {DEFAULT_RIG_PATH})"
    )
    ap.add_argument(
        "--check",
        action="store_true",
        help="rebuild in memory and compare with --out instead of writing; exit 1 on mismatch",
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rig = build_generic_rig()
    dt = time.perf_counter() - t0
    if args.check:
        try:
            saved = Rig.load(args.out)
        except (OSError, ValueError) as e:
            print(f"check failed: {e}", file=sys.stderr)
            return 1
        diffs = compare_rigs(rig, saved)
        if diffs:
            print(
                f"check failed: {args.out} differs from a fresh build: " + "; ".join(diffs), file=sys.stderr
            )
            print("rebuild it with `python rigs/build_generic_rig.py`", file=sys.stderr)
            return 1
        print(f"{args.out} matches a fresh build ({rig.n_vertices} vertices, built in {dt:.1f} s)")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rig.save(args.out)
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {rig.n_vertices} vertices, {len(rig.triangles)} triangles, "
          f"{len(rig.landmark_ids)} landmarks, {size / 1e6:.2f} MB, built in {dt:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
