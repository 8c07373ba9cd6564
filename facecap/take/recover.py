"""Record-level recovery of a take's chunks: every intact record is found, whatever happened around it.

A chunk is a 32-byte header and fixed-size records, each with its own CRC (:mod:`facecap.take.format`),
so one damaged byte costs one record, never the ones after it. :func:`scan_chunk` walks a chunk's bytes
record by record; where a record fails its CRC (flipped bits, bytes lost or inserted) it searches forward
byte by byte for the next offset whose CRC holds and goes on from there. A damaged header costs nothing
either: the records start at byte 32 regardless, and the chunk's number then comes from its file name.
:func:`scan_take` orders the chunks by the numbers in their own headers (a renamed or swapped file lands
where it was written), places each record at its frame position ``chunk * chunk_frames + slot`` and says
which positions are lost, as frame ranges.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .format import (
    CHUNK_HEADER,
    CHUNK_HEADER_SIZE,
    CHUNK_MAGIC,
    FORMAT_VERSION,
    RECORD_DTYPE,
    RECORD_SIZE,
)

CHUNK_GLOB = "frames-*.bin"
_CHUNK_NAME = re.compile(r"^frames-(\d+)\.bin$")
_BODY = RECORD_SIZE - 4


@dataclass
class ChunkScan:
    """What :func:`scan_chunk` found in one chunk file.

    name : file name; number : chunk number (from the header, else the file name, else None);
    header_ok : the header is intact and matches this facecap's layout;
    records : intact records (:data:`RECORD_DTYPE`); slots : (n,) int64 slot of each within the chunk;
    damaged : [start, stop) slot ranges that held no intact record (before the last intact one, or a
    partial record at the end); tail_bytes : bytes after the last whole record (a cut write).
    """

    name: str
    number: int | None
    header_ok: bool
    records: np.ndarray
    slots: np.ndarray
    damaged: list[tuple[int, int]] = field(default_factory=list)
    tail_bytes: int = 0


def _crc_ok(data: bytes, off: int) -> bool:
    (crc,) = struct.unpack_from("<I", data, off + _BODY)
    return zlib.crc32(data[off : off + _BODY]) == crc


def _header_number(data: bytes) -> int | None:
    """The chunk number of an intact, matching header, else None."""
    if len(data) < CHUNK_HEADER_SIZE:
        return None
    magic, version, hsize, rsize, num = CHUNK_HEADER.unpack_from(data)
    (crc,) = struct.unpack_from("<I", data, CHUNK_HEADER.size)
    if magic != CHUNK_MAGIC or crc != zlib.crc32(data[: CHUNK_HEADER.size]):
        return None
    if version != FORMAT_VERSION or hsize != CHUNK_HEADER_SIZE or rsize != RECORD_SIZE:
        return None
    return int(num)


def scan_chunk(data: bytes, name: str = "chunk") -> ChunkScan:
    """Every intact record of one chunk file's bytes (see the module docstring).

    Parameters
    ----------
    data : the file's bytes
    name : its file name (``frames-NNN.bin`` gives the number when the header is damaged)

    Returns
    -------
    ChunkScan
    """
    number = _header_number(data)
    header_ok = number is not None
    if number is None:
        m = _CHUNK_NAME.match(name)
        number = int(m.group(1)) if m else None
    offsets, slots, damaged = [], [], []
    off, slot, end = CHUNK_HEADER_SIZE, 0, len(data)
    if not header_ok and not (off + RECORD_SIZE <= end and _crc_ok(data, off)):
        # a garbled header may also have lost or gained bytes: the first record is wherever it checks out
        first = next((o for o in range(0, end - RECORD_SIZE + 1) if _crc_ok(data, o)), None)
        if first is None:
            off = end
            if end > CHUNK_HEADER_SIZE:
                damaged.append((0, max(1, round((end - CHUNK_HEADER_SIZE) / RECORD_SIZE))))
        else:
            off, slot = first, max(0, round((first - CHUNK_HEADER_SIZE) / RECORD_SIZE))
            if slot:
                damaged.append((0, slot))
    while off + RECORD_SIZE <= end:
        if _crc_ok(data, off):
            offsets.append(off)
            slots.append(slot)
            off += RECORD_SIZE
            slot += 1
            continue
        # resynchronise: the next offset whose record checks out (bytes may be lost or inserted)
        nxt = next((o for o in range(off + 1, end - RECORD_SIZE + 1) if _crc_ok(data, o)), None)
        if nxt is None:
            damaged.append((slot, slot + max(1, round((end - off) / RECORD_SIZE))))
            off = end
            break
        new_slot = slot + max(1, round((nxt - off) / RECORD_SIZE))
        damaged.append((slot, new_slot))
        off, slot = nxt, new_slot
    tail = end - off if off < end else 0
    if tail:
        damaged.append((slot, slot + 1))  # a record cut short by a crash or a truncation
    buf = b"".join(data[o : o + RECORD_SIZE] for o in offsets)
    recs = np.frombuffer(buf, dtype=RECORD_DTYPE).copy() if offsets else np.zeros(0, RECORD_DTYPE)
    return ChunkScan(name, number, header_ok, recs, np.asarray(slots, np.int64), damaged, tail)


@dataclass
class TakeScan:
    """What :func:`scan_take` recovered from a take's chunk files.

    records : intact records in frame order; positions : (n,) int64 frame position of each;
    expected : frames the take should hold (``take.json``'s count when it was closed, else the last
    recovered position + 1), or None when nothing is known; lost : [start, stop) position ranges missing;
    problems : sentences saying what was damaged and where; chunks : the per-file scans.
    """

    records: np.ndarray
    positions: np.ndarray
    expected: int | None
    lost: list[tuple[int, int]]
    problems: list[str]
    chunks: list[ChunkScan]

    @property
    def lost_frames(self) -> int:
        return int(sum(b - a for a, b in self.lost))


def _ranges(missing: np.ndarray) -> list[tuple[int, int]]:
    """Sorted unique ints -> [start, stop) runs."""
    if not len(missing):
        return []
    cuts = np.flatnonzero(np.diff(missing) != 1) + 1
    return [(int(r[0]), int(r[-1]) + 1) for r in np.split(missing, cuts)]


def format_ranges(ranges: list[tuple[int, int]], limit: int = 8) -> str:
    """``"20, 45-49, 80-99"`` (frame numbers from 0, inclusive ends), at most ``limit`` ranges shown."""
    parts = [f"{a}" if b - a == 1 else f"{a}-{b - 1}" for a, b in ranges[:limit]]
    if len(ranges) > limit:
        parts.append(f"... ({len(ranges) - limit} more)")
    return ", ".join(parts)


def scan_take(path: Path, chunk_frames: int | None = None, recorded: int | None = None) -> TakeScan:
    """Recover every intact record of the chunk files in take directory ``path``.

    Parameters
    ----------
    chunk_frames : records per chunk (``take.json``'s ``record.chunk_frames``); None: inferred from the
        chunks (the largest slot count of any chunk that is not the last)
    recorded : frames the recorder wrote (``take.json``'s ``frames`` of a closed take), or None

    Returns
    -------
    TakeScan
    """
    problems: list[str] = []
    scans: list[ChunkScan] = []
    for p in sorted(path.glob(CHUNK_GLOB)):
        try:
            data = p.read_bytes()
        except OSError as e:
            problems.append(f"{p.name} could not be read ({e.strerror or e})")
            continue
        s = scan_chunk(data, p.name)
        if s.number is None:
            problems.append(f"{p.name}: damaged header and no chunk number in its name; skipped")
            continue
        if not s.header_ok:
            problems.append(f"{p.name} has a damaged header (its records are read from byte 32)")
        elif p.name != f"frames-{s.number:03d}.bin":
            problems.append(f"{p.name} holds chunk {s.number} (by its header)")
        if s.damaged:
            n_bad = sum(b - a for a, b in s.damaged)
            problems.append(f"{p.name}: {n_bad} damaged record{'s' if n_bad != 1 else ''} skipped")
        scans.append(s)
    # intact headers name their chunk; a chunk copied twice keeps its first file
    kept, seen = [], set()
    for s in sorted((s for s in scans if s.header_ok), key=lambda s: (s.number, s.name)):
        if s.number in seen:
            problems.append(f"{s.name} repeats chunk {s.number}; ignored")
            continue
        seen.add(s.number)
        kept.append(s)
    # a damaged header: the file name's number if no intact header claims it, else the free number
    # where the records' frame indices fit between their neighbours' (a renamed file, then damaged)
    for s in sorted((s for s in scans if not s.header_ok), key=lambda s: s.name):
        if s.number in seen and len(s.records):
            first, last = int(s.records["index"][0]), int(s.records["index"][-1])
            span = {k.number: (int(k.records["index"][0]), int(k.records["index"][-1]))
                    for k in kept if len(k.records)}  # fmt: skip
            top = max(seen | {s.number}) + 2
            free = [c for c in range(top) if c not in seen]
            fits = [c for c in free
                    if all(v[1] < first for n, v in span.items() if n < c)
                    and all(v[0] > last for n, v in span.items() if n > c)]  # fmt: skip
            s.number = (fits or free)[0]
            problems.append(f"{s.name} placed as chunk {s.number} (by its frame indices)")
        if s.number in seen:
            problems.append(f"{s.name} repeats chunk {s.number}; ignored")
            continue
        seen.add(s.number)
        kept.append(s)
    kept.sort(key=lambda s: s.number)
    if chunk_frames is None or chunk_frames < 1:  # every chunk but the last is full
        spans = [max([0, *(int(x) + 1 for x in s.slots[-1:]), *(b for _, b in s.damaged)]) for s in kept]
        chunk_frames = max(spans[:-1], default=0) or max(spans, default=0) or 1
    recs, pos = [], []
    for s in kept:
        if 0 < len(s.slots) <= chunk_frames:
            # slots after a resync are estimated from byte offsets, which inserted bytes inflate: a
            # chunk holds at most chunk_frames records, so pull the estimates back into it (in order)
            room = np.arange(chunk_frames - len(s.slots), chunk_frames)
            s.slots = np.minimum(s.slots, room)
        ok = s.slots < chunk_frames
        if not ok.all():
            problems.append(f"{s.name} holds more than {chunk_frames} records; the extra ones are ignored")
        recs.append(s.records[ok])
        pos.append(s.number * chunk_frames + s.slots[ok])
    records = np.concatenate(recs) if recs else np.zeros(0, RECORD_DTYPE)
    positions = np.concatenate(pos) if pos else np.zeros(0, np.int64)
    order = np.argsort(positions, kind="stable")
    records, positions = records[order], positions[order]
    last = int(positions[-1]) + 1 if len(positions) else 0
    # damage after the last intact record (a cut or garbled tail) is lost too
    tail = max(
        (s.number * chunk_frames + min(b, chunk_frames) for s in kept for _, b in s.damaged), default=0
    )
    expected = recorded if recorded is not None else (max(last, tail) or None)
    if recorded is not None and last > recorded:
        problems.append(f"take.json records {recorded} frames but the chunks hold {last}")
        expected = last
    missing = np.setdiff1d(np.arange(expected or 0, dtype=np.int64), positions, assume_unique=False)
    absent = sorted(set(range(((expected or 0) + chunk_frames - 1) // chunk_frames)) - seen)
    for c in absent:
        if c * chunk_frames < (expected or 0):
            problems.append(f"frames-{c:03d}.bin is missing")
    return TakeScan(records, positions, expected, _ranges(missing), problems, kept)


__all__ = ["ChunkScan", "TakeScan", "format_ranges", "scan_chunk", "scan_take"]
