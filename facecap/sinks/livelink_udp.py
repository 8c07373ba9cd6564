"""Live Link Face UDP packets for Unreal Engine (version 6): codec and sink."""

from __future__ import annotations

import functools
import math
import socket
import struct
import uuid
from collections.abc import Sequence

import numpy as np

from .. import arkit
from ..livelink import to_livelink_angles
from ..pose import viewer_euler, viewer_rotation
from ..state import FaceState
from .udp import DEFAULT_PORTS, FLOAT32_MAX, UdpSink

# Live Link Face UDP packet, version 6, big-endian (docs/design.md §6). Layout checked against:
#   think-biq/LLV src/llv/gesicht.py (FaceFrame: uint8 version, int32-length strings device id and
#     subject, frame time int32 frame / float32 subframe / int32 rate numerator / int32 denominator,
#     uint8 count, count x float32 in EARFaceBlendShape order, all ">"),
#   JimWest/PyLiveLinkFace pylivelinkface.py (same fields; it writes the version as 4 little-endian bytes
#     followed by "$" + a 36-char UUID, which a reader parses as uint8 6 + int32 length 36),
#   Unreal Engine AppleARKitFaceSupport AppleARKitLiveLinkSource.cpp (the receiver; EARFaceBlendShape).
LIVELINK_VERSION = 6
LIVELINK_COUNT = 61
LIVELINK_NAMES: tuple[str, ...] = (
    *(arkit.pascal_name(n) for n in arkit.ORDERS["unreal"]),
    *arkit.UNREAL_POSE_NAMES,
)
"""Names of the 61 floats of a Live Link packet, in packet order."""


_UNREAL_PERM = np.array([arkit.INDEX[n] for n in arkit.ORDERS["unreal"]], dtype=np.intp)


@functools.lru_cache(maxsize=64)
def _livelink_struct(n_device: int, n_subject: int) -> struct.Struct:
    """The whole packet as one struct format (built once per pair of string lengths)."""
    return struct.Struct(f">Bi{n_device}si{n_subject}sifiiB{LIVELINK_COUNT}f")


def _livelink_values(state: FaceState, rotation: np.ndarray | None = None) -> np.ndarray:
    w = np.asarray(state.weights, dtype=np.float32)
    if w.shape != (arkit.NUM_SHAPES,):
        raise ValueError(f"state.weights must be (52,) in canonical ARKit order, got shape {w.shape}")
    g = np.asarray(state.gaze, dtype=np.float64).reshape(2, 2)
    r = np.asarray(state.rotation if rotation is None else rotation, dtype=np.float64)
    if r.shape != (3, 3):
        raise ValueError(f"head rotation must be (3, 3), got shape {r.shape}")
    out = np.empty(LIVELINK_COUNT, dtype=np.float64)
    out[:52] = w[_UNREAL_PERM]
    head = viewer_euler(viewer_rotation(r)) if np.isfinite(r).all() else [0.0, 0.0, 0.0]
    # head, left eye, right eye: facecap.pose convention -> Live Link's (the one rule, facecap.livelink)
    ang = [head, [g[0, 0], g[0, 1], 0.0], [g[1, 0], g[1, 1], 0.0]]
    out[52:61] = to_livelink_angles(ang).ravel()
    return np.clip(np.nan_to_num(out, copy=False), -FLOAT32_MAX, FLOAT32_MAX, out=out)


def encode_livelink_packet(
    state: FaceState,
    device_id: str,
    subject: str,
    frame_number: int,
    subframe: float,
    fps_num: int = 60,
    fps_den: int = 1,
    *,
    rotation: np.ndarray | None = None,
) -> bytes:
    """One Live Link Face UDP packet (version 6) for Unreal Engine.

    Parameters
    ----------
    state : FaceState
        weights (52,) canonical (sent in Unreal's EARFaceBlendShape order); head angles
        ``facecap.pose.head_euler(state.rotation)`` and eye angles ``state.gaze`` (roll 0), both
        converted to Live Link's convention by :func:`facecap.livelink.to_livelink_angles` (yaw > 0
        toward the subject's right, pitch > 0 down, roll negated): HeadYaw, HeadPitch, HeadRoll, then
        LeftEyeYaw, LeftEyePitch, LeftEyeRoll = 0, then the right eye, radians.
    device_id, subject : str
        Device identifier (a UUID string) and Live Link subject name, UTF-8.
    frame_number : int32; subframe : float in [0, 1)
        Frame time at the rate ``fps_num / fps_den``.
    rotation : (3, 3), optional
        Use this head rotation instead of ``state.rotation`` (the sink passes the held pose).

    Returns
    -------
    bytes, ``1 + 4 + len(device) + 4 + len(subject) + 16 + 1 + 61 * 4`` long.
    """
    dev, sub = device_id.encode("utf-8"), subject.encode("utf-8")
    if not -(2**31) <= int(frame_number) < 2**31:
        raise ValueError(f"frame_number must fit int32, got {frame_number}")
    if not 0.0 <= subframe < 1.0:
        raise ValueError(f"subframe must be in [0, 1), got {subframe}")
    if not (isinstance(fps_num, int) and isinstance(fps_den, int) and fps_num > 0 and fps_den > 0):
        raise ValueError(f"frame rate must be positive integers fps_num/fps_den, got {fps_num}/{fps_den}")
    vals = _livelink_values(state, rotation)
    st = _livelink_struct(len(dev), len(sub))
    return st.pack(
        LIVELINK_VERSION, len(dev), dev, len(sub), sub, int(frame_number), float(subframe), fps_num, fps_den,
        LIVELINK_COUNT, *vals.tolist(),
    )  # fmt: skip


