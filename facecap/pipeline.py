"""The capture loop: frames -> (MediaPipe landmarks) -> tracker -> outputs. Every command ends here.

``facecap live`` (a RealSense camera), ``play`` and ``track`` (a recording), ``demo`` (the synthetic actor)
and ``stream`` (a take's states) all run :func:`run`::

    from facecap.pipeline import Outputs, run
    from facecap.realsense import RecordingSource
    from facecap.tracker import Tracker

    src = RecordingSource("take.db3")
    with Outputs(["vmc://127.0.0.1:39539"], record="takes/t1", retarget="vrm0", fps=30) as out:
        summary = run(src, Tracker(), out, total=src.frame_count)

- :class:`Outputs` fans every :class:`~facecap.state.FaceState` out to sinks: UDP sinks opened from URLs
  (``facecap.sinks``: VMC, facecap OSC, Face Cap OSC, Live Link), any other :class:`facecap.sinks.Sink`
  (a :class:`~facecap.sinks.FileSink`, a :class:`~facecap.sinks.Collector`) and a crash-safe take
  (``facecap.take.TakeRecorder``, opened at the first frame). Network trouble never reaches the loop
  (sinks count and log it); a retarget mapping (``facecap.retarget``) adds the puppet's clips to every VMC
  stream as extra ``/VMC/Ext/Blend/Val``.
- :func:`run` iterates frames, runs MediaPipe on the colour image when a landmarker is given (landmarks
  are carried from colour to depth pixels), tracks, sends, paces to the source clock with ``realtime``
  (:class:`Pacer`), reports to a progress reporter (``facecap.progress``; the library prints nothing)
  and turns Ctrl-C into a clean stop: the take is finalised, the sockets are closed, and the summary says
  so.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .frames import Frame
from .landmark_stream import LandmarkStream
from .progress import Rate, as_progress
from .state import FaceState
from .take import check_new_take_dir


class Outputs:
    """Where tracked frames go: sinks, an optional take recording, an optional retarget mapping.

    Parameters
    ----------
    sinks : sequence of str or facecap.sinks.Sink
        Sink URLs (``facecap.sinks.open_sink``), e.g. ``["vmc://127.0.0.1:39539", "livelink://host"]``, or
        sink objects (a ``FileSink``, a ``Collector``...), which Outputs closes with the rest.
    record : str or Path, optional
        Take directory to record into (must not exist, or be empty). It is created at the first frame.
    retarget : str, Path or facecap.retarget.Mapping, optional
        Mapping file or built-in name (``"vrm0"``); every VMC sink also sends the mapping's targets as
        extra ``/VMC/Ext/Blend/Val`` clips. Needs at least one ``vmc://`` sink.
    fps : float
        Nominal frame rate of the take (timecode, export rate); :meth:`configure` can set it later.
    rig_name : str
        Rig the weights refer to, stored in the take.
    camera : str or dict, optional
        Camera description stored in the take.
    meta : dict, optional
        Extra JSON-serialisable metadata stored in the take (``"user"``).

    Raises
    ------
    ValueError
        A bad URL, ``retarget`` without a VMC sink.
    FileExistsError
        ``record`` exists and is not an empty folder.
    FileNotFoundError / facecap.retarget.MappingError
        An unknown or invalid mapping.

    Notes
    -----
    Sockets open in the constructor; nothing is written to disk before the first :meth:`send`.
    Use as a context manager or call :meth:`close` (idempotent), which finalises the take.
    """

    def __init__(
        self,
        sinks: Sequence[str] = (),
        record: str | Path | None = None,
        retarget=None,
        *,
        fps: float = 30.0,
        rig_name: str = "facecap-ict",
        camera: str | dict | None = None,
        meta: dict | None = None,
    ) -> None:
        from .retarget import Mapping, load_mapping
        from .sinks import Sink, open_sink

        if isinstance(sinks, str):
            sinks = [u for u in sinks.split(",") if u.strip()]
        given = [s for s in sinks if not isinstance(s, str)]
        urls = [s for s in sinks if isinstance(s, str)]
        for s in given:
            if not isinstance(s, Sink):
                raise TypeError(f"sinks must be URLs or facecap.sinks.Sink objects, got {type(s).__name__}")
        self.mapping = None
        if retarget is not None:
            self.mapping = retarget if isinstance(retarget, Mapping) else load_mapping(retarget)
            if not any(u.strip().lower().startswith("vmc://") for u in urls):
                raise ValueError(
                    f"--retarget {self.mapping.name} sends the puppet's clips over VMC; add a VMC output "
                    "(--vmc 127.0.0.1:39539). Live Link, Face Cap and facecap OSC carry ARKit names only."
                )
        self.record = Path(record).expanduser() if record is not None else None
        if self.record is not None:
            check_new_take_dir(self.record)
        self.fps, self.rig_name, self.camera, self.meta = 30.0, str(rig_name), camera, dict(meta or {})
        self.configure(fps=fps)
        self.sinks: list = list(given)
        try:
            for u in urls:
                vmc = u.strip().lower().startswith("vmc://")
                opts = {"vrm0": self.mapping} if self.mapping is not None and vmc else {}
                self.sinks.append(open_sink(u, **opts))
        except Exception:
            for s in self.sinks:
                s.close()
            raise
        self.recorder = None
        self.frames = 0
        self._closed = False
        self._record_error: BaseException | None = None

    # ------------------------------------------------------------------------------------- setup
    def configure(self, *, fps: float | None = None, rig_name: str | None = None,
                  camera: str | dict | None = None, meta: dict | None = None) -> Outputs:  # fmt: skip
        """Set the take's frame rate, rig, camera and metadata before the first frame; returns self."""
        if self.recorder_open:
            raise RuntimeError("the take is already being recorded; configure Outputs before the first send")
        if fps is not None:
            f = float(fps)
            if not (math.isfinite(f) and f > 0):
                raise ValueError(f"fps must be a positive number, got {fps!r}")
            self.fps = f
        if rig_name is not None:
            self.rig_name = str(rig_name)
        if camera is not None:
            self.camera = camera
        if meta:
            self.meta.update(meta)
        return self

    def add(self, sink) -> Outputs:
        """Send every frame to one more sink (a ``facecap.sinks.Sink``, or anything with ``send(state)``,
        ``close()`` and ``stats``, such as a ``TakeRecorder``); Outputs closes it with the rest."""
        if self._closed:
            raise RuntimeError("Outputs is closed")
        if not all(callable(getattr(sink, k, None)) for k in ("send", "close")):
            raise TypeError(f"a sink needs send(state) and close(), got {type(sink).__name__}")
        self.sinks.append(sink)
        return self

    @property
    def recorder_open(self) -> bool:
        return getattr(self, "recorder", None) is not None

    @property
    def urls(self) -> list[str]:
        """URLs of the network sinks (the take and file sinks are not streams)."""
        return [s.url for s in self._network()]

    def _network(self) -> list:
        from .sinks import MultiSink, UdpSink

        return [s for s in self.sinks if isinstance(s, UdpSink | MultiSink)]

    def _open_recorder(self):
        from .take import TakeRecorder

        meta = dict(self.meta)
        if self.sinks:
            meta.setdefault("streamed_to", self.urls)
        if self.mapping is not None:
            meta.setdefault("retarget", self.mapping.name)
        self.recorder = TakeRecorder(self.record, fps=self.fps, rig_name=self.rig_name, camera=self.camera,
                                     meta=meta)  # fmt: skip
        return self.recorder

    # ------------------------------------------------------------------------------------- per frame
    def send(self, state: FaceState) -> None:
        """Stream one frame to every sink and append it to the take.

        Network errors are counted by the sinks (``stats``), never raised. A take write error
        (``facecap.take.TakeWriteError``: disk full...) is raised after the frame went to the sinks;
        the frames recorded so far stay readable.
        """
        if self._closed:
            raise RuntimeError("Outputs is closed")
        if not isinstance(state, FaceState):
            raise TypeError(f"send() takes a facecap.state.FaceState, got {type(state).__name__}")
        for s in self.sinks:
            s.send(state)
        self.frames += 1
        if self.record is not None and self._record_error is None:
            rec = self.recorder if self.recorder is not None else self._open_recorder()
            try:
                rec.send(state)
            except OSError as e:
                self._record_error = e
                raise

    # ------------------------------------------------------------------------------------- closing
    @property
    def stats(self) -> dict:
        """Frames sent, per-sink counters (``facecap.sinks`` stats), the take path and frame count."""
        return {
            "frames": self.frames,
            "sinks": [s.stats for s in self._network()],
            "take": str(self.record) if self.recorder is not None else None,
            "take_frames": self.recorder.frames if self.recorder is not None else 0,
            "take_complete": (
                bool(self.recorder.meta.get("complete"))
                if self.recorder is not None and self.recorder.closed
                else None
            ),  # fmt: skip
            "retarget": self.mapping.name if self.mapping is not None else None,
        }

    def close(self, *, ended_by: str | None = None) -> dict:
        """Finalise the take (``take.json`` complete, synced) and close the sockets. Idempotent.

        Returns :attr:`stats`.
        """
        if self._closed:
            return self.stats
        self._closed = True
        try:
            if self.recorder is not None:
                self.recorder.close(ended_by=ended_by)
        finally:
            for s in self.sinks:
                s.close()
        return self.stats

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            with contextlib.suppress(Exception):  # the original exception wins
                self.close(ended_by=exc_type.__name__)

    def __repr__(self) -> str:
        parts = self.urls + ([f"record={self.record}"] if self.record else [])
        parts += [f"retarget={self.mapping.name}"] if self.mapping is not None else []
        return f"Outputs({', '.join(parts) or 'nothing'})"


