"""The capture loop: frames -> (MediaPipe landmarks) -> tracker -> streams and a recorded take.

``facecap live`` (a RealSense camera), ``facecap play`` (a recording) and ``facecap demo`` (the synthetic
actor) all end here::

    from facecap.pipeline import Outputs, run
    from facecap.realsense import RecordingSource
    from facecap.tracker import Tracker

    src = RecordingSource("take.db3")
    with Outputs(["vmc://127.0.0.1:39539"], record="takes/t1", retarget="vrm0", fps=30) as out:
        summary = run(src, Tracker(), out, total=src.frame_count)

- :class:`Outputs` fans every :class:`~facecap.state.FaceState` out to UDP sinks (``facecap.sinks``:
  VMC, facecap OSC, Face Cap OSC, Live Link) and into a crash-safe take (``facecap.take.TakeRecorder``).
  Network trouble never reaches the loop (sinks count and log it); a retarget mapping
  (``facecap.retarget``) adds the puppet's clips to every VMC stream as extra ``/VMC/Ext/Blend/Val``.
- :func:`run` iterates frames, runs MediaPipe on the colour image when a landmarker is given (landmarks
  are carried from colour to depth pixels), tracks, sends, paces to the source clock with ``realtime``,
  shows a status line (fps, tracked %, fit ms, quality) and turns Ctrl-C into a clean stop: the take is
  finalised, the sockets are closed and the summary says where the take is.
- :func:`add_output_arguments` / :func:`outputs_from_args` / :func:`landmarker_from_args` give the
  commands one set of flags: ``--vmc/--osc/--facecap/--livelink TARGET`` (repeatable), ``--record DIR``,
  ``--retarget MAP``, ``--landmarks MODEL|auto``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .frames import Frame
from .state import FaceState
from .take import check_new_take_dir

SINK_FLAGS = ("vmc", "osc", "facecap", "livelink")
"""Output flags, one per ``facecap.sinks`` URL scheme."""

_FLAG_HELP = {
    "vmc": "VMC protocol receiver (VSeeFace, Warudo, VMagicMirror; default port 39539)",
    "osc": "facecap OSC namespace receiver (default port 9000)",
    "facecap": "Face Cap OSC receiver (Blender AddRoutes, Faceit; default port 8080)",
    "livelink": "Unreal Live Link Face receiver (default port 11111)",
}


def target_url(kind: str, target: str) -> str:
    """Sink URL for an output flag value.

    Parameters
    ----------
    kind : {"vmc", "osc", "facecap", "livelink"}
    target : str
        ``host:port``, ``host``, a bare port (``39539`` = 127.0.0.1:39539) or a full URL of the same
        scheme (``vmc://host:port?vrm0=1``).

    Returns
    -------
    str, e.g. ``"vmc://127.0.0.1:39539"``
    """
    if kind not in SINK_FLAGS:
        raise ValueError(f"unknown output kind {kind!r}; choose one of {', '.join(SINK_FLAGS)}")
    t = str(target).strip()
    if not t:
        raise ValueError(f"--{kind} needs a target such as 127.0.0.1:39539")
    if "://" in t:
        scheme = t.split("://", 1)[0].lower()
        if scheme != kind:
            raise ValueError(
                f"--{kind} {t}: the URL scheme must be {kind}:// (use --{scheme} for {scheme}://)"
            )
        return t
    if t.isdigit():
        t = f"127.0.0.1:{t}"
    return f"{kind}://{t}"


class Outputs:
    """Where tracked frames go: UDP sinks, an optional take recording, an optional retarget mapping.

    Parameters
    ----------
    sinks : sequence of str
        Sink URLs (``facecap.sinks.open_sink``), e.g. ``["vmc://127.0.0.1:39539", "livelink://host"]``.
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
        rig_name: str = "generic",
        camera: str | dict | None = None,
        meta: dict | None = None,
    ) -> None:
        from .retarget import Mapping, load_mapping
        from .sinks import open_sink

        if isinstance(sinks, str):
            sinks = [u for u in sinks.split(",") if u.strip()]
        urls = list(sinks)
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
        self.sinks: list = []
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
        self.take_frames = 0
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

    @property
    def recorder_open(self) -> bool:
        return getattr(self, "recorder", None) is not None

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.sinks]

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
                rec.write(state)
            except OSError as e:
                self._record_error = e
                raise
            self.take_frames = rec.frames

    # ------------------------------------------------------------------------------------- closing
    @property
    def stats(self) -> dict:
        """Frames sent, per-sink counters (``facecap.sinks`` stats), the take path and frame count."""
        return {
            "frames": self.frames,
            "sinks": [s.stats for s in self.sinks],
            "take": str(self.record) if self.recorder is not None else None,
            "take_frames": self.take_frames,
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
                self.take_frames = self.recorder.frames
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


# ============================================================================================ landmarks
def color_to_depth_pixels(uv: np.ndarray, frame: Frame) -> np.ndarray | None:
    """Carry colour-image pixels to the depth image of ``frame``.

    Exact when depth is aligned to colour (identity) or when the two streams share the optical centre
    (identity ``depth_to_color``; the intrinsics may differ: resolution, focal length). With a real
    stereo offset a pixel's depth would be needed: returns None.

    Parameters
    ----------
    uv : (n, 2) float pixels in the colour image
    frame : Frame with ``color_intrinsics``

    Returns
    -------
    (n, 2) float64 pixels in the depth image (NaN for points outside it), or None.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv must be (n, 2) pixels, got shape {uv.shape}")
    ci, di = frame.color_intrinsics, frame.depth_intrinsics
    if ci is None or not frame.depth_to_color.is_identity:
        return None
    if ci == di:
        out = uv.copy()
    else:
        x = (uv[:, 0] - ci.cx) / ci.fx
        y = (uv[:, 1] - ci.cy) / ci.fy
        out = np.stack([x * di.fx + di.cx, y * di.fy + di.cy], axis=1)
    outside = ~((out[:, 0] >= -0.5) & (out[:, 0] <= di.width - 0.5) & (out[:, 1] >= -0.5)
                & (out[:, 1] <= di.height - 0.5))  # fmt: skip
    out[outside] = np.nan
    return out


# ============================================================================================ the loop
class _Status:
    """The live status line (tqdm on stderr): frames, fps, tracked %, fit ms, quality."""

    def __init__(self, total: int | None, label: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, unit="frame", disable=not enabled, file=sys.stderr,
                        dynamic_ncols=True, mininterval=0.25, smoothing=0.1)  # fmt: skip
        self._t = deque(maxlen=31)

    def update(self, n: int, tracked: int, fit_ms: float, quality: float, lm: str = "") -> None:
        now = time.perf_counter()
        self._t.append(now)
        span = self._t[-1] - self._t[0]
        fps = (len(self._t) - 1) / span if span > 0 else 0.0
        q = f"{quality:.2f}" if quality > 0 else "--"
        self.bar.set_postfix_str(
            f"{fps:5.1f} fps  tracked {100.0 * tracked / max(n, 1):5.1f}%  fit {fit_ms:5.1f} ms  q {q}{lm}",
            refresh=False,
        )
        self.bar.update(1)

    def write(self, msg: str) -> None:
        if not self.bar.disable:
            self.bar.write(msg, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def run(
    frames: Iterable[Frame],
    tracker=None,
    outputs: Outputs | None = None,
    *,
    landmarker=None,
    realtime: bool = False,
    speed: float = 1.0,
    progress: bool = True,
    total: int | None = None,
    label: str = "tracking",
    max_frames: int | None = None,
) -> dict:
    """Track a stream of frames and send every result to ``outputs``.

    Parameters
    ----------
    frames : iterable of Frame
        A ``facecap.realsense.LiveSource``, ``RecordingSource``, the synthetic actor's frames...
    tracker : facecap.tracker.Tracker, optional
        Default: a Tracker on the built-in rig.
    outputs : Outputs, optional
        Where the states go; closed (take finalised) when the loop ends, also on Ctrl-C or an error.
    landmarker : facecap.landmarks.FaceLandmarker, optional
        Run MediaPipe on each frame's colour image and give the 478 landmarks (moved to depth pixels,
        see :func:`color_to_depth_pixels`) to the tracker. Frames without colour, or whose depth cannot
        be mapped to colour pixels without per-pixel depth, are tracked without landmarks (said once).
        The caller owns it (and closes it).
    realtime : bool
        Pace to the frames' timestamps (playing a recording at its own speed); default as fast as possible.
    speed : float
        Playback speed factor with ``realtime``.
    progress : bool
        Show the status line on stderr and the notes about landmarks and Ctrl-C.
    total : int, optional
        Expected frame count (progress bar length).
    max_frames : int, optional
        Stop after this many frames.

    Returns
    -------
    dict
        ``frames``, ``tracked_frames``, ``tracked_fraction``, ``fit_ms_median``, ``fit_ms_p95``,
        ``quality_median`` (tracked frames), ``landmark_frames`` (frames MediaPipe found a face in),
        ``landmarks_note`` (why landmarks were skipped, or None), ``elapsed_s``, ``fps`` (processing rate),
        ``interrupted`` (Ctrl-C), ``take`` (directory or None), ``take_frames``, ``sinks`` (per-sink stats),
        ``dropped`` (the source's ``dropped`` count, e.g. depth frames a ``RecordingSource`` had no colour
        to align to; 0 for sources without one).

    Raises
    ------
    Whatever the source or tracker raises (e.g. ``facecap.realsense.RecordingError``), after the take was
    finalised and the sockets closed.
    """
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be > 0, got {speed}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    if tracker is None:
        from .tracker import Tracker

        tracker = Tracker()
    if total is not None and max_frames is not None:
        total = min(total, max_frames)
    status = _Status(total, label, progress)
    n = n_tracked = n_lm = 0
    fit_ms: list[float] = []
    quality: list[float] = []
    note: str | None = None
    interrupted = False
    ended_by: str | None = None
    wall0 = src0 = None
    t_start = time.perf_counter()
    try:
        for frame in frames:
            if max_frames is not None and n >= max_frames:
                break
            if not isinstance(frame, Frame):
                raise TypeError(f"frame {n} is a {type(frame).__name__}, expected facecap.Frame")
            if realtime:
                wall0, src0 = _pace(frame.timestamp, wall0, src0, speed)
            lm = None
            if landmarker is not None:
                lm, why = frame_landmarks(landmarker, frame)
                if why is not None and note is None:
                    note = why
                    if progress:
                        status.write(f"note: {why}; tracking from depth alone")
                n_lm += lm is not None
            state = tracker.track(frame, landmarks=lm)
            if outputs is not None:
                outputs.send(state)
            n += 1
            fit_ms.append(float(tracker.last_fit_ms))
            if state.tracked:
                n_tracked += 1
                quality.append(float(state.quality))
            lm_txt = f"  lmk {100.0 * n_lm / n:3.0f}%" if landmarker is not None else ""
            status.update(n, n_tracked, fit_ms[-1], float(state.quality) if state.tracked else 0.0, lm_txt)
    except KeyboardInterrupt:
        interrupted, ended_by = True, "KeyboardInterrupt"
    except BaseException as e:
        status.close()
        if outputs is not None:
            with contextlib.suppress(Exception):
                st = outputs.close(ended_by=type(e).__name__)
                if st["take"] and progress:
                    print(f"facecap: take {st['take']} finalised with {st['take_frames']} frames",
                          file=sys.stderr)  # fmt: skip
        raise
    status.close()
    elapsed = time.perf_counter() - t_start
    st = outputs.close(ended_by=ended_by) if outputs is not None else {}
    if interrupted and progress:
        where = f"; take {st['take']} finalised with {st['take_frames']} frames" if st.get("take") else ""
        print(f"stopped by Ctrl-C after {n} frames{where}", file=sys.stderr)
    return {
        "frames": n,
        "tracked_frames": n_tracked,
        "tracked_fraction": n_tracked / n if n else 0.0,
        "fit_ms_median": float(np.median(fit_ms)) if fit_ms else float("nan"),
        "fit_ms_p95": float(np.percentile(fit_ms, 95)) if fit_ms else float("nan"),
        "quality_median": float(np.median(quality)) if quality else float("nan"),
        "landmark_frames": n_lm,
        "landmarks_note": note,
        "elapsed_s": elapsed,
        "fps": n / elapsed if elapsed > 0 else float("nan"),
        "interrupted": interrupted,
        "take": st.get("take"),
        "take_frames": st.get("take_frames", 0),
        "sinks": st.get("sinks", []),
        "dropped": int(getattr(frames, "dropped", 0)),
    }


def _pace(ts: float, wall0: float | None, src0: float | None, speed: float) -> tuple[float, float]:
    """Sleep until the source time ``ts`` is due; (re)start the clock on the first frame, on a timestamp
    that goes backwards and when more than a second behind (no burst to catch up)."""
    now = time.perf_counter()
    if wall0 is None or src0 is None or ts < src0:
        return now, ts
    delay = wall0 + (ts - src0) / speed - now
    if delay > 0:
        time.sleep(delay)
    elif delay < -1.0:
        return now, ts
    return wall0, src0


def frame_landmarks(landmarker, frame: Frame) -> tuple[np.ndarray | None, str | None]:
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


# ============================================================================================ CLI glue
def add_output_arguments(parser: argparse.ArgumentParser, *, landmarks: bool = True) -> None:
    """Add the shared output flags (``--vmc/--osc/--facecap/--livelink``, ``--record``, ``--retarget``,
    and ``--landmarks`` unless ``landmarks=False``) to a command's parser."""
    g = parser.add_argument_group(
        "outputs", "stream every frame (each flag repeatable; TARGET is host:port, a port, or a full URL "
        "such as vmc://127.0.0.1:39539?vrm0=1) and record a take"
    )  # fmt: skip
    for kind in SINK_FLAGS:
        g.add_argument(f"--{kind}", action="append", default=[], metavar="TARGET", help=_FLAG_HELP[kind])
    g.add_argument("--record", metavar="DIR", help="record a take into DIR (new or empty folder)")
    g.add_argument("--retarget", metavar="MAP",
                   help="mapping .json or built-in name (vrm0, perfect_sync, arkit): send the puppet's clips "
                   "too, as extra VMC blendshape clips (needs --vmc)")  # fmt: skip
    if landmarks:
        g.add_argument("--landmarks", metavar="MODEL|auto",
                       help="use MediaPipe face landmarks from the colour image: a face_landmarker.task "
                       "path, or 'auto' ($FACECAP_MEDIAPIPE_MODEL, then "
                       "~/.cache/facecap/face_landmarker.task)")  # fmt: skip


