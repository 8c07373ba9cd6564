"""Recording files without decoding images: path checks, `.db3` (ROS2 sqlite) and `.bag` (ROS1) indexes."""

from __future__ import annotations

import os
import re
import sqlite3
import struct
from pathlib import Path

from ..camera_access import import_pyrealsense2 as _rs
from .convert import RecordingError, extrinsics_from_rs, intrinsics_from_rs

RECORDING_SUFFIXES = (".bag", ".db3")


def check_recording_path(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if p.suffix.lower() not in RECORDING_SUFFIXES:
        raise ValueError(f"{p.name}: not a RealSense recording; expected a .bag (ROS1) or .db3 (ROS2) file")
    if not p.exists():
        raise FileNotFoundError(f"recording not found: {p}")
    if not p.is_file():
        raise RecordingError(f"{p} is not a file")
    if p.stat().st_size == 0:
        raise RecordingError(f"{p} is empty (0 bytes); the recording was not written")
    with open(p, "rb") as f:  # a clear message before librealsense's own, and PermissionError if unreadable
        head = f.read(16)
    if p.suffix.lower() == ".bag" and not head.startswith(b"#ROSBAG V2.0"):
        raise RecordingError(f"{p} is not a ROS1 bag (no '#ROSBAG V2.0' header); is it damaged or renamed?")
    if p.suffix.lower() == ".db3" and not head.startswith(b"SQLite format 3\0"):
        raise RecordingError(f"{p} is not a ROS2 .db3 (not an SQLite database); is it damaged or renamed?")
    return p


_DEPTH_DATA = re.compile(r"^/device_\d+/sensor_\d+/Depth_0/image/data")
_DEPTH_META = re.compile(r"^/device_\d+/sensor_\d+/Depth_0/image/metadata$")
_COLOR_DATA = re.compile(r"^/device_\d+/sensor_\d+/Color_0/image/data")
_MD_TIMESTAMP = re.compile(rb"(?:^|;)timestamp=([-+0-9.eE]+)")


def db3_index(path: Path) -> dict | None:
    """Depth (and color) frame counts and first/last depth timestamps (ms) of a ROS2 .db3, read with SQLite
    without decoding anything; None when the file is not a readable SQLite database."""
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        return None
    try:
        topics = dict(con.execute("SELECT name, id FROM topics").fetchall())

        def count(pattern: re.Pattern) -> int:
            ids = [i for n, i in topics.items() if pattern.match(n)]
            sql = f"SELECT count(*) FROM messages WHERE topic_id IN ({','.join('?' * len(ids))})"
            return int(con.execute(sql, ids).fetchone()[0]) if ids else 0

        meta = [i for n, i in topics.items() if _DEPTH_META.match(n)]
        stamps = []
        for order in ("ASC", "DESC"):
            sql = f"SELECT data FROM messages WHERE topic_id = ? ORDER BY timestamp {order} LIMIT 1"
            row = con.execute(sql, (meta[0],)).fetchone() if meta else None
            m = _MD_TIMESTAMP.search(row[0]) if row else None
            stamps.append(float(m.group(1)) if m else None)
        return {"frames": count(_DEPTH_DATA), "color_frames": count(_COLOR_DATA), "first_ms": stamps[0],
                "last_ms": stamps[1]}  # fmt: skip
    except sqlite3.Error:
        return None
    finally:
        con.close()


def _bag_read_record(f) -> tuple[dict, bytes] | None:
    """The ROS1 bag record at the file position: (header fields, data; chunks skipped) or None at EOF."""
    raw = f.read(4)
    if len(raw) < 4:
        return None
    (hlen,) = struct.unpack("<I", raw)
    header = f.read(hlen)
    raw = f.read(4)
    if len(header) < hlen or len(raw) < 4:
        raise ValueError("truncated record")
    (dlen,) = struct.unpack("<I", raw)
    fields, i = {}, 0
    while i < len(header):
        (flen,) = struct.unpack_from("<I", header, i)
        name, _, value = header[i + 4 : i + 4 + flen].partition(b"=")
        fields[name.decode("latin-1")] = value
        i += 4 + flen
    if fields.get("op") == b"\x05":  # a chunk: skip its messages
        f.seek(dlen, os.SEEK_CUR)
        return fields, b""
    return fields, f.read(dlen)


def _bag_index(path: Path) -> dict | None:
    """Depth frame count of a ROS1 .bag from its index (connection and chunk-info records; no decoding).

    Returns None when the index is missing (an unfinished recording) or unreadable.
    """
    try:
        with open(path, "rb") as f:
            if f.readline() != b"#ROSBAG V2.0\n":
                return None
            rec = _bag_read_record(f)
            if rec is None or rec[0].get("op") != b"\x03":
                return None
            index_pos = struct.unpack("<Q", rec[0]["index_pos"])[0]
            n_conn = struct.unpack("<I", rec[0]["conn_count"])[0]
            n_chunks = struct.unpack("<I", rec[0]["chunk_count"])[0]
            if index_pos == 0 or index_pos >= path.stat().st_size:
                return None
            f.seek(index_pos)
            topics, counts = {}, {}
            for _ in range(n_conn + n_chunks):
                rec = _bag_read_record(f)
                if rec is None:
                    break
                fields, data = rec
                if fields.get("op") == b"\x07":
                    topics[struct.unpack("<I", fields["conn"])[0]] = fields["topic"].decode(
                        "utf-8", "replace"
                    )
                elif fields.get("op") == b"\x06":
                    for j in range(struct.unpack("<I", fields["count"])[0]):
                        conn, n = struct.unpack_from("<II", data, 8 * j)
                        counts[conn] = counts.get(conn, 0) + n
    except (OSError, ValueError, KeyError, struct.error):
        return None
    frames = sum(n for c, n in counts.items() if _DEPTH_DATA.match(topics.get(c, "")))
    colors = sum(n for c, n in counts.items() if _COLOR_DATA.match(topics.get(c, "")))
    return {"frames": frames, "color_frames": colors, "first_ms": None, "last_ms": None}


def file_index(path: Path) -> dict | None:
    return db3_index(path) if path.suffix.lower() == ".db3" else _bag_index(path)


def probe_recording(path: Path) -> dict:
    """Device, streams, depth scale and duration of a recording, read through librealsense's playback."""
    rs = _rs()
    ctx = rs.context()
    try:
        dev = ctx.load_device(str(path))
    except RuntimeError as e:
        hint = (f" (the file is damaged or truncated; `facecap salvage {path}` rescues its intact frames)"
                if "malformed" in str(e) else "")  # fmt: skip
        raise RecordingError(f"cannot open {path.name} as a RealSense recording{hint}: {e}") from e
    try:
        pb = dev.as_playback()
        name = dev.get_info(rs.camera_info.name) if dev.supports(rs.camera_info.name) else None
        streams, depth_scale, profiles = [], None, {}
        for sensor in dev.query_sensors():
            if sensor.is_depth_sensor():
                depth_scale = float(sensor.as_depth_sensor().get_depth_scale())
            for sp in sensor.get_stream_profiles():
                kind = sp.stream_type().name
                entry = {
                    "stream": kind,
                    "index": sp.stream_index(),
                    "format": sp.format().name,
                    "fps": sp.fps(),
                }
                if sp.is_video_stream_profile():
                    vp = sp.as_video_stream_profile()
                    entry.update(width=vp.width(), height=vp.height())
                    try:
                        entry["intrinsics"] = intrinsics_from_rs(vp.get_intrinsics()).to_dict()
                    except (RuntimeError, ValueError):
                        pass
                    profiles.setdefault(kind, vp)
                streams.append(entry)
        extr = None
        if "depth" in profiles and "color" in profiles:
            try:
                e = extrinsics_from_rs(profiles["depth"].get_extrinsics_to(profiles["color"]))
                extr = {"rotation": e.rotation.tolist(), "translation": e.translation.tolist()}
            except RuntimeError:
                pass
        duration_s = pb.get_duration().total_seconds()
    except RuntimeError as e:
        raise RecordingError(f"cannot read the stream layout of {path.name}: {e}") from e
    finally:
        del dev
        ctx.unload_device(str(path))
    return {
        "device": name,
        "streams": streams,
        "depth_scale": depth_scale,
        "depth_to_color": extr,
        "playback_duration_s": duration_s,
    }


def find_stream(streams: list[dict], kind: str) -> dict | None:
    return next((s for s in streams if s["stream"] == kind), None)
