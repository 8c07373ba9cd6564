"""Takes: crash-safe recording of tracking results, and reading them back.

A take is a directory::

    TAKE/
        take.json        metadata, written first (atomically: tmp file + os.replace) and again at close
        frames-000.bin   fixed-size binary records, appended as frames arrive
        frames-001.bin   ... a new chunk every ``chunk_frames`` frames
        raw.db3          optional raw RGB-D (RealSense ROS2 bag) when recorded with ``raw_rgbd=True``,
        raw-001.db3      ... continued in a new bag every few seconds (a crash loses only the open one)

Modules: ``format`` (chunk and record layout, CRCs, ``take.json`` validation), ``recorder``
(:class:`TakeRecorder` and its fsync thread; durability is described there), ``model`` (the in-memory
:class:`Take`), ``reader`` (:func:`load_take`, recovery of damaged tails), ``livelink`` (Live Link Face
CSV <-> take). Timecodes (SMPTE ``HH:MM:SS:FF`` at ``round(fps)``, non-drop-frame, starting at the wall
clock of the first frame or ``start_timecode``) are :mod:`facecap.timecode`'s; the raw RGB-D writer is
:class:`facecap.realsense.raw.RawRecorder`. Design notes: docs/design.md.
"""

from ..timecode import (
    frame_offsets,
    frames_to_timecode,
    timecode_rate,
    timecode_to_frames,
    wallclock_timecode,
)
from .format import (
    CHUNK_HEADER,
    CHUNK_HEADER_SIZE,
    CHUNK_MAGIC,
    FORMAT_NAME,
    FORMAT_VERSION,
    META_FILE,
    RAW_FILE,
    RECORD_DTYPE,
    RECORD_SIZE,
)
from .livelink import take_from_livelink, take_from_livelink_csv, take_to_livelink
from .model import Take
from .reader import TakeRecoveryWarning, as_take, load_take
from .recorder import TakeRecorder, TakeWriteError, check_new_take_dir

__all__ = [
    "CHUNK_HEADER", "CHUNK_HEADER_SIZE", "CHUNK_MAGIC", "FORMAT_NAME", "FORMAT_VERSION", "META_FILE",
    "RAW_FILE", "RECORD_DTYPE", "RECORD_SIZE", "Take", "TakeRecorder", "TakeRecoveryWarning",
    "TakeWriteError", "as_take", "check_new_take_dir", "load_take", "take_from_livelink",
    "take_from_livelink_csv", "take_to_livelink",
    # timecode helpers, kept here for existing callers; their home is facecap.timecode
    "frame_offsets", "frames_to_timecode", "timecode_rate", "timecode_to_frames", "wallclock_timecode",
]  # fmt: skip
