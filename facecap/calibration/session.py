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

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..frames import Frame
from ..rig import Rig
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
    listener : callable taking an :class:`Event` (optional)

    Attributes
    ----------
    calibrator : the :class:`Calibrator` (made at the first frame, from its intrinsics), None before
    results : {step name: {"ok", "attempts", "accepted", "needed", "reason"}} of the steps done so far
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
        listener: Callable[[Event], None] | None = None,
    ):
        if not (countdown_s >= 0 and patience >= 1 and retries >= 0 and fps > 0):
            raise ValueError(
                f"need countdown_s >= 0, patience >= 1, retries >= 0 and fps > 0, got {countdown_s}, "
                f"{patience}, {retries}, {fps}"
            )
        self.camera, self.rig, self.protocol, self.fps = camera, rig, protocol, float(fps)
        self.countdown_s, self.retries, self.patience = float(countdown_s), int(retries), float(patience)
        self.listener = listener or (lambda event: None)
        self.calibrator: Calibrator | None = None
        self.results: dict[str, dict] = {}
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

    @property
    def holding(self) -> bool:
        """The current step's hold is on (its frames are being judged)."""
        return self._phase == "hold" and self.step is not None

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
            self.calibrator = Calibrator(frame.depth_intrinsics, self.camera, self.rig, self.protocol,
                                         fps=self.fps)  # fmt: skip
        t = float(frame.timestamp)
        if self._phase == "prompt":
            self._emit("prompt", step)
            self._phase, self._t0, self._shown, self._rejected = "countdown", t, None, {}
        if self._phase == "countdown":
            left = self.countdown_s - (t - self._t0)
            if left > 0:
                whole = math.ceil(left)
                if whole != self._shown:
                    self._shown = whole
                    self._emit("countdown", step, seconds_left=whole)
                return True
            self._phase, self._t0 = "hold", t
        fb = self.calibrator.add(step.name, frame)
        if not fb.accepted:
            self._rejected[fb.reason] = self._rejected.get(fb.reason, 0) + 1
        self._emit("hold", step, feedback=fb)
        if fb.done:
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

    def _finish(self, step: Step, ok: bool, reason: str, fb: Feedback) -> None:
        self.results[step.name] = {"ok": ok, "attempts": self._attempt, "accepted": fb.accepted_frames,
                                   "needed": fb.needed, "reason": reason}  # fmt: skip
        self._emit("step", step, ok=ok, reason=reason)
        self._i += 1
        self._attempt, self._phase = 1, "prompt"

    def _emit(self, kind: str, step: Step | None, **kw) -> None:
        self.listener(Event(kind, step, min(self._i + 1, len(self.protocol)), len(self.protocol),
                            self._attempt, **kw))  # fmt: skip


__all__ = ["CalibrationSession", "Event"]
