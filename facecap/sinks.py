"""Streaming sinks: send every FaceState to engines and tools over UDP (DESIGN.md §6).

Open one with a URL, send states, close it (or use ``with``)::

    from facecap.sinks import open_sink, open_sinks

    with open_sinks(["vmc://127.0.0.1:39539", "livelink://192.168.1.20"]) as sink:
        for state in tracker:          # FaceState per frame
            sink.send(state)           # never blocks, never raises on network trouble

=================================  =======  =========================================================
URL                                port     what the receiver gets
=================================  =======  =========================================================
``vmc://host:port``                39539    VMC protocol (VSeeFace, Warudo, VMagicMirror, VNyan, EVMC4U)
``osc://host:port``                9000     facecap's own OSC namespace (below)
``facecap://host:port``            8080     Face Cap OSC (Blender AddRoutes, Faceit, Face Cap receivers)
``livelink://host:port``           11111    Live Link Face UDP packets (Unreal Engine Live Link)
=================================  =======  =========================================================

Options go in the query string or as keyword arguments: ``vmc://127.0.0.1?vrm0=1&eyes=0``,
``vmc://host?head_offset=0,0.09,0.01&head_position=relative``, ``livelink://host?subject=Actor1&fps=30``,
``osc://host?per_shape=1`` (see each sink class).

Units and signs each receiver gets
----------------------------------
- ``vmc://``: bone rotations local to an avatar facing the viewer, Unity left-handed axes (x right,
  y up, z forward); Head ``Bone/Pos`` = the Neck -> Head rest offset in metres (``head_offset``,
  default (0, 0.08, 0)), head motion added only with ``head_position="relative"``.
- ``facecap://``: ``/HT`` centimetres (x right, y up, z toward the viewer), ``/HR`` degrees (pitch, yaw,
  roll) and eyes degrees (pitch, yaw), :mod:`facecap.pose` signs.
- ``osc://``: metres and radians, :mod:`facecap.pose` signs (below).
- ``livelink://``: radians in Live Link's convention (:mod:`facecap.livelink`): yaw > 0 toward the
  subject's right, pitch > 0 down, roll negated vs facecap -- for head and eyes alike.

Network trouble never reaches the capture loop: sockets are non-blocking and connected UDP;
``ECONNREFUSED`` (nothing listening), ``EHOSTUNREACH``, ``ENETUNREACH``, a full send buffer and an
unresolvable host are caught, counted in ``sink.stats`` and logged once per kind (``logging`` warning).
An unresolvable host is retried in the background every 2 s.

When ``state.tracked`` is False every sink keeps sending, with the head pose of the last tracked frame
(frontal, 0.6 m in front of the camera, before the first one) and the weights as given.

facecap OSC namespace (``osc://``), one bundle per frame
--------------------------------------------------------
- ``/facecap/frame (i)index (d)time``: frame index in the source; timestamp in seconds (source clock).
- ``/facecap/tracked (i)flag``: 1 while a face is tracked, 0 when lost.
- ``/facecap/quality (f)quality (f)rms_mm``: fit quality in [0, 1]; inlier RMS in mm (-1 when unknown).
- ``/facecap/head/position (f)x y z``: head (rig origin) in the camera frame, metres, OpenCV axes
  (x right, y down, z forward from the camera).
- ``/facecap/head/quaternion (f)x y z w``: rig -> camera rotation (rig axes: x the subject's left,
  y up, z out of the face).
- ``/facecap/head/euler (f)yaw pitch roll``: radians, ``facecap.pose`` convention (yaw > 0 toward the
  subject's left, pitch > 0 face down, roll > 0 counter-clockwise in the image).
- ``/facecap/gaze (f)left_yaw left_pitch right_yaw right_pitch``: radians, same signs as the head.
- ``/facecap/weights (f) x 52``: the 52 ARKit weights in canonical order (``facecap.arkit.ARKIT_NAMES``).
- ``/facecap/blend/<name> (f)value``: only with ``per_shape=True``, one message per shape (canonical
  name, e.g. ``/facecap/blend/jawOpen``), for tools that route by address.

Encoding and speed
------------------
All OSC is laid out by python-osc (``OscMessageBuilder`` / ``OscBundleBuilder``). Building ~60
messages with python-osc costs ~1.3 ms per frame, so each OSC sink builds its datagrams *once* with
python-osc and afterwards only writes the numeric arguments into their slots (float32 / int32 / float64
big-endian, through NumPy views). ``fast=False`` builds every frame from scratch with python-osc; the
tests check that both paths give identical bytes.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import math
import re
import socket
import struct
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from . import arkit
from .livelink import to_livelink_angles
from .pose import FRONTAL
from .state import FaceState

log = logging.getLogger(__name__)

DEFAULT_PORTS: dict[str, int] = {"vmc": 39539, "osc": 9000, "facecap": 8080, "livelink": 11111}
MAX_UDP_PAYLOAD = 65507
_DEFAULT_T = np.array([0.0, 0.0, 0.6])
_FLOAT32_MAX = 3.0e38
FACECAP_HT_PER_METRE = 100.0
"""Face Cap ``/HT`` is in centimetres: facecap's metres times this."""
VMC_HEAD_OFFSET = (0.0, 0.08, 0.0)
"""Default VMC Head ``Bone/Pos``: the Neck -> Head rest offset of a typical humanoid avatar, metres,
Unity local axes (see :class:`VMCSink`)."""