# ============================================================================================ the loop
class Pacer:
    """Paces a loop to its items' timestamps (playing a recording or a take at its own speed).

    ``wait(ts)`` sleeps until the source time ``ts`` is due. The clock (re)starts on the first item, on a
    timestamp that goes backwards (a take played in a loop) and when more than a second behind (no burst to
    catch up).

    Parameters
    ----------
    speed : float
        Playback speed factor (2 = twice as fast).
    """

    def __init__(self, speed: float = 1.0) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = float(speed)
        self._wall0: float | None = None
        self._src0: float | None = None

    def wait(self, ts: float) -> None:
        now = time.perf_counter()
        if self._wall0 is None or self._src0 is None or not ts >= self._src0:
            self._wall0, self._src0 = now, ts
            return
        delay = self._wall0 + (ts - self._src0) / self.speed - now
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:
            self._wall0, self._src0 = now, ts


def run(
    frames: Iterable[Frame] | Iterable[FaceState],
    tracker=None,
    outputs: Outputs | None = None,
    *,
    landmarker=None,
    landmark_max_age_s: float | None = None,
    realtime: bool = False,
    speed: float = 1.0,
    progress=None,
    total: int | None = None,
    label: str = "tracking",
    max_frames: int | None = None,
    view=None,
) -> dict:
    """The capture loop: track a stream of frames and send every result to ``outputs``.

    Every command ends here: ``live`` (a camera), ``play`` and ``track`` (a recording), ``demo`` (the
    synthetic actor) and ``stream`` (a take's states, which need no tracker).

    Parameters
    ----------
    frames : iterable of Frame, or of FaceState
        A ``facecap.realsense.LiveSource``, ``RecordingSource``, the synthetic actor's frames... FaceStates
        (``Take.states()``) go to the outputs as they are.
    tracker : facecap.tracker.Tracker, optional
        Default: a Tracker on the built-in rig (created at the first frame).
    outputs : Outputs, optional
        Where the states go; closed (take finalised) when the loop ends, also on Ctrl-C or an error.
    landmarker : facecap.landmarks.FaceLandmarker, optional
        Run MediaPipe on each frame's colour image and give the 478 landmarks (moved to depth pixels,
        see :func:`facecap.frames.color_to_depth_pixels`) to the tracker. Frames without colour, or whose
        depth cannot be mapped to colour pixels without per-pixel depth, are tracked without landmarks
        (said once, through ``progress``). The caller owns it (and closes it). Detection runs on a worker
        thread concurrently with the fit (:class:`facecap.landmark_stream.LandmarkStream`), frames stay in
        order.
    landmark_max_age_s : float, optional
        For a live camera: capture never waits for the detector; a frame whose own landmarks are not
        ready in time is fitted with the latest landmarks up to this many seconds older, or from depth
        alone. None (default): every frame waits for its own landmarks (recordings).
    realtime : bool
        Pace to the items' timestamps (:class:`Pacer`); default as fast as possible.
    speed : float
        Playback speed factor with ``realtime``.
    progress : facecap.progress.Progress, True or None
        Status reporter (fps, tracked %, fit ms, quality per frame; notes). None: silent, True: a tqdm
        status line on stderr.
    total : int, optional
        Expected frame count (progress bar length).
    max_frames : int, optional
        Stop after this many frames.
    view : facecap.view.ViewServer, optional
        The live view: each tracked frame and its state are handed to it (it draws them only for the
        browsers that watch, on its own thread).

    Returns
    -------
    dict
        ``frames``, ``tracked_frames``, ``tracked_fraction``, ``fit_ms_median``, ``fit_ms_p95``,
        ``quality_median`` (tracked frames), ``landmark_frames`` (frames fitted with landmarks),
        ``landmarks_stale`` (of those, frames that used an earlier frame's landmarks, live only),
        ``landmarks_note`` (why landmarks were skipped, or None), ``landmark_errors`` (detector errors,
        each once), ``latency_ms_median``, ``latency_ms_p95`` (from the frame leaving the source to its
        state sent), ``elapsed_s``, ``fps`` (processing rate),
        ``interrupted`` (Ctrl-C), ``take`` (directory or None), ``take_frames``, ``sinks`` (per-sink stats),
        ``dropped`` (the source's ``dropped`` count, e.g. depth frames a ``RecordingSource`` had no colour
        to align to; 0 for sources without one), ``identity`` (the tracker's online identity refinement,
        :meth:`facecap.calibration.IdentityAdapter.summary`, or None when it is off).

    Raises
    ------
    Whatever the source or tracker raises (e.g. ``facecap.realsense.RecordingError``), after the take was
    finalised and the sockets closed.
    """
    pacer = Pacer(speed)
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    status = as_progress(progress, total, label)
    rate = Rate()
    n = n_tracked = n_lm = n_stale = 0
    fit_ms: list[float] = []
    latency: list[float] = []
    quality: list[float] = []
    note: str | None = None
    noted = 0
    interrupted = False
    ended_by: str | None = None
    stream = None
    if landmarker is not None:
        stream = LandmarkStream(frames, landmarker, max_age_s=landmark_max_age_s)
    t_start = time.perf_counter()
    try:
        for got in stream if stream is not None else frames:
            item, arrived = (got.frame, got.arrived) if stream is not None else (got, time.perf_counter())
            if max_frames is not None and n >= max_frames:
                break
            if not isinstance(item, Frame | FaceState):
                raise TypeError(f"item {n} is a {type(item).__name__}, expected facecap.Frame or FaceState")
            if realtime:
                pacer.wait(float(item.timestamp))
            if isinstance(item, FaceState):
                state = item
            else:
                if tracker is None:
                    from .tracker import Tracker

                    tracker = Tracker()
                lm = None
                if stream is not None:
                    lm = got.landmarks
                    if got.note is not None and note is None:
                        note = got.note
                        status.note(f"note: {note}; tracking from depth alone")
                    for text in stream.notes[noted:]:
                        if text != note:
                            status.note(f"note: {text}")
                    noted = len(stream.notes)
                    n_lm += lm is not None
                    n_stale += lm is not None and got.landmarks_from != got.index
                state = tracker.track(item, landmarks=lm)
                fit_ms.append(float(tracker.last_fit_ms))
                if view is not None:
                    if view.rig is not tracker.rig:  # an identity adapter swapped it
                        view.set_rig(tracker.rig)
                    adapter = getattr(tracker, "adapter", None)
                    view.show(item, state, () if adapter is None else (adapter.status_line(),))
            if outputs is not None:
                outputs.send(state)
            latency.append(time.perf_counter() - arrived)
            n += 1
            if state.tracked:
                n_tracked += 1
                quality.append(float(state.quality))
            q = f"{state.quality:.2f}" if state.tracked else "--"
            fit = f"  fit {fit_ms[-1]:5.1f} ms" if fit_ms else ""
            lm_txt = f"  lmk {100.0 * n_lm / n:3.0f}%" if landmarker is not None else ""
            pct = 100.0 * n_tracked / n
            status.update(1, f"{rate.tick():5.1f} fps  tracked {pct:5.1f}%{fit}  q {q}{lm_txt}")
    except KeyboardInterrupt:
        interrupted, ended_by = True, "KeyboardInterrupt"
    except BaseException as e:
        status.close()
        if outputs is not None:
            with contextlib.suppress(Exception):
                outputs.close(ended_by=type(e).__name__)
        raise
    finally:
        if stream is not None:
            stream.close()
    status.close()
    elapsed = time.perf_counter() - t_start
    st = outputs.close(ended_by=ended_by) if outputs is not None else {}
    return {
        "frames": n,
        "tracked_frames": n_tracked,
        "tracked_fraction": n_tracked / n if n else 0.0,
        "fit_ms_median": float(np.median(fit_ms)) if fit_ms else float("nan"),
        "fit_ms_p95": float(np.percentile(fit_ms, 95)) if fit_ms else float("nan"),
        "quality_median": float(np.median(quality)) if quality else float("nan"),
        "landmark_frames": n_lm,
        "landmarks_stale": n_stale,
        "landmarks_note": note,
        "landmark_errors": [t for t in stream.notes if t != note] if stream is not None else [],
        "latency_ms_median": float(np.median(latency) * 1e3) if latency else float("nan"),
        "latency_ms_p95": float(np.percentile(latency, 95) * 1e3) if latency else float("nan"),
        "elapsed_s": elapsed,
        "fps": n / elapsed if elapsed > 0 else float("nan"),
        "interrupted": interrupted,
        "take": st.get("take"),
        "take_frames": st.get("take_frames", 0),
        "sinks": st.get("sinks", []),
        "dropped": int(getattr(frames, "dropped", 0)),
        "identity": tracker.adapter.summary() if getattr(tracker, "adapter", None) is not None else None,
    }


__all__ = ["Outputs", "Pacer", "run"]
