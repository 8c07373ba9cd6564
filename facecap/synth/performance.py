"""Performances that need no data file: procedural expression weights and smooth head motion.

Live Link Face takes (:mod:`facecap.livelink`) drive the rig with real timing instead (see
:func:`facecap.synth.make_performance`).
"""

from __future__ import annotations

import math

import numpy as np

from .. import arkit
from ..pose import from_euler


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _envelope(t: np.ndarray, start: float, attack: float, hold: float, release: float) -> np.ndarray:
    """0 -> 1 -> 0 with smoothstep ramps: rise over ``attack`` s, stay ``hold`` s, fall over ``release`` s."""
    up = _smoothstep((t - start) / attack)
    down = 1.0 - _smoothstep((t - start - attack - hold) / release)
    return np.minimum(up, down)


_S = "Left", "Right"
# name -> {shape: peak}; shapes ending in "*" expand to Left and Right. Together they cover all 52 shapes
# except the eye looks and blinks, which have their own tracks.
EXPRESSIONS: dict[str, dict[str, float]] = {
    "smile": {"mouthSmile*": 0.85, "cheekSquint*": 0.45, "eyeSquint*": 0.3, "mouthDimple*": 0.25},
    "smirk_left": {
        "mouthSmileLeft": 0.75,
        "cheekSquintLeft": 0.35,
        "mouthDimpleLeft": 0.4,
        "mouthLeft": 0.25,
    },
    "smirk_right": {
        "mouthSmileRight": 0.75,
        "cheekSquintRight": 0.35,
        "mouthDimpleRight": 0.4,
        "mouthRight": 0.25,
    },
    "surprise": {
        "browInnerUp": 0.8,
        "browOuterUp*": 0.75,
        "eyeWide*": 0.7,
        "jawOpen": 0.45,
        "mouthLowerDown*": 0.2,
    },
    "brow_raise": {"browInnerUp": 0.6, "browOuterUp*": 0.7, "eyeWide*": 0.2},
    "brow_raise_left": {"browOuterUpLeft": 0.8, "browInnerUp": 0.25, "eyeWideLeft": 0.3},
    "brow_raise_right": {"browOuterUpRight": 0.8, "browInnerUp": 0.25, "eyeWideRight": 0.3},
    "frown": {"browDown*": 0.8, "eyeSquint*": 0.3, "noseSneer*": 0.25, "mouthPress*": 0.3},
    "sad": {"mouthFrown*": 0.7, "browInnerUp": 0.55, "mouthShrugLower": 0.4, "mouthPress*": 0.15},
    "disgust": {"noseSneer*": 0.8, "mouthUpperUp*": 0.55, "browDown*": 0.3, "cheekSquint*": 0.3},
    "sneer_left": {"noseSneerLeft": 0.8, "mouthUpperUpLeft": 0.6, "cheekSquintLeft": 0.35},
    "sneer_right": {"noseSneerRight": 0.8, "mouthUpperUpRight": 0.6, "cheekSquintRight": 0.35},
    "pucker": {"mouthPucker": 0.9, "mouthFunnel": 0.25},
    "oo": {"mouthFunnel": 0.8, "mouthPucker": 0.3, "jawOpen": 0.2},
    "cheek_puff": {"cheekPuff": 0.9, "mouthPucker": 0.15, "mouthPress*": 0.1},
    "jaw_left": {"jawLeft": 0.7, "mouthLeft": 0.3},
    "jaw_right": {"jawRight": 0.7, "mouthRight": 0.3},
    "jaw_forward": {"jawForward": 0.7, "mouthShrugLower": 0.2, "jawOpen": 0.1},
    "aah": {
        "jawOpen": 0.9,
        "mouthStretch*": 0.3,
        "mouthLowerDown*": 0.45,
        "mouthUpperUp*": 0.2,
        "browInnerUp": 0.2,
    },
    "lips_closed_jaw_open": {"jawOpen": 0.35, "mouthClose": 0.5},
    "grimace": {"mouthStretch*": 0.8, "mouthLowerDown*": 0.35, "noseSneer*": 0.2, "eyeSquint*": 0.35},
    "mm": {"mouthRollLower": 0.6, "mouthRollUpper": 0.5, "mouthPress*": 0.45},
    "shrug": {"mouthShrugLower": 0.7, "mouthShrugUpper": 0.45, "browInnerUp": 0.4, "mouthFrown*": 0.3},
    "tongue_out": {"tongueOut": 0.85, "jawOpen": 0.4},
    "lips_left": {"mouthLeft": 0.7, "mouthSmileLeft": 0.1},
    "lips_right": {"mouthRight": 0.7, "mouthSmileRight": 0.1},
    "squint": {"eyeSquint*": 0.7, "cheekSquint*": 0.4, "browDown*": 0.2},
    "wink_left": {"eyeBlinkLeft": 1.0, "eyeSquintLeft": 0.4, "cheekSquintLeft": 0.4, "mouthSmileLeft": 0.3},
    "wink_right": {
        "eyeBlinkRight": 1.0,
        "eyeSquintRight": 0.4,
        "cheekSquintRight": 0.4,
        "mouthSmileRight": 0.3,
    },
    "talk": {},  # syllables, built in _talk()
}
_VISEMES = (
    {"mouthLowerDown*": 0.35, "mouthUpperUp*": 0.2},
    {"mouthFunnel": 0.45},
    {"mouthPucker": 0.5},
    {"mouthStretch*": 0.35},
    {"mouthClose": 0.15, "mouthPress*": 0.3},
    {"mouthRollLower": 0.35},
    {"mouthSmile*": 0.3},
)


