"""Reading recordings through pyrealsense2's playback device: RecordingSource, read_recording."""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from ..camera_access import import_pyrealsense2 as _rs
from ..frames import Frame
from .container import check_recording_path, file_index, find_stream, probe_recording
from .convert import COLOR_FORMATS, DEPTH_UNITS, FrameConverter, RecordingError
from .info import info_from_probe


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
        self.path = check_recording_path(path)
        self.timeout_s, self.align = float(timeout_s), bool(align)
        self._probe = probe_recording(self.path)
        streams = self._probe["streams"]
        self._depth, self._color = find_stream(streams, "depth"), find_stream(streams, "color")
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
        if self._color is not None and self._color["format"] not in COLOR_FORMATS:
            raise RecordingError(
                f"{self.path.name}: color format {self._color['format']} is not supported "
                f"(facecap reads {', '.join(COLOR_FORMATS)}); record color as RGB8"
            )
        self._index = file_index(self.path)
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
        return info_from_probe(self.path, self._probe, self._index)

    def __iter__(self) -> Iterator[Frame]:
        player = _Playback(self.path, with_color=self._color is not None)
        try:
            convert = FrameConverter(
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

    def _play(self, player, playback, convert: FrameConverter, fps: int) -> Iterator[Frame]:
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
