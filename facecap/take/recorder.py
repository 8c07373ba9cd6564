"""Recording a take: :class:`TakeRecorder` appends frames crash-safely while a thread fsyncs them.

Durability: every record goes to the operating system as soon as :meth:`TakeRecorder.write` returns
(one unbuffered ``os.write``), so killing the process (SIGKILL, a crash) loses nothing that ``write``
accepted; a background thread calls ``os.fsync`` every ``sync_interval`` seconds (default 0.5 s) and
``close`` syncs once more, so a power cut loses at most the last second. ``fsync`` never runs on the
caller's thread, which therefore never waits for the disk. Raw RGB-D frames (``raw_rgbd=True``) go to
:class:`facecap.realsense.raw.RawRecorder`, a thread of its own.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno as _errno
import json
import os
import platform
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._io import atomic_path, temp_name
from ..state import FaceState
from ..timecode import frames_to_timecode, timecode_rate, timecode_to_frames, wallclock_timecode
from .format import (
    CHUNK_HEADER_SIZE,
    FORMAT_NAME,
    FORMAT_VERSION,
    META_FILE,
    RAW_FILE,
    RECORD_SIZE,
    chunk_header,
    chunk_name,
    pack_record,
    record_layout,
)

if TYPE_CHECKING:
    from ..realsense.raw import RawRecorder


class TakeWriteError(OSError):
    """Writing a take failed (disk full, permissions...). Frames written before the error stay readable.

    Attributes: ``errno``, ``path`` (the take directory), ``frames_saved`` (frames on disk and readable
    with :func:`facecap.take.load_take`).
    """

    def __init__(self, err: int | None, message: str, path: Path, frames_saved: int):
        super().__init__(err, message)
        self.path = path
        self.frames_saved = frames_saved
        self.message = message

    def __str__(self) -> str:
        return self.message


# ----------------------------------------------------------------------------------------- helpers
def _versions() -> dict:
    from importlib import metadata

    from .._version import __version__

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
    """Write JSON to ``path`` durably (fsync) and atomically (``os.replace``); never leaves half a file.

    Where the system has unnamed files (Linux ``O_TMPFILE``) the data is written and synced before the
    file has a name, then linked under a temporary name and renamed onto ``path`` at once: a process
    killed while writing leaves nothing beside the take (a SIGKILL during the fsync of a named temporary
    file left ``.take.<pid>.<n>.tmp.json``). Elsewhere, a named temporary file (``_io.atomic_path``).
    """
    data = (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode()
    fd = _unnamed_file(path.parent)
    if fd is not None:
        try:
            _write_all(fd, data)
            os.fsync(fd)
            named = _name_unnamed(fd, path)
        finally:
            os.close(fd)
        if named:
            _fsync_dir(path.parent)
            return
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(path.parent)


def _unnamed_file(folder: Path) -> int | None:
    """A file descriptor of a new unnamed file in ``folder`` (``O_TMPFILE``), or None where there is none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o644)
    except OSError:  # a file system without unnamed files
        return None


def _name_unnamed(fd: int, path: Path) -> bool:
    """Give the unnamed file ``fd`` the name ``path`` (linked under a temporary name, renamed onto
    ``path``); False when it cannot be linked (no ``/proc``): the caller writes a named file instead."""
    tmp = temp_name(path)
    try:  # linkat(2) through /proc with AT_SYMLINK_FOLLOW: os.link forces linkat only given a src_dir_fd
        procfd = os.open("/proc/self/fd", os.O_RDONLY)
    except OSError:
        return False
    try:
        os.link(str(fd), tmp, src_dir_fd=procfd, follow_symlinks=True)
    except (OSError, NotImplementedError):
        return False
    finally:
        os.close(procfd)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


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
        bag, readable by ``facecap.realsense`` and the RealSense viewer), continued every
        ``raw_segment_s`` seconds in ``raw-001.db3``, ``raw-002.db3``... (``take.json``:
        ``raw_rgbd_segments``): a bag that was not closed cannot be read, so a crash loses only the open
        segment. Frames are queued to a background thread without bound, so none is ever dropped; if the
        disk writer is slower than the camera the queue (memory) grows and :meth:`close` waits for it.
    raw_segment_s : float
        Seconds of raw RGB-D per segment (default 5).
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
        rig_name: str = "facecap-ict",
        camera: str | dict | None = None,
        calibration: str | Path | dict | None = None,
        meta: dict | None = None,
        start_timecode: str | None = None,
        raw_rgbd: bool = False,
        raw_segment_s: float = 5.0,
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
            "record": record_layout(self.chunk_frames),
            "raw_rgbd": RAW_FILE if raw_rgbd else None,
            "complete": False,
        }
        self._raw: RawRecorder | None = None
        if raw_rgbd:  # first: a failing pyrealsense2 import leaves no folder, open file or thread behind
            from ..realsense.raw import RawRecorder

            self._raw = RawRecorder(self.path / RAW_FILE, fps, segment_s=raw_segment_s)
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
        p = self.path / chunk_name(i)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
        except OSError as e:
            raise self._fail(e, f"creating {p.name}") from e
        try:
            _write_all(fd, chunk_header(i))
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

    _pack = staticmethod(pack_record)  # bench and tests pack records without a recorder

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
            raise self._fail(e, f"writing frame {self.frames} to {chunk_name(self._chunk)}") from e
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

    def send(self, state: FaceState) -> None:
        """:meth:`write` under the name every sink has (``facecap.sinks.Sink``): a take is one more output."""
        self.write(state)

    @property
    def url(self) -> str:
        return f"take://{self.path}"

    @property
    def stats(self) -> dict:
        return {"url": self.url, "frames": self.frames}

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
                self.meta["raw_rgbd_segments"] = [name for name, _ in self._raw.segments]
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
