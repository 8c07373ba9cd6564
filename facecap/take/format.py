"""The on-disk take format: chunk files of fixed-size CRC-checked records, and ``take.json``.

Chunk file (little-endian): a 32-byte header ``b"FCTAKE1\\n"``, uint16 version (1), uint16 header size
(32), uint32 record size, uint32 chunk number, uint32 CRC32 of the preceding 20 bytes, 8 zero bytes;
then records of :data:`RECORD_DTYPE` (349 bytes, packed)::

    index int64 | timestamp float64 s | tracked uint8 | quality float32 | rms_mm float32 |
    weights 52 x float32 (canonical ARKit order) | rotation 3x3 float64 (row-major, rig -> camera) |
    translation 3 x float64 m | gaze 2x2 float32 rad (rows left/right eye, cols yaw/pitch) |
    crc32 uint32 of the 345 bytes before it

``take.json`` holds ``"format": "facecap-take"``, ``"version": 1``, ``"fps"`` and what
:class:`facecap.take.TakeRecorder` knows (timecode, rig, camera, :func:`record_layout`...);
:func:`read_meta` reads and checks it; :mod:`facecap.take.recover` finds the records.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from ..arkit import ARKIT_NAMES, NUM_SHAPES
from ..pose import FRONTAL
from ..state import FaceState

FORMAT_NAME = "facecap-take"
FORMAT_VERSION = 1
META_FILE = "take.json"
RAW_FILE = "raw.db3"
CHUNK_MAGIC = b"FCTAKE1\n"
CHUNK_HEADER = struct.Struct("<8sHHII")  # magic, version, header size, record size, chunk number
CHUNK_HEADER_SIZE = 32

RECORD_DTYPE = np.dtype(
    [
        ("index", "<i8"),
        ("timestamp", "<f8"),
        ("tracked", "u1"),
        ("quality", "<f4"),
        ("rms_mm", "<f4"),
        ("weights", "<f4", (NUM_SHAPES,)),
        ("rotation", "<f8", (3, 3)),
        ("translation", "<f8", (3,)),
        ("gaze", "<f4", (2, 2)),
        ("crc", "<u4"),
    ]
)
"""One frame on disk (packed, little-endian, 349 bytes)."""

RECORD_SIZE = RECORD_DTYPE.itemsize
_HEAD = struct.Struct("<qdBff")


# ----------------------------------------------------------------------------------------- writing
def chunk_name(i: int) -> str:
    """File name of chunk ``i``: ``frames-NNN.bin``."""
    return f"frames-{i:03d}.bin"


def chunk_header(chunk: int) -> bytes:
    """The 32-byte header of chunk number ``chunk``."""
    head = CHUNK_HEADER.pack(CHUNK_MAGIC, FORMAT_VERSION, CHUNK_HEADER_SIZE, RECORD_SIZE, chunk)
    return head + struct.pack("<I", zlib.crc32(head)) + bytes(CHUNK_HEADER_SIZE - len(head) - 4)


def pack_record(state: FaceState) -> bytes:
    """One :data:`RECORD_DTYPE` record (with its CRC) for ``state``.

    A tracked frame must hold finite values, weights in [0, 1] and a rotation matrix; an untracked frame
    (the face was lost) carries no measurement, so non-finite values in it are stored as the neutral
    face (zero weights and gaze, the frontal pose, zero translation) and the exporters never meet NaN.

    Raises
    ------
    TypeError
        ``state`` is not a :class:`~facecap.state.FaceState`.
    ValueError
        Wrong shapes, or a tracked frame with NaN/inf, weights outside [0, 1] or a non-rotation (nothing
        is written).
    """
    if not isinstance(state, FaceState):
        raise TypeError(f"a take records facecap.FaceState frames, got {type(state).__name__}")
    w = np.asarray(state.weights, dtype="<f4")
    r = np.asarray(state.rotation, dtype="<f8")
    t = np.asarray(state.translation, dtype="<f8")
    g = np.asarray(state.gaze, dtype="<f4")
    if w.shape != (NUM_SHAPES,):
        raise ValueError(f"state.weights must be (52,) in canonical ARKit order, got shape {w.shape}")
    if r.shape != (3, 3):
        raise ValueError(f"state.rotation must be a (3, 3) matrix, got shape {r.shape}")
    if t.shape != (3,):
        raise ValueError(f"state.translation must be (3,) metres, got shape {t.shape}")
    if g.shape != (2, 2):
        raise ValueError(f"state.gaze must be (2, 2) radians (eye x (yaw, pitch)), got shape {g.shape}")
    if not np.isfinite(float(state.timestamp)):
        raise ValueError(f"state.timestamp must be finite seconds, got {state.timestamp}")
    arrays = {"weights": w, "rotation": r, "translation": t, "gaze": g}
    bad = [k for k, a in arrays.items() if not np.isfinite(a).all()]
    if state.tracked:
        if bad:
            raise ValueError(f"a tracked frame has NaN or inf in {', '.join(bad)} (frame {state.index})")
        if w.min() < -1e-6 or w.max() > 1 + 1e-6:
            raise ValueError(
                f"a tracked frame's weights must lie in [0, 1], got {w.min():.3g}..{w.max():.3g} "
                f"(frame {state.index})"
            )
        if np.abs(r @ r.T - np.eye(3)).max() > 1e-3 or np.linalg.det(r) < 0:
            raise ValueError(f"state.rotation is not a rotation matrix (frame {state.index})")
    elif bad:
        neutral = {"weights": 0.0, "rotation": FRONTAL, "translation": 0.0, "gaze": 0.0}
        for k in bad:
            arrays[k] = np.broadcast_to(np.asarray(neutral[k], arrays[k].dtype), arrays[k].shape).copy()
        w, r, t, g = (np.ascontiguousarray(arrays[k]) for k in ("weights", "rotation", "translation", "gaze"))
    head = _HEAD.pack(
        int(state.index),
        float(state.timestamp),
        bool(state.tracked),
        float(state.quality),
        float(state.rms_mm),
    )
    body = b"".join((head, w.tobytes(), r.tobytes(), t.tobytes(), g.tobytes()))
    return body + struct.pack("<I", zlib.crc32(body))


def record_layout(chunk_frames: int) -> dict:
    """The ``"record"`` entry of ``take.json``: record size, byte order, fields, chunking, shape names."""
    return {
        "size": RECORD_SIZE,
        "byteorder": "little",
        "fields": [
            [name, str(RECORD_DTYPE[name].base), list(RECORD_DTYPE[name].shape)]
            for name in RECORD_DTYPE.names
        ],
        "chunk_header_size": CHUNK_HEADER_SIZE,
        "chunk_frames": int(chunk_frames),
        "blendshapes": list(ARKIT_NAMES),
    }


# ----------------------------------------------------------------------------------------- reading
MAX_FPS = 1000.0

# take.json fields a reader relies on: name -> (check, what it must be). A field that fails is dropped
# and reported (the frames do not depend on it), except "version" (checked before) and "fps" (estimated
# from the frames' timestamps when it is missing or wrong).
_FIELDS = {
    "fps": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= MAX_FPS
            and v == v, f"a number in (0, {MAX_FPS:g}]"),
    "frames": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a count >= 0"),
    "chunks": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a count >= 0"),
    "complete": (lambda v: isinstance(v, bool), "true or false"),
    "start_timecode": (lambda v: v is None or isinstance(v, str), "a string HH:MM:SS:FF"),
    "versions": (lambda v: isinstance(v, dict), "an object {package: version}"),
    "record": (lambda v: isinstance(v, dict), "an object describing the record layout"),
    "rig": (lambda v: v is None or isinstance(v, str), "a string"),
    "error": (lambda v: v is None or isinstance(v, str), "a string"),
}  # fmt: skip


class TakeMetaError(ValueError):
    """``take.json`` is missing, unreadable or not take metadata: the chunks can rebuild it."""


def read_meta(path: Path) -> tuple[dict, list[str]]:
    """The ``take.json`` of take directory ``path``, with fields of the wrong type or range dropped.

    Returns
    -------
    (meta, problems): the metadata and one sentence per dropped field.

    Raises
    ------
    FileNotFoundError
        No such directory.
    TakeMetaError
        No ``take.json``, or it is not valid JSON or not take metadata (the frames can still be
        recovered from the chunks: :func:`facecap.take.load_take` does).
    ValueError
        The path is a file, or ``take.json`` is of an unsupported version or record layout.
    """
    mp = path / META_FILE
    if not path.exists():
        raise FileNotFoundError(f"take {path} does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is a file, not a take directory (a take is a folder holding {META_FILE})")
    if not mp.is_file():
        raise TakeMetaError(f"{META_FILE} is missing")
    try:
        meta = json.loads(mp.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise TakeMetaError(f"{META_FILE} is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise TakeMetaError(f'{META_FILE} does not describe a facecap take (no "format": "{FORMAT_NAME}")')
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{mp}: take format version {meta.get('version')!r} is not supported by this facecap "
            f"(reads version {FORMAT_VERSION}); upgrade facecap"
        )
    problems = []
    for key, (ok, what) in _FIELDS.items():
        if key in meta and not ok(meta[key]):
            problems.append(f"{META_FILE}: {key!r} must be {what}, got {json.dumps(meta[key])[:40]}; ignored")
            del meta[key]
    rec = meta.get("record", {})
    if rec.get("size", RECORD_SIZE) != RECORD_SIZE:
        raise ValueError(
            f"{mp}: records of {rec.get('size')} bytes are not the {RECORD_SIZE}-byte version-1 layout"
        )
    cf = rec.get("chunk_frames")
    if cf is not None and not (isinstance(cf, int) and not isinstance(cf, bool) and cf >= 1):
        problems.append(f"{META_FILE}: record.chunk_frames must be a count >= 1, got {cf!r}; ignored")
        rec.pop("chunk_frames")
    return meta, problems
