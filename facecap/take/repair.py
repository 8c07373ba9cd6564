"""``facecap take repair``: a clean copy of a damaged take, and exactly what was lost.

:func:`repair_take` loads every intact frame (:func:`facecap.take.load_take`), writes them to a new take
folder in the current format (fresh chunks, CRCs, ``take.json`` with ``"complete": true`` and a
``"repaired"`` entry naming the source and the lost frame ranges) and leaves the damaged take untouched.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from pathlib import Path

from .format import META_FILE, chunk_header, chunk_name, pack_record, record_layout
from .reader import TakeRecoveryWarning, load_take
from .recorder import _fsync_dir, _write_all, _write_json_atomic, check_new_take_dir


def repair_take(path: str | Path, out: str | Path, *, chunk_frames: int | None = None) -> dict:
    """Write the intact frames of take ``path`` to a new take ``out``.

    Parameters
    ----------
    path : damaged (or healthy) take folder
    out : new take folder; must not exist or be empty
    chunk_frames : frames per chunk of the copy (default: the source's, else 9000)

    Returns
    -------
    dict: ``recorded``, ``recovered``, ``lost``, ``lost_ranges`` ([first, last] frame numbers from 0),
    ``problems`` (what was damaged), ``invalid_marked_untracked`` (frames of an older take that were
    tracked with NaN/inf or out-of-range weights: copied as untracked), ``raw`` (the raw RGB-D
    segments, copied or salvaged), ``out``.

    Raises
    ------
    FileExistsError
        ``out`` exists and is not empty.
    FileNotFoundError, ValueError
        ``path`` holds nothing recoverable (see :func:`facecap.take.load_take`).
    """
    path, out = Path(path), Path(out)
    if path.resolve() == out.resolve():
        raise ValueError("the repaired copy needs its own folder: --out must differ from the take")
    check_new_take_dir(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TakeRecoveryWarning)
        take = load_take(path)
    meta = dict(take.meta)
    rec = meta.pop("recovery", {})
    meta.pop("frames_recovered_from_chunks", None)
    cf = int(chunk_frames or (meta.get("record") or {}).get("chunk_frames") or 9000)
    out.mkdir(parents=True, exist_ok=True)
    n = len(take)
    invalid: list[int] = []

    def packed(i: int) -> bytes:
        # a take written before the recorder checked its input may hold a tracked frame with NaN or
        # weights out of range: the copy keeps it as an untracked (lost) frame and says which
        state = take.state(i)
        try:
            return pack_record(state)
        except ValueError:
            invalid.append(i)
            state.tracked = False
            return pack_record(state)

    for c in range(max(1, -(-n // cf))):
        fd = os.open(
            out / chunk_name(c), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644
        )
        try:
            body = b"".join(packed(i) for i in range(c * cf, min(n, (c + 1) * cf)))
            _write_all(fd, chunk_header(c) + body)
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(out)
    report = {
        "recorded": rec.get("recorded", n),
        "recovered": n,
        "lost": rec.get("lost", 0),
        "lost_ranges": rec.get("lost_ranges", []),
        "problems": rec.get("problems", []),
        "invalid_marked_untracked": invalid,
    }
    meta.update(
        fps=take.fps,
        frames=n,
        chunks=max(1, -(-n // cf)),
        tracked_frames=int(take.tracked.sum()),
        duration_s=take.duration,
        record=record_layout(cf),
        complete=True,
        repaired={
            "from": str(path.resolve()),
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            **report,
        },  # fmt: skip
    )
    if take.timecodes:
        meta["start_timecode"] = take.timecodes[0]
    meta.pop("error", None)
    raw = _copy_raw(path, out)
    if raw:
        meta["raw_rgbd_segments"] = [r["segment"] for r in raw if r["playable"]]
        report["raw"] = raw
    _write_json_atomic(out / META_FILE, meta)
    return report | {"out": str(out)}


def _segment_number(p: Path) -> int:
    """raw.db3 -> 0, raw-007.db3 -> 7, anything else after them."""
    tail = p.stem[len("raw-") :]
    return 0 if p.stem == "raw" else int(tail) if tail.isdigit() else 1 << 30


def _playable(seg: Path) -> bool:
    """Whether librealsense finds a depth stream in the segment ``seg``. One killed just after it was
    opened may hold rows but not yet the description of its streams: kept, but not playable."""
    from ..realsense.container import find_stream, probe_recording
    from ..realsense.convert import RecordingError

    try:
        return find_stream(probe_recording(seg)["streams"], "depth") is not None
    except RecordingError:
        return False


def _copy_raw(path: Path, out: Path) -> list[dict]:
    """Copy the raw RGB-D segments; one that SQLite cannot read (killed open, cut) is salvaged. Each gets
    ``segment``, ``messages`` (rows kept), ``salvaged`` and ``playable`` (:func:`_playable`)."""
    import shutil
    import sqlite3

    from ..realsense.salvage import salvage_db3

    done = []
    for seg in sorted(path.glob("raw*.db3"), key=_segment_number):
        try:
            con = sqlite3.connect(f"{seg.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
            try:
                (n,) = con.execute("SELECT count(*) FROM messages").fetchone()
            finally:
                con.close()
            shutil.copy2(seg, out / seg.name)
            done.append({"segment": seg.name, "messages": int(n), "salvaged": False})
        except sqlite3.Error:
            try:
                r = salvage_db3(seg, out / seg.name)
                done.append({"segment": seg.name, "messages": r["messages"], "salvaged": True})
            except ValueError:
                done.append({"segment": seg.name, "messages": 0, "salvaged": False})
    for d in done:
        d["playable"] = bool(d["messages"]) and _playable(out / d["segment"])
    return done


__all__ = ["repair_take"]
