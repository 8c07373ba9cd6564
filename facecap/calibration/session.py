"""Live calibration: the protocol's steps prompted one at a time on a stream of frames (a camera).

Each step is announced (its prompt and head-pose hint), counted down, then held until the
:class:`~facecap.calibration.Calibrator` has accepted enough frames of it. A step whose pose was not
held in time (the head elsewhere, moving, no face) is redone after a new countdown, up to ``retries``
times, then left for later: the other steps go on and keep what they captured. Timing follows the frames'
own timestamps, so the same frames give the same session on any machine, and a synthetic performer can
stand in for the camera.

The session prints nothing: it tells a ``listener`` what happens (:class:`Event`), and ``facecap
calibrate`` (live) turns that into prompts, a countdown and a per-step status line.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..frames import Frame
from ..rig import Rig
from ..state import FaceState
from .calibrator import Calibrator, Feedback
from .protocol import PROTOCOL, Protocol, Step


@dataclass
class Event:
    """What the session tells its listener.

    Attributes
    ----------
    kind : "prompt" (a step starts: say ``step.prompt``), "countdown" (``seconds_left`` whole seconds
        before the hold), "hold" (a frame of the hold was judged: ``feedback``), "retry" (the pose was
        not held: ``reason``, a new countdown follows), "step" (the step ended: ``ok``, ``reason``),
        "done" (the protocol ended or was interrupted: ``ok`` when every step was captured)
    step : the protocol step (None for "done")
    number : 1-based position of the step in the protocol; total : its number of steps
    attempt : 1-based attempt at the step
    """

    kind: str
    step: Step | None
    number: int
    total: int
    attempt: int = 1
    seconds_left: int | None = None
    feedback: Feedback | None = None
    ok: bool | None = None
    reason: str = ""


class CalibrationSession:
    """Runs the protocol on a live stream of frames, with prompts, countdowns and retries.

    Parameters
    ----------
    camera : RealSense model name (the depth noise the calibration assumes)
    rig : the generic rig to personalise (default: the built-in one)
    protocol : Protocol (default :data:`facecap.calibration.PROTOCOL`)
    fps : the stream's frame rate (how many frames a hold needs)
    countdown_s : seconds between a step's prompt and its hold (to get into the pose)
    retries : how many times a step that was not held is redone before moving on
    patience : a hold gives up after ``patience`` times the step's hold time without enough good frames
    extra_s : a hold goes on this long after it has enough frames (the margin that lets a recording of
        the session, its depth rounded to the camera's millimetres, find enough of them again)
    listener : callable taking an :class:`Event` (optional)
    view : a :class:`facecap.view.ViewServer` (optional): every frame is shown on it with the step's prompt
        and the countdown or the hold's progress, the fitted face on the frames of a hold

    Attributes
    ----------
    calibrator : the :class:`Calibrator` (made at the first frame, from its intrinsics), None before
    results : {step name: {"ok", "attempts", "accepted", "needed", "reason"}} of the steps done so far
    marks : the holds, in order: {"step", "attempt", "start", "end" (frame timestamps, s), "ok"}; with a
        recording of the same frames they find the steps again (:func:`save_marks`,
        :func:`facecap.calibration.recording.calibrate_recording`)
    interrupted : Ctrl-C (KeyboardInterrupt) ended :meth:`run` before the last step
    """

    def __init__(
        self,
        camera: str = "d415",
        rig: Rig | None = None,
        protocol: Protocol = PROTOCOL,
        *,
        fps: float = 30.0,
        countdown_s: float = 3.0,
        retries: int = 2,
        patience: float = 2.0,
        extra_s: float = 0.25,
        listener: Callable[[Event], None] | None = None,
        view=None,
    ):
        if not (countdown_s >= 0 and patience >= 1 and retries >= 0 and fps > 0 and extra_s >= 0):
            raise ValueError(
                f"need countdown_s >= 0, patience >= 1, retries >= 0, fps > 0 and extra_s >= 0, got "
                f"{countdown_s}, {patience}, {retries}, {fps}, {extra_s}"
            )
        self.camera, self.rig, self.protocol, self.fps = camera, rig, protocol, float(fps)
        self.countdown_s, self.retries, self.patience = float(countdown_s), int(retries), float(patience)
        self.extra_s = float(extra_s)
        self._done_at: float | None = None  # when the hold had enough frames
        self.listener = listener or (lambda event: None)
        self.view = view
        self._status = ""  # the view's second line: the countdown or the hold's progress
        self.calibrator: Calibrator | None = None
        self.results: dict[str, dict] = {}
        self.marks: list[dict] = []
        self.first_timestamp: float | None = None
        self.interrupted = False
        self._i = 0  # the step being done
        self._attempt = 1
        self._phase = "prompt"  # prompt -> countdown -> hold -> (retry -> countdown) -> next step
        self._t0 = 0.0  # when the phase began (frame clock)
        self._shown: int | None = None  # the countdown's last whole second told
        self._rejected: dict[str, int] = {}  # this attempt's rejection reasons

    @property
    def step(self) -> Step | None:
        """The step being done (None once the protocol ended)."""
        return self.protocol[self._i] if self._i < len(self.protocol) else None

    def run(self, frames: Iterable[Frame]) -> Calibrator | None:
        """Feed frames until the protocol ends, the frames end or Ctrl-C; returns the calibrator."""
        try:
            for frame in frames:
                if not self.offer(frame):
                    break
        except KeyboardInterrupt:
            self.interrupted = True
        if self.step is not None:
            self.interrupted = True
        self._emit("done", None, ok=not self.missing())
        return self.calibrator

    def missing(self) -> list[str]:
        """Steps not captured (yet), in protocol order."""
        return [s.name for s in self.protocol if not self.results.get(s.name, {}).get("ok")]

    def offer(self, frame: Frame) -> bool:
        """One frame of the stream; False once the protocol has ended."""
        if not isinstance(frame, Frame):
            raise TypeError(f"offer() needs a facecap.Frame, got {type(frame).__name__}")
        step = self.step
        if step is None:
            return False
        if self.calibrator is None:
            self.first_timestamp = float(frame.timestamp)
            self.calibrator = Calibrator(frame.depth_intrinsics, self.camera, self.rig, self.protocol,
                                         fps=self.fps)  # fmt: skip
        t = float(frame.timestamp)
        if self._phase == "prompt":
            self._emit("prompt", step)
            self._phase, self._t0, self._shown, self._rejected = "countdown", t, None, {}
            self._done_at = None
        if self._phase == "countdown":
            left = self.countdown_s - (t - self._t0)
            if left > 0:
                whole = math.ceil(left)
                if whole != self._shown:
                    self._shown = whole
                    self._emit("countdown", step, seconds_left=whole)
                self._status = f"get ready: {whole}"
                self._show(frame, None, step)
                return True
            self._phase, self._t0 = "hold", t
            self.marks.append(
                {"step": step.name, "attempt": self._attempt, "start": t, "end": t, "ok": False}
            )
        self.marks[-1]["end"] = t
        fb = self.calibrator.add(step.name, frame)
        if not fb.accepted:
            self._rejected[fb.reason] = self._rejected.get(fb.reason, 0) + 1
        self._emit("hold", step, feedback=fb)
        self._status = f"hold: {fb.accepted_frames}/{fb.needed}" + ("" if fb.accepted else f"  ({fb.reason})")
        self._show(frame, self.calibrator.last_state, step)
        if fb.done:
            if self._done_at is None:
                self._done_at = t
            if t - self._done_at >= self.extra_s - 1e-9:
                self._finish(step, True, "", fb)
        elif t - self._t0 > self.patience * step.hold_s:
            reason = max(self._rejected, key=self._rejected.get) if self._rejected else "too few frames"
            if self._attempt <= self.retries:
                self._emit("retry", step, reason=reason)
                self.calibrator.clear(step.name)
                self._attempt += 1
                self._phase = "prompt"
            else:
                self._finish(step, False, reason, fb)
        return self.step is not None

    def _show(self, frame: Frame, state, step: Step) -> None:
        if self.view is not None:
            lines = (f"[{self._i + 1}/{len(self.protocol)}] {step.prompt}", self._status)
            self.view.show(frame, state if state is not None else FaceState(index=frame.index), lines)

    def _finish(self, step: Step, ok: bool, reason: str, fb: Feedback) -> None:
        self.marks[-1]["ok"] = ok
        self.results[step.name] = {"ok": ok, "attempts": self._attempt, "accepted": fb.accepted_frames,
                                   "needed": fb.needed, "reason": reason}  # fmt: skip
        self._emit("step", step, ok=ok, reason=reason)
        self._i += 1
        self._attempt, self._phase = 1, "prompt"

    def _emit(self, kind: str, step: Step | None, **kw) -> None:
        self.listener(Event(kind, step, min(self._i + 1, len(self.protocol)), len(self.protocol),
                            self._attempt, **kw))  # fmt: skip


MARKS_FORMAT = "facecap-calibration-steps"


def marks_path(recording: str | os.PathLike) -> Path:
    """Where the step marks of a recorded session live: beside it, ``<recording>.steps.json``."""
    return Path(str(recording) + ".steps.json")


def save_marks(session: CalibrationSession, recording: str | os.PathLike) -> Path:
    """Write the session's holds beside the recording of its frames (:func:`marks_path`), their times from
    the recording's first frame; ``--from`` then finds each step where it was held, not by the timing."""
    p = marks_path(recording)
    t0 = session.first_timestamp or 0.0
    marks = [m | {"start": round(m["start"] - t0, 6), "end": round(m["end"] - t0, 6)} for m in session.marks]
    doc = {"format": MARKS_FORMAT, "version": 1, "protocol": session.protocol.name,
           "protocol_version": session.protocol.version, "steps": marks}  # fmt: skip
    tmp = p.with_name(p.name + ".part")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, p)  # never a half-written file under the real name
    return p