# ============================================================================================ transport
class _Endpoint:
    """A non-blocking, connected UDP socket that counts and reports errors instead of raising."""

    def __init__(self, host: str, port: int, label: str, retry_s: float = 2.0) -> None:
        self.host, self.port, self.label = host, int(port), label
        self.sent = 0
        self.failed = 0
        self.errors: dict[str, int] = {}
        self._warned: set[str] = set()
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._retry_s = retry_s
        if not self._connect():
            threading.Thread(target=self._retry, name=f"facecap-sink-resolve-{label}", daemon=True).start()

    def _report(self, kind: str, msg: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(
                "sink %s: %s (further %s errors are counted in sink.stats, not logged)", self.label, msg, kind
            )

    def _connect(self) -> bool:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except (socket.gaierror, UnicodeError) as e:
            self._report(
                "unresolved", f"cannot resolve host {self.host!r} ({e}); frames are dropped until it does"
            )
            return False
        err: OSError | None = None
        for af, kind, proto, _, addr in infos:
            s = socket.socket(af, kind, proto)
            try:
                s.setblocking(False)
                if af == socket.AF_INET and addr[0].endswith(".255"):
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                s.connect(addr)  # UDP: no handshake; lets the kernel report ICMP port-unreachable
            except OSError as e:
                s.close()
                err = e
                continue
            self._sock = s
            return True
        if err is not None:
            self._report(_errname(err), f"cannot open a socket to {self.host}:{self.port} ({err})")
        return False

    def _retry(self) -> None:
        while not self._stop.wait(self._retry_s):
            if self._connect():
                if self._stop.is_set():  # closed while we were resolving
                    self.close()
                else:
                    log.info("sink %s: %s resolved, sending", self.label, self.host)
                return

    def send(self, datagrams: Iterable) -> None:
        s = self._sock
        if s is None:
            n = len(datagrams) if isinstance(datagrams, Sequence) else sum(1 for _ in datagrams)
            self.failed += n
            self.errors["unresolved"] = self.errors.get("unresolved", 0) + n
            return
        for d in datagrams:
            try:
                s.send(d)
                self.sent += 1
            except OSError as e:  # ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, EAGAIN (buffer full), ...
                self.failed += 1
                kind = _errname(e)
                self._report(kind, f"send to {self.host}:{self.port} failed: {e.strerror or e}")

    def close(self) -> None:
        self._stop.set()
        s, self._sock = self._sock, None
        if s is not None:
            s.close()


def _errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, type(e).__name__)


