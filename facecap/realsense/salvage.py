"""Salvage a ROS2 ``.db3`` recording that SQLite refuses (cut short, or killed while librealsense wrote it).

librealsense's bag writer keeps no journal, so a recording killed while open, or a file cut short, is
"malformed" to SQLite and unreadable to librealsense although nearly every frame is on disk. This
module reads the file page by page without SQLite: every b-tree leaf page of a table is parsed, its
cells decoded as SQLite records (overflow chains followed for the large image blobs; a chain that runs
past the end of the file loses that one message), the rows of rosbag2's ``topics`` and ``messages``
tables are told apart by their shape, deduplicated by row id, and written to a new, valid ``.db3`` with
the same schema, which librealsense plays. SQLite's file format: https://www.sqlite.org/fileformat.html.
"""

from __future__ import annotations

import mmap
import sqlite3
import struct
from pathlib import Path

HEADER = b"SQLite format 3\x00"
SCHEMA = (
    "CREATE TABLE topics(id INTEGER PRIMARY KEY,name TEXT NOT NULL,type TEXT NOT NULL,"
    "serialization_format TEXT NOT NULL,offered_qos_profiles TEXT NOT NULL)",
    "CREATE TABLE messages(id INTEGER PRIMARY KEY,topic_id INTEGER NOT NULL,timestamp INTEGER NOT NULL, "
    "data BLOB NOT NULL)",
    "CREATE INDEX timestamp_idx ON messages (timestamp ASC)",
)


def _varint(b: bytes, i: int) -> tuple[int, int]:
    """SQLite varint at ``b[i]``: (value, next index)."""
    v = 0
    for k in range(8):
        c = b[i + k]
        v = (v << 7) | (c & 0x7F)
        if c < 0x80:
            return v, i + k + 1
    return (v << 8) | b[i + 8], i + 9


def _values(rec: bytes) -> list:
    """The column values of one SQLite record."""
    hsize, i = _varint(rec, 0)
    types = []
    while i < hsize:
        t, i = _varint(rec, i)
        types.append(t)
    out, j = [], hsize
    for t in types:
        if t == 0:
            out.append(None)
        elif 1 <= t <= 6:
            n = (1, 2, 3, 4, 6, 8)[t - 1]
            out.append(int.from_bytes(rec[j : j + n], "big", signed=True))
            j += n
        elif t == 7:
            out.append(struct.unpack(">d", rec[j : j + 8])[0])
            j += 8
        elif t in (8, 9):
            out.append(t - 8)
        elif t >= 12:
            n = (t - 12) // 2
            raw = rec[j : j + n]
            if len(raw) < n:
                raise ValueError("record runs past its payload")
            out.append(bytes(raw) if t % 2 == 0 else raw.decode("utf-8"))
            j += n
        else:
            raise ValueError(f"reserved serial type {t}")
    return out


def _cells(data: bytes, pno: int, psize: int, usable: int):
    """(rowid, payload bytes) of every complete cell of table-leaf page ``pno`` (1-based)."""
    base = (pno - 1) * psize
    h = base + (100 if pno == 1 else 0)
    if data[h] != 0x0D:  # not a table b-tree leaf
        return
    n = struct.unpack_from(">H", data, h + 3)[0]
    x = usable - 35
    m = ((usable - 12) * 32 // 255) - 23
    n_pages = len(data) // psize
    for k in range(n):
        try:
            off = struct.unpack_from(">H", data, h + 8 + 2 * k)[0]
            i = base + off
            plen, i = _varint(data, i)
            rowid, i = _varint(data, i)
            if plen <= x:
                yield rowid, data[i : i + plen]
                continue
            kk = m + ((plen - m) % (usable - 4))
            local = kk if kk <= x else m
            parts = [data[i : i + local]]
            nxt = struct.unpack_from(">I", data, i + local)[0]
            got = local
            while got < plen:
                if not 1 <= nxt <= n_pages:
                    raise ValueError("overflow chain leaves the file")
                o = (nxt - 1) * psize
                nxt = struct.unpack_from(">I", data, o)[0]
                take = min(usable - 4, plen - got)
                parts.append(data[o + 4 : o + 4 + take])
                got += take
            yield rowid, b"".join(parts)
        except (IndexError, struct.error, ValueError):
            continue  # a cell cut by the end of the file, or garbage: that message only


def salvage_db3(src: str | Path, dst: str | Path) -> dict:
    """Write the intact topics and messages of ``src`` into a new ``.db3`` at ``dst``.

    Returns
    -------
    dict: ``topics``, ``messages`` (rows recovered), ``bytes_read``.

    Raises
    ------
    ValueError
        ``src`` is not an SQLite file or holds no rosbag2 rows; ``dst`` exists.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise ValueError(f"{dst} exists; choose a new file for the salvaged recording")
    with open(src, "rb") as f:
        if f.read(len(HEADER)) != HEADER:
            raise ValueError(f"{src} is not an SQLite (.db3) file: its header is missing")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            topics, messages = _rows(data)
            size = len(data)
    if not topics or not messages:
        raise ValueError(f"{src}: no rosbag2 topics or messages could be recovered")
    con = sqlite3.connect(dst)
    try:
        for sql in SCHEMA:
            con.execute(sql)
        con.executemany("INSERT INTO topics VALUES (?,?,?,?,?)", [topics[k] for k in sorted(topics)])
        known = set(topics)
        con.executemany("INSERT INTO messages VALUES (?,?,?,?)",
                        [messages[k] for k in sorted(messages) if messages[k][1] in known])  # fmt: skip
        con.commit()
    finally:
        con.close()
    return {"topics": len(topics), "messages": len(messages), "bytes_read": size}


def _rows(data) -> tuple[dict, dict]:
    """{rowid: row} of the topics and of the messages tables found in the file's leaf pages."""
    psize = struct.unpack_from(">H", data, 16)[0]
    psize = 65536 if psize == 1 else psize
    usable = psize - data[20]
    topics: dict[int, tuple] = {}
    messages: dict[int, tuple] = {}
    for pno in range(1, len(data) // psize + 1):
        for rowid, payload in _cells(data, pno, psize, usable):
            try:
                v = _values(payload)
            except (IndexError, ValueError, UnicodeDecodeError):
                continue
            if len(v) == 5 and v[0] is None and all(isinstance(x, str) for x in v[1:]):
                topics.setdefault(rowid, (rowid, *v[1:]))
            elif len(v) == 4 and v[0] is None and isinstance(v[1], int) and isinstance(v[2], int) \
                    and isinstance(v[3], bytes):  # fmt: skip
                messages.setdefault(rowid, (rowid, v[1], v[2], v[3]))
    return topics, messages


__all__ = ["salvage_db3"]
