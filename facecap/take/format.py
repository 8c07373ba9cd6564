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
:func:`read_meta` validates it.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np

from ..arkit import ARKIT_NAMES, NUM_SHAPES
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
    """One :data:`RECORD_DTYPE` record (with its CRC) for ``state``; ``ValueError`` on wrong shapes."""
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
def read_meta(path: Path) -> dict:
    """The validated ``take.json`` of take directory ``path``.

    Raises ``FileNotFoundError`` (no directory, no ``take.json``) or ``ValueError`` (not take metadata,
    unsupported version or record layout) saying how to fix it.
    """
    mp = path / META_FILE
    if not path.exists():
        raise FileNotFoundError(f"take {path} does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is a file, not a take directory (a take is a folder holding {META_FILE})")
    if not mp.is_file():
        raise FileNotFoundError(
            f"{path} is not a facecap take: {META_FILE} is missing "
            "(TakeRecorder writes it first; was the folder copied incompletely?)"
        )
    try:
        meta = json.loads(mp.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"{mp} is not valid JSON ({e}); restore it from a backup or rewrite it with at least "
            f'{{"format": "{FORMAT_NAME}", "version": 1, "fps": ...}}'
        ) from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f'{mp} does not describe a facecap take (expected "format": "{FORMAT_NAME}")')
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{mp}: take format version {meta.get('version')!r} is not supported by this facecap "
            f"(reads version {FORMAT_VERSION}); upgrade facecap"
        )
    fps = meta.get("fps")
    if not isinstance(fps, (int, float)) or not fps > 0:
        raise ValueError(f'{mp}: "fps" must be a positive number, got {fps!r}')
    rec = meta.get("record", {})
    if not isinstance(rec, dict):
        raise ValueError(
            f'{mp}: "record" must be an object describing the record layout, got {type(rec).__name__}; '
            "remove it (the version-1 layout is then assumed) or restore take.json from a backup"
        )
    if rec.get("size", RECORD_SIZE) != RECORD_SIZE:
        raise ValueError(
            f"{mp}: records of {rec.get('size')} bytes are not the {RECORD_SIZE}-byte version-1 layout"
        )
    return meta


def read_chunk(p: Path, chunk: int) -> tuple[np.ndarray, str | None]:
    """Intact records of chunk file ``p`` (number ``chunk``) and, if it is damaged, a sentence saying where.

    Returns the records before the first damaged or truncated one, as a :data:`RECORD_DTYPE` array.
    """
    data = p.read_bytes()
    head = data[:CHUNK_HEADER_SIZE]
    if len(head) < CHUNK_HEADER_SIZE:
        return np.zeros(0, RECORD_DTYPE), f"{p.name} is shorter than its {CHUNK_HEADER_SIZE}-byte header"
    magic, version, hsize, rsize, num = CHUNK_HEADER.unpack_from(head)
    (crc,) = struct.unpack_from("<I", head, CHUNK_HEADER.size)
    if magic != CHUNK_MAGIC or crc != zlib.crc32(head[: CHUNK_HEADER.size]):
        return np.zeros(0, RECORD_DTYPE), f"{p.name} has a damaged header"
    if version != FORMAT_VERSION or hsize != CHUNK_HEADER_SIZE or rsize != RECORD_SIZE or num != chunk:
        return np.zeros(0, RECORD_DTYPE), f"{p.name} header does not match (version {version}, chunk {num})"
    body = memoryview(data)[CHUNK_HEADER_SIZE:]
    n = len(body) // RECORD_SIZE
    recs = np.frombuffer(body, dtype=RECORD_DTYPE, count=n)
    crcs = recs["crc"]
    for i in range(n):
        off = i * RECORD_SIZE
        if zlib.crc32(body[off : off + RECORD_SIZE - 4]) != crcs[i]:
            return recs[:i], f"record {i} of {p.name} is damaged (CRC mismatch)"
    if len(body) % RECORD_SIZE:
        return recs, f"{p.name} ends in a truncated record ({len(body) % RECORD_SIZE} of {RECORD_SIZE} bytes)"
    return recs, None
