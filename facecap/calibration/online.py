"""Online identity refinement: the generic rig fitted to whoever is being tracked, without a protocol.

:class:`IdentityAdapter` watches the frames a tracker fits with a generic rig, keeps well-fitted ones whose
mouth and jaw are at rest (the identity shows there; an open mouth or a smile would be fused into it), and
once it holds enough of them in enough head poses fits the rig's neutral to them with the calibration's own
solve (fusion and nonrigid ICP, :meth:`facecap.calibration.Calibrator.solve` on the protocol's neutral views,
the generic deltas carried onto the fitted face; no expression refinement, which needs the protocol's known
poses). The solve runs on a worker thread while tracking goes on; the tracker swaps to the fitted rig at the
next frame after it is ready (``TrackerConfig.adapt_identity``). In the spirit of Bouaziz, Wang and Pauly,
"Online modeling for realtime facial animation" (SIGGRAPH 2013), done as one batch solve rather than a
running update.

What it cannot tell apart: a face held in a slight expression for the whole time it is watched (the real
takes' rest values, e.g. mouthStretch 0.19) is the performer's neutral to it, and reads as 0 afterwards.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import replace

import numpy as np

from .. import arkit, pose
from ..frames import Intrinsics
from ..rig import Rig

REST_SHAPES = (
    "jawOpen", "jawLeft", "jawRight", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "mouthRollLower", "mouthRollUpper",
)  # fmt: skip
"""A frame is kept only while each of these is within ``rest_tolerance`` of its median over the frames
tracked so far (the mouth and jaw in their usual state: the shapes that move most surface). Relative, not
absolute: a wrong identity leaks into the weights as a constant (on unseen identities at rest the generic
rig reads jawOpen 0.28, mouthLowerDown 0.4, eyeWide up to 1)."""
HISTORY = 300
"""Tracked frames whose median is the mouth's usual state (10 s at 30 fps)."""
_REST = np.array([arkit.INDEX[n] for n in REST_SHAPES])


