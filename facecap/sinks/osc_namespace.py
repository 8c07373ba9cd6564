"""facecap's own OSC namespace (``osc://``), one bundle per frame (see facecap.sinks)."""

from __future__ import annotations

import math

import numpy as np

from .. import arkit
from ..pose import quat_xyzw, viewer_euler, viewer_rotation
from ..state import FaceState
from .osc import OscLayoutSink, OscMsg, osc_message
from .udp import DEFAULT_PORTS


class OscSink(OscLayoutSink):
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

    def _messages(self) -> list[OscMsg]:
        m = [
            osc_message("/facecap/frame", "id"),
            osc_message("/facecap/tracked", "i"),
            osc_message("/facecap/quality", "ff"),
            osc_message("/facecap/head/position", "fff"),
            osc_message("/facecap/head/quaternion", "ffff"),
            osc_message("/facecap/head/euler", "fff"),
            osc_message("/facecap/gaze", "ffff"),
            osc_message("/facecap/weights", "f" * arkit.NUM_SHAPES),
        ]
        if self.per_shape:
            m += [osc_message(f"/facecap/blend/{n}", "f") for n in arkit.ARKIT_NAMES]
        return m

    def _values(self, state: FaceState) -> np.ndarray:
        r, t = self._pose(state)
        w = self._weights(state)
        rms = float(state.rms_mm)
        v = self._v
        v[0:5] = [int(state.index), float(state.timestamp), 1.0 if state.tracked else 0.0,
                  float(state.quality), rms if math.isfinite(rms) else -1.0]  # fmt: skip
        v[5:8] = t
        v[8:12] = quat_xyzw(r.tolist())
        v[12:15] = viewer_euler(viewer_rotation(r))
        v[15:19] = self._gaze(state).ravel()
        v[19:71] = w
        if self.per_shape:
            v[71:123] = w
        return v
