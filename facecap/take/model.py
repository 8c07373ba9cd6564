"""The :class:`Take`: a recorded or imported take with all its frames in memory."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..arkit import NUM_SHAPES
from ..state import FaceState
from ..timecode import timecodes_from_timestamps


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
        rec = self.meta.get("recovery") or {}
        complete = self.meta.get("complete")
        if rec:  # complete only when nothing is missing and take.json was the recorder's own
            complete = bool(complete) and rec.get("lost") == 0 and not rec.get("meta_rebuilt")
        return {
            "frames": n,
            "recorded": rec.get("recorded", n),
            "lost": rec.get("lost", 0),
            "lost_ranges": rec.get("lost_ranges", []),
            "fps": self.fps,
            "duration_s": round(self.duration, 3),
            "timecode_in": self.timecodes[0] if n else None,
            "timecode_out": self.timecodes[-1] if n else None,
            "tracked_frames": int(self.tracked.sum()),
            "tracked_percent": round(100.0 * float(self.tracked.mean()), 1) if n else 0.0,
            "complete": complete,
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
        from ..pose import head_euler

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
        """A take from FaceStates in memory (timecodes as :class:`~facecap.take.TakeRecorder` writes them)."""
        states = list(states)
        n = len(states)
        ts = np.array([s.timestamp for s in states], dtype=np.float64)
        return cls(
            fps=fps,
            timecodes=timecodes_from_timestamps(start_timecode, ts, fps),
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
