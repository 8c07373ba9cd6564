"""Raw RGB-D recording on a thread: frames queued without bound, written to a ``.db3`` as fast as it goes.

:class:`RawRecorder` is what :class:`facecap.take.TakeRecorder` uses for a take's ``raw.db3``
(``raw_rgbd=True``): its :meth:`~RawRecorder.put` never blocks on the disk and never drops a frame.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from pathlib import Path

from .. import camera_access
from .writer import write_recording


def segment_path(path: Path, i: int) -> Path:
    """Segment ``i`` of a raw recording: ``raw.db3``, then ``raw-001.db3``, ``raw-002.db3``..."""
    return path if i == 0 else path.with_name(f"{path.stem}-{i:03d}{path.suffix}")


class RawRecorder:
    """Background thread feeding raw RGB-D frames to :func:`write_recording` (ROS2 ``.db3`` bags).

    Parameters
    ----------
    path : Path
        First bag to write (``raw.db3`` of a take); created only once a first frame is queued.
    fps : float
        Nominal frame rate (stored in the bag rounded to an integer).
    stall_s : float
        Seconds without progress after which :meth:`close` gives up.
    segment_s : float
        Seconds of frames per bag (``segment_path``): librealsense's writer keeps no journal, so a bag
        that is not closed (SIGKILL, power cut) is unreadable by SQLite and by librealsense; every
        closed segment is a complete recording, and :mod:`facecap.realsense.salvage` (``facecap
        salvage``, ``facecap take repair``) reads what reached the disk of the open one (measured: a
        256 MB bag killed after 90 frames could not be opened at all; salvaged, it played 167 frames).
        ``inf``: one bag.

    ``write_recording`` consumes an iterable; here it is a generator over an unbounded queue, so
    :meth:`put` only enqueues (never blocks on the disk, never drops) and the ROS2 bag is written
    as fast as librealsense can. :meth:`close` waits for the writer to finish; if neither the queue
    nor the files grow for ``stall_s`` seconds it gives up with ``RuntimeError`` (librealsense has
    known hangs) rather than hanging the caller.
    """

    _END = object()

    def __init__(self, path: Path, fps: float, stall_s: float = 60.0, segment_s: float = 5.0):
        camera_access.import_pyrealsense2()  # now (tens of ms), not on the first frame; fails early, clearly

        self.path = path
        self.fps = fps
        self.stall_s = float(stall_s)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.count = 0
        self.stored: int | None = None
        self.segments: list[tuple[str, int]] = []  # (file name, frames) of each closed bag
        self.segment_frames = max(1, int(round(segment_s * fps))) if segment_s != float("inf") else None
        self._ended = False
        self.thread = threading.Thread(target=self._run, name="take-raw-rgbd", daemon=True)
        self.thread.start()

    def _frames(self, first):
        """One segment's frames: ``first`` and then up to ``segment_frames`` in all, or until the end."""
        self.count += 1
        yield first
        n = 1
        while self.segment_frames is None or n < self.segment_frames:
            f = self.queue.get()
            if f is self._END:
                self._ended = True
                return
            self.count += 1
            n += 1
            yield f

    def _run(self) -> None:
        first = self.queue.get()
        self._ended = first is self._END
        if self._ended:  # no raw frame was given: no file
            self.stored = 0
            return
        fps = max(1, int(round(self.fps)))
        try:
            total = 0
            while first is not self._END:
                p = segment_path(self.path, len(self.segments))
                n = write_recording(p, self._frames(first), fps=fps)
                self.segments.append((p.name, n))
                total += n
                self.stored = total
                first = self._END if self._ended else self.queue.get()
            self._ended = True
        except BaseException as e:  # noqa: BLE001 - handed to the recording thread
            self.error = e
            while not self._ended and self.queue.get() is not self._END:  # drain until close()
                pass

    def put(self, frame) -> None:
        """Queue one :class:`~facecap.frames.Frame`; ``RuntimeError`` if the writer has already failed."""
        if self.error is not None:
            raise RuntimeError(f"raw RGB-D recording to {self.path} failed: {self.error}") from self.error
        self.queue.put(frame)

    @property
    def backlog(self) -> int:
        """Frames queued and not yet handed to ``write_recording``."""
        return self.queue.qsize()

    def _progress(self) -> tuple:
        sizes = []
        for p in self.path.parent.glob(self.path.stem + "*"):  # every segment and its journal files
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