# ============================================================================================ sinks
class Sink:
    """Something that takes one :class:`~facecap.state.FaceState` per frame.

    Subclasses implement :meth:`send`; all sinks are context managers (``close`` on exit).
    """

    url: str = ""

    def send(self, state: FaceState) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release the socket; idempotent."""

    @property
    def stats(self) -> dict:
        """Counters: frames sent, datagrams sent/failed, errors by kind."""
        return {}

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class _UdpSink(Sink):
    scheme = ""

    def __init__(self, host: str, port: int) -> None:
        if not isinstance(host, str) or not host:
            raise ValueError(f"host must be a non-empty string such as '127.0.0.1', got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an integer in 1..65535, got {port!r}")
        self.host, self.port = host, port
        self.url = f"{self.scheme}://{host}:{port}"
        self.frames = 0
        self._closed = False
        self._last_r = FRONTAL.copy()
        self._last_t = _DEFAULT_T.copy()
        self._ep = _Endpoint(host, port, self.url)

    # ---- pose hold for lost frames
    def _pose(self, state: FaceState) -> tuple[np.ndarray, np.ndarray]:
        r = np.asarray(state.rotation, dtype=np.float64)
        t = np.asarray(state.translation, dtype=np.float64)
        if r.shape != (3, 3) or t.shape != (3,):
            raise ValueError(
                f"state.rotation must be (3, 3) and state.translation (3,), got {r.shape} and {t.shape}"
            )
        if state.tracked and math.isfinite(r.sum() + t.sum()):
            self._last_r, self._last_t = r.copy(), t.copy()  # the caller may reuse its arrays
        return self._last_r, self._last_t

    @staticmethod
    def _weights(state: FaceState) -> np.ndarray:
        w = np.asarray(state.weights, dtype=np.float64)
        if w.shape != (arkit.NUM_SHAPES,):
            raise ValueError(f"state.weights must be (52,) in canonical ARKit order, got shape {w.shape}")
        if math.isfinite(w.sum()):  # one reduction instead of nan_to_num (5x slower) on every frame
            return w
        return np.nan_to_num(w, nan=0.0, posinf=1.0, neginf=0.0)

    @staticmethod
    def _gaze(state: FaceState) -> np.ndarray:
        g = np.asarray(state.gaze, dtype=np.float64)
        if g.shape != (2, 2):
            raise ValueError(f"state.gaze must be (2, 2) radians (eye x (yaw, pitch)), got shape {g.shape}")
        if math.isfinite(g.sum()):
            return g
        return np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)

    def _datagrams(self, state: FaceState) -> Sequence:  # pragma: no cover - interface
        raise NotImplementedError

    def encode(self, state: FaceState) -> list[bytes]:
        """The datagrams :meth:`send` would send for ``state`` (copies; updates the pose hold)."""
        return [bytes(d) for d in self._datagrams(state)]

    def send(self, state: FaceState) -> None:
        """Encode and send one frame. Network errors are counted and logged once, never raised.

        Raises
        ------
        RuntimeError
            If the sink was closed.
        ValueError / TypeError
            If ``state`` is not a FaceState with the documented shapes.
        """
        if self._closed:
            raise RuntimeError(f"{self!r} is closed")
        if not isinstance(state, FaceState):
            raise TypeError(f"send() takes a facecap.state.FaceState, got {type(state).__name__}")
        self._ep.send(self._datagrams(state))
        self.frames += 1

    def close(self) -> None:
        self._closed = True
        self._ep.close()

    @property
    def stats(self) -> dict:
        return {
            "url": self.url,
            "frames": self.frames,
            "datagrams_sent": self._ep.sent,
            "datagrams_failed": self._ep.failed,
            "errors": dict(self._ep.errors),
        }


# ============================================================================================ OSC layout
@dataclass(frozen=True)
class _Msg:
    """One OSC message of a fixed layout: ``fixed[i]`` is a static argument or None (a per-frame slot)."""

    address: str
    types: str
    fixed: tuple


def _msg(address: str, types: str, *fixed) -> _Msg:
    fixed = fixed + (None,) * (len(types) - len(fixed))
    if len(fixed) != len(types):
        raise AssertionError(f"{address}: {len(fixed)} arguments for type tags {types!r}")
    return _Msg(address, types, tuple(fixed))


def _build_message(m: _Msg, values: Iterable[float] = ()) -> object:
    """python-osc message for ``m``; slots take ``values`` in order (0 placeholders when exhausted)."""
    it = iter(values)
    b = OscMessageBuilder(address=m.address)
    for t, f in zip(m.types, m.fixed, strict=True):
        if f is None:
            v = next(it, 0)
            f = int(v) if t == "i" else float(v)
        b.add_arg(f, t)
    return b.build()


def _slot_offsets(dgram: bytes) -> list[tuple[int, int, str]]:
    """(argument index, byte offset, type) of the numeric arguments of an OSC message datagram."""
    _, i = osc_types.get_string(dgram, 0)
    tags, i = osc_types.get_string(dgram, i)
    out = []
    for a, t in enumerate(tags[1:]):
        if t == "s":
            _, i = osc_types.get_string(dgram, i)
        elif t in "if":
            out.append((a, i, t))
            i += 4
        elif t == "d":
            out.append((a, i, t))
            i += 8
        elif t not in "TFN":
            raise AssertionError(f"unsupported OSC type tag {t!r} in a sink layout")
    return out


class _Layout:
    """Per-frame OSC datagrams of fixed structure, laid out once by python-osc.

    ``render(values)`` writes the numeric slots (in message/argument order) into the prebuilt
    datagrams and returns views of them; ``reference(values)`` builds the same bytes from scratch with
    python-osc (the ``fast=False`` path and the tests' oracle).
    """

    def __init__(self, msgs: Sequence[_Msg], *, max_datagram: int = 1400, bundle: bool = True) -> None:
        if not 64 <= max_datagram <= MAX_UDP_PAYLOAD:
            raise ValueError(f"max_datagram must be in 64..{MAX_UDP_PAYLOAD} bytes, got {max_datagram}")
        self.msgs = tuple(msgs)
        self.bundle = bundle
        built = [_build_message(m) for m in self.msgs]
        # greedy grouping of messages into datagrams of at most max_datagram bytes
        groups: list[list[int]] = []
        size = 0
        for k, b in enumerate(built):
            need = 4 + b.size if bundle else b.size
            if bundle and (not groups or size + need > max_datagram):
                groups.append([])
                size = 16  # "#bundle\0" + time tag
            elif not bundle:
                groups.append([])
            groups[-1].append(k)
            size += need
            if (16 if bundle else 0) + need > MAX_UDP_PAYLOAD:
                raise ValueError(f"OSC message {self.msgs[k].address} is larger than a UDP datagram")
        self.groups = groups
        datagrams: list[bytes] = []
        offsets: list[tuple[int, str]] = []
        base = 0
        for g in groups:
            if bundle:
                bb = OscBundleBuilder(IMMEDIATELY)
                for k in g:
                    bb.add_content(built[k])
                d = bb.build().dgram
                pos = 16
            else:
                d = built[g[0]].dgram
                pos = 0
            for k in g:
                if bundle:
                    pos += 4  # element size
                mdg = built[k].dgram
                if d[pos : pos + len(mdg)] != mdg:
                    raise AssertionError("unexpected python-osc bundle layout")
                fixed = self.msgs[k].fixed
                offsets += [(base + pos + o, t) for a, o, t in _slot_offsets(mdg) if fixed[a] is None]
                pos += len(mdg)
            datagrams.append(d)
            base += len(d)
        self.n_slots = len(offsets)
        self._buf = bytearray(b"".join(datagrams))
        mv = memoryview(self._buf)
        self._views: list[memoryview] = []
        base = 0
        for d in datagrams:
            self._views.append(mv[base : base + len(d)])
            base += len(d)
        f4 = np.frombuffer(self._buf, dtype=">f4")
        i4 = np.frombuffer(self._buf, dtype=">i4")
        sel = {t: [k for k, (_, tt) in enumerate(offsets) if tt == t] for t in "fid"}
        self._f4, self._i4 = f4, i4
        self._f_word = np.array([offsets[k][0] // 4 for k in sel["f"]], dtype=np.intp)
        self._f_sel = np.array(sel["f"], dtype=np.intp)
        self._i_word = np.array([offsets[k][0] // 4 for k in sel["i"]], dtype=np.intp)
        self._i_sel = np.array(sel["i"], dtype=np.intp)
        self._d = [
            (np.frombuffer(self._buf, dtype=">f8", count=1, offset=offsets[k][0]), k) for k in sel["d"]
        ]

    @property
    def sizes(self) -> list[int]:
        return [len(v) for v in self._views]

    def render(self, values: np.ndarray) -> list[memoryview]:
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (self.n_slots,):
            raise AssertionError(f"layout has {self.n_slots} slots, got {v.shape}")
        v = np.clip(v, -_FLOAT32_MAX, _FLOAT32_MAX)  # float32 range (python-osc would overflow)
        self._f4[self._f_word] = v[self._f_sel]
        if len(self._i_sel):
            self._i4[self._i_word] = np.clip(v[self._i_sel], -(2**31), 2**31 - 1).astype(np.int64)
        for view, k in self._d:
            view[0] = v[k]
        return self._views

    def reference(self, values: np.ndarray) -> list[bytes]:
        v = np.clip(np.asarray(values, dtype=np.float64), -_FLOAT32_MAX, _FLOAT32_MAX)
        v_it = iter(v.tolist())
        per_msg = []
        for m in self.msgs:
            n = sum(f is None for f in m.fixed)
            per_msg.append([next(v_it) for _ in range(n)])
        out = []
        for g in self.groups:
            if self.bundle:
                bb = OscBundleBuilder(IMMEDIATELY)
                for k in g:
                    bb.add_content(_build_message(self.msgs[k], per_msg[k]))
                out.append(bb.build().dgram)
            else:
                out.append(_build_message(self.msgs[g[0]], per_msg[g[0]]).dgram)
        return out


class _OscSink(_UdpSink):
    """Base of the OSC sinks: a fixed :class:`_Layout` and a ``_values(state)`` slot vector."""

    def __init__(self, host: str, port: int, *, max_datagram: int, bundle: bool, fast: bool) -> None:
        super().__init__(host, port)
        try:
            self.layout = _Layout(self._messages(), max_datagram=max_datagram, bundle=bundle)
        except Exception:
            self.close()
            raise
        self._v = np.zeros(self.layout.n_slots)
        self.fast = bool(fast)

    def _messages(self) -> list[_Msg]:  # pragma: no cover - interface
        raise NotImplementedError

    def _values(self, state: FaceState) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def _datagrams(self, state: FaceState) -> Sequence:
        v = self._values(state)
        return self.layout.render(v) if self.fast else self.layout.reference(v)


# Per-frame pose terms in closed form: scipy's Rotation costs ~20-70 us per call, a third of the frame
# budget. tests/test_sinks.py checks each against facecap.pose (head_euler, to_unity) and scipy.
def _quat_xyzw(m: list) -> list[float]:
    """Unit quaternion (x, y, z, w), w >= 0, of a 3x3 rotation given as nested lists (Shepperd)."""
    (a, b, c), (d, e, f), (g, h, i) = m
    tr = a + e + i
    if tr > 0.0:
        k = 2.0 * math.sqrt(tr + 1.0)
        q = [(h - f) / k, (c - g) / k, (d - b) / k, 0.25 * k]
    elif a > e and a > i:
        k = 2.0 * math.sqrt(max(1.0 + a - e - i, 1e-300))
        q = [0.25 * k, (b + d) / k, (c + g) / k, (h - f) / k]
    elif e > i:
        k = 2.0 * math.sqrt(max(1.0 + e - a - i, 1e-300))
        q = [(b + d) / k, 0.25 * k, (f + h) / k, (c - g) / k]
    else:
        k = 2.0 * math.sqrt(max(1.0 + i - a - e, 1e-300))
        q = [(c + g) / k, (f + h) / k, 0.25 * k, (d - b) / k]
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    n = -n if q[3] < 0.0 else n
    return [q[0] / n, q[1] / n, q[2] / n, q[3] / n]


def _viewer(r: np.ndarray) -> list:
    """``FRONTAL @ r`` as nested lists: the head rotation in the viewer frame (x right, y up, z to camera)."""
    r0, r1, r2 = r.tolist()
    return [r0, [-x for x in r1], [-x for x in r2]]


def _euler(rv: list) -> list[float]:
    """(yaw, pitch, roll) radians of a viewer-frame rotation ``Ry(yaw) Rx(pitch) Rz(roll)``; equals
    :func:`facecap.pose.head_euler` away from pitch = +-90 degrees."""
    return [
        math.atan2(rv[0][2], rv[2][2]),
        math.asin(min(1.0, max(-1.0, -rv[1][2]))),
        math.atan2(rv[1][0], rv[1][1]),
    ]


def _eye_quats_unity(gaze: np.ndarray) -> np.ndarray:
    """(2, 4) eye-bone local rotations (x, y, z, w) in Unity's left-handed axes from gaze (2, 2).

    The eye rotation in rig axes is ``Ry(yaw) @ Rx(pitch)`` (yaw > 0 toward the subject's left, pitch > 0
    down, facecap.pose signs); Unity's bone frame is the rig frame with x flipped (x = the head's right),
    which maps a quaternion (x, y, z, w) to (x, -y, -z, w).
    """
    out = []
    for yaw, pitch in gaze.tolist():
        s1, c1, s2, c2 = (
            math.sin(0.5 * yaw),
            math.cos(0.5 * yaw),
            math.sin(0.5 * pitch),
            math.cos(0.5 * pitch),
        )
        # qy(yaw) * qx(pitch) = (c1 s2, s1 c2, -s1 s2, c1 c2); then the x-reflection
        out.append([c1 * s2, -s1 * c2, s1 * s2, c1 * c2])
    return np.array(out)


def _head_local_unity(rotation: np.ndarray, translation: np.ndarray) -> tuple[list[float], list[float]]:
    """Head pose of :func:`facecap.pose.to_unity`, its rotation re-expressed in the frame of an avatar
    that faces the camera (a 180 degree yaw in Unity): identity for a frontal face; the avatar turns to
    its left when the performer turns to theirs.

    ``to_unity`` gives ``r_u = S R diag(-1, 1, 1)`` with ``S = diag(1, -1, 1)``; ``Ry(180)^T r_u`` equals
    ``Sx R_v Sx`` (``R_v = FRONTAL R``, ``Sx = diag(-1, 1, 1)``), whose quaternion is (x, -y, -z, w) of
    ``R_v``'s. Returns (position (3,) in Unity camera space, quaternion (4,) x, y, z, w).
    """
    t = translation.tolist()
    x, y, z, w = _quat_xyzw(_viewer(rotation))
    return [t[0], -t[1], t[2]], [x, -y, -z, w]


# ============================================================================================ VMC
class VMCSink(_OscSink):
    """VMC protocol performer -> marionette (sh-akira/VirtualMotionCaptureProtocol).

    Per frame (bundles of at most ``max_datagram`` bytes, sent in order)::

        /VMC/Ext/OK (i)1
        /VMC/Ext/T (f)seconds since the first frame
        /VMC/Ext/Bone/Pos (s)"Head" (f)px py pz qx qy qz qw     (p: head_offset by default)
        /VMC/Ext/Bone/Pos (s)"LeftEye" / "RightEye" (f)0 0 0 qx qy qz qw        (eyes=True)
        /VMC/Ext/Blend/Val (s)PascalName (f)value   x 52 perfect-sync clips    (perfect_sync=True)
        /VMC/Ext/Blend/Val (s)clip (f)value         per mapping target         (vrm0=...)
        /VMC/Ext/Blend/Apply

    Bone rotations are local rotations in Unity's left-handed axes (x right, y up, z forward) of an
    avatar facing the viewer: identity for a face looking into the camera; the avatar turns, nods and
    rolls like the performer (their left is its left), derived from :func:`facecap.pose.to_unity`.

    ``Bone/Pos`` carries the bone's *local* pose (the protocol's "Local pose"; the reference sender sends
    ``Transform.localPosition`` and EVMC4U applies it to ``localPosition`` by default), so the Head
    position is the Head bone's offset from its parent, the Neck: sending (0, 0, 0) collapses the head
    onto the neck and camera metres throw it ~0.6 m away in such receivers. Receivers that drive only
    rotations (VSeeFace, VMagicMirror) ignore it.

    Parameters
    ----------
    host, port : receiver address (default 127.0.0.1:39539)
    eyes : bool
        Send LeftEye/RightEye bone rotations from ``state.gaze``.
    perfect_sync : bool
        Send the 52 ARKit weights as PascalCase clips (``EyeBlinkLeft``...).
    vrm0 : bool, str, Path or Mapping
        Also send VRM0 preset clips: True uses the built-in ``vrm0`` mapping; a path or Mapping uses
        that mapping.
    head_offset : (3,) float, metres
        The avatar's Neck -> Head rest offset in Unity local axes (x right, y up, z forward), sent as the
        Head ``Bone/Pos``; in a URL ``head_offset=0,0.09,0.01``. The default (0, 0.08, 0) is a typical
        adult humanoid: the Head bone sits at the skull base about 7 - 10 cm above the Neck bone (a VRoid
        avatar's is ~0.074 m); give your avatar's own value (its Head bone's ``localPosition``) when the
        receiver applies positions.
    head_position : {"rest", "relative", "camera"}
        What the Head ``Bone/Pos`` carries: ``"rest"`` (default) always ``head_offset``, no head
        translation; ``"relative"`` ``head_offset`` plus the head's displacement since the first tracked
        frame, in the avatar's axes (metres; the performer leaning to their left moves the avatar's head
        to its left); ``"camera"`` the head position in Unity camera space (camera at the origin looking
        +z, ~0.6 m away) instead of the offset, for receivers that take Head as a world position.
    max_datagram : int
        Split bundles above this size (bytes); 1400 avoids IP fragmentation on Ethernet/Wi-Fi.
    fast : bool
        Patch prebuilt python-osc datagrams (True) or build each frame with python-osc (False).
    """

    scheme = "vmc"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORTS["vmc"],
        *,
        eyes: bool = True,
        perfect_sync: bool = True,
        vrm0=False,
        head_offset: Sequence[float] = VMC_HEAD_OFFSET,
        head_position: str = "rest",
        max_datagram: int = 1400,
        fast: bool = True,
    ) -> None:
        if head_position == "zero":
            raise ValueError("head_position='zero' was removed: pass head_offset=(0, 0, 0) to send zeros")
        if head_position not in ("rest", "relative", "camera"):
            raise ValueError(f"head_position must be 'rest', 'relative' or 'camera', got {head_position!r}")
        try:
            off = [float(x) for x in head_offset]
        except (TypeError, ValueError):
            off = []
        if len(off) != 3 or not all(math.isfinite(x) for x in off):
            raise ValueError(
                f"head_offset must be 3 finite numbers (x, y, z) in metres, Unity local axes, such as "
                f"(0, 0.08, 0), got {head_offset!r}"
            )
        self.head_offset = tuple(off)
        self.eyes, self.perfect_sync, self.head_position = bool(eyes), bool(perfect_sync), head_position
        self.mapping = None
        if vrm0 is not False and vrm0 is not None:
            from .retarget import Mapping, load_mapping

            self.mapping = (
                vrm0 if isinstance(vrm0, Mapping) else load_mapping("vrm0" if vrm0 is True else vrm0)
            )
        self._t0: float | None = None
        self._p0: np.ndarray | None = None
        super().__init__(host, port, max_datagram=max_datagram, bundle=True, fast=fast)

    def _messages(self) -> list[_Msg]:
        m = [
            _msg("/VMC/Ext/OK", "i", 1),
            _msg("/VMC/Ext/T", "f"),
            _msg("/VMC/Ext/Bone/Pos", "sfffffff", "Head"),
        ]
        if self.eyes:
            for bone in ("LeftEye", "RightEye"):
                m.append(_msg("/VMC/Ext/Bone/Pos", "sfffffff", bone, 0.0, 0.0, 0.0))
        if self.perfect_sync:
            m += [_msg("/VMC/Ext/Blend/Val", "sf", arkit.pascal_name(n)) for n in arkit.ARKIT_NAMES]
        if self.mapping is not None:
            m += [_msg("/VMC/Ext/Blend/Val", "sf", n) for n in self.mapping.target_names]
        m.append(_msg("/VMC/Ext/Blend/Apply", ""))
        return m

    def _values(self, state: FaceState) -> np.ndarray:
        r, t = self._pose(state)
        p, q = _head_local_unity(r, t)
        if self.head_position == "relative":
            if self._p0 is None and state.tracked:
                self._p0 = p
            p0 = self._p0 or p
            # rest offset + displacement, Unity camera space -> avatar axes (180 degree yaw)
            o = self.head_offset
            p = [o[0] + p0[0] - p[0], o[1] + p[1] - p0[1], o[2] + p0[2] - p[2]]
        elif self.head_position == "rest":
            p = list(self.head_offset)
        ts = float(state.timestamp)
        if self._t0 is None:
            self._t0 = ts
        v = self._v
        v[0] = ts - self._t0
        v[1:8] = p + q
        k = 8
        if self.eyes:
            v[8:16] = _eye_quats_unity(self._gaze(state)).ravel()
            k = 16
        w = self._weights(state)
        if self.perfect_sync:
            v[k : k + 52] = w
            k += 52
        if self.mapping is not None:
            v[k:] = self.mapping.apply_array(w)
        return v


# ============================================================================================ own OSC
class OscSink(_OscSink):
    """facecap's own OSC namespace (see the module docstring), one bundle per frame.

    Parameters
    ----------
    host, port : receiver address (default 127.0.0.1:9000)
    per_shape : bool
        Also send ``/facecap/blend/<canonicalName> (f)value`` for each of the 52 shapes.
    max_datagram, fast : see :class:`VMCSink`
    """

    scheme = "osc"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORTS["osc"],
        *,
        per_shape: bool = False,
        max_datagram: int = 1400,
        fast: bool = True,
    ) -> None:
        self.per_shape = bool(per_shape)
        super().__init__(host, port, max_datagram=max_datagram, bundle=True, fast=fast)

    def _messages(self) -> list[_Msg]:
        m = [
            _msg("/facecap/frame", "id"),
            _msg("/facecap/tracked", "i"),
            _msg("/facecap/quality", "ff"),
            _msg("/facecap/head/position", "fff"),
            _msg("/facecap/head/quaternion", "ffff"),
            _msg("/facecap/head/euler", "fff"),
            _msg("/facecap/gaze", "ffff"),
            _msg("/facecap/weights", "f" * arkit.NUM_SHAPES),
        ]
        if self.per_shape:
            m += [_msg(f"/facecap/blend/{n}", "f") for n in arkit.ARKIT_NAMES]
        return m

    def _values(self, state: FaceState) -> np.ndarray:
        r, t = self._pose(state)
        w = self._weights(state)
        rms = float(state.rms_mm)
        v = self._v
        v[0:5] = [int(state.index), float(state.timestamp), 1.0 if state.tracked else 0.0,
                  float(state.quality), rms if math.isfinite(rms) else -1.0]  # fmt: skip
        v[5:8] = t
        v[8:12] = _quat_xyzw(r.tolist())
        v[12:15] = _euler(_viewer(r))
        v[15:19] = self._gaze(state).ravel()
        v[19:71] = w
        if self.per_shape:
            v[71:123] = w
        return v


# ============================================================================================ Face Cap
class FaceCapSink(_OscSink):
    """Face Cap (Bannaflak) live-mode OSC, for receivers written for the Face Cap iOS app.

    Per frame::

        /HT (f)x y z           head position, centimetres, ARKit camera axes (x right, y up, z to the viewer)
        /HR (f)x y z           head rotation in degrees about x, y, z: (pitch, yaw, roll) of facecap.pose
        /HRQ (f)x y z w        the same rotation as a quaternion
        /ELR (f)x y            left eye rotation in degrees: (pitch, yaw)
        /ERR (f)x y            right eye rotation in degrees: (pitch, yaw)
        /W (i)index (f)value   x 52, Face Cap's index order (``facecap.arkit.ORDERS["facecap_osc"]``)

    Angles follow Face Cap's Unity sample receiver (euler x, y, z applied as Unity localEulerAngles
    after a right- to left-handed flip) and the facecap.pose signs: yaw > 0 toward the subject's left,
    pitch > 0 face down. ``/HT`` is in centimetres, as receivers read it: Faceit multiplies it by 0.01
    (``FACECAP_SCALE_TO_BLENDER``) to get Blender metres and OpenMoBu takes it as MotionBuilder
    centimetres.

    Parameters
    ----------
    host, port : receiver address (default 127.0.0.1:8080, Face Cap's Unity sample)
    bundle : bool
        One OSC bundle per frame (True) or every message in its own datagram, like a plain sender.
    max_datagram, fast : see :class:`VMCSink`
    """

    scheme = "facecap"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORTS["facecap"],
        *,
        bundle: bool = True,
        max_datagram: int = 1400,
        fast: bool = True,
    ) -> None:
        self._perm = np.array([arkit.INDEX[n] for n in arkit.ORDERS["facecap_osc"]], dtype=np.intp)
        super().__init__(host, port, max_datagram=max_datagram, bundle=bundle, fast=fast)

    def _messages(self) -> list[_Msg]:
        m = [
            _msg("/HT", "fff"),
            _msg("/HR", "fff"),
            _msg("/HRQ", "ffff"),
            _msg("/ELR", "ff"),
            _msg("/ERR", "ff"),
        ]
        m += [_msg("/W", "if", k) for k in range(len(self._perm))]
        return m

    def _values(self, state: FaceState) -> np.ndarray:
        r, t = self._pose(state)
        rv = _viewer(r)  # head rotation in the viewer frame (x right, y up, z toward the camera)
        yaw, pitch, roll = _euler(rv)
        g = np.degrees(self._gaze(state))
        tx, ty, tz = t.tolist()
        v = self._v
        cm = FACECAP_HT_PER_METRE
        v[0:6] = [cm * tx, -cm * ty, -cm * tz, math.degrees(pitch), math.degrees(yaw), math.degrees(roll)]
        v[6:10] = _quat_xyzw(rv)
        v[10:14] = [g[0, 1], g[0, 0], g[1, 1], g[1, 0]]
        v[14:] = self._weights(state)[self._perm]
        return v


# ============================================================================================ Live Link
# Live Link Face UDP packet, version 6, big-endian (DESIGN.md §6). Layout checked against:
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
    head = _euler(_viewer(r)) if np.isfinite(r).all() else [0.0, 0.0, 0.0]
    # head, left eye, right eye: facecap.pose convention -> Live Link's (the one rule, facecap.livelink)
    ang = [head, [g[0, 0], g[0, 1], 0.0], [g[1, 0], g[1, 1], 0.0]]
    out[52:61] = to_livelink_angles(ang).ravel()
    return np.clip(np.nan_to_num(out, copy=False), -_FLOAT32_MAX, _FLOAT32_MAX, out=out)


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


class LiveLinkSink(_UdpSink):
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


# ============================================================================================ fan-out
class MultiSink(Sink):
    """Send every frame to several sinks (one failing receiver does not affect the others)."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks: list[Sink] = list(sinks)
        for s in self.sinks:
            if not isinstance(s, Sink):
                raise TypeError(f"MultiSink takes Sink objects, got {type(s).__name__}")
        self.url = ",".join(s.url for s in self.sinks)

    def send(self, state: FaceState) -> None:
        err: BaseException | None = None
        for s in self.sinks:
            try:
                s.send(state)
            except Exception as e:  # deliver to the others, then raise the first programming error
                err = err or e
        if err is not None:
            raise err

    def close(self) -> None:
        for s in self.sinks:
            s.close()

    @property
    def stats(self) -> dict:
        return {"sinks": [s.stats for s in self.sinks]}


# ============================================================================================ URLs
SINKS: dict[str, type[_UdpSink]] = {
    "vmc": VMCSink,
    "osc": OscSink,
    "facecap": FaceCapSink,
    "livelink": LiveLinkSink,
}


def _option_value(cls: type, key: str, raw: str, url: str):
    params = {n: p for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind == p.KEYWORD_ONLY}
    if key not in params:
        raise ValueError(f"{url}: unknown option {key!r} for {cls.__name__}; options: {', '.join(params)}")
    default = params[key].default
    if isinstance(default, tuple):  # a vector such as head_offset=0,0.08,0
        try:
            return tuple(float(x) for x in raw.replace(";", ",").split(","))
        except ValueError:
            raise ValueError(f"{url}: option {key} must be comma-separated numbers, got {raw!r}") from None
    if isinstance(default, bool) or key == "vrm0":
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        if key == "vrm0":
            return raw  # a mapping file or built-in name
        raise ValueError(f"{url}: option {key} must be 1/0/true/false, got {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{url}: option {key} must be an integer, got {raw!r}") from None
    return raw


def open_sink(url: str, **options) -> Sink:
    """Open a sink from a URL such as ``vmc://127.0.0.1:39539``.

    Parameters
    ----------
    url : str
        ``scheme://host[:port][?option=value&...]`` with scheme ``vmc``, ``osc``, ``facecap`` or
        ``livelink``; host defaults to 127.0.0.1 and port to ``DEFAULT_PORTS[scheme]``.
    **options
        Keyword options of the sink class (override the query string).

    Raises
    ------
    ValueError
        Unknown scheme, bad port, path/fragment/credentials in the URL, unknown option.
    """
    if not isinstance(url, str):
        raise TypeError(f"sink URL must be a str like 'vmc://127.0.0.1:39539', got {type(url).__name__}")
    example = "e.g. vmc://127.0.0.1:39539, osc://host:9000, facecap://host:8080, livelink://host:11111"
    if "://" not in url:
        raise ValueError(f"{url!r} is not a sink URL; give scheme://host:port ({example})")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SINKS:
        import difflib

        close = difflib.get_close_matches(scheme, SINKS, n=1)
        hint = f"; did you mean {close[0]}://?" if close else ""
        raise ValueError(f"unknown sink scheme {parts.scheme!r} in {url!r}{hint} (choose {', '.join(SINKS)})")
    if parts.path not in ("", "/") or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{url!r}: a sink URL is only scheme://host:port[?options] ({example})")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r}: the port must be an integer in 1..65535") from None
    if port == 0:
        raise ValueError(f"{url!r}: the port must be an integer in 1..65535")
    host = parts.hostname or "127.0.0.1"
    cls = SINKS[scheme]
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValueError(f"{url!r}: bad query string {parts.query!r}; use ?key=value&key=value") from None
    kw = {k: _option_value(cls, k, v, url) for k, v in query}
    params = {n for n, p in inspect.signature(cls.__init__).parameters.items() if p.kind == p.KEYWORD_ONLY}
    bad = sorted(set(options) - params)
    if bad:
        raise ValueError(f"unknown option(s) {bad} for {cls.__name__}; options: {', '.join(sorted(params))}")
    kw.update(options)
    return cls(host, port or DEFAULT_PORTS[scheme], **kw)


def open_sinks(urls: str | Iterable[str]) -> Sink:
    """One sink for one URL, a :class:`MultiSink` for several (a list, or one comma-separated string).

    Options go in each URL's query string (``vmc://host?vrm0=1``).
    """
    if isinstance(urls, str):  # split at commas that start a new scheme:// (option values may hold commas)
        urls = [u for u in re.split(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)", urls) if u.strip()]
    urls = list(urls)
    if not urls:
        raise ValueError("no sink URL given")
    sinks: list[Sink] = []
    try:
        for u in urls:
            sinks.append(open_sink(u))
    except Exception:
        for s in sinks:
            s.close()
        raise
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)


__all__ = [
    "DEFAULT_PORTS",
    "FACECAP_HT_PER_METRE",
    "LIVELINK_NAMES",
    "VMC_HEAD_OFFSET",
    "FaceCapSink",
    "LiveLinkSink",
    "MultiSink",
    "OscSink",
    "Sink",
    "VMCSink",
    "decode_livelink_packet",
    "encode_livelink_packet",
    "livelink_frame_time",
    "open_sink",
    "open_sinks",
]
