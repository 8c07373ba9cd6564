"""Intel RealSense frame sources: live cameras and ``.bag`` / ``.db3`` recordings (DESIGN.md §3-§4).

Everything goes through ``pyrealsense2`` (imported lazily: ``import facecap`` works without a camera stack):

- :func:`list_devices` lists connected cameras;
- :class:`LiveSource` streams depth z16 + color rgb8 from a camera, depth aligned to color;
- :class:`RecordingSource` / :func:`read_recording` play a ROS1 ``.bag`` (older SDKs and RealSense Viewers)
  or ROS2 ``.db3`` (the current SDK's recorder, and everything facecap writes) as fast as they decode,
  never in real time, with timeouts and end-of-file detection so a damaged file ends in an exception instead
  of a hang;
- :func:`write_recording` writes frames as a ``.db3`` in the camera's own format (``rs.software_device`` +
  ``rs.recorder``), so synthetic takes replay through exactly the code path real recordings use;
- :func:`recording_info` summarises a file without decoding its images (``facecap info FILE``).

Every source yields :class:`facecap.frames.Frame`: depth float32 metres (0 = no data), color RGB uint8,
intrinsics from the stream profiles, timestamps in seconds of the device clock, and ``index`` counting from 0.
With ``align=True`` (the default) depth is resampled onto the color camera with ``rs.align`` whenever the two
streams differ in intrinsics or pose, so ``frame.aligned`` holds; with ``align=False`` frames keep the native
depth image and carry the depth -> color extrinsics instead.
"""

from __future__ import annotations

import atexit
import errno
import gc
import math
import os
import re
import shutil
import sqlite3
import struct
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from .camera_access import import_pyrealsense2
from .frames import Extrinsics, Frame, Intrinsics

NO_CAMERA_HELP = "no RealSense camera connected (check the USB 3 cable, udev rules, `rs-enumerate-devices`)"
RECORDING_SUFFIXES = (".bag", ".db3")
DEPTH_UNITS = 0.001  # metres per z16 step facecap writes (RealSense default: 1 mm)
LIVE_FPS = (6, 15, 30, 60, 90)
LIVE_SIZES = ((424, 240), (480, 270), (640, 480), (848, 480), (1280, 720))
MIN_FREE_BYTES = 64 * 2**20

_COLOR_FORMATS = ("rgb8", "bgr8", "rgba8", "bgra8")
_DISTORTIONS = (
    "none",
    "modified_brown_conrady",
    "inverse_brown_conrady",
    "brown_conrady",
    "ftheta",
    "kannala_brandt4",
)


class RecordingError(ValueError):
    """A recording that cannot be read: corrupt, truncated, not a RealSense file, or without depth."""


def _rs():
    """The ``pyrealsense2`` module (libusb preloaded from a wheel when the system has none)."""
    return import_pyrealsense2()


# --- conversions between pyrealsense2 and facecap types ------------------------------------------------


def _intrinsics_from_rs(ri) -> Intrinsics:
    return Intrinsics(
        int(ri.width),
        int(ri.height),
        float(ri.fx),
        float(ri.fy),
        float(ri.ppx),
        float(ri.ppy),
        ri.model.name,
        tuple(float(c) for c in ri.coeffs),
    )


def _intrinsics_to_rs(intr: Intrinsics):
    rs = _rs()
    if intr.model not in _DISTORTIONS:
        raise ValueError(
            f"unknown distortion model {intr.model!r}; RealSense knows {', '.join(_DISTORTIONS)}"
        )
    coeffs = [float(c) for c in intr.coeffs]
    if len(coeffs) != 5:
        raise ValueError(f"RealSense intrinsics need 5 distortion coefficients, got {len(coeffs)}")
    ri = rs.intrinsics()
    ri.width, ri.height = int(intr.width), int(intr.height)
    ri.fx, ri.fy, ri.ppx, ri.ppy = float(intr.fx), float(intr.fy), float(intr.cx), float(intr.cy)
    ri.model = getattr(rs.distortion, intr.model)
    ri.coeffs = coeffs
    return ri


def _extrinsics_from_rs(re_) -> Extrinsics:
    # librealsense stores the rotation column-major: x_to = R x_from + t with R[i, j] = rotation[3 * j + i]
    r = np.asarray(re_.rotation, dtype=np.float64).reshape(3, 3).T
    return Extrinsics(r + 0.0, np.asarray(re_.translation, dtype=np.float64) + 0.0)  # + 0.0: no -0.0


def _extrinsics_to_rs(ex: Extrinsics):
    e = _rs().extrinsics()
    e.rotation = [float(v) for v in np.asarray(ex.rotation, dtype=np.float64).T.ravel()]
    e.translation = [float(v) for v in np.asarray(ex.translation, dtype=np.float64).ravel()]
    return e


