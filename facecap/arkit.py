"""The 52 ARKit blendshape names and every order facecap speaks.

facecap's canonical order is the alphabetical list of Apple's Swift names (``ARKIT_NAMES``).
Every other convention is one permutation of it, derived here from one table:

==================  ==========================================================================
order               what uses it
==================  ==========================================================================
``canonical``       facecap itself (FaceState.weights, rig deltas, takes)
``livelink_csv``    Live Link Face CSV columns after ``Timecode,BlendShapeCount`` (52 shapes)
``unreal``          Unreal's ``EARFaceBlendShape`` order in the Live Link Face UDP packet (52 shapes;
                    the packet appends 9 head/eye angles, see ``UNREAL_POSE_NAMES``)
``mediapipe``       MediaPipe Face Landmarker scores (52 entries: ``_neutral`` first, no tongueOut)
``facecap_osc``     Face Cap's ``/W index value`` indices (the order of Face Cap's exported mesh)
==================  ==========================================================================

Spellings: canonical ``eyeBlinkLeft``; PascalCase ``EyeBlinkLeft`` (Live Link, VMC perfect sync);
ARKit raw keys ``eyeBlink_L`` (Face Cap, ICT-FaceKit). ``canonical_name`` accepts all of them.
"""

from __future__ import annotations

import numpy as np

ARKIT_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
    "tongueOut",
)  # fmt: skip
NUM_SHAPES = len(ARKIT_NAMES)
INDEX: dict[str, int] = {n: i for i, n in enumerate(ARKIT_NAMES)}

# One table: each foreign order as a list of canonical names.  Left/right pairs are written with a
# trailing "*" and expand to (xLeft, xRight) or, where marked "*RL", to (xRight, xLeft).
_EYE = ("eyeBlink", "eyeLookDown", "eyeLookIn", "eyeLookOut", "eyeLookUp", "eyeSquint", "eyeWide")
_ORDERS_SPEC: dict[str, tuple[str, ...]] = {
    # Live Link Face CSV (header of real takes): left eye block, right eye block, then the rest.
    "livelink_csv": (
        *(e + "Left" for e in _EYE),
        *(e + "Right" for e in _EYE),
        "jawForward",
        "jawRight",
        "jawLeft",
        "jawOpen",
        "mouthClose",
        "mouthFunnel",
        "mouthPucker",
        "mouthRight",
        "mouthLeft",
        "mouthSmile*",
        "mouthFrown*",
        "mouthDimple*",
        "mouthStretch*",
        "mouthRollLower",
        "mouthRollUpper",
        "mouthShrugLower",
        "mouthShrugUpper",
        "mouthPress*",
        "mouthLowerDown*",
        "mouthUpperUp*",
        "browDown*",
        "browInnerUp",
        "browOuterUp*",
        "cheekPuff",
        "cheekSquint*",
        "noseSneer*",
        "tongueOut",
    ),
    # MediaPipe Face Landmarker blendshape scores.
    "mediapipe": ("_neutral", *(n for n in ARKIT_NAMES if n != "tongueOut")),
    # Face Cap (Bannaflak) OSC /W indices: the order of ARKit's ARBlendShapeLocation documentation.
    "facecap_osc": (
        "browInnerUp",
        "browDown*",
        "browOuterUp*",
        "eyeLookUp*",
        "eyeLookDown*",
        "eyeLookIn*",
        "eyeLookOut*",
        "eyeBlink*",
        "eyeSquint*",
        "eyeWide*",
        "cheekPuff",
        "cheekSquint*",
        "noseSneer*",
        "jawOpen",
        "jawForward",
        "jawLeft",
        "jawRight",
        "mouthFunnel",
        "mouthPucker",
        "mouthLeft",
        "mouthRight",
        "mouthRollUpper",
        "mouthRollLower",
        "mouthShrugUpper",
        "mouthShrugLower",
        "mouthClose",
        "mouthSmile*",
        "mouthFrown*",
        "mouthDimple*",
        "mouthUpperUp*",
        "mouthLowerDown*",
        "mouthPress*",
        "mouthStretch*",
        "tongueOut",
    ),
}


