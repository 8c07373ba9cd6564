"""VMC protocol sink (sh-akira/VirtualMotionCaptureProtocol): performer -> marionette."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import arkit
from ..pose import unity_eye_quaternions, unity_head_local
from ..state import FaceState
from .osc import OscLayoutSink, OscMsg, osc_message
from .udp import DEFAULT_PORTS

VMC_HEAD_OFFSET = (0.0, 0.08, 0.0)
"""Default VMC Head ``Bone/Pos``: the Neck -> Head rest offset of a typical humanoid avatar, metres,
Unity local axes (see :class:`VMCSink`)."""


class VMCSink(OscLayoutSink):
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
            from ..retarget import Mapping, load_mapping

            self.mapping = (
                vrm0 if isinstance(vrm0, Mapping) else load_mapping("vrm0" if vrm0 is True else vrm0)
            )
        self._t0: float | None = None
        self._p0: np.ndarray | None = None
        super().__init__(host, port, max_datagram=max_datagram, bundle=True, fast=fast)

    def _messages(self) -> list[OscMsg]:
        m = [
            osc_message("/VMC/Ext/OK", "i", 1),
            osc_message("/VMC/Ext/T", "f"),
            osc_message("/VMC/Ext/Bone/Pos", "sfffffff", "Head"),
        ]
        if self.eyes:
            for bone in ("LeftEye", "RightEye"):
                m.append(osc_message("/VMC/Ext/Bone/Pos", "sfffffff", bone, 0.0, 0.0, 0.0))
        if self.perfect_sync:
            m += [osc_message("/VMC/Ext/Blend/Val", "sf", arkit.pascal_name(n)) for n in arkit.ARKIT_NAMES]
        if self.mapping is not None:
            m += [osc_message("/VMC/Ext/Blend/Val", "sf", n) for n in self.mapping.target_names]
        m.append(osc_message("/VMC/Ext/Blend/Apply", ""))
        return m

    def _values(self, state: FaceState) -> np.ndarray:
        r, t = self._pose(state)
        p, q = unity_head_local(r, t)
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
            v[8:16] = unity_eye_quaternions(self._gaze(state)).ravel()
            k = 16
        w = self._weights(state)
        if self.perfect_sync:
            v[k : k + 52] = w
            k += 52
        if self.mapping is not None:
            v[k:] = self.mapping.apply_array(w)
        return v