def sink_urls_from_args(args: argparse.Namespace) -> list[str]:
    """The sink URLs of the output flags, in flag order."""
    return [target_url(kind, t) for kind in SINK_FLAGS for t in (getattr(args, kind, None) or [])]


def outputs_from_args(args: argparse.Namespace, **kwargs) -> Outputs:
    """:class:`Outputs` from the parsed output flags; ``kwargs`` go to the constructor (fps, camera...)."""
    return Outputs(sink_urls_from_args(args), record=getattr(args, "record", None),
                   retarget=getattr(args, "retarget", None), **kwargs)  # fmt: skip


def landmarker_from_args(args: argparse.Namespace):
    """A ``facecap.landmarks.FaceLandmarker`` for ``--landmarks MODEL|auto``, or None without the flag."""
    spec = getattr(args, "landmarks", None)
    if not spec:
        return None
    from .landmarks import FaceLandmarker

    return FaceLandmarker(None if spec == "auto" else spec)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM (``kill``) stops the capture like Ctrl-C: the take is finalised."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def format_summary(res: dict, verb: str = "tracked") -> str:
    """Human-readable lines for a :func:`run` summary."""
    lines = [
        f"{verb} {res['frames']} frames in {res['elapsed_s']:.1f} s ({res['fps']:.1f} fps), "
        f"face tracked in {res['tracked_fraction'] * 100:.1f}%, fit {res['fit_ms_median']:.1f} ms median"
        + (", stopped by Ctrl-C" if res["interrupted"] else "")
    ]
    if res.get("dropped"):
        lines.append(f"dropped {res['dropped']} depth frames without a colour frame to align to")
    if res.get("landmarks_note"):
        lines.append(f"landmarks: not used ({res['landmarks_note']})")
    elif res.get("landmark_frames"):
        lines.append(f"landmarks: MediaPipe found the face in {res['landmark_frames']} frames")
    out = format_outputs(res)
    return "\n".join(lines + ([out] if out else []))


def format_outputs(stats: dict) -> str:
    """Lines saying where the take is and what each sink sent (:attr:`Outputs.stats` or a run summary)."""
    lines = []
    if stats.get("take"):
        lines.append(f"take: {stats['take']} ({stats['take_frames']} frames)")
    for s in stats.get("sinks", []):
        err = f", errors {s['errors']}" if s.get("errors") else ""
        lines.append(f"{s['url']}: {s['frames']} frames, {s['datagrams_sent']} datagrams sent{err}")
    return "\n".join(lines)


__all__ = [
    "SINK_FLAGS",
    "Outputs",
    "add_output_arguments",
    "color_to_depth_pixels",
    "format_outputs",
    "format_summary",
    "frame_landmarks",
    "landmarker_from_args",
    "outputs_from_args",
    "run",
    "sigterm_as_interrupt",
    "sink_urls_from_args",
    "target_url",
]