class IdentityAdapter:
    """Collects rest frames of a tracked face from several views and fits the rig's neutral to them (once).

    Parameters
    ----------
    rig : the generic rig being tracked (not a calibrated actor)
    intrinsics : Intrinsics of the depth images
    camera : RealSense model name (the depth noise the solve assumes)
    per_view : rest frames to collect for each of the protocol's neutral views (frontal, turned left,
        right, up, down: :data:`facecap.calibration.PROTOCOL`'s neutral steps)
    min_views : the solve starts once the frontal view and ``min_views - 1`` turned ones are full
    every : keep every ``every``-th rest frame of a view (spreads them over time)
    rest_tolerance : a frame is at rest while every ``REST_SHAPES`` weight is within this of its median
    min_history : tracked frames seen before any is kept (the median needs them)
    min_quality : tracking quality (inlier share) a frame needs
    background : solve on a worker thread (False: inside :meth:`offer`, for scripts and tests)
    prepare : optional callable run on the fitted rig after the solve, on the same thread; its result is
        :attr:`prepared` (the tracker builds its rig-dependent tables there, so that the swap costs no frame)

    Notes
    -----
    Feed it with :meth:`offer` after each tracked depth frame, collect the fitted rig with :meth:`take`.
    The views matter more than the count: 30 rest frames of a face turning by a few degrees fitted three
    unseen identities' neutrals worse than the generic one (1.1-1.8 mm against 0.5-1.3), 6 frames in
    each of 4-5 views to 0.16-0.76 mm. A solve that fails (too little of the face fused) is recorded in
    :attr:`error` and not retried.
    """

    def __init__(
        self,
        rig: Rig,
        intrinsics: Intrinsics,
        camera: str = "d415",
        *,
        per_view: int = 6,
        min_views: int = 4,
        every: int = 2,
        rest_tolerance: float = 0.25,
        min_history: int = 10,
        min_quality: float = 0.5,
        background: bool = True,
        prepare=None,
    ):
        from .protocol import PROTOCOL

        if not isinstance(rig, Rig):
            raise TypeError(f"rig must be a facecap.Rig, got {type(rig).__name__}")
        if not isinstance(intrinsics, Intrinsics):
            raise TypeError("intrinsics must be a facecap.Intrinsics (e.g. frame.depth_intrinsics)")
        self.views = [st for st in PROTOCOL if st.neutral]  # the first is the frontal one
        if per_view < 1 or every < 1 or not 1 <= min_views <= len(self.views):
            raise ValueError(
                f"need per_view >= 1, every >= 1 and 1 <= min_views <= {len(self.views)}, "
                f"got {per_view}, {every}, {min_views}"
            )
        self.rig, self.intrinsics, self.camera = rig, intrinsics, camera
        self.per_view, self.min_views, self.every = int(per_view), int(min_views), int(every)
        self.rest_tolerance, self.min_history = float(rest_tolerance), int(min_history)
        self.min_quality, self.background = float(min_quality), background
        self.kept: dict[str, list] = {st.name: [] for st in self.views}  # (depth, R, t) per view
        self._seen = dict.fromkeys(self.kept, 0)  # rest frames offered per view
        self._history: deque = deque(maxlen=HISTORY)  # REST_SHAPES weights of the last tracked frames
        self.fitted: Rig | None = None
        self.prepared = None  # prepare(fitted)
        self._prepare = prepare
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self._taken = False
        self.taken_at: int | None = None  # the frame index the tracker swapped to the fitted rig at
        self._counts: dict[str, int] | None = None  # rest frames per view the solve used

    @property
    def busy(self) -> bool:
        """A solve is running."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def done(self) -> bool:
        """The solve has run (fitted or failed): nothing more is collected."""
        return self.fitted is not None or self.error is not None

    def view(self, rotation: np.ndarray) -> str | None:
        """The neutral view a head rotation (3, 3) belongs to, or None (between views). Frontal: yaw and
        pitch within 6 deg; a turned view: at least half the protocol's hint along it, within 8 deg of
        its axis."""
        yaw, pitch, _ = pose.head_euler(rotation)
        yp = np.degrees([yaw, pitch])
        for st in self.views:
            h = np.degrees(np.asarray(st.head, np.float64))
            size = float(np.linalg.norm(h))
            if size == 0.0:
                if np.abs(yp).max() < 6.0:
                    return st.name
                continue
            u = h / size
            if yp @ u >= 0.5 * size and abs(yp[0] * u[1] - yp[1] * u[0]) < 8.0:
                return st.name
        return None

    def ready_to_solve(self) -> bool:
        full = [len(v) >= self.per_view for v in self.kept.values()]
        return full[0] and sum(full) >= self.min_views

    def offer(self, depth: np.ndarray, state) -> bool:
        """Consider one tracked frame; True when it was kept.

        Parameters
        ----------
        depth : (H, W) float32 metres, the frame's depth image
        state : the tracker's ``FaceState`` for it
        """
        if self.done or self.busy or not state.tracked or state.quality < self.min_quality:
            return False
        w = np.asarray(state.weights, np.float64)[_REST]
        self._history.append(w)
        if len(self._history) < self.min_history:
            return False
        if np.abs(w - np.median(self._history, axis=0)).max() > self.rest_tolerance:
            return False
        name = self.view(np.asarray(state.rotation))
        if name is None or len(self.kept[name]) >= self.per_view:
            return False
        self._seen[name] += 1
        if (self._seen[name] - 1) % self.every:
            return False
        R, t = np.array(state.rotation), np.array(state.translation)
        self.kept[name].append((np.array(depth, np.float32), R, t))
        if self.ready_to_solve():
            if self.background:
                self._thread = threading.Thread(target=self._solve, name="facecap-identity", daemon=True)
                self._thread.start()
            else:
                self._solve()
        return True

    def take(self, index: int | None = None) -> Rig | None:
        """The fitted rig, once (None before it is ready and after it was taken); ``index``: the frame
        it is taken at, for :meth:`summary`."""
        if self.fitted is None or self._taken or self.busy:
            return None
        self._taken, self.taken_at = True, index
        return self.fitted

    def summary(self) -> dict:
        """What it has done so far, JSON-ready: ``state`` ("collecting", "solving", "fitted", "failed"),
        ``views`` (rest frames kept in each neutral view, of ``per_view``), ``missing`` (the views still
        short), ``error``, ``taken_at`` (frame index of the swap) and the fitted neutral's
        ``neutral_residual_mm_median``."""
        counts = self._counts or {k: len(v) for k, v in self.kept.items()}
        state = ("failed" if self.error is not None else "fitted" if self.fitted is not None
                 else "solving" if self.busy else "collecting")  # fmt: skip
        out = {"state": state, "views": counts, "per_view": self.per_view, "error": self.error,
               "taken_at": self.taken_at}  # fmt: skip
        out["missing"] = [] if state != "collecting" else [k for k, n in counts.items() if n < self.per_view]
        if self.fitted is not None:
            out["neutral_residual_mm_median"] = self.fitted.meta["online_identity"][
                "neutral_residual_mm_median"
            ]
        return out

    def status_line(self) -> str:
        """A short line for a live display (``--view``): what it needs from the performer, or what it did."""
        sm = self.summary()
        if sm["state"] == "collecting":

            def name(k):
                return "front" if k == "neutral" else k.removeprefix("neutral_")

            short = [name(k) for k in sm["missing"] if k != "neutral"]
            have = " ".join(f"{name(k)} {n}/{self.per_view}" for k, n in sm["views"].items())
            ask = "face the camera" if "neutral" in sm["missing"] else "turn " + "/".join(short)
            return f"identity: relaxed face, {ask}  ({have})"
        if sm["state"] == "fitted":
            return f"identity: fitted ({sm['neutral_residual_mm_median']:.2f} mm)"
        return "identity: fitting..." if sm["state"] == "solving" else f"identity: not fitted ({sm['error']})"

    def _solve(self) -> None:
        from .calibrator import CalibrationError, Calibrator

        cal = Calibrator(self.intrinsics, camera=self.camera, rig=self.rig, fps=1.0)
        self._counts = {k: len(v) for k, v in self.kept.items()}
        for name, frames in self.kept.items():
            cal.steps[name].frames = frames if len(frames) >= self.per_view else []
        try:
            actor = cal.solve(refine=None, frames_per_step=self.per_view)
        except CalibrationError as e:
            self.error = str(e)
            return
        except Exception as e:  # noqa: BLE001 - on the worker thread nobody else would see it
            self.error = f"{type(e).__name__}: {e}"
            return
        finally:
            self.kept = {name: [] for name in self.kept}  # the depth images are not needed any more
        record = actor.meta["calibration"]
        keep = ("date", "camera", "base_rig", "neutral_residual_mm_median", "face_vertices_seen")
        online = {k: record[k] for k in keep} | {"views": record["neutral_steps"], "per_view": self.per_view}
        # not a calibrated actor (no "calibration" key): its expressions are the generic ones carried over,
        # and the generic rig's tracking settings suited it better (with an earlier frame selection, an
        # unseen identity on the real takes: 0.064 with them, 0.067 with an actor's light L1 and every row)
        meta = {k: v for k, v in actor.meta.items() if k != "calibration"} | {"online_identity": online}
        fitted = replace(actor, name=f"{self.rig.name}+online", meta=meta)
        try:
            self.prepared = None if self._prepare is None else self._prepare(fitted)
        except Exception as e:  # noqa: BLE001 - as above
            self.error = f"{type(e).__name__}: {e}"
            return
        self.fitted = fitted  # last: take() hands out the rig and what was prepared for it together