def decode_livelink_packet(data: bytes) -> dict:
    """Parse a Live Link Face UDP packet (version 6).

    Returns
    -------
    dict with ``version``, ``device_id``, ``subject``, ``frame_number``, ``subframe``, ``fps_num``,
    ``fps_den``, ``values`` (61,) float32 in packet order (names in ``LIVELINK_NAMES``), ``weights``
    (52,) float32 canonical ARKit order, ``head`` (3,) yaw/pitch/roll radians, ``eyes`` (2, 3)
    yaw/pitch/roll radians (left, right). Angles are as sent, in Live Link's convention;
    :func:`facecap.livelink.from_livelink_angles` gives facecap's.

    Raises
    ------
    ValueError
        Truncated or malformed packet, unknown version, or a blendshape count other than 61.
    """
    data = bytes(data)
    if len(data) < 9:
        raise ValueError(f"Live Link packet too short ({len(data)} bytes)")
    version = data[0]
    if version != LIVELINK_VERSION:
        raise ValueError(f"Live Link packet version {version}, only version {LIVELINK_VERSION} is supported")
    n_dev = int.from_bytes(data[1:5], "big", signed=True)
    if not 0 <= n_dev <= len(data) - 9:
        raise ValueError(f"Live Link packet: bad device id length {n_dev} in a {len(data)}-byte packet")
    j = 5 + n_dev
    n_sub = int.from_bytes(data[j : j + 4], "big", signed=True)
    if not 0 <= n_sub <= len(data) - j - 4:
        raise ValueError(f"Live Link packet: bad subject name length {n_sub} in a {len(data)}-byte packet")
    st = _livelink_struct(n_dev, n_sub)
    if len(data) != st.size:
        k = j + 4 + n_sub + 16
        count = data[k] if k < len(data) else None
        raise ValueError(
            f"Live Link packet is {len(data)} bytes, expected {st.size} for {LIVELINK_COUNT} values "
            f"(blendshape count byte: {count})"
        )
    f = st.unpack(data)
    if f[9] != LIVELINK_COUNT:
        raise ValueError(f"Live Link packet blendshape count is {f[9]}, expected {LIVELINK_COUNT}")
    vals = np.array(f[10:], dtype=np.float32)
    try:
        dev, sub = f[2].decode("utf-8"), f[4].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"Live Link packet: device id / subject not UTF-8 ({e})") from None
    return {
        "version": f[0],
        "device_id": dev,
        "subject": sub,
        "frame_number": f[5],
        "subframe": f[6],
        "fps_num": f[7],
        "fps_den": f[8],
        "values": vals,
        "weights": arkit.from_order(vals[:52], "unreal"),
        "head": vals[52:55].copy(),
        "eyes": vals[55:61].reshape(2, 3).copy(),
    }


def livelink_frame_time(timestamp: float, fps_num: int = 60, fps_den: int = 1) -> tuple[int, float]:
    """(frame number, subframe) of a timestamp in seconds at ``fps_num / fps_den``.

    The timestamp is taken modulo one day, like a time-of-day timecode, so the frame number fits int32.
    """
    rate = fps_num / fps_den
    x = (float(timestamp) % 86400.0) * rate
    frame = math.floor(x)
    sub = min(max(x - frame, 0.0), math.nextafter(1.0, 0.0))
    return int(frame), float(sub)


def _default_device_id() -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{socket.gethostname()}.facecap")).upper()


class LiveLinkSink(UdpSink):
    """Live Link Face UDP to Unreal Engine (add a "LiveLinkFace" / "Apple ARKit" source on port 11111).

    Parameters
    ----------
    host, port : Unreal machine (default 127.0.0.1:11111)
    subject : str, Live Link subject name shown in Unreal
    device_id : str, defaults to a UUID stable for this machine
    fps, fps_den : int, frame-time rate ``fps / fps_den`` (60/1 like the iPhone app)
    """

    scheme = "livelink"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORTS["livelink"],
        *,
        subject: str = "facecap",
        device_id: str | None = None,
        fps: int = 60,
        fps_den: int = 1,
    ) -> None:
        if not isinstance(subject, str) or not subject:
            raise ValueError(f"subject must be a non-empty name, got {subject!r}")
        if not (isinstance(fps, int) and isinstance(fps_den, int) and fps > 0 and fps_den > 0):
            raise ValueError(f"fps and fps_den must be positive integers, got {fps!r}/{fps_den!r}")
        self.subject, self.fps, self.fps_den = subject, fps, fps_den
        self.device_id = device_id or _default_device_id()
        super().__init__(host, port)

    def _datagrams(self, state: FaceState) -> Sequence:
        r, _ = self._pose(state)
        self._weights(state)
        frame, sub = livelink_frame_time(state.timestamp, self.fps, self.fps_den)
        pkt = encode_livelink_packet(
            state, self.device_id, self.subject, frame, sub, self.fps, self.fps_den, rotation=r
        )
        return (pkt,)