def _expand(spec: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for s in spec:
        out.extend((s[:-1] + "Left", s[:-1] + "Right") if s.endswith("*") else (s,))
    return tuple(out)


ORDERS: dict[str, tuple[str, ...]] = {k: _expand(v) for k, v in _ORDERS_SPEC.items()}
ORDERS["canonical"] = ARKIT_NAMES
# Unreal's EARFaceBlendShape order (Live Link Face UDP) is the CSV order with JawLeft/JawRight and
# MouthLeft/MouthRight swapped.
_SWAP = {"jawRight": "jawLeft", "jawLeft": "jawRight", "mouthRight": "mouthLeft", "mouthLeft": "mouthRight"}
ORDERS["unreal"] = tuple(_SWAP.get(n, n) for n in ORDERS["livelink_csv"])

# Head and eye angles that follow the 52 shapes in Live Link CSV rows and Unreal packets (radians).
UNREAL_POSE_NAMES: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip


def pascal_name(name: str) -> str:
    """PascalCase spelling used by Live Link Face and VMC perfect sync (``EyeBlinkLeft``)."""
    n = canonical_name(name)
    return n[0].upper() + n[1:]


_NO_SIDE_SUFFIX = ("jawLeft", "jawRight", "mouthLeft", "mouthRight")  # ARKit keeps these spellings


def _raw(n: str) -> str:
    for side, suf in (("Left", "_L"), ("Right", "_R")):
        if n.endswith(side) and n not in _NO_SIDE_SUFFIX:
            return n[: -len(side)] + suf
    return n


def raw_name(name: str) -> str:
    """ARKit raw key spelling (``eyeBlink_L``), as used by Face Cap and ICT-FaceKit."""
    return _raw(canonical_name(name))


_ALIASES: dict[str, str] = {
    a.lower(): n
    for n in ARKIT_NAMES
    for a in (n, n[0].upper() + n[1:], _raw(n), _raw(n)[0].upper() + _raw(n)[1:])
}


def canonical_name(name: str) -> str:
    """Return the canonical ARKit name for any accepted spelling.

    Accepts ``eyeBlinkLeft``, ``EyeBlinkLeft``, ``eyeBlink_L`` and ``EyeBlink_L`` (case-insensitive).

    Raises
    ------
    KeyError
        If the name is not one of the 52 ARKit blendshapes; the message lists close matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"blendshape name must be a str, got {type(name).__name__}")
    try:
        return _ALIASES[name.strip().lower()]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, ARKIT_NAMES, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"{name!r} is not an ARKit blendshape name{hint}") from None


def index(name: str) -> int:
    """Canonical index (0..51) of a blendshape given in any accepted spelling."""
    return INDEX[canonical_name(name)]


def _perm(order: str) -> np.ndarray:
    """perm[j] = canonical index of entry j of ``order`` (-1 where the order has no ARKit shape)."""
    try:
        names = ORDERS[order]
    except KeyError:
        raise ValueError(f"unknown order {order!r}; choose one of {sorted(ORDERS)}") from None
    return np.array([INDEX.get(n, -1) for n in names], dtype=np.intp)


_PERMS = {k: _perm(k) for k in ORDERS}


def to_order(weights: np.ndarray, order: str) -> np.ndarray:
    """Reorder canonical weights into another convention.

    Parameters
    ----------
    weights : (..., 52) float
        Weights in canonical order.
    order : str
        One of ``ORDERS``. Entries with no ARKit shape (MediaPipe ``_neutral``) become 0.

    Returns
    -------
    (..., len(ORDERS[order])) float32
    """
    w = np.asarray(weights, dtype=np.float32)
    if w.shape[-1:] != (NUM_SHAPES,):
        raise ValueError(f"weights must have last dimension {NUM_SHAPES}, got shape {w.shape}")
    p = _PERMS.get(order)
    if p is None:
        _perm(order)
    out = w[..., np.maximum(p, 0)]
    out[..., p < 0] = 0.0
    return out


def from_order(values: np.ndarray, order: str) -> np.ndarray:
    """Reorder values given in another convention into canonical order.

    Shapes that ``order`` lacks (tongueOut for MediaPipe) become 0.

    Parameters
    ----------
    values : (..., len(ORDERS[order])) float

    Returns
    -------
    (..., 52) float32
    """
    p = _PERMS.get(order)
    if p is None:
        _perm(order)
    v = np.asarray(values, dtype=np.float32)
    if v.shape[-1:] != (len(p),):
        raise ValueError(f"order {order!r} has {len(p)} entries, got values of shape {v.shape}")
    out = np.zeros((*v.shape[:-1], NUM_SHAPES), dtype=np.float32)
    keep = p >= 0
    out[..., p[keep]] = v[..., keep]
    return out


def weights_from_dict(named: dict[str, float], *, strict: bool = True) -> np.ndarray:
    """Canonical (52,) float32 weights from a ``{name: value}`` dict in any accepted spelling.

    Missing shapes are 0. With ``strict`` unknown names raise ``KeyError``; otherwise they are ignored.
    """
    w = np.zeros(NUM_SHAPES, dtype=np.float32)
    for k, v in named.items():
        try:
            w[index(k)] = float(v)
        except KeyError:
            if strict:
                raise
    return w


def mirror_name(name: str) -> str:
    """The left/right counterpart of a canonical name (itself for centre shapes)."""
    n = canonical_name(name)
    for a, b in (("Left", "Right"), ("Right", "Left")):
        if n.endswith(a):
            return n[: -len(a)] + b
    return n


MIRROR_PERM: np.ndarray = np.array([INDEX[mirror_name(n)] for n in ARKIT_NAMES], dtype=np.intp)
"""Canonical index of each shape's mirror image: ``w_mirrored = w[MIRROR_PERM]``."""
