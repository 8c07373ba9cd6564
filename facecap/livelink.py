"""Live Link Face CSV takes: read and write the iPhone app's per-take ``.csv`` files (docs/design.md §6).

A take file has one header line and one row per captured frame::

    Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,...,RightEyeRoll
    12:21:59:06.595,61,0.0009391578,...        a tracked frame: 52 weights then 9 angles (radians)
    12:22:06:30.534,0                          the face was lost in this frame

Timecodes are SMPTE-style ``HH:MM:SS:FF.fff`` at a *timecode* rate (60 in every real take we have seen)
where ``FF.fff`` is the frame number with a sub-frame fraction; a 30 fps capture therefore steps the
frame field by 2 (:mod:`facecap.timecode` parses and formats them). The UDP packet to Unreal lives in
:mod:`facecap.sinks`; this module does files and the angle convention both share; the conversion to and
from a facecap take lives in :mod:`facecap.take.livelink`.

Angles: the one Live Link rule
------------------------------
Live Link's head and eye angles (HeadYaw/Pitch/Roll, LeftEyeYaw/Pitch/Roll, RightEye...) are radians in
one convention for head and eyes alike: **yaw and roll are facecap's negated, pitch is facecap's**
(:mod:`facecap.pose`: yaw > 0 toward the subject's left, pitch > 0 face down, roll > 0 counter-clockwise
in the camera image). So in Live Link

- yaw > 0 turns the head / looks toward the subject's *right* (the Right-named side),
- pitch > 0 tilts the head / looks down,
- roll > 0 tilts the head clockwise in the camera image (top of the head toward the subject's left).

Equivalently, they are the yaw-pitch-roll angles of the rotation seen in a left-right mirrored frame
(``diag(-1, 1, 1) R_v diag(-1, 1, 1)`` with ``R_v`` of :mod:`facecap.pose`), which is why the mapping is
an involution. Why: Unreal's Apple ARKit face support converts the head and both eye transforms with
one routine which, on top of its ARKit -> Unreal axis conversion, negates yaw and roll and not pitch.
The 7 real iPhone takes in ``../shared/data`` confirm it for the eyes: LeftEyeYaw and RightEyeYaw
correlate -0.98 ... -1.00 with looking toward the subject's left (eyeLookOutLeft / eyeLookInRight minus
their opposites), eye pitch +1.00 with eyeLookDown - eyeLookUp (``tests/test_livelink.py`` derives the
signs from them). Their head columns are all zero; the head goes through the same routine.

:func:`to_livelink_angles` and :func:`from_livelink_angles` are the only place this rule lives; the UDP
encoder (:func:`facecap.sinks.encode_livelink_packet`), the CSV export
(:func:`facecap.take.livelink.take_to_livelink`) and the CSV import
(:func:`facecap.take.livelink.take_from_livelink`) all call them. :class:`LiveLinkTake` holds angles in
Live Link's convention, as in the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import arkit
from ._io import atomic_path
from .timecode import DAY_SECONDS, format_timecode, infer_timecode_rate, parse_timecode

BLENDSHAPE_COUNT = 61  # 52 shapes + 9 head/eye angles
LIVELINK_COLUMNS: tuple[str, ...] = (
    "Timecode",
    "BlendShapeCount",
    *(arkit.pascal_name(n) for n in arkit.ORDERS["livelink_csv"]),
    *arkit.UNREAL_POSE_NAMES,
)
"""The exact 63-column header Live Link Face writes."""

# CSV column j (of the 52 shapes) holds canonical shape _CANON_OF_COL[j]; derived through from_order so
# this module cannot drift from the order table in facecap.arkit.
_COL_OF_CANON = np.rint(arkit.from_order(np.arange(52, dtype=np.float32), "livelink_csv")).astype(np.intp)
LIVELINK_ANGLE_SIGNS = np.array([-1.0, 1.0, -1.0])
"""Live Link (yaw, pitch, roll) = facecap (yaw, pitch, roll) * these signs (see the module docstring)."""

_STANDARD_RATES = (24.0, 25.0, 29.97, 30.0, 48.0, 50.0, 59.94, 60.0, 90.0, 120.0)


# --------------------------------------------------------------------------------------------- angles
def to_livelink_angles(yaw_pitch_roll) -> np.ndarray:
    """Head or eye angles from facecap's convention to Live Link's (yaw and roll negated, pitch kept).

    Parameters
    ----------
    yaw_pitch_roll : (..., 3) float, radians
        :mod:`facecap.pose` convention (yaw > 0 toward the subject's left, pitch > 0 down, roll > 0
        counter-clockwise in the camera image); eyes use roll 0 when they have none.

    Returns
    -------
    (..., 3) float64, radians, Live Link convention (yaw > 0 toward the subject's right, pitch > 0
    down); a new array, never ``-0.0`` (so a CSV never prints ``-0.0000000000``).
    """
    a = np.asarray(yaw_pitch_roll, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] != 3:
        raise ValueError(f"angles must be (..., 3) yaw, pitch, roll in radians, got shape {a.shape}")
    return a * LIVELINK_ANGLE_SIGNS + 0.0  # + 0.0 turns -0.0 into 0.0


def from_livelink_angles(yaw_pitch_roll) -> np.ndarray:
    """Head or eye angles (..., 3) radians from Live Link's convention to facecap's.

    The inverse of :func:`to_livelink_angles`, which is its own inverse (an involution).
    """
    return to_livelink_angles(yaw_pitch_roll)


def held_indices(tracked: np.ndarray) -> np.ndarray:
    """(N,) intp: for each frame of ``tracked`` (N,) bool, the frame whose values to show: itself if tracked,
    else the last tracked one (the first tracked one before any). ``ValueError`` when none is tracked."""
    tr = np.asarray(tracked, dtype=bool)
    if not tr.any():
        raise ValueError("the take has no tracked frame to hold (the face was lost in every frame)")
    idx = np.where(tr, np.arange(len(tr)), -1)
    idx = np.maximum.accumulate(idx)
    idx[idx < 0] = int(np.flatnonzero(tr)[0])
    return idx


# --------------------------------------------------------------------------------------------- take
@dataclass
class LiveLinkTake:
    """One Live Link Face take.

    Attributes
    ----------
    weights : (N, 52) float64
        Canonical ARKit order (``facecap.arkit.ARKIT_NAMES``), the file's values unchanged (real takes hold
        values slightly outside [0, 1]). NaN on face-lost rows; :meth:`held` fills them.
        float64 so that :func:`write_csv` reproduces the file's digits exactly.
    head : (N, 3) float64, radians, Live Link convention (module docstring)
        HeadYaw, HeadPitch, HeadRoll (NaN on face-lost rows).
    eyes : (N, 6) float64, radians, Live Link convention
        LeftEyeYaw, LeftEyePitch, LeftEyeRoll, RightEyeYaw, RightEyePitch, RightEyeRoll.
    tracked : (N,) bool
        False on face-lost rows (``Timecode,0``).
    timestamps : (N,) float64, seconds since the first row
    fps : float
        Capture rate estimated from the median row spacing (snapped to a standard rate within 0.5 %).
    timecodes : list of N str
        The rows' timecodes as written (kept verbatim for round trips).
    timecode_fps : int
        Rate of the ``FF`` field of the timecodes.
    stray_first : bool
        True when the first row's timecode did not follow the others (jumped back or by more than 1 s);
        its timestamp was then placed one frame before the second row.
    skipped_lines : list of int
        1-based line numbers of malformed rows dropped by ``read_csv(..., errors="skip")``.
    name : str
    """

    weights: np.ndarray
    head: np.ndarray
    eyes: np.ndarray
    tracked: np.ndarray
    timestamps: np.ndarray
    fps: float
    timecodes: list[str]
    timecode_fps: int = 60
    stray_first: bool = False
    skipped_lines: list[int] = field(default_factory=list)
    name: str = "take"

    def __post_init__(self) -> None:
        n = len(self.timecodes)
        specs = (
            ("weights", (n, arkit.NUM_SHAPES), np.float64),
            ("head", (n, 3), np.float64),
            ("eyes", (n, 6), np.float64),
            ("tracked", (n,), bool),
            ("timestamps", (n,), np.float64),
        )
        for name, shape, dtype in specs:
            a = np.asarray(getattr(self, name), dtype=dtype)
            if a.shape != shape:
                raise ValueError(f"LiveLinkTake.{name} must be {shape} for {n} timecodes, got {a.shape}")
            setattr(self, name, a)

    @property
    def n_frames(self) -> int:
        return len(self.timecodes)

    @property
    def duration(self) -> float:
        """Seconds from the first to one frame past the last row."""
        return float(self.timestamps[-1] + 1.0 / self.fps) if self.n_frames else 0.0

    @classmethod
    def from_arrays(cls, weights, fps: float, head=None, eyes=None, tracked=None, start_seconds: float = 0.0,
                    timecode_fps: int = 60, name: str = "take") -> LiveLinkTake:  # fmt: skip
        """A take from arrays, with timecodes ``start_seconds + i / fps`` (e.g. to write tracker output).

        Parameters
        ----------
        weights : (N, 52) float, canonical order
        fps : float, capture rate
        head : (N, 3) float radians, Live Link convention, optional (zeros)
        eyes : (N, 6) float radians, Live Link convention, optional (zeros)
        tracked : (N,) bool, optional (all True); untracked rows are written as ``Timecode,0``
        start_seconds : float, time of day of the first frame (seconds since midnight)
        """
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != arkit.NUM_SHAPES:
            raise ValueError(f"weights must be (N, 52) in canonical ARKit order, got {w.shape}")
        n = len(w)
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        ts = np.arange(n) / fps
        tcs = [format_timecode(start_seconds + t, timecode_fps) for t in ts]
        return cls(
            weights=w,
            head=np.zeros((n, 3)) if head is None else head,
            eyes=np.zeros((n, 6)) if eyes is None else eyes,
            tracked=np.ones(n, bool) if tracked is None else tracked,
            timestamps=ts, fps=float(fps), timecodes=tcs, timecode_fps=timecode_fps, name=name,
        )  # fmt: skip

    def held(self) -> LiveLinkTake:
        """A copy whose face-lost rows hold the previous tracked row (leading ones: the first tracked row).

        ``tracked`` is unchanged, so the copy still says which rows were filled in. Raises ``ValueError``
        if no row is tracked.
        """
        idx = held_indices(self.tracked)
        return replace(self, weights=self.weights[idx], head=self.head[idx], eyes=self.eyes[idx],
                       timecodes=list(self.timecodes), skipped_lines=list(self.skipped_lines))  # fmt: skip

    def sample(self, times: np.ndarray) -> np.ndarray:
        """Weights (M, 52) float64 linearly interpolated at ``times`` (seconds since the first row).

        Face-lost rows are held (:meth:`held`); times outside the take clamp to its ends.
        """
        h = self.held()
        t = np.asarray(times, dtype=np.float64)
        order = np.argsort(h.timestamps, kind="stable")
        ts, w = h.timestamps[order], h.weights[order]
        return np.stack([np.interp(t, ts, w[:, k]) for k in range(arkit.NUM_SHAPES)], axis=-1)


# --------------------------------------------------------------------------------------------- reading
def _read_text(path: Path) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"Live Link Face take not found: {path}")
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise ValueError(f"{path} is a binary file, not a Live Link Face CSV take")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text, not a Live Link Face CSV take ({e})") from None


def _header_map(header: list[str], path: Path) -> np.ndarray:
    """Column index in the file of each entry of LIVELINK_COLUMNS."""
    cols = [c.strip() for c in header]
    if len(cols) < 2 or cols[0].lower() != "timecode" or cols[1].lower() != "blendshapecount":
        shown = ",".join(cols[:4]) + ("..." if len(cols) > 4 else "")
        raise ValueError(
            f"{path} is not a Live Link Face take: the header must start with 'Timecode,BlendShapeCount', "
            f"got {shown!r}"
        )
    lower = {c.lower(): i for i, c in enumerate(cols)}
    missing = [c for c in LIVELINK_COLUMNS if c.lower() not in lower]
    unknown = [c for c in cols if c.lower() not in {x.lower() for x in LIVELINK_COLUMNS}]
    if missing or unknown or len(cols) != len(LIVELINK_COLUMNS):
        raise ValueError(
            f"{path}: header has {len(cols)} columns, expected the {len(LIVELINK_COLUMNS)} Live Link Face "
            f"columns; missing {missing[:6]}, unknown {unknown[:6]}"
        )
    return np.array([lower[c.lower()] for c in LIVELINK_COLUMNS], dtype=np.intp)


def read_csv(path: str | os.PathLike, timecode_fps: int | None = None, errors: str = "raise") -> LiveLinkTake:
    """Read a Live Link Face take.

    Parameters
    ----------
    path : str or path-like
    timecode_fps : int, optional
        Rate of the timecodes' frame field; by default inferred (the smallest standard rate above the
        largest frame number seen; 60, Live Link Face's rate, for takes too short to tell).
    errors : {"raise", "skip"}
        What to do with a malformed row (wrong field count, unparsable number or timecode): raise
        ``ValueError`` naming the line, or drop it and list its line number in ``take.skipped_lines``.

    Returns
    -------
    LiveLinkTake
        Face-lost rows (``Timecode,0``) have ``tracked`` False and NaN weights and angles; blank lines are
        ignored; a byte-order mark is accepted; a stray first row (timecode out of sequence) is kept and
        flagged in ``stray_first``.
    """
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
    path = Path(path)
    lines = _read_text(path).splitlines()
    body = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    if not body:
        raise ValueError(
            f"{path} is empty: a Live Link Face take starts with a 'Timecode,BlendShapeCount,...' header"
        )
    colmap = _header_map(body[0][1].split(","), path)
    n_cols = len(LIVELINK_COLUMNS)

    tcs: list[str] = []
    vals: list[np.ndarray] = []
    tracked: list[bool] = []
    skipped: list[int] = []
    nan_row = np.full(BLENDSHAPE_COUNT, np.nan)
    for lineno, ln in body[1:]:
        f = ln.split(",")
        try:
            tc = f[0].strip()
            parse_timecode(tc, 1000)  # syntax only; the rate is checked below
            count = f[colmap[1]].strip() if len(f) == n_cols else (f[1].strip() if len(f) > 1 else "")
            if len(f) == 2 or (count == "0" and all(not x.strip() for x in f[2:])):
                if count != "0":
                    raise ValueError(f"a 2-field row must be 'Timecode,0' (face lost), got {ln.strip()!r}")
                row, ok = nan_row, False
            elif len(f) == n_cols:
                if int(count) != BLENDSHAPE_COUNT:
                    raise ValueError(f"BlendShapeCount is {count}, expected {BLENDSHAPE_COUNT}")
                row = np.array([float(f[c]) for c in colmap[2:]])
                if not np.isfinite(row).all():
                    raise ValueError("non-finite value")
                ok = True
            else:
                raise ValueError(f"{len(f)} fields, expected {n_cols} (or 'Timecode,0' for a face-lost row)")
        except (ValueError, IndexError) as e:
            if errors == "skip":
                skipped.append(lineno)
                continue
            raise ValueError(
                f"{path}, line {lineno}: malformed row ({e}); the file may be truncated or edited -- "
                "pass --skip-bad-rows (read_csv(..., errors='skip') in Python) to drop such rows"
            ) from None
        tcs.append(tc)
        vals.append(row)
        tracked.append(ok)
    if not tcs:
        raise ValueError(f"{path} has a header but no frames")

    split = [tc.split(":") for tc in tcs]
    if timecode_fps is None:
        timecode_fps = infer_timecode_rate([float(s[3]) for s in split], [int(s[2]) for s in split])
    try:
        secs = np.array([parse_timecode(tc, timecode_fps) for tc in tcs])
    except ValueError as e:
        raise ValueError(f"{path}: {e} (timecode rate {timecode_fps}; pass timecode_fps=...)") from None
    d = np.diff(secs)
    d[d < -DAY_SECONDS / 2] += DAY_SECONDS  # the take ran past midnight
    steps = d[d > 0]
    dt = float(np.median(steps)) if len(steps) else 1.0 / 30.0
    stray = bool(len(d) >= 2 and (d[0] <= 0 or d[0] > max(1.0, 10 * dt)))
    if stray:
        d[0] = dt
    ts = np.concatenate([[0.0], np.cumsum(d)])
    fps = 1.0 / dt
    near = min(_STANDARD_RATES, key=lambda r: abs(r - fps))
    if abs(near - fps) <= 0.005 * near:
        fps = near

    v = np.array(vals, dtype=np.float64)
    weights = v[:, :52][:, _COL_OF_CANON]
    return LiveLinkTake(weights=weights, head=v[:, 52:55], eyes=v[:, 55:61], tracked=np.array(tracked),
                        timestamps=ts, fps=float(fps), timecodes=tcs, timecode_fps=int(timecode_fps),
                        stray_first=stray, skipped_lines=skipped, name=path.stem)  # fmt: skip


# --------------------------------------------------------------------------------------------- writing
def write_csv(path: str | os.PathLike, take: LiveLinkTake) -> Path:
    """Write a take as Live Link Face does: exact header and column order, 10 decimals, ``Timecode,0``
    for face-lost rows, ``\\n`` line ends. The file is written to a temporary name and renamed, so a
    failure never leaves half a take behind.

    Raises ``ValueError`` if a tracked row holds NaN/inf (mark it untracked instead).
    """
    path = Path(path)
    n = take.n_frames
    tr = take.tracked
    rows = np.concatenate([take.weights[:, np.argsort(_COL_OF_CANON)], take.head, take.eyes], axis=1)
    bad = tr & ~np.isfinite(rows).all(axis=1)
    if bad.any():
        raise ValueError(
            f"tracked row {int(np.flatnonzero(bad)[0])} holds NaN or inf; set tracked False for it"
        )
    out = [",".join(LIVELINK_COLUMNS)]
    for i in range(n):
        if tr[i]:
            out.append(f"{take.timecodes[i]},{BLENDSHAPE_COUNT}," + ",".join(f"{x:.10f}" for x in rows[i]))
        else:
            out.append(f"{take.timecodes[i]},0")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(out) + "\n", encoding="utf-8", newline="\n")
    return path