def _color_to_rgb(frame) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of a RealSense color frame (the frame's buffer goes back to librealsense)."""
    frame = frame.as_video_frame()
    fmt = frame.get_profile().format().name
    a = np.asanyarray(frame.get_data())
    if fmt == "rgb8":
        return a.copy()
    if fmt == "bgr8":
        return np.ascontiguousarray(a[..., ::-1])
    if fmt == "rgba8":
        return np.ascontiguousarray(a[..., :3])
    if fmt == "bgra8":
        return np.ascontiguousarray(a[..., 2::-1])
    raise RecordingError(
        f"color format {fmt} is not supported (facecap reads {', '.join(_COLOR_FORMATS)}); "
        "record color as RGB8, the RealSense Viewer default"
    )


class _Converter:
    """Turns RealSense framesets into :class:`Frame`; holds the align block and the stream intrinsics."""

    def __init__(self, depth_profile, color_profile, depth_scale: float, align: bool):
        rs = _rs()
        self.depth_scale = float(depth_scale)
        self.depth_intrinsics = _intrinsics_from_rs(depth_profile.get_intrinsics())
        self.color_intrinsics = None
        self.depth_to_color = Extrinsics()
        if color_profile is not None:
            self.color_intrinsics = _intrinsics_from_rs(color_profile.get_intrinsics())
            try:
                self.depth_to_color = _extrinsics_from_rs(depth_profile.get_extrinsics_to(color_profile))
            except RuntimeError:  # no extrinsics recorded: treat the streams as co-located
                pass
        self.needs_align = color_profile is not None and (
            self.depth_intrinsics != self.color_intrinsics or not self.depth_to_color.is_identity
        )
        self._align = rs.align(rs.stream.color) if (align and self.needs_align) else None

        self._composer = self._composed = None
        self._pair: tuple = ()

    def drops(self, c) -> bool:
        """True when a depth frame with color ``c`` (None when missing) cannot be converted and is dropped.

        Alignment needs the color frame; converting without it would give a frame at the native depth size
        and intrinsics, unlike all the others, which downstream stages set up for the first frame reject.
        """
        return self._align is not None and c is None

    def _frameset(self, d, c):
        """A frameset of two loose frames, for ``rs.align`` (which only takes framesets)."""
        rs = _rs()
        if self._composer is None:
            self._composed = rs.frame_queue(2, keep_frames=True)
            self._composer = rs.processing_block(
                lambda f, src: src.frame_ready(src.allocate_composite_frame(list(self._pair)))
            )
            self._composer.start(self._composed)
        self._pair = (d, c)
        self._composer.invoke(d)
        self._pair = ()
        return self._composed.wait_for_frame(1000).as_frameset()

    def __call__(self, d, c, index: int, fs=None) -> Frame:
        """Frame from a depth frame ``d``, a color frame ``c`` (or None) and optionally their frameset.

        Callers skip the pairs :meth:`drops` rejects; given one anyway this raises ValueError.
        """
        if self.drops(c):
            raise ValueError("depth needs its color frame to be aligned; check drops() first")
        align = self._align is not None
        if align:
            fs = self._align.process(fs if fs is not None else self._frameset(d, c))
            d = fs.get_depth_frame()
        d = d.as_depth_frame()
        units = d.get_units() or self.depth_scale
        z = np.asanyarray(d.get_data())
        depth = np.multiply(z, np.float32(units), dtype=np.float32)
        color = color_intr = None
        if c is not None and self.color_intrinsics is not None:
            color, color_intr = _color_to_rgb(c), self.color_intrinsics
        if align:
            depth_intr, extr = self.color_intrinsics, Extrinsics()
        else:
            depth_intr, extr = self.depth_intrinsics, self.depth_to_color
        return Frame(
            depth=depth,
            depth_intrinsics=depth_intr,
            color=color,
            color_intrinsics=color_intr,
            depth_to_color=extr,
            timestamp=d.get_timestamp() / 1000.0,
            index=index,
        )


# --- devices ----------------------------------------------------------------------------------------------


def list_devices() -> list[dict]:
    """Connected RealSense cameras.

    Returns
    -------
    list of dict
        One per camera with ``name``, ``serial``, ``firmware``, ``usb_type`` (e.g. ``"3.2"``; ``"2.1"`` means
        a USB 2 port or cable, too slow for depth + color), ``product_line`` (``"D400"``...) and ``port``.
        Values a camera does not report are None. Empty when no camera is connected.
    """
    rs = _rs()
    keys = {
        "name": "name",
        "serial": "serial_number",
        "firmware": "firmware_version",
        "usb_type": "usb_type_descriptor",
        "product_line": "product_line",
        "port": "physical_port",
    }
    out = []
    for dev in rs.context().query_devices():
        row = {}
        for key, attr in keys.items():
            ci = getattr(rs.camera_info, attr)
            row[key] = dev.get_info(ci) if dev.supports(ci) else None
        out.append(row)
    return out


class LiveSource:
    """Frames from a connected RealSense camera: depth z16 + color rgb8, depth aligned to color.

    Parameters
    ----------
    width, height : int, pixels
        Stream size for depth and color: 640x480 or 848x480 (up to 90 fps), 1280x720 (up to 30 fps),
        424x240, 480x270.
    fps : int
        6, 15, 30, 60 or 90. When the color sensor cannot reach it (many top out at 60 fps), color streams at
        the fastest of 60, 30, 15 fps that resolves; see :attr:`color_fps`.
    serial : str, optional
        Serial number of the camera to open (``facecap devices`` lists them); default the first one.
    align : bool
        Resample depth onto the color camera (``rs.align(rs.stream.color)``) so frames are pixel-aligned.
    color : bool
        Stream color too (default). Without it frames carry depth only.
    depth_units : float, optional, metres
        Depth step to set on the camera, e.g. 0.0001 for 0.1 mm steps at close range (max range 6.5 m).
        Default: leave the camera's setting (1 mm).
    timeout_s : float, seconds
        How long :meth:`read` waits for a frame before raising.

    Attributes
    ----------
    dropped : int
        Depth frames skipped since :meth:`start` because alignment needed their color frame and none came
        with them (every frame read has the same size).

    Examples
    --------
    >>> with LiveSource(640, 480, fps=60) as cam:          # doctest: +SKIP
    ...     for frame in cam:
    ...         print(frame.index, frame.depth.shape)
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        *,
        serial: str | None = None,
        align: bool = True,
        color: bool = True,
        depth_units: float | None = None,
        timeout_s: float = 5.0,
    ):
        if (int(width), int(height)) not in LIVE_SIZES:
            sizes = ", ".join(f"{w}x{h}" for w, h in LIVE_SIZES)
            raise ValueError(f"unsupported stream size {width}x{height}; RealSense depth streams {sizes}")
        if int(fps) not in LIVE_FPS:
            raise ValueError(f"unsupported fps {fps}; choose one of {', '.join(map(str, LIVE_FPS))}")
        if (int(width), int(height)) == (1280, 720) and int(fps) > 30:
            raise ValueError("1280x720 streams at most 30 fps; use 848x480 or 640x480 for 60/90 fps")
        if depth_units is not None and not (1e-6 <= float(depth_units) <= 0.01):
            raise ValueError(f"depth_units must be in metres, between 1e-6 and 0.01, got {depth_units}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.serial, self.align, self.color = serial, bool(align), bool(color)
        self.depth_units, self.timeout_s = depth_units, float(timeout_s)
        self.color_fps: int | None = None
        self.device_name: str | None = None
        self.depth_scale: float | None = None
        self._pipe = None
        self._convert: _Converter | None = None
        self._index = 0
        self.dropped = 0

    def _config(self, rs, color_fps: int | None):
        cfg = rs.config()
        if self.serial:
            cfg.enable_device(str(self.serial))
        cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        if color_fps:
            cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, color_fps)
        return cfg

    def start(self) -> LiveSource:
        """Open the camera and start streaming (called by ``with``); raises RuntimeError without a camera."""
        if self._pipe is not None:
            return self
        rs = _rs()
        devices = list_devices()
        if not devices:
            raise RuntimeError(NO_CAMERA_HELP)
        if self.serial and self.serial not in {d["serial"] for d in devices}:
            found = ", ".join(f"{d['name']} ({d['serial']})" for d in devices)
            raise RuntimeError(f"no RealSense camera with serial {self.serial}; connected: {found}")
        pipe = rs.pipeline()
        wrapper = rs.pipeline_wrapper(pipe)
        rates = [self.fps] + [f for f in (60, 30, 15) if f < self.fps] if self.color else [None]
        for color_fps in rates:
            cfg = self._config(rs, color_fps)
            if cfg.can_resolve(wrapper):
                break
        else:
            what = f"depth{' + color' if self.color else ''} {self.width}x{self.height} at {self.fps} fps"
            usb = ", ".join(f"{d['name']} on USB {d['usb_type']}" for d in devices)
            raise RuntimeError(
                f"the camera cannot stream {what} ({usb}); USB 2 ports allow only low rates, "
                "try a USB 3 port, a smaller size or a lower fps"
            )
        try:
            if self.depth_units is not None:  # set before streaming starts
                sensor = cfg.resolve(wrapper).get_device().first_depth_sensor()
                if sensor.supports(rs.option.depth_units):
                    sensor.set_option(rs.option.depth_units, float(self.depth_units))
            profile = pipe.start(cfg)
        except RuntimeError as e:
            raise RuntimeError(f"could not start the RealSense camera: {e}. {NO_CAMERA_HELP}") from e
        try:  # the pipeline streams now: any failure below must release the camera again
            dev = profile.get_device()
            self.depth_scale = float(dev.first_depth_sensor().get_depth_scale())
            has_name = dev.supports(rs.camera_info.name)
            self.device_name = dev.get_info(rs.camera_info.name) if has_name else None
            dp = profile.get_stream(rs.stream.depth).as_video_stream_profile()
            cp = profile.get_stream(rs.stream.color).as_video_stream_profile() if self.color else None
            self.color_fps = cp.fps() if cp is not None else None
            self._convert = _Converter(dp, cp, self.depth_scale, self.align)
        except BaseException:
            try:
                pipe.stop()
            except RuntimeError:
                pass
            raise
        self._pipe, self._index, self.dropped = pipe, 0, 0
        return self

    def read(self) -> Frame:
        """The next frame; raises RuntimeError when none arrives within ``timeout_s``."""
        if self._pipe is None:
            self.start()
        deadline = time.monotonic() + self.timeout_s
        while True:
            ok, fs = self._pipe.try_wait_for_frames(int(self.timeout_s * 1000))
            d = fs.get_depth_frame() if ok else None
            if d:
                c = fs.get_color_frame() if self.color else None
                c = c if c else None
                if self._convert.drops(c):  # cannot be aligned: a frame of another size would follow
                    self.dropped += 1
                else:
                    frame = self._convert(d, c, self._index, fs)
                    self._index += 1
                    return frame
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no frame from the RealSense camera within {self.timeout_s:g} s "
                    "(unplugged? another program using it?)"
                )

    def stop(self) -> None:
        """Stop streaming and release the camera (safe to call twice)."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            try:
                pipe.stop()
            except RuntimeError:
                pass

    def __iter__(self) -> Iterator[Frame]:
        while True:
            yield self.read()

    def __enter__(self) -> LiveSource:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "streaming" if self._pipe is not None else "stopped"
        return f"LiveSource({self.width}x{self.height} @ {self.fps} fps, serial={self.serial!r}, {state})"


# --- recordings: file checks and cheap indexes -----------------------------------------------------------


def _check_recording_path(path: str | os.PathLike) -> Path:
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


def _db3_index(path: Path) -> dict | None:
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


def _file_index(path: Path) -> dict | None:
    return _db3_index(path) if path.suffix.lower() == ".db3" else _bag_index(path)


def _probe(path: Path) -> dict:
    """Device, streams, depth scale and duration of a recording, read through librealsense's playback."""
    rs = _rs()
    ctx = rs.context()
    try:
        dev = ctx.load_device(str(path))
    except RuntimeError as e:
        hint = " (the file is damaged or truncated)" if "malformed" in str(e) else ""
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
                        entry["intrinsics"] = _intrinsics_from_rs(vp.get_intrinsics()).to_dict()
                    except (RuntimeError, ValueError):
                        pass
                    profiles.setdefault(kind, vp)
                streams.append(entry)
        extr = None
        if "depth" in profiles and "color" in profiles:
            try:
                e = _extrinsics_from_rs(profiles["depth"].get_extrinsics_to(profiles["color"]))
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


def _stream(streams: list[dict], kind: str) -> dict | None:
    return next((s for s in streams if s["stream"] == kind), None)


# --- reading recordings -----------------------------------------------------------------------------------


class _Playback:
    """A recording's playback device with its depth (and color) sensor feeding one bounded buffer.

    Each sensor delivers to a Python callback that appends the frame to a small buffer and blocks while it
    is full; with real time off that blocks the player, so a slow reader loses nothing and a fast one gets
    frames as fast as they decode. Pairing by timestamp happens in :class:`_Pairer`. Found the hard way:

    - ``rs.pipeline`` hands out the newest frame of each stream: depth k came paired with color k+1 once
      non-real-time playback ran ahead of the reader;
    - the player starts reading when the first sensor starts, and frames for a sensor not yet started are
      lost (the first color frames, or all of them in a short file): the player is paused while the sensors
      start. ``resume()`` then waits for the player's thread, which may be delivering frames meanwhile, so
      the buffer stays unbounded until ``resume()`` returned (otherwise both wait 10 s for each other);
    - a ``frame_queue`` given to ``sensor.start`` is called through Python and blocks holding the GIL;
    - ``sensor.stop()`` waits for a player stuck in a full buffer: :meth:`close` raises a stop flag first so
      callbacks return at once;
    - releasing the device while its reader thread is still winding down aborts the process ("pure virtual
      method called"): :meth:`close` waits for the player to report stopped first.

    Players still open at interpreter exit are closed by an ``atexit`` hook, before Python tears down threads.
    """

    def __init__(self, path: Path, with_color: bool, queue_size: int = 4):
        rs = _rs()
        self.path = str(path)
        self.ctx = rs.context()
        try:
            self.device = self.ctx.load_device(self.path)
        except RuntimeError as e:
            raise RecordingError(f"cannot play {path.name}: {e}") from e
        self.sensors: list = []
        self.closed = False
        self.stopping = threading.Event()
        self._buffer: deque = deque()
        self._ready = threading.Condition()
        self._capacity = math.inf  # unbounded until resume() returned (see the class notes)
        self.playback = self.depth_profile = self.color_profile = None
        try:
            self.playback = self.device.as_playback()
            self.playback.set_real_time(False)
            groups = []
            for sensor in self.device.query_sensors():
                mine = []
                for sp in sensor.get_stream_profiles():
                    kind = sp.stream_type()
                    if kind == rs.stream.depth and self.depth_profile is None:
                        self.depth_profile = sp.as_video_stream_profile()
                        mine.append(sp)
                    elif kind == rs.stream.color and with_color and self.color_profile is None:
                        self.color_profile = sp.as_video_stream_profile()
                        mine.append(sp)
                if mine:
                    groups.append((sensor, mine))
            if self.depth_profile is None:
                raise RecordingError(f"{path.name} has no depth stream")
            for sensor, profiles in groups:
                sensor.open(profiles)
                self.sensors.append(sensor)
            # paused while the sensors start, so no stream misses its first frames (see the class notes)
            self.playback.pause()
            for sensor in self.sensors:
                sensor.start(self._deliver)
            self.playback.resume()
            with self._ready:
                self._capacity = queue_size
        except RuntimeError as e:
            self.close()
            raise RecordingError(f"cannot play {path.name}: {e}") from e
        except BaseException:
            self.close()
            raise
        _OPEN_PLAYERS.add(self)

    def _deliver(self, frame) -> None:
        """Sensor callback (librealsense thread): queue the frame, waiting while the reader is behind."""
        with self._ready:
            while len(self._buffer) >= self._capacity and not self.stopping.is_set():
                self._ready.wait(0.05)
            if not self.stopping.is_set():
                self._buffer.append(frame)
                self._ready.notify_all()

    def get(self, timeout_s: float):
        """The next frame (depth or color, in delivery order), or None after ``timeout_s``."""
        with self._ready:
            if not self._buffer:
                self._ready.wait(timeout_s)
            if not self._buffer:
                return None
            frame = self._buffer.popleft()
            self._ready.notify_all()
            return frame

    def close(self) -> None:
        """Stop the sensors and unload the file; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        _OPEN_PLAYERS.discard(self)
        self.stopping.set()  # callbacks return at once from now on
        with self._ready:
            self._ready.notify_all()
        for sensor in self.sensors:  # sensor.stop() releases the GIL, so callbacks can finish meanwhile
            try:
                sensor.stop()
            except RuntimeError:
                pass
        for sensor in self.sensors:
            try:
                sensor.close()
            except RuntimeError:
                pass
        self.sensors = []
        with self._ready:  # frames go back to librealsense's pool before the device goes
            self._buffer.clear()
        stopped = _rs().playback_status.stopped
        t_end = time.monotonic() + 1.0
        while (
            self.playback is not None
            and self.playback.current_status() != stopped
            and time.monotonic() < t_end
        ):
            time.sleep(0.005)
        self.playback = self.device = self.depth_profile = self.color_profile = None
        try:
            self.ctx.unload_device(self.path)
        except RuntimeError:
            pass


_OPEN_PLAYERS: weakref.WeakSet[_Playback] = weakref.WeakSet()


@atexit.register
def _close_open_players() -> None:
    for player in list(_OPEN_PLAYERS):
        player.close()


class _Pairer:
    """Pairs depth and color frames by timestamp, keeping depth order.

    Depth and color come from two librealsense threads, so either may run a few frames ahead. A depth frame
    waits here until its color arrives (timestamps within ``tolerance_ms``) or until a newer color shows that
    its own never will; it then leaves without color. At most ``max_waiting`` depth frames wait, so frames
    from librealsense's small frame pool are never hoarded.
    """

    def __init__(self, has_color: bool, tolerance_ms: float, max_waiting: int = 8):
        self.has_color, self.tolerance_ms, self.max_waiting = has_color, tolerance_ms, max_waiting
        self.waiting: deque[list] = deque()  # [depth, color or None], in depth order
        self.colors: deque = deque()  # colors that arrived before their depth
        self.newest_color = -math.inf

    def add(self, frame, is_depth: bool) -> list[tuple]:
        """Take one frame; return the (depth, color or None) pairs now complete, in depth order."""
        if not self.has_color:
            return [(frame, None)] if is_depth else []
        t, tol = frame.get_timestamp(), self.tolerance_ms
        if is_depth:
            match = next((i for i, c in enumerate(self.colors) if abs(c.get_timestamp() - t) <= tol), None)
            color = None
            if match is not None:
                color = self.colors[match]
                del self.colors[match]
            self.waiting.append([frame, color])
        else:
            self.newest_color = max(self.newest_color, t)
            entry = next(
                (e for e in self.waiting if e[1] is None and abs(e[0].get_timestamp() - t) <= tol), None
            )
            if entry is not None:
                entry[1] = frame
            else:
                self.colors.append(frame)
                while len(self.colors) > self.max_waiting:
                    self.colors.popleft()
        return self._ready()

    def _ready(self) -> list[tuple]:
        out = []
        while self.waiting:
            d, c = self.waiting[0]
            if c is None and self.newest_color <= d.get_timestamp() + self.tolerance_ms:
                if len(self.waiting) <= self.max_waiting:
                    break  # its color may still come
            out.append(tuple(self.waiting.popleft()))
        if out:  # colors older than the newest delivered depth can no longer be matched
            t = out[-1][0].get_timestamp()
            while self.colors and self.colors[0].get_timestamp() < t - self.tolerance_ms:
                self.colors.popleft()
        return out

    def flush(self) -> list[tuple]:
        """Everything still waiting (end of file), depth frames without their color."""
        out = [tuple(e) for e in self.waiting]
        self.waiting.clear()
        self.colors.clear()
        return out


class RecordingSource:
    """A RealSense recording (``.bag`` ROS1 or ``.db3`` ROS2) as a re-iterable sequence of :class:`Frame`.

    Opening checks the file (exists, right extension and magic bytes, readable stream layout, has depth)
    and raises at once: FileNotFoundError, ValueError for a wrong extension, :class:`RecordingError`
    for anything damaged. Iterating plays the file through ``pyrealsense2``'s playback device, once, with
    ``set_real_time(False)``: every frame in order, as fast as it decodes (see :class:`_Playback` for why
    not through ``rs.pipeline``). Breaking out of the loop early releases the file; iterate again to replay.

    Parameters
    ----------
    path : str or Path
    timeout_s : float, seconds
        Longest wait for the next frame while the player still runs; a stalled playback (known librealsense
        bug with non-real-time playback, or a damaged file) raises :class:`RecordingError` after it.
    align : bool
        When depth and color differ in intrinsics or pose, resample depth onto the color camera with
        ``rs.align`` (frames then have ``frame.aligned``). With False frames keep the native depth image and
        carry ``depth_to_color`` extrinsics. Recordings whose streams already coincide (everything facecap
        writes from aligned frames) are never resampled.

    Notes
    -----
    Depth-only recordings yield frames without color; color-only recordings are refused (facecap needs depth).
    A depth frame whose color is missing from the file (at the start or end of a recording whose streams
    started or stopped at different times, or the last frame of an interrupted one) comes without color,
    except when it has to be aligned: then it is dropped, so every frame has the same size, and counted in
    :attr:`dropped` (for the latest iteration). ``len()`` comes from the file's index (SQLite for ``.db3``,
    the bag index for ``.bag``) without decoding; when playback ends short of it (a frame that cannot be
    decoded), the frames before are delivered and then :class:`RecordingError` says so.
    """

    def __init__(self, path: str | os.PathLike, *, timeout_s: float = 5.0, align: bool = True):
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}")
        self.path = _check_recording_path(path)
        self.timeout_s, self.align = float(timeout_s), bool(align)
        self._probe = _probe(self.path)
        streams = self._probe["streams"]
        self._depth, self._color = _stream(streams, "depth"), _stream(streams, "color")
        if self._depth is None:
            kinds = ", ".join(sorted({s["stream"] for s in streams})) or "none"
            raise RecordingError(
                f"{self.path.name} has no depth stream (streams: {kinds}); facecap tracks depth, "
                "record depth (Z16) together with color"
            )
        if self._depth["format"] != "z16":
            raise RecordingError(
                f"{self.path.name}: depth is {self._depth['format']}, facecap reads Z16 depth"
            )
        if self._color is not None and self._color["format"] not in _COLOR_FORMATS:
            raise RecordingError(
                f"{self.path.name}: color format {self._color['format']} is not supported "
                f"(facecap reads {', '.join(_COLOR_FORMATS)}); record color as RGB8"
            )
        self._index = _file_index(self.path)
        self.dropped = 0

    @property
    def frame_count(self) -> int | None:
        """Depth frames in the file according to its index, or None when the index cannot tell."""
        return None if self._index is None else self._index["frames"]

    @property
    def has_color(self) -> bool:
        return self._color is not None

    def __len__(self) -> int:
        if self.frame_count is None:
            raise TypeError(
                f"{self.path.name} has no readable index, its frame count is unknown until played"
            )
        return self.frame_count

    def info(self) -> dict:
        """What :func:`recording_info` reports for this file."""
        return _info(self.path, self._probe, self._index)

    def __iter__(self) -> Iterator[Frame]:
        player = _Playback(self.path, with_color=self._color is not None)
        try:
            convert = _Converter(
                player.depth_profile,
                player.color_profile,
                self._probe["depth_scale"] or DEPTH_UNITS,
                self.align,
            )
            yield from self._play(player, player.playback, convert, max(player.depth_profile.fps(), 1))
        except RuntimeError as e:
            raise RecordingError(f"playback of {self.path.name} failed: {e}") from e
        finally:
            player.close()

    def _play(self, player, playback, convert: _Converter, fps: int) -> Iterator[Frame]:
        depth = _rs().stream.depth
        stopped = _rs().playback_status.stopped
        expected = self.frame_count
        pairer = _Pairer(self._color is not None, tolerance_ms=500.0 / fps)
        n, idle_polls, last_key = 0, 0, None  # n: frames yielded; n + self.dropped: depth frames played
        self.dropped = 0
        deadline = time.monotonic() + self.timeout_s
        while expected is None or n + self.dropped < expected:
            f = player.get(0.05)
            if f is not None:
                idle_polls, pairs = 0, pairer.add(f, f.get_profile().stream_type() == depth)
            elif playback.current_status() == stopped:
                idle_polls += 1  # the player is done; let the last callbacks land, then flush
                pairs = pairer.flush() if idle_polls >= 4 else []
            elif time.monotonic() > deadline:
                raise RecordingError(
                    f"playback of {self.path.name} stalled after {n} frames: no frame for "
                    f"{self.timeout_s:g} s (damaged file?)"
                )
            else:
                continue
            for d, c in pairs:
                key = (d.get_frame_number(), d.get_timestamp())
                extra = expected is not None and n + self.dropped >= expected
                if key == last_key or extra:  # delivered twice / beyond the index
                    continue
                last_key = key
                deadline = time.monotonic() + self.timeout_s
                if convert.drops(c):  # no color to align onto
                    self.dropped += 1
                    continue
                yield convert(d, c, n)
                n += 1
                deadline = time.monotonic() + self.timeout_s
            if idle_polls >= 4:
                break
        played = n + self.dropped
        if expected is not None and played < expected:
            raise RecordingError(
                f"playback of {self.path.name} ended after {played} of {expected} frames: frame {played} "
                "could not be decoded (damaged file?); the frames before it were delivered"
            )

    def __repr__(self) -> str:
        return f"RecordingSource({str(self.path)!r}, frames={self.frame_count})"


def read_recording(path: str | os.PathLike, *, timeout_s: float = 5.0, align: bool = True) -> Iterator[Frame]:
    """Frames of a RealSense recording (``.bag`` or ``.db3``), in order, as fast as they decode.

    Parameters
    ----------
    path : str or Path
    timeout_s : float, seconds
        Longest wait for one frame before a stalled playback raises :class:`RecordingError`.
    align : bool
        Resample depth onto color when their cameras differ (see :class:`RecordingSource`).

    Yields
    ------
    Frame
        depth (H, W) float32 metres (z16 * depth scale, 0 = no data), color (H, W, 3) uint8 RGB or None for
        depth-only files, intrinsics from the stream profiles, timestamp in seconds (device clock),
        index 0, 1, ...

    Raises
    ------
    FileNotFoundError, ValueError (wrong extension), RecordingError (damaged file, no depth, stalled
    playback); the file checks happen before the first frame is requested.
    """
    return iter(RecordingSource(path, timeout_s=timeout_s, align=align))


# --- writing recordings -----------------------------------------------------------------------------------


class _Db3Writer:
    """A ``rs.software_device`` with a depth (z16) and optional color sensor, recorded by ``rs.recorder``."""

    def __init__(
        self,
        path: Path,
        first: Frame,
        fps: int,
        depth_units: float,
        device_name: str,
        color_format: str = "rgb8",
        compress: bool = False,
    ):
        rs = _rs()
        self.rs, self.path, self.depth_units = rs, path, float(depth_units)
        self.depth_intrinsics, self.color_intrinsics = first.depth_intrinsics, first.color_intrinsics
        self.depth_to_color = first.depth_to_color
        self.color_format = color_format
        self.shape = first.depth.shape
        self.last_timestamp = -math.inf
        self.pushed = 0
        dev = rs.software_device()
        dev.register_info(rs.camera_info.name, device_name)
        depth_sensor = dev.add_sensor("Stereo Module")
        depth_sensor.add_read_only_option(rs.option.depth_units, self.depth_units)
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.fps, vs.bpp, vs.fmt = rs.stream.depth, 0, 0, fps, 2, rs.format.z16
        vs.width, vs.height = self.depth_intrinsics.width, self.depth_intrinsics.height
        vs.intrinsics = _intrinsics_to_rs(self.depth_intrinsics)
        self.depth_profile = depth_sensor.add_video_stream(vs).as_video_stream_profile()
        self.sensors = [(depth_sensor, self.depth_profile)]
        self.color_profile = None
        if first.color is not None:
            color_sensor = dev.add_sensor("RGB Camera")
            cs = rs.video_stream()
            cs.type, cs.index, cs.uid, cs.fps = rs.stream.color, 0, 1, fps
            cs.bpp = 4 if color_format.endswith("a8") else 3
            cs.fmt = getattr(rs.format, color_format)
            cs.width, cs.height = self.color_intrinsics.width, self.color_intrinsics.height
            cs.intrinsics = _intrinsics_to_rs(self.color_intrinsics)
            self.color_profile = color_sensor.add_video_stream(cs).as_video_stream_profile()
            self.depth_profile.register_extrinsics_to(
                self.color_profile, _extrinsics_to_rs(self.depth_to_color)
            )
            self.sensors.append((color_sensor, self.color_profile))
        try:  # the recorder must exist before the sensors open, or it records nothing
            self.recorder = rs.recorder(str(path), dev, bool(compress))
        except RuntimeError as e:
            raise OSError(errno.EIO, f"cannot create the recording {path}: {e}") from e
        self.device = dev
        self.syncer = rs.syncer()
        for sensor, profile in self.sensors:
            sensor.open(profile)
        for sensor, _ in self.sensors:
            sensor.start(self.syncer)

    def check(self, frame: Frame, k: int) -> None:
        """Raise ValueError when frame k does not fit the stream layout fixed by the first frame."""
        if frame.depth.shape != self.shape or frame.depth_intrinsics != self.depth_intrinsics:
            raise ValueError(
                f"frame {k}: depth intrinsics {frame.depth_intrinsics} differ from the first frame's "
                f"{self.depth_intrinsics}; a recording has one stream layout"
            )
        if (frame.color is None) != (self.color_profile is None):
            has = "has no" if frame.color is None else "has"
            raise ValueError(
                f"frame {k} {has} color unlike the first frame; a recording has one stream layout"
            )
        if frame.color is not None and frame.color_intrinsics != self.color_intrinsics:
            raise ValueError(f"frame {k}: color intrinsics differ from the first frame's")
        ex, ex0 = frame.depth_to_color, self.depth_to_color
        if not (np.allclose(ex.rotation, ex0.rotation) and np.allclose(ex.translation, ex0.translation)):
            raise ValueError(f"frame {k}: depth_to_color extrinsics differ from the first frame's")
        if not frame.timestamp > self.last_timestamp:
            raise ValueError(
                f"frame {k}: timestamp {frame.timestamp} s is not after the previous frame's "
                f"{self.last_timestamp} s; recordings need increasing timestamps "
                "(e.g. set frame.timestamp = index / fps)"
            )

    def _software_frame(self, pixels: np.ndarray, profile, bpp: int, k: int, t_ms: float):
        rs = self.rs
        f = rs.software_video_frame()
        f.pixels = pixels
        f.bpp = bpp
        f.stride = pixels.shape[1] * bpp
        f.timestamp = t_ms
        f.domain = rs.timestamp_domain.hardware_clock
        f.frame_number = k
        f.profile = profile
        return f

    def push(self, frame: Frame) -> None:
        k = self.pushed
        self.check(frame, k)
        t_ms = frame.timestamp * 1000.0
        z = np.rint(frame.depth * np.float32(1.0 / self.depth_units))
        np.clip(z, 0, 65535, out=z)
        f = self._software_frame(z.astype(np.uint16), self.depth_profile, 2, k, t_ms)
        f.depth_units = self.depth_units
        self.sensors[0][0].on_video_frame(f)
        if self.color_profile is not None:
            c = frame.color
            if self.color_format == "bgr8":
                c = c[..., ::-1]
            elif self.color_format in ("rgba8", "bgra8"):
                rgb = c if self.color_format == "rgba8" else c[..., ::-1]
                c = np.concatenate([rgb, np.full(c.shape[:2] + (1,), 255, np.uint8)], axis=2)
            c = np.ascontiguousarray(c)
            self.sensors[1][0].on_video_frame(
                self._software_frame(c, self.color_profile, c.shape[2], k, t_ms)
            )
        while self.syncer.poll_for_frames():  # the recorder taps the sensors; the syncer is only a sink
            pass
        self.pushed += 1
        self.last_timestamp = frame.timestamp

    def close(self) -> int:
        """Stop the sensors, finish the file, and return the depth frames it really holds."""
        for sensor, _ in self.sensors:
            try:
                sensor.stop()
            except RuntimeError:
                pass
        for sensor, _ in self.sensors:
            try:
                sensor.close()
            except RuntimeError:
                pass
        self.recorder = self.syncer = self.device = None
        self.sensors = []
        gc.collect()  # the recorder closes the file when its last reference goes
        idx = _db3_index(self.path)
        if idx is None:
            return 0
        return min(idx["frames"], idx["color_frames"]) if self.color_profile is not None else idx["frames"]


def _estimate_fps(first: Frame, second: Frame | None) -> int:
    if second is None:
        return 30
    dt = second.timestamp - first.timestamp
    if not dt > 0:
        raise ValueError(
            f"frame 1: timestamp {second.timestamp} s is not after frame 0's {first.timestamp} s; "
            "recordings need increasing timestamps (e.g. set frame.timestamp = index / fps)"
        )
    return int(min(max(round(1.0 / dt), 1), 1000))


def write_recording(
    path: str | os.PathLike,
    frames: Iterable[Frame],
    *,
    fps: int | None = None,
    depth_units: float = DEPTH_UNITS,
    overwrite: bool = False,
    progress: bool | Callable[[int], None] = False,
    device_name: str = "facecap",
    min_free_bytes: int = MIN_FREE_BYTES,
    compress: bool = False,
) -> int:
    """Write frames as a RealSense ROS2 recording (``.db3``) that any RealSense tool plays back.

    Parameters
    ----------
    path : str or Path
        Output file; must end in ``.db3`` (librealsense's recorder writes ROS2 bags only, no ``.bag``).
    frames : iterable of Frame
        All with the stream layout of the first: same depth (and color) intrinsics, color present in all or
        none (none gives a depth-only recording), same ``depth_to_color``; timestamps strictly increasing.
        Unaligned frames are written as they are, with their extrinsics; readers can align them.
    fps : int, optional
        Nominal stream rate written into the file; default from the first two timestamps (30 for one frame).
    depth_units : float, metres
        Depth step of the stored z16 values. Depth becomes ``round(depth / depth_units)`` clipped to 65535
        (65.5 m at 1 mm); 0 stays 0 (no data), so the round trip is exact to ``depth_units / 2``.
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` raises FileExistsError.
    progress : bool or callable
        True shows a tqdm bar; a callable is called with the number of frames written after each frame.
    device_name : str
        Camera name stored in the file (``facecap info`` shows it).
    min_free_bytes : int
        Stop cleanly when the disk holding ``path`` has less free space than this.
    compress : bool
        False (default) stores raw z16 / rgb8 images: at 640x480 about 1.5 MB a frame, written at ~150 fps
        and played back at ~600 fps here. True stores lossless PNG (the librealsense recorder's default):
        about half the size, but written at ~35 fps and played back at ~55 fps, too slow to record a live
        camera at 60/90 fps. Both round-trip exactly.

    Returns
    -------
    int
        Frames written (counted in the finished file).

    Raises
    ------
    ValueError for a wrong extension, no frames or an inconsistent frame; FileExistsError; FileNotFoundError
    for a missing folder; PermissionError; OSError (ENOSPC) when the disk fills up, or EIO when fewer frames
    reached the file than were given. After an error the frames written so far stay in a readable file, and
    the exception's notes say how many.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() != ".db3":
        raise ValueError(
            f"{path.name}: write_recording writes ROS2 recordings, which need the .db3 extension "
            "(librealsense's recorder cannot write ROS1 .bag); use e.g. take.db3"
        )
    if not (1e-6 <= float(depth_units) <= 0.01):
        raise ValueError(f"depth_units must be in metres, between 1e-6 and 0.01, got {depth_units}")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write into {parent} (permission denied); choose another folder")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder")
        path.unlink()
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("no frames to write")
    second = None
    if fps is None:  # peek at the second frame only when the rate must come from the timestamps
        second = next(it, None)
        fps = _estimate_fps(first, second)
    if not (isinstance(fps, int | np.integer) and 1 <= fps <= 1000):
        raise ValueError(f"fps must be an integer between 1 and 1000, got {fps!r}")
    _check_free(parent, min_free_bytes, path, 0)
    bar = None
    if progress is True:
        from tqdm import tqdm

        total = len(frames) if hasattr(frames, "__len__") else None
        bar = tqdm(total=total, unit="frame", desc=f"writing {path.name}")
    writer = _Db3Writer(path, first, int(fps), depth_units, device_name, compress=compress)
    stored = None
    try:
        for frame in _chain(first, second, it):
            if not isinstance(frame, Frame):
                raise ValueError(f"frame {writer.pushed} is a {type(frame).__name__}, expected facecap.Frame")
            if writer.pushed % 8 == 0:
                _check_free(parent, min_free_bytes, path, writer.pushed)
            writer.push(frame)
            if bar is not None:
                bar.update(1)
            elif callable(progress):
                progress(writer.pushed)
    except BaseException as e:
        stored = writer.close()
        e.add_note(f"{stored} frames were written to {path}; the file stays readable")
        raise
    finally:
        if bar is not None:
            bar.close()
        if stored is None:
            stored = writer.close()
    if stored < writer.pushed:
        raise OSError(
            errno.EIO,
            f"only {stored} of {writer.pushed} frames reached {path} (disk full or I/O "
            "error?); the file stays readable with the frames it holds",
        )
    return stored


def _chain(first: Frame, second: Frame | None, rest: Iterator[Frame]) -> Iterator[Frame]:
    yield first
    if second is not None:
        yield second
    yield from rest


def _check_free(folder: Path, min_free_bytes: int, path: Path, written: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < min_free_bytes:
        raise OSError(
            errno.ENOSPC,
            f"disk almost full: {free / 2**20:.0f} MiB free in {folder} (need "
            f"{min_free_bytes / 2**20:.0f} MiB) after {written} frames of {path.name}",
        )


# --- recording info ---------------------------------------------------------------------------------------


def _info(path: Path, probe: dict, index: dict | None) -> dict:
    streams = [{k: v for k, v in s.items() if k != "index"} for s in probe["streams"]]
    depth, color = _stream(probe["streams"], "depth"), _stream(probe["streams"], "color")
    frames = None if index is None else index["frames"]
    nominal = depth["fps"] if depth else None
    span = probe["playback_duration_s"]  # first to last frame by the file's message times
    if index is not None and index["first_ms"] is not None and index["last_ms"] is not None:
        span = (index["last_ms"] - index["first_ms"]) / 1000.0  # the same by the frames' own timestamps
    duration = span + 1.0 / nominal if (nominal and frames) else span
    aligned = None
    if depth and color:
        ex = probe["depth_to_color"]
        same_pose = ex is None or (
            np.allclose(ex["rotation"], np.eye(3)) and np.allclose(ex["translation"], 0)
        )
        aligned = bool(same_pose and depth.get("intrinsics") == color.get("intrinsics"))
    return {
        "path": str(path),
        "format": "ROS2 .db3" if path.suffix.lower() == ".db3" else "ROS1 .bag",
        "size_bytes": path.stat().st_size,
        "device": probe["device"],
        "streams": streams,
        "resolution": [depth["width"], depth["height"]] if depth and "width" in depth else None,
        "fps": nominal,
        "frames": frames,
        "duration_s": duration,
        "depth_scale": probe["depth_scale"],
        "aligned": aligned,
        "depth_to_color": probe["depth_to_color"],
    }


def recording_info(path: str | os.PathLike) -> dict:
    """Summary of a RealSense recording without decoding its images.

    Returns
    -------
    dict
        ``path``, ``format`` ("ROS2 .db3" / "ROS1 .bag"), ``size_bytes``, ``device`` (camera name),
        ``streams`` (list of dicts: stream, format, fps, width, height, intrinsics), ``resolution`` [w, h] and
        ``fps`` of the depth stream, ``frames`` (depth frames, None when the index cannot tell),
        ``duration_s`` (first to last frame plus one frame period: 300 frames at 30 fps last 10 s),
        ``depth_scale`` (metres per z16 step), ``aligned`` (depth and color share a camera; None without
        color), ``depth_to_color`` (rotation, translation or None).

    Raises
    ------
    FileNotFoundError, ValueError (extension), RecordingError (damaged or not a RealSense file).
    """
    p = _check_recording_path(path)
    return _info(p, _probe(p), _file_index(p))