def load_marks(path: str | os.PathLike, protocol: Protocol) -> list[tuple[str, float, float]]:
    """(step name, start_s, end_s) of each hold that captured its step, from a marks file; ValueError
    when it is not one, or was written for another protocol."""
    try:
        doc = json.loads(Path(path).read_text())
        ok = doc.get("format") == MARKS_FORMAT
        steps = (
            [(m["step"], float(m["start"]), float(m["end"])) for m in doc["steps"] if m.get("ok")]
            if ok
            else []
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a facecap calibration marks file ({e})") from e
    if not ok:
        raise ValueError(f"{path}: not a facecap calibration marks file (format {doc.get('format')!r})")
    if (doc.get("protocol"), doc.get("protocol_version")) != (protocol.name, protocol.version):
        raise ValueError(
            f"{path}: marks of protocol {doc.get('protocol')} v{doc.get('protocol_version')}, "
            f"calibrating with {protocol.name} v{protocol.version} (pass the same --protocol)"
        )
    unknown = sorted({n for n, _, _ in steps} - set(protocol.names))
    if unknown:
        raise ValueError(f"{path}: steps not in the protocol: {', '.join(unknown)}")
    return steps


__all__ = ["CalibrationSession", "Event", "load_marks", "marks_path", "save_marks"]
