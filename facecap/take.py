"""Takes: crash-safe recording of tracking results, and reading them back.

A take is a directory::

    TAKE/
        take.json        metadata, written first (atomically: tmp file + os.replace) and again at close
        frames-000.bin   fixed-size binary records, appended as frames arrive
        frames-001.bin   ... a new chunk every ``chunk_frames`` frames
        raw.db3          optional raw RGB-D (RealSense ROS2 bag) when recorded with ``raw_rgbd=True``

Chunk file format (little-endian): a 32-byte header ``b"FCTAKE1\\n"``, uint16 version (1), uint16 header
size (32), uint32 record size, uint32 chunk number, uint32 CRC32 of the preceding 20 bytes, 8 zero bytes;
then records of :data:`RECORD_DTYPE` (349 bytes, packed)::

    index int64 | timestamp float64 s | tracked uint8 | quality float32 | rms_mm float32 |
    weights 52 x float32 (canonical ARKit order) | rotation 3x3 float64 (row-major, rig -> camera) |
    translation 3 x float64 m | gaze 2x2 float32 rad (rows left/right eye, cols yaw/pitch) |
    crc32 uint32 of the 345 bytes before it

Durability: every record goes to the operating system as soon as :meth:`TakeRecorder.write` returns
(one unbuffered ``os.write``), so killing the process (SIGKILL, a crash) loses nothing that ``write``
accepted; a background thread calls ``os.fsync`` every ``sync_interval`` seconds (default 0.5 s) and
``close`` syncs once more, so a power cut loses at most the last second. ``fsync`` never runs on the
caller's thread, which therefore never waits for the disk.

Timecode: SMPTE ``HH:MM:SS:FF`` counted at ``round(fps)`` frames per second, non-drop-frame (29.97 fps
is labelled at 30, drifting 3.6 s per hour against the wall clock like any NDF timecode). The start is
the local wall-clock time of day when the first frame is written, or ``start_timecode``. Frame ``i`` is
labelled ``start + round((timestamp_i - timestamp_0) * fps)`` when timestamps increase strictly, else
``start + i``. Rates above 100 fps print three frame digits.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno as _errno
import json
import os
import platform
import queue
import re
import struct
import sys
import threading
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .arkit import ARKIT_NAMES, NUM_SHAPES
from .livelink import format_timecode, parse_timecode
from .state import FaceState

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

_HEAD = struct.Struct("<qdBff")
RECORD_SIZE = RECORD_DTYPE.itemsize


class TakeWriteError(OSError):
    """Writing a take failed (disk full, permissions...). Frames written before the error stay readable.

    Attributes: ``errno``, ``path`` (the take directory), ``frames_saved`` (frames on disk and readable
    with :func:`load_take`).
    """

    def __init__(self, err: int | None, message: str, path: Path, frames_saved: int):
        super().__init__(err, message)
        self.path = path
        self.frames_saved = frames_saved
        self.message = message

    def __str__(self) -> str:
        return self.message


class TakeRecoveryWarning(UserWarning):
    """A take was read only partly (damaged or truncated chunk) or was never closed."""


# ----------------------------------------------------------------------------------------- timecode
_TC_RE = re.compile(r"^\d{1,2}:\d{2}:\d{2}[:;]\d{2,3}$")  # whole frames; parse_timecode checks the rest


def timecode_rate(fps: float) -> int:
    """Integer frame rate that SMPTE timecode labels count at for ``fps`` (non-drop-frame)."""
    return max(1, int(round(float(fps))))


def timecode_to_frames(timecode: str, fps: float) -> int:
    """Frames since midnight of ``"HH:MM:SS:FF"`` at ``fps`` (non-drop-frame).

    Raises ``ValueError`` for other spellings, drop-frame (``;``) timecode or a frame field >= the rate.
    The arithmetic and range checks are :func:`facecap.livelink.parse_timecode`'s.
    """
    if not _TC_RE.match(str(timecode).strip()):
        raise ValueError(f"timecode {timecode!r} is not SMPTE HH:MM:SS:FF, e.g. '10:00:00:00'")
    rate = timecode_rate(fps)
    frames = round(parse_timecode(str(timecode), rate) * rate)
    if frames >= 24 * 3600 * rate:
        raise ValueError(f"timecode {timecode!r} is out of range: hours must be < 24")
    return frames


def frames_to_timecode(frames: int, fps: float) -> str:
    """``"HH:MM:SS:FF"`` of a frame count since midnight at ``fps`` (wraps at 24 h)."""
    rate = timecode_rate(fps)
    return format_timecode(int(frames) % (24 * 3600 * rate) / rate, rate, digits=0)


def wallclock_timecode(fps: float, when: _dt.datetime | None = None) -> str:
    """SMPTE timecode of the local time of day (now by default) at ``fps``."""
    t = when or _dt.datetime.now()
    rate = timecode_rate(fps)
    frames = ((t.hour * 60 + t.minute) * 60 + t.second) * rate + int(t.microsecond * rate // 1_000_000)
    return frames_to_timecode(frames, fps)


def frame_offsets(timestamps: np.ndarray, fps: float) -> np.ndarray:
    """Frame offset of each frame from the first: from timestamps if they increase strictly, else 0..N-1."""
    ts = np.asarray(timestamps, dtype=np.float64)
    n = len(ts)
    if n > 1 and np.all(np.isfinite(ts)) and np.all(np.diff(ts) > 0):
        return np.round((ts - ts[0]) * float(fps)).astype(np.int64)
    return np.arange(n, dtype=np.int64)


# ----------------------------------------------------------------------------------------- helpers
def _versions() -> dict:
    from importlib import metadata

    from . import __version__

    out = {"facecap": __version__, "numpy": np.__version__, "python": platform.python_version()}
    for pkg in ("pyrealsense2", "usd-core", "pygltflib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def check_new_take_dir(path: str | Path) -> None:
    """Raise ``FileExistsError`` unless ``path`` can hold a new take: it is missing or an empty folder, and
    its parent is not a file."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"{path} exists and is not a directory; choose another take name")
        if any(path.iterdir()):
            raise FileExistsError(
                f"take directory {path} already exists and is not empty; "
                "choose another take name or delete it"
            )
    elif (parent := path.resolve().parent).exists() and not parent.is_dir():
        raise FileExistsError(f"cannot create take {path}: {parent} is a file, not a folder")


