"""Face Cap (Bannaflak) live-mode OSC sink, for receivers written for the Face Cap iOS app."""

from __future__ import annotations

import math

import numpy as np

from .. import arkit
from ..pose import quat_xyzw, viewer_euler, viewer_rotation
from ..state import FaceState
from .osc import OscLayoutSink, OscMsg, osc_message
from .udp import DEFAULT_PORTS

FACECAP_HT_PER_METRE = 100.0
"""Face Cap ``/HT`` is in centimetres: facecap's metres times this."""


class FaceCapSink(OscLayoutSink):
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

    def _messages(self) -> list[OscMsg]:
        m = [
            osc_message("/HT", "fff"),
            osc_message("/HR", "fff"),
            osc_message("/HRQ", "ffff"),
            osc_message("/ELR", "ff"),
            osc_message("/ERR", "ff"),
        ]
        m += [osc_message("/W", "if", k) for k in range(len(self._perm))]
        return m

    def _values(self, state: FaceState) -> np.ndarray:
        r, t = self._pose(state)
        rv = viewer_rotation(r)  # head rotation in the viewer frame (x right, y up, z toward the camera)
        yaw, pitch, roll = viewer_euler(rv)
        g = np.degrees(self._gaze(state))
        tx, ty, tz = t.tolist()
        v = self._v
        cm = FACECAP_HT_PER_METRE
        v[0:6] = [cm * tx, -cm * ty, -cm * tz, math.degrees(pitch), math.degrees(yaw), math.degrees(roll)]
        v[6:10] = quat_xyzw(rv)
        v[10:14] = [g[0, 1], g[0, 0], g[1, 1], g[1, 0]]
        v[14:] = self._weights(state)[self._perm]
        return v
