"""MediaPipe landmarks on a worker thread, concurrent with the fit (the capture loop's detection stage).

Run one after the other on one core, detection (~7-10 ms a frame) and the fit (~3-5 ms) add up; here a
reader thread pulls frames from the source and hands them to a detector thread, and the caller (the fit)
takes them in source order as they come. On two cores the loop then runs at about the rate of the slower
stage, not of their sum. MediaPipe releases the GIL while it runs, as do facecap's Numba kernels.

Two policies:

- ``max_age_s=None`` (recordings, the demo): every frame waits for its own landmarks. Nothing is
  skipped, and the result is the same as running detection inline. The reader runs at most ``ahead``
  frames in front of the fit.
- ``max_age_s=S`` (a live camera): capture never waits for the detector. The detector always takes the
  newest frame not yet detected and skips older ones. Each frame waits at most ``wait_s`` for its own
  landmarks (not at all when the loop is behind); failing that it gets the latest finished landmarks if
  they come from a frame at most ``S`` seconds older, or none (the fit then runs from depth alone). A
  slow detector cannot stall the loop.

Either way frames come out in source order. A detector that raises on a frame gives that frame no
landmarks; the error is reported once, through ``notes``, and detection goes on with the next frame.
An error of the source itself is raised to the caller after the frames read before it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .frames import Frame, color_to_depth_pixels


@dataclass
class Item:
    """One frame of the stream.

    frame : the Frame (or whatever else the source yields: passed through without landmarks)
    arrived : time.perf_counter() seconds when the reader got it from the source
    landmarks : (478, 2) float64 depth-image pixels, or None
    landmarks_from : index in the stream of the frame the landmarks were detected on (its own
        index, or an earlier frame's under ``max_age_s``), or None
    note : why landmarks cannot be had for this source at all (no colour, unaligned depth), or None
    skipped : live only: the detector never ran on this frame (a newer one came first)
    """

    frame: object
    arrived: float
    index: int
    landmarks: np.ndarray | None = None
    landmarks_from: int | None = None
    note: str | None = None
    skipped: bool = False
    done: threading.Event = field(default_factory=threading.Event, repr=False)


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def detect_landmarks(landmarker, frame: Frame) -> tuple[np.ndarray | None, str | None]:
    """MediaPipe landmarks of ``frame`` in its depth image, ready for ``Tracker.track(landmarks=...)``.

    Parameters
    ----------
    landmarker : facecap.landmarks.FaceLandmarker (anything with ``detect(color, timestamp_s)``)
    frame : Frame

    Returns
    -------
    landmarks : (478, 2) float64 depth-image pixels (NaN outside the image), or None (no face found, no
        colour, or depth not mappable to colour pixels)
    reason : str or None, why landmarks cannot be had for this source at all (None when they can)
    """
    if frame.color is None:
        return None, "the source has no colour stream, so MediaPipe landmarks cannot be used"
    if not frame.depth_to_color.is_identity:
        return None, (
            "depth is not aligned to colour (the recording keeps native depth with a stereo offset), so "
            "MediaPipe's colour-image landmarks cannot be placed in the depth image"
        )
    det = landmarker.detect(frame.color, frame.timestamp)
    if det is None:
        return None, None
    return color_to_depth_pixels(det.landmarks, frame), None


class LandmarkStream:
    """Frames of ``source`` with their MediaPipe landmarks, detected on a worker thread.

    Parameters
    ----------
    source : iterable of Frame (other items pass through without landmarks)
    landmarker : facecap.landmarks.FaceLandmarker, or anything with ``detect(color, timestamp_s)``
        returning an object with ``landmarks`` (478, 2) colour pixels, or None. Used from the detector
        thread only; the caller owns it (and closes it).
    max_age_s : float or None
        None: every frame waits for its own landmarks (recordings). A number: a live source. Capture
        never waits for detection, and a frame may use landmarks up to this much older, see the module
        docstring.
    wait_s : float
        With ``max_age_s``: how long a frame waits for its own landmarks [s]; not at all while a newer
        frame is already waiting (the loop is behind).
    ahead : int
        Without ``max_age_s``: frames the reader may read ahead of the caller (>= 1).
    pin : bool
        Confine detection (this stream's detector thread and the landmarker's own threads, through its
        ``pin`` method if it has one: :meth:`facecap.landmarks.FaceLandmarker.pin`) to every CPU the
        process may use but the first, which is left to the fit. Linux only; a no-op on one CPU.

    Iterate to get :class:`Item` in source order. Use as a context manager or call :meth:`close`; closing
    early (Ctrl-C, a break) stops both threads. ``notes`` lists the detector's errors (each kind once;
    ``errors`` counts the frames) and the reason landmarks cannot be had.
    """

    def __init__(self, source: Iterable, landmarker, *, max_age_s: float | None = None,
                 wait_s: float = 0.015, ahead: int = 1, pin: bool = True) -> None:  # fmt: skip
        if max_age_s is not None and not max_age_s >= 0:
            raise ValueError(f"max_age_s must be >= 0 or None, got {max_age_s}")
        if int(ahead) < 1:
            raise ValueError(f"ahead must be >= 1, got {ahead}")
        self.max_age_s = max_age_s
        self.wait_s = float(wait_s)
        self.pin = bool(pin)
        self.notes: list[str] = []
        self.errors = 0  # frames the detector raised on
        self._errors_seen: set[str] = set()
        self._source = source
        self._lm = landmarker
        self._stop = threading.Event()
        # items in source order for the caller; live: unbounded (capture never waits), else bounded
        self._out: queue.Queue = queue.Queue(maxsize=0 if max_age_s is not None else int(ahead))
        self._todo: queue.Queue = queue.Queue(maxsize=0 if max_age_s is not None else int(ahead))
        self._newest: Item | None = None  # live: the newest frame waiting for the detector
        self._cv = threading.Condition()
        self._latest: Item | None = None  # live: the newest frame with landmarks
        self._reader = threading.Thread(target=self._read, name="facecap-reader", daemon=True)
        self._detector = threading.Thread(target=self._detect, name="facecap-landmarks", daemon=True)
        self._started = False

    # ------------------------------------------------------------------ threads
    def _put(self, q: queue.Queue, item) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        end = _End()
        try:
            for i, frame in enumerate(self._source):
                if self._stop.is_set():
                    break
                item = Item(frame=frame, arrived=time.perf_counter(), index=i)
                if not isinstance(frame, Frame):
                    item.done.set()
                elif self.max_age_s is None:
                    if not self._put(self._todo, item):
                        break
                else:
                    with self._cv:
                        self._skip(self._newest)  # never started: the fit won't wait for it
                        self._newest = item
                        self._cv.notify()
                if not self._put(self._out, item):
                    break
        except BaseException as e:  # the source's error reaches the caller in order
            end = _End(e)
        finally:
            self._put(self._out, end)
            if self.max_age_s is None:
                self._put(self._todo, end)
            else:
                with self._cv:
                    self._skip(self._newest)
                    self._newest = end  # type: ignore[assignment]
                    self._cv.notify()

    @staticmethod
    def _skip(item) -> None:
        if isinstance(item, Item):
            item.skipped = True
            item.done.set()

    def _next_todo(self):
        if self.max_age_s is None:
            while not self._stop.is_set():
                try:
                    return self._todo.get(timeout=0.05)
                except queue.Empty:
                    continue
            return None
        with self._cv:
            while self._newest is None and not self._stop.is_set():
                self._cv.wait(0.05)
            item, self._newest = self._newest, None
            if isinstance(item, _End):
                self._newest = item  # stays the end for any later call
            return item

    def _detect(self) -> None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if self.pin and len(cpus) > 1 and hasattr(self._lm, "pin"):
            self._lm.pin(set(cpus[1:]))  # detection on all CPUs but the first, the fit's
        while not self._stop.is_set():
            item = self._next_todo()
            if item is None or isinstance(item, _End):
                return
            try:
                lm, why = detect_landmarks(self._lm, item.frame)
            except Exception as e:  # a detector that fails on a frame: that frame has no landmarks
                lm, why = None, None
                self.errors += 1
                what = f"{type(e).__name__}: {e}"
                if what not in self._errors_seen:
                    self._errors_seen.add(what)
                    self._note(f"landmark detection failed ({what}), first on frame {item.index}")
            item.landmarks, item.note = lm, why
            item.landmarks_from = item.index if lm is not None else None
            if why is not None:
                self._note(why)
            if lm is not None:
                self._latest = item
            item.done.set()

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # ------------------------------------------------------------------ caller
    def __iter__(self) -> Iterator[Item]:
        if not self._started:
            self._started = True
            self._reader.start()
            self._detector.start()
        while True:
            got = self._out.get()
            if isinstance(got, _End):
                self.close()
                if got.error is not None:
                    raise got.error
                return
            if self.max_age_s is None:
                got.done.wait()
            elif not got.done.wait(self.wait_s if self._out.empty() else 0.0) or got.skipped:
                # not ready in time (or the loop is behind: a newer frame waits) -> latest recent ones
                late = self._latest
                if late is not None and isinstance(got.frame, Frame) and late.landmarks is not None and \
                        0 <= got.frame.timestamp - late.frame.timestamp <= self.max_age_s:  # fmt: skip
                    got = Item(frame=got.frame, arrived=got.arrived, index=got.index,
                               landmarks=late.landmarks, landmarks_from=late.index)  # fmt: skip
            yield got

    def close(self) -> None:
        """Stop both threads (waits briefly for them; a source blocked in a read is left to exit)."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        for th in (self._reader, self._detector):
            if th.is_alive() and th is not threading.current_thread():
                th.join(timeout=2.0)

    def __enter__(self) -> LandmarkStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Item", "LandmarkStream", "detect_landmarks"]
