"""Writing recordings in the camera's own ``.db3`` format (``rs.software_device`` + ``rs.recorder``)."""

from __future__ import annotations

import errno
import gc
import math
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..camera_access import import_pyrealsense2 as _rs
from ..frames import Frame
from .container import db3_index
from .convert import DEPTH_UNITS, extrinsics_to_rs, intrinsics_to_rs

MIN_FREE_BYTES = 64 * 2**20


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
        vs.intrinsics = intrinsics_to_rs(self.depth_intrinsics)
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
            cs.intrinsics = intrinsics_to_rs(self.color_intrinsics)
            self.color_profile = color_sensor.add_video_stream(cs).as_video_stream_profile()
            self.depth_profile.register_extrinsics_to(
                self.color_profile, extrinsics_to_rs(self.depth_to_color)
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
        idx = db3_index(self.path)
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