def _write_json_atomic(path: Path, obj: dict) -> None:
    """Write JSON to ``path`` via a temporary file, fsync and ``os.replace``; never leaves half a file."""
    data = (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory fds (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _os_write(fd: int, data: bytes | memoryview) -> int:
    """``os.write``; a separate name so tests can simulate a full disk."""
    return os.write(fd, data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = _os_write(fd, view)
        view = view[n:]


def _chunk_name(i: int) -> str:
    return f"frames-{i:03d}.bin"


def _chunk_header(chunk: int) -> bytes:
    head = CHUNK_HEADER.pack(CHUNK_MAGIC, FORMAT_VERSION, CHUNK_HEADER_SIZE, RECORD_SIZE, chunk)
    return head + struct.pack("<I", zlib.crc32(head)) + bytes(CHUNK_HEADER_SIZE - len(head) - 4)


def _jsonable(obj, what: str):
    """Round-trip ``obj`` through JSON (numpy arrays/scalars to lists/floats); ValueError if impossible."""

    def default(o):
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, Path):
            return str(o)
        if hasattr(o, "to_dict"):
            return o.to_dict()
        raise TypeError(f"{type(o).__name__} is not JSON serialisable")

    try:
        return json.loads(json.dumps(obj, default=default, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be JSON-serialisable (numbers, strings, lists, dicts): {e}") from e


# ----------------------------------------------------------------------------------------- recorder
class TakeRecorder:
    """Record :class:`~facecap.state.FaceState` frames into a crash-safe take directory.

    Parameters
    ----------
    path : str or Path
        Take directory to create. It must not exist or be empty.
    fps : float
        Nominal frame rate of the take (timecode rate, playback and export rate).
    rig_name : str
        Name or path of the rig the weights refer to (exporters load it when it is a file).
    camera : str or dict, optional
        Camera description (model, serial, intrinsics...); stored in ``take.json``.
    calibration : str, Path or dict, optional
        Actor calibration used (a path or a JSON-serialisable dict).
    meta : dict, optional
        Extra JSON-serialisable metadata (slate, actor, scene...), stored under ``"user"``.
    start_timecode : str, optional
        ``"HH:MM:SS:FF"`` of the first frame; default: the local wall clock when the first frame is written.
    raw_rgbd : bool
        Also record the raw RGB-D frames given to :meth:`write_frame` into ``raw.db3`` (RealSense ROS2
        bag, readable by ``facecap.realsense`` and the RealSense viewer). Frames are queued to a
        background thread without bound, so none is ever dropped; if the disk writer is slower than the
        camera the queue (memory) grows and :meth:`close` waits for it to drain.
    chunk_frames : int
        Frames per ``frames-NNN.bin`` chunk (default 9000: 100 s at 90 fps, 3.1 MB).
    sync_interval : float
        Seconds between background ``os.fsync`` calls (default 0.5).

    Use as a context manager, or call :meth:`close`; both finalise ``take.json`` even after Ctrl-C::

        with TakeRecorder("takes/slate1_take3", fps=60) as rec:
            for state in tracker.run(source):
                rec.write(state)
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float,
        rig_name: str = "generic",
        camera: str | dict | None = None,
        calibration: str | Path | dict | None = None,
        meta: dict | None = None,
        start_timecode: str | None = None,
        raw_rgbd: bool = False,
        chunk_frames: int = 9000,
        sync_interval: float = 0.5,
    ):
        fps = float(fps)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        if int(chunk_frames) < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        if not sync_interval > 0:
            raise ValueError(f"sync_interval must be > 0 seconds, got {sync_interval}")
        self.path = Path(path)
        self.fps = fps
        self.chunk_frames = int(chunk_frames)
        self.sync_interval = float(sync_interval)
        self._clock_start = start_timecode is None  # set from the wall clock at the first frame
        start_tc = wallclock_timecode(fps) if self._clock_start else start_timecode
        self._start_frames = timecode_to_frames(start_tc, fps)  # validates
        check_new_take_dir(self.path)
        self.meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "fps": fps,
            "timecode_rate": timecode_rate(fps),
            "start_timecode": frames_to_timecode(self._start_frames, fps),
            "start_time": _dt.datetime.now().astimezone().isoformat(timespec="milliseconds"),
            "rig": str(rig_name),
            "camera": _jsonable(camera, "camera"),
            "calibration": _jsonable(calibration, "calibration"),
            "user": _jsonable(meta or {}, "meta"),
            "versions": _versions(),
            "host": {"platform": platform.platform(), "argv": list(sys.argv)},
            "record": {
                "size": RECORD_SIZE,
                "byteorder": "little",
                "fields": [
                    [name, str(RECORD_DTYPE[name].base), list(RECORD_DTYPE[name].shape)]
                    for name in RECORD_DTYPE.names
                ],
                "chunk_header_size": CHUNK_HEADER_SIZE,
                "chunk_frames": self.chunk_frames,
                "blendshapes": list(ARKIT_NAMES),
            },
            "raw_rgbd": RAW_FILE if raw_rgbd else None,
            "complete": False,
        }
        self._raw: _RawWriter | None = None
        if raw_rgbd:  # first: a failing pyrealsense2 import leaves no folder, open file or thread behind
            self._raw = _RawWriter(self.path / RAW_FILE, fps)
        try:
            self._start()
        except BaseException:
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    self._raw.close()  # no frame was queued: its thread ends at once, no file
            raise

    def _start(self) -> None:
        """Create the folder, ``take.json`` and the first chunk; start the fsync thread."""
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self.path / META_FILE, self.meta)

        self.frames = 0  # records safely handed to the OS
        self._first_ts: float | None = None
        self._last_ts: float | None = None
        self._n_tracked = 0
        self._chunk = -1
        self._chunk_count = 0
        self._fd: int | None = None
        self._closed = False
        self._error: TakeWriteError | None = None
        self._bg_error: OSError | None = None
        self._lock = threading.Lock()
        self._dirty = False
        self._stop = threading.Event()
        self._open_chunk(0)
        self._sync_thread = threading.Thread(target=self._sync_loop, name="take-fsync", daemon=True)
        self._sync_thread.start()

    # --------------------------------------------------------------------------- internals
    def _fail(self, e: OSError, doing: str) -> TakeWriteError:
        what = "the disk is full" if e.errno == _errno.ENOSPC else (e.strerror or str(e))
        secs = self.frames / self.fps
        msg = (
            f"take {self.path}: {doing} failed: {what}. {self.frames} frames ({secs:.1f} s) were saved in "
            f"{self.path} and stay readable with facecap.take.load_take / `facecap take info`; "
            "free space (or fix the error) and record a new take."
        )
        err = TakeWriteError(e.errno, msg, self.path, self.frames)
        err.__cause__ = e
        self._error = err
        return err

    def _open_chunk(self, i: int) -> None:
        p = self.path / _chunk_name(i)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as e:
            raise self._fail(e, f"creating {p.name}") from e
        try:
            _write_all(fd, _chunk_header(i))
        except OSError as e:
            os.close(fd)
            with contextlib.suppress(OSError):
                p.unlink()
            raise self._fail(e, f"writing the header of {p.name}") from e
        with self._lock:
            old, self._fd = self._fd, fd
            self._chunk, self._chunk_count, self._dirty = i, 0, True
        if old is not None:
            with contextlib.suppress(OSError):
                os.fsync(old)
            os.close(old)
        _fsync_dir(self.path)  # the new file's directory entry survives a power cut

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_interval):
            self._sync()

    def _sync(self) -> None:
        with self._lock:
            if not self._dirty or self._fd is None:
                return
            fd = os.dup(self._fd)
            self._dirty = False
        try:
            os.fsync(fd)
        except OSError as e:  # reported by the next write()
            self._bg_error = e
        finally:
            os.close(fd)

    @staticmethod
    def _pack(state: FaceState) -> bytes:
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

    # --------------------------------------------------------------------------- public
    def write(self, state: FaceState) -> None:
        """Append one frame. Returns once the record is with the operating system.

        Raises
        ------
        ValueError
            The state has wrong shapes (nothing is written).
        TakeWriteError
            The disk is full or another OS error occurred; earlier frames stay readable and later calls
            raise the same error. Call :meth:`close` (the context manager does) to finalise the take.
        """
        if self._closed:
            raise RuntimeError(f"take {self.path} is closed; start a new TakeRecorder")
        if self._error is not None:
            raise self._error
        if self._bg_error is not None:
            raise self._fail(self._bg_error, "syncing to disk")
        rec = self._pack(state)
        if self._chunk_count >= self.chunk_frames:
            self._open_chunk(self._chunk + 1)
        fd = self._fd
        try:
            _write_all(fd, rec)
        except OSError as e:
            # drop any partial record so the chunk ends on a record boundary
            with contextlib.suppress(OSError):
                os.ftruncate(fd, CHUNK_HEADER_SIZE + self._chunk_count * RECORD_SIZE)
            raise self._fail(e, f"writing frame {self.frames} to {_chunk_name(self._chunk)}") from e
        self._chunk_count += 1
        self.frames += 1
        self._dirty = True
        ts = float(state.timestamp)
        if self._first_ts is None:
            self._first_ts = ts
            if self._clock_start:  # the first frame, not the recorder's creation, starts the timecode
                self.meta["start_timecode"] = wallclock_timecode(self.fps)
                self.meta["start_time"] = _dt.datetime.now().astimezone().isoformat(timespec="milliseconds")
                try:
                    _write_json_atomic(self.path / META_FILE, self.meta)
                except OSError as e:
                    raise self._fail(e, f"updating {META_FILE}") from e
        self._last_ts = ts
        self._n_tracked += bool(state.tracked)

    def write_frame(self, frame) -> None:
        """Queue one raw RGB-D :class:`~facecap.frames.Frame` for ``raw.db3`` (needs ``raw_rgbd=True``).

        Never blocks on the disk and never drops a frame; a failure of the background writer is raised
        here (and by :meth:`close`).
        """
        if self._raw is None:
            raise RuntimeError("this take records no raw RGB-D; create the TakeRecorder with raw_rgbd=True")
        if self._closed:
            raise RuntimeError(f"take {self.path} is closed; start a new TakeRecorder")
        self._raw.put(frame)

    @property
    def duration(self) -> float:
        """Seconds between the first and last timestamp written (0 for fewer than 2 frames)."""
        if self._first_ts is None or self._last_ts is None:
            return 0.0
        return max(0.0, self._last_ts - self._first_ts)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, *, ended_by: str | None = None) -> None:
        """Sync all frames to disk, finish ``raw.db3`` and rewrite ``take.json`` as complete. Idempotent.

        With raw RGB-D this waits until the bag writer has stored every queued frame. After a write
        error the metadata records it and ``complete`` stays false; that error is not raised again.

        Raises
        ------
        TakeWriteError
            The final sync or the metadata rewrite failed (the frames stay readable).
        RuntimeError
            The raw RGB-D recording failed or stalled (the tracked frames are saved).
        """
        if self._closed:
            return
        self._closed = True
        prior = self._error
        self._stop.set()
        self._sync_thread.join()
        raw_error: BaseException | None = None
        if self._raw is not None:
            try:
                self.meta["raw_rgbd_frames"] = self._raw.close()
            except BaseException as e:  # noqa: BLE001 - reported below, after the frames are safe
                raw_error = e
        with self._lock:
            fd, self._fd = self._fd, None
        error: TakeWriteError | None = prior
        if fd is not None:
            try:
                # a record cut by an interrupt mid-write would read as damage: end on a record boundary
                size = CHUNK_HEADER_SIZE + self._chunk_count * RECORD_SIZE
                if os.fstat(fd).st_size > size:
                    os.ftruncate(fd, size)
                os.fsync(fd)
            except OSError as e:
                if error is None:
                    error = self._fail(e, "syncing to disk")
            finally:
                os.close(fd)
        m = self.meta
        m["frames"] = self.frames
        m["chunks"] = self._chunk + 1
        m["tracked_frames"] = self._n_tracked
        m["duration_s"] = self.duration
        m["end_time"] = _dt.datetime.now().astimezone().isoformat(timespec="milliseconds")
        if ended_by:
            m["ended_by"] = ended_by
        if error is not None:
            m["error"] = error.message
        if raw_error is not None:
            m["raw_rgbd_error"] = f"{type(raw_error).__name__}: {raw_error}"
        m["complete"] = error is None
        try:
            _write_json_atomic(self.path / META_FILE, m)
        except OSError as e:
            if error is None:
                error = self._fail(e, f"rewriting {META_FILE}")
                raise error from e
        if error is not None and error is not prior:
            raise error
        if raw_error is not None:
            raise RuntimeError(
                f"take {self.path}: the raw RGB-D recording failed ({raw_error}); "
                f"the {self.frames} tracked frames are saved"
            ) from raw_error

    def __enter__(self) -> TakeRecorder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        ended_by = exc_type.__name__ if exc_type is not None else None
        if exc_type is not None:
            with contextlib.suppress(Exception):  # the original exception wins
                self.close(ended_by=ended_by)
        else:
            self.close()


class _RawWriter:
    """Background thread feeding raw RGB-D frames to ``facecap.realsense.write_recording``.

    ``write_recording`` consumes an iterable; here it is a generator over an unbounded queue, so
    :meth:`put` only enqueues (never blocks on the disk, never drops) and the ROS2 bag is written
    as fast as librealsense can. :meth:`close` waits for the writer to finish; if neither the queue
    nor the files grow for ``stall_s`` seconds it gives up with ``RuntimeError`` (librealsense has
    known hangs) rather than hanging the caller.
    """

    _END = object()

    def __init__(self, path: Path, fps: float, stall_s: float = 60.0):
        from .camera_access import import_pyrealsense2 as _rs

        _rs()  # import pyrealsense2 now (tens of ms), not on the first frame; fails early and clearly

        self.path = path
        self.fps = fps
        self.stall_s = float(stall_s)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.count = 0
        self.stored: int | None = None
        self._ended = False
        self.thread = threading.Thread(target=self._run, name="take-raw-rgbd", daemon=True)
        self.thread.start()

    def _frames(self, first):
        self.count = 1
        yield first
        while True:
            f = self.queue.get()
            if f is self._END:
                self._ended = True
                return
            self.count += 1
            yield f

    def _run(self) -> None:
        from .realsense import write_recording

        first = self.queue.get()
        self._ended = first is self._END
        if self._ended:  # no raw frame was given: no file
            self.stored = 0
            return
        try:
            self.stored = write_recording(self.path, self._frames(first), fps=max(1, int(round(self.fps))))
        except BaseException as e:  # noqa: BLE001 - handed to the recording thread
            self.error = e
            while not self._ended and self.queue.get() is not self._END:  # drain until close()
                pass

    def put(self, frame) -> None:
        if self.error is not None:
            raise RuntimeError(f"raw RGB-D recording to {self.path} failed: {self.error}") from self.error
        self.queue.put(frame)

    @property
    def backlog(self) -> int:
        return self.queue.qsize()

    def _progress(self) -> tuple:
        sizes = []
        for p in self.path.parent.glob(self.path.name + "*"):
            with contextlib.suppress(OSError):
                sizes.append(p.stat().st_size)
        return (self.queue.qsize(), self.count, tuple(sorted(sizes)))

    def close(self) -> int:
        """Finish the bag; return the frames stored in it."""
        self.queue.put(self._END)
        last, since = self._progress(), time.monotonic()
        while self.thread.is_alive():
            self.thread.join(0.5)
            now = self._progress()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since > self.stall_s:
                raise RuntimeError(
                    f"the raw RGB-D writer stalled for {self.stall_s:.0f} s after {self.count} frames; "
                    f"{self.path.name} may be incomplete"
                )
        if self.error is not None:
            raise self.error
        return int(self.stored or 0)


# ----------------------------------------------------------------------------------------- reading
@dataclass
class Take:
    """A recorded or imported take, all frames in memory.

    Attributes
    ----------
    fps : float
    timecodes : list of str, (N,)
        SMPTE ``HH:MM:SS:FF`` (Live Link imports keep their ``HH:MM:SS:FF.mmm`` spelling).
    timestamps : (N,) float64, seconds (source clock)
    weights : (N, 52) float32, canonical ARKit order
    rotations : (N, 3, 3) float64, rig -> camera
    translations : (N, 3) float64, metres, camera frame
    tracked : (N,) bool
    quality : (N,) float32 in [0, 1]
    gaze : (N, 2, 2) float32 radians, (left, right) x (yaw, pitch)
    meta : dict, ``take.json`` contents (or what an importer knows)
    indices : (N,) int64, source frame numbers
    rms_mm : (N,) float32, fit residual (nan when lost)
    extra : dict of str -> (N, ...) arrays
        Channels a source carried beyond the above; a Live Link import keeps its raw ``"head_euler"``
        (N, 3) and ``"eye_euler"`` (N, 2, 3) yaw/pitch/roll columns (Live Link's convention, as in the
        file) so a re-export is identical.
    """

    fps: float
    timecodes: list[str]
    timestamps: np.ndarray
    weights: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    tracked: np.ndarray
    quality: np.ndarray
    gaze: np.ndarray
    meta: dict = field(default_factory=dict)
    indices: np.ndarray | None = None
    rms_mm: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        self.fps = float(self.fps)
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        self.timecodes = [str(t) for t in self.timecodes]
        self.timestamps = np.asarray(self.timestamps, dtype=np.float64).reshape(n)
        self.weights = np.asarray(self.weights, dtype=np.float32)
        self.rotations = np.asarray(self.rotations, dtype=np.float64)
        self.translations = np.asarray(self.translations, dtype=np.float64)
        self.tracked = np.asarray(self.tracked, dtype=bool)
        self.quality = np.asarray(self.quality, dtype=np.float32)
        self.gaze = np.asarray(self.gaze, dtype=np.float32)
        self.indices = (
            np.arange(n, dtype=np.int64) if self.indices is None else np.asarray(self.indices, dtype=np.int64)
        )
        self.rms_mm = (
            np.full(n, np.nan, np.float32)
            if self.rms_mm is None
            else np.asarray(self.rms_mm, dtype=np.float32)
        )
        expect = {
            "timecodes": (len(self.timecodes), (n,)),
            "weights": (self.weights.shape, (n, NUM_SHAPES)),
            "rotations": (self.rotations.shape, (n, 3, 3)),
            "translations": (self.translations.shape, (n, 3)),
            "tracked": (self.tracked.shape, (n,)),
            "quality": (self.quality.shape, (n,)),
            "gaze": (self.gaze.shape, (n, 2, 2)),
            "indices": (self.indices.shape, (n,)),
            "rms_mm": (self.rms_mm.shape, (n,)),
        }
        for name, (got, want) in expect.items():
            got = (got,) if isinstance(got, int) else got
            if tuple(got) != want:
                raise ValueError(f"Take.{name} must have shape {want} for {n} frames, got {tuple(got)}")
        for k, v in self.extra.items():
            if len(v) != n:
                raise ValueError(f"Take.extra[{k!r}] must have {n} rows, got {len(v)}")

    # --------------------------------------------------------------------------- facts
    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    @property
    def duration(self) -> float:
        """Seconds from the first to one frame past the last frame (``N / fps`` for a gapless take)."""
        if not len(self):
            return 0.0
        return float(self.timestamps[-1] - self.timestamps[0]) + 1.0 / self.fps

    def summary(self) -> dict:
        """Facts for ``facecap take info``."""
        n = len(self)
        return {
            "frames": n,
            "fps": self.fps,
            "duration_s": round(self.duration, 3),
            "timecode_in": self.timecodes[0] if n else None,
            "timecode_out": self.timecodes[-1] if n else None,
            "tracked_frames": int(self.tracked.sum()),
            "tracked_percent": round(100.0 * float(self.tracked.mean()), 1) if n else 0.0,
            "complete": self.meta.get("complete"),
            "rig": self.meta.get("rig"),
        }

    def states(self):
        """Iterate the frames as :class:`~facecap.state.FaceState` (for playback to sinks)."""
        for i in range(len(self)):
            yield self.state(i)

    def state(self, i: int) -> FaceState:
        """Frame ``i`` as a :class:`~facecap.state.FaceState`."""
        return FaceState(
            timestamp=float(self.timestamps[i]),
            weights=self.weights[i].copy(),
            rotation=self.rotations[i].copy(),
            translation=self.translations[i].copy(),
            tracked=bool(self.tracked[i]),
            quality=float(self.quality[i]),
            gaze=self.gaze[i].copy(),
            index=int(self.indices[i]),
            rms_mm=float(self.rms_mm[i]),
        )

    def head_euler(self) -> np.ndarray:
        """(N, 3) float64 head (yaw, pitch, roll) radians in the :mod:`facecap.pose` convention (yaw > 0
        toward the subject's left, pitch > 0 face down, roll > 0 counter-clockwise in the image); NaN rows
        where a rotation is not finite. Live Link's angles are
        :func:`facecap.livelink.to_livelink_angles` of these."""
        from .pose import head_euler

        out = np.full((len(self), 3), np.nan)
        for i, r in enumerate(self.rotations):
            if np.isfinite(r).all():
                out[i] = head_euler(r)
        return out

    # --------------------------------------------------------------------------- construction
    @classmethod
    def from_states(
        cls, states, fps: float, *, start_timecode: str = "00:00:00:00", meta: dict | None = None
    ) -> Take:
        """A take from FaceStates in memory (timecodes as :class:`TakeRecorder` would write them)."""
        states = list(states)
        n = len(states)
        ts = np.array([s.timestamp for s in states], dtype=np.float64)
        start = timecode_to_frames(start_timecode, fps)
        return cls(
            fps=fps,
            timecodes=[frames_to_timecode(start + int(o), fps) for o in frame_offsets(ts, fps)],
            timestamps=ts,
            weights=np.array([s.weights for s in states], dtype=np.float32).reshape(n, NUM_SHAPES),
            rotations=np.array([s.rotation for s in states], dtype=np.float64).reshape(n, 3, 3),
            translations=np.array([s.translation for s in states], dtype=np.float64).reshape(n, 3),
            tracked=np.array([s.tracked for s in states], dtype=bool),
            quality=np.array([s.quality for s in states], dtype=np.float32),
            gaze=np.array([s.gaze for s in states], dtype=np.float32).reshape(n, 2, 2),
            meta={"fps": float(fps), "start_timecode": start_timecode, **(meta or {})},
            indices=np.array([s.index for s in states], dtype=np.int64),
            rms_mm=np.array([s.rms_mm for s in states], dtype=np.float32),
        )

    @classmethod
    def from_livelink_csv(cls, path: str | Path, *, fps: float | None = None) -> Take:
        """Import a Live Link Face CSV (iPhone ARKit) as a take.

        Head and eye angles are converted from Live Link's convention to facecap's
        (:func:`facecap.livelink.from_livelink_angles`: yaw and roll negated); head angles then become
        rotations (``facecap.pose.from_euler``; translations are zero, Live Link has none) and eye
        yaw/pitch become ``gaze``. The raw angle columns (Live Link convention, as in the file) are kept
        in ``extra`` (``"head_euler"`` (N, 3), ``"eye_euler"`` (N, 2, 3), NaN on face-lost rows) so that
        ``export_take(take, "x.csv", "livelink-csv")`` writes the same columns and values. Face-lost
        rows (``Timecode,0``) become untracked frames with zero weights and a frontal pose. Timecodes
        are kept verbatim; ``fps`` defaults to the capture rate the CSV reader infers.
        """
        from .livelink import read_csv

        return cls.from_livelink(read_csv(path), fps=fps, source=str(path))

    @classmethod
    def from_livelink(cls, ll, *, fps: float | None = None, source: str | None = None) -> Take:
        """A take from a :class:`facecap.livelink.LiveLinkTake` (see :meth:`from_livelink_csv`)."""
        from .livelink import from_livelink_angles
        from .pose import from_euler

        n = ll.n_frames
        tracked = np.asarray(ll.tracked, dtype=bool).reshape(n)
        head = np.asarray(ll.head, dtype=np.float64).reshape(n, 3)
        eyes = np.asarray(ll.eyes, dtype=np.float64).reshape(n, 2, 3)
        head_ok = from_livelink_angles(np.where(tracked[:, None], np.nan_to_num(head), 0.0))
        rot = np.array([from_euler(*h) for h in head_ok]).reshape(n, 3, 3)
        weights = np.where(tracked[:, None], np.nan_to_num(np.asarray(ll.weights, dtype=np.float64)), 0.0)
        eyes_fc = from_livelink_angles(np.nan_to_num(eyes))
        gaze = np.where(tracked[:, None, None], eyes_fc[:, :, :2], 0.0)
        return cls(
            fps=float(fps or ll.fps),
            timecodes=list(ll.timecodes),
            timestamps=ll.timestamps,
            weights=weights.astype(np.float32),
            rotations=rot,
            translations=np.zeros((n, 3)),
            tracked=tracked,
            quality=tracked.astype(np.float32),
            gaze=gaze.astype(np.float32),
            meta={
                "format": "livelink-csv",
                "source": source or ll.name,
                "fps": float(fps or ll.fps),
                "timecode_rate": int(ll.timecode_fps),
                "start_timecode": ll.timecodes[0] if n else None,
                "rig": "generic",
                "complete": True,
            },
            extra={"head_euler": head, "eye_euler": eyes},
        )


def _read_meta(path: Path) -> dict:
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


def _read_chunk(p: Path, chunk: int) -> tuple[np.ndarray, str | None]:
    """Intact records of one chunk and, if it is damaged, a sentence saying where."""
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


def load_take(path: str | Path) -> Take:
    """Read a take directory written by :class:`TakeRecorder`.

    All chunks are read in order; reading stops at the first damaged or truncated record (or missing
    chunk) with a :class:`TakeRecoveryWarning` saying how many frames were recovered. A take that was
    never closed (crash, SIGKILL) loads the same way and warns once.

    Raises
    ------
    FileNotFoundError
        No such directory, or it has no ``take.json``.
    ValueError
        ``take.json`` is not valid take metadata.
    """
    path = Path(path)
    meta = _read_meta(path)
    fps = float(meta["fps"])
    parts: list[np.ndarray] = []
    problem = None
    chunk_files = sorted(path.glob("frames-*.bin"))
    i = 0
    while True:
        p = path / _chunk_name(i)
        if not p.is_file():
            later = [q.name for q in chunk_files if q.name > p.name]
            if later:
                problem = f"{p.name} is missing (later chunks {', '.join(later)} ignored)"
            break
        recs, problem = _read_chunk(p, i)
        parts.append(recs)
        if problem is not None:
            later = [q.name for q in chunk_files if q.name > p.name]
            if later:
                problem += f"; later chunks {', '.join(later)} ignored"
            break
        i += 1
    recs = np.concatenate(parts) if parts else np.zeros(0, RECORD_DTYPE)
    n = len(recs)
    expected = meta.get("frames")
    if problem is not None:
        also = f" of {expected}" if isinstance(expected, int) else ""
        warnings.warn(
            f"take {path}: {problem}; recovered {n}{also} frames ({n / fps:.2f} s) before it",
            TakeRecoveryWarning,
            stacklevel=2,
        )
    elif not meta.get("complete"):
        why = f" ({meta['error']})" if meta.get("error") else " (recording was interrupted)"
        warnings.warn(
            f"take {path} was not closed{why}; recovered {n} frames ({n / fps:.2f} s)",
            TakeRecoveryWarning,
            stacklevel=2,
        )
    ts = recs["timestamp"].astype(np.float64)
    start_tc = meta.get("start_timecode") or "00:00:00:00"
    start = timecode_to_frames(start_tc, fps)
    timecodes = [frames_to_timecode(start + int(o), fps) for o in frame_offsets(ts, fps)]
    return Take(
        fps=fps,
        timecodes=timecodes,
        timestamps=ts,
        weights=recs["weights"].astype(np.float32),
        rotations=recs["rotation"].astype(np.float64),
        translations=recs["translation"].astype(np.float64),
        tracked=recs["tracked"].astype(bool),
        quality=recs["quality"].astype(np.float32),
        gaze=recs["gaze"].astype(np.float32),
        meta=meta,
        indices=recs["index"].astype(np.int64),
        rms_mm=recs["rms_mm"].astype(np.float32),
    )


def as_take(take: Take | str | Path) -> Take:
    """A :class:`Take` as is, a take directory loaded, or a Live Link ``.csv`` imported."""
    if isinstance(take, Take):
        return take
    p = Path(take)
    if p.is_file() and p.suffix.lower() == ".csv":
        return Take.from_livelink_csv(p)
    return load_take(p)