def _expand_peaks(spec: dict[str, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for n, p in spec.items():
        for m in (n[:-1] + s for s in _S) if n.endswith("*") else (n,):
            out[arkit.index(m)] = p
    return out


def expression_weights(name: str) -> np.ndarray:
    """(52,) float32 weights, canonical ARKit order, of one event of :data:`EXPRESSIONS` at its peak
    (``"smile"``, ``"wink_left"``, ...). Raises ValueError for an unknown name or ``"talk"`` (syllables,
    no single pose)."""
    if name not in EXPRESSIONS or not EXPRESSIONS[name]:
        poses = ", ".join(k for k, v in EXPRESSIONS.items() if v)
        raise ValueError(f"no held expression named {name!r}; one of: {poses}")
    w = np.zeros(arkit.NUM_SHAPES, np.float32)
    for k, p in _expand_peaks(EXPRESSIONS[name]).items():
        w[k] = p
    return w


def _add(acc: np.ndarray, sl: slice, env: np.ndarray, peaks: dict[int, float], gain: float) -> None:
    """acc holds prod(1 - c) per shape; contributions combine as a probabilistic OR (stays in [0, 1])."""
    for k, p in peaks.items():
        acc[sl, k] *= 1.0 - np.minimum(p * gain, 1.0) * env


def _talk(acc, t, start, length, rng) -> None:
    """Syllables at ~4 per second: jaw opening with one viseme each."""
    s = start
    while s < start + length:
        dur = rng.uniform(0.2, 0.32)
        sl = slice(int(np.searchsorted(t, s)), int(np.searchsorted(t, s + dur)))
        env = _envelope(t[sl], s, dur * 0.45, 0.0, dur * 0.55)
        _add(acc, sl, env, {arkit.index("jawOpen"): rng.uniform(0.12, 0.45)}, 1.0)
        _add(acc, sl, env, _expand_peaks(_VISEMES[rng.integers(len(_VISEMES))]), rng.uniform(0.6, 1.0))
        s += dur * rng.uniform(0.75, 1.0)


def procedural_performance(
    n_frames: int, fps: float = 30.0, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Expression weights for a plausible, smooth performance; needs no data file.

    Three tracks combine as a probabilistic OR (``1 - prod(1 - c)``, so weights stay in [0, 1]):

    - expressions: the events of :data:`EXPRESSIONS` (smiles, smirks, surprise, brow raises, frowns,
      disgust, puckers, cheek puffs, jaw moves, talking, winks, ...) in shuffled rounds that play every
      event once before any repeats; each rises over 0.2-0.4 s, holds 0.2-0.9 s, falls over 0.25-0.6 s,
      peaks scaled by 0.75-1.0, with 0-0.4 s between events;
    - blinks every 2-5 s (close 0.1 s, open 0.15-0.2 s);
    - gaze: fixations of 0.6-2.5 s in shuffled rounds over 8 directions and the centre, eased over
      0.2 s, mapped to the eight eyeLook shapes (looking down lowers the lids a little).

    One round of expressions lasts about 45 s; every one of the 52 shapes exceeds 0.3 within the first
    round (within 60 s, at any fps). The sequence depends on time, not frames: the same seed at 30 and
    60 fps gives the same performance sampled twice as densely.

    Parameters
    ----------
    n_frames : int
    fps : float, frames per second
    seed : int or numpy Generator

    Returns
    -------
    (n_frames, 52) float32 in [0, 1], canonical ARKit order
    """
    n_frames = int(n_frames)
    if n_frames < 0 or not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"need n_frames >= 0 and fps > 0, got {n_frames}, {fps}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    end = n_frames / fps
    acc = np.ones((n_frames, arkit.NUM_SHAPES))

    # expression track
    names = list(EXPRESSIONS)
    s, deck = rng.uniform(0.2, 0.8), []
    while s < end:
        if not deck:
            deck = [names[i] for i in rng.permutation(len(names))]
        ev = deck.pop()
        if ev == "talk":
            length = rng.uniform(1.5, 3.0)
            _talk(acc, t, s, length, rng)
            s += length + rng.uniform(0.0, 0.4)
            continue
        a, h, r = rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.9), rng.uniform(0.25, 0.6)
        sl = slice(int(np.searchsorted(t, s)), int(np.searchsorted(t, s + a + h + r)))
        _add(acc, sl, _envelope(t[sl], s, a, h, r), _expand_peaks(EXPRESSIONS[ev]), rng.uniform(0.75, 1.0))
        s += a + h + r + rng.uniform(0.0, 0.4)

    # blink track
    blink = {arkit.index("eyeBlinkLeft"): 1.0, arkit.index("eyeBlinkRight"): 1.0}
    s = rng.uniform(0.5, 2.0)
    while s < end:
        op = rng.uniform(0.15, 0.2)
        sl = slice(int(np.searchsorted(t, s)), int(np.searchsorted(t, s + 0.15 + op)))
        _add(acc, sl, _envelope(t[sl], s, 0.1, 0.05, op), blink, rng.uniform(0.9, 1.0))
        s += rng.uniform(2.0, 5.0)

    # gaze track: yaw > 0 looks toward the subject's left, pitch > 0 up
    dirs = [
        (c, sn) for c, sn in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1), (0, 0))
    ]
    yaw, pitch = np.zeros(n_frames), np.zeros(n_frames)
    s, cur, deck = 0.0, (0.0, 0.0), []
    while s < end:
        if not deck:
            deck = [dirs[i] for i in rng.permutation(len(dirs))]
        dx, dy = deck.pop()
        mag = rng.uniform(0.4, 0.85)
        nxt = (dx * mag, dy * mag * 0.8)
        sl = slice(int(np.searchsorted(t, s)), n_frames)
        e = _smoothstep((t[sl] - s) / 0.2)
        yaw[sl] = cur[0] + (nxt[0] - cur[0]) * e
        pitch[sl] = cur[1] + (nxt[1] - cur[1]) * e
        cur = nxt
        s += rng.uniform(0.6, 2.5)
    gaze = {
        "eyeLookOutLeft": np.maximum(yaw, 0),
        "eyeLookInRight": np.maximum(yaw, 0),
        "eyeLookInLeft": np.maximum(-yaw, 0),
        "eyeLookOutRight": np.maximum(-yaw, 0),
        "eyeLookUpLeft": np.maximum(pitch, 0),
        "eyeLookUpRight": np.maximum(pitch, 0),
        "eyeLookDownLeft": np.maximum(-pitch, 0),
        "eyeLookDownRight": np.maximum(-pitch, 0),
        "eyeBlinkLeft": 0.25 * np.maximum(-pitch, 0),
        "eyeBlinkRight": 0.25 * np.maximum(-pitch, 0),
    }
    for n, c in gaze.items():
        acc[:, arkit.index(n)] *= 1.0 - c
    return np.clip(1.0 - acc, 0.0, 1.0).astype(np.float32)


def _smooth_signal(
    t: np.ndarray, rng: np.random.Generator, amplitude: float, fmin=0.05, fmax=0.35
) -> np.ndarray:
    """Sum of 4 sinusoids with random frequencies and phases; |x| <= amplitude guaranteed."""
    f = rng.uniform(fmin, fmax, 4)
    ph = rng.uniform(0, 2 * np.pi, 4)
    a = rng.uniform(0.5, 1.0, 4)
    a *= amplitude / a.sum()
    return (a[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None])).sum(0)


def head_motion(
    n_frames: int,
    fps: float = 30.0,
    seed: int | np.random.Generator = 0,
    max_angle_deg: float = 20.0,
    max_translation_m: float = 0.02,
    distance_m: float = 0.6,
    *,
    max_pitch_deg: float | None = None,
    max_roll_deg: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth head poses around a frontal pose: yaw, pitch and roll within ``max_angle_deg`` and a
    translation within ``max_translation_m`` per axis of ``(0, 0, distance_m)`` (the rig origin).

    Each angle and translation axis is a sum of four sinusoids of 0.05-0.35 Hz (yaw uses the full
    ``max_angle_deg``, pitch ``max_pitch_deg`` (default 0.75 of it) and roll ``max_roll_deg`` (default
    0.5 of it)), so the bounds hold strictly and motion is smooth.

    Returns
    -------
    rotations : (n_frames, 3, 3) float64, rig -> camera (see ``facecap.pose.from_euler``)
    translations : (n_frames, 3) float64, metres
    """
    n_frames = int(n_frames)
    if n_frames < 0 or not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"need n_frames >= 0 and fps > 0, got {n_frames}, {fps}")
    if not (0 <= max_angle_deg <= 90 and max_translation_m >= 0 and distance_m > 0):
        raise ValueError("need 0 <= max_angle_deg <= 90, max_translation_m >= 0 and distance_m > 0")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    t = np.arange(n_frames) / fps
    a = np.radians(max_angle_deg)
    pa = np.radians(max_pitch_deg) if max_pitch_deg is not None else 0.75 * a
    ra = np.radians(max_roll_deg) if max_roll_deg is not None else 0.5 * a
    yaw, pitch, roll = (_smooth_signal(t, rng, amp) for amp in (a, pa, ra))
    rot = np.array([from_euler(y, p, r) for y, p, r in zip(yaw, pitch, roll, strict=True)]).reshape(-1, 3, 3)
    trans = np.stack([_smooth_signal(t, rng, max_translation_m) for _ in range(3)], axis=1).reshape(-1, 3)
    trans[:, 2] += distance_m
    return rot, trans


def protocol_performance(
    protocol, fps: float = 30.0, seed: int = 0, *, distance_m: float = 0.6, transition_s: float = 0.6
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None]]:
    """A performer doing a calibration protocol: each step's weights and head pose reached over
    ``transition_s`` and held for its ``hold_s`` with a little sway (0.4 degrees, 1 mm).

    Returns
    -------
    weights : (n, 52) float64; rotations : (n, 3, 3) rig -> camera; translations : (n, 3) metres;
    labels : list of n step names, None during transitions.
    """
    rng = np.random.default_rng(seed)
    W, ang, lab = [], [], []
    w_prev, a_prev = np.zeros(arkit.NUM_SHAPES), np.zeros(2)
    for step in protocol:
        w_tgt, a_tgt = step.weight_vector(), np.asarray(step.head, float)
        nt, nh = max(1, int(round(transition_s * fps))), max(1, int(round(step.hold_s * fps)))
        s = _smoothstep(np.arange(1, nt + 1) / nt)[:, None]
        W += list(w_prev + s * (w_tgt - w_prev))
        ang += list(a_prev + s * (a_tgt - a_prev))
        lab += [None] * nt
        W += [w_tgt] * nh
        ang += [a_tgt] * nh
        lab += [step.name] * nh
        w_prev, a_prev = w_tgt, a_tgt
    n = len(W)
    t = np.arange(n) / fps
    sway = np.radians(0.4)
    yaw = np.array(ang)[:, 0] + _smooth_signal(t, rng, sway)
    pitch = np.array(ang)[:, 1] + _smooth_signal(t, rng, sway)
    roll = _smooth_signal(t, rng, sway)
    rot = np.array([from_euler(y, p, r) for y, p, r in zip(yaw, pitch, roll, strict=True)]).reshape(-1, 3, 3)
    trans = np.stack([_smooth_signal(t, rng, 0.001) for _ in range(3)], axis=1).reshape(-1, 3)
    trans[:, 2] += distance_m
    return np.array(W), rot, trans, lab
