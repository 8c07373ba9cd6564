"""Streaming sinks: send every FaceState to engines and tools over UDP (docs/design.md).

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

Modules: ``base`` (the :class:`Sink` interface, fan-out), ``udp`` (transport), ``osc`` (OSC layout engine),
``vmc``, ``osc_namespace``, ``face_cap``, ``livelink_udp`` (one per protocol), ``urls`` (:func:`open_sink`),
``file`` (the per-frame CSV / JSON Lines layout, :class:`FileSink`).
"""

from .base import Collector, MultiSink, Sink
from .face_cap import FACECAP_HT_PER_METRE, FaceCapSink
from .file import CSV_COLUMNS, FileSink
from .livelink_udp import (
    LIVELINK_COUNT,
    LIVELINK_NAMES,
    LIVELINK_VERSION,
    LiveLinkSink,
    decode_livelink_packet,
    encode_livelink_packet,
    livelink_frame_time,
)
from .osc_namespace import OscSink
from .udp import DEFAULT_PORTS, MAX_UDP_PAYLOAD, UdpSink
from .urls import SINKS, open_sink, open_sinks
from .vmc import VMC_HEAD_OFFSET, VMCSink

__all__ = [
    "CSV_COLUMNS", "DEFAULT_PORTS", "FACECAP_HT_PER_METRE", "LIVELINK_COUNT", "LIVELINK_NAMES",
    "LIVELINK_VERSION", "MAX_UDP_PAYLOAD", "SINKS", "VMC_HEAD_OFFSET", "Collector", "FaceCapSink", "FileSink",
    "LiveLinkSink", "MultiSink", "OscSink", "Sink", "UdpSink", "VMCSink", "decode_livelink_packet",
    "encode_livelink_packet", "livelink_frame_time", "open_sink", "open_sinks",
]  # fmt: skip
