"""The real-time tracker: acquisition, warm-started per-frame fits, loss detection and re-acquisition.

>>> from facecap import Tracker, load_rig                                     # doctest: +SKIP
>>> tracker = Tracker(rig=load_rig(), intrinsics=frame.depth_intrinsics)      # doctest: +SKIP
>>> state = tracker.track(frame)                                              # doctest: +SKIP
>>> state.weights, state.rotation, state.translation, state.tracked            # doctest: +SKIP
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage

from . import arkit, pose
from .fit import (
    LAMBDA_PRIOR_RGB,
    LAMBDA_S_ACTOR,
    LAMBDA_S_GENERIC,
    LAMBDA_S_RGB,
    Buffers,
    FitParams,
    FitResult,
    MaskModel,
    fit_frame,
    robust_energy,
    rodrigues,
)
from .formats import load_rig
from .frames import Frame, Intrinsics, color_to_depth_pixels, depth_to_color_pixels
from .gaze import GazeSolver, refine_iris
from .landmark_confidence import TemporalConfidence
from .landmarks import EYE_CONTOURS, RGB_LANDMARKS
from .rig import Rig
from .smoothing import OneEuro, WeightFilter
from .state import FaceState

# Depth noise the fit assumes at 1 m, per camera: 1.4 x the RMS of a D4xx at 640x480
# (z^2 * 0.08 px / (f * baseline) * 2, docs/design.md §3: measured noise runs 3-5x the floor); the margin
# stands for the spatial correlation of stereo depth (neighbouring pixels are not independent).
DEPTH_NOISE_1M = {"d415": 0.0083, "d435": 0.0136}

RGB_SIGMA_PX = 1.5
"""Landmark error the colour-only fit assumes [px]."""
RGB_FAR_M = 3.0
"""Farthest face the colour-only fit accepts [m] (a webcam sees farther than a depth camera)."""
RGB_JUDGE_DISTANCE_M = 0.6
"""Distance [m] at which the colour-only fit's pixel tolerances (median landmark error 5 px, inliers
within 3 px, at 640 px wide) hold; a nearer face, larger in the image, gets them in proportion (they
stay in pixels farther away). Fixed in pixels, a face at 0.34 m (LivePortrait d6, exaggerated
expressions) lost 47 of 1008 frames at 5.1-5.6 px."""

# Start hypotheses of the expression stage of acquisition (weights by name; the rest start at 0): a
# closed, a half-open and a wide-open jaw. The fit with the lowest robust energy is kept.
ACQUIRE_STARTS: tuple[dict[str, float], ...] = ({}, {"jawOpen": 0.35}, {"jawOpen": 0.7})

MAX_POINTS_GENERIC = 2500
"""ICP row budget of a generic rig (every 3rd mask vertex of the built-in one)."""
MAX_POINTS_ACTOR = 1_000_000
"""ICP row budget of a calibrated actor: every mask vertex (TrackerConfig.max_points)."""
ACTOR_LID_WEIGHT = 0.3
"""Weight of the lid landmarks in a calibrated actor's fit (TrackerConfig.landmark_weights; 1 for a
generic rig). An actor's lids are the performer's own, and MediaPipe's lid points then add mostly their
own bias: on 2 unseen performers (7 real takes x 150 frames each, D415) the actor's weight MAE was
0.0519 from depth alone, 0.0527 with the lids at 0.3 and 0.0576 at 1, while the generic rig went 0.0973
-> 0.0965 -> 0.0921. The lids keep a little weight for real lids, which depth sees worse than these
renders."""

SWAP_BLEND_S = 0.5
"""When the identity adapter's fitted rig comes in, its neutral is blended in from the one before, over
this long [s] (its deltas are used at once), so that the weights move to their new values over several
frames. On 4 unseen identities at rest (D415): the largest per-frame weight change in the 15 frames after
the swap 0.71-0.96 -> 0.52-0.75 (eyeWide and eyeLookIn, read near 1 by the generic rig, going to 0); the
generic rig's own largest per-frame changes over the 30 frames before the swap were already 0.37-0.96."""
IRIS_SHIFT_TAU_S = 0.15
"""Time constant (seconds) of the exponential smoothing of the iris refinement's shift
(``TrackerConfig.refine_iris``): about 5 frames at 30 fps. What the image adds to MediaPipe's iris
points is mostly a slowly changing correction, while its frame-to-frame noise would shake the gaze:
unsmoothed, the gaze on the real videos of ``bench_rgb`` jittered 1.3-2.3x as much as with MediaPipe's
own points; with this, 1.04-1.25x, for a median error of 1.61 deg instead of 1.55 in ``bench_gaze``.
MediaPipe's points themselves are not smoothed: the eyes' own moves pass at once."""

# Gaze from the eyeLook weights: a full eyeLook shape is about this rotation (radians).
EYE_LOOK_RANGE = np.radians(30.0)


@dataclass
class TrackerConfig:
    """Tracker settings.

    fit : per-frame fit parameters (tracking).
    acquire_iterations : rigid ICP iterations when (re)acquiring a face.
    min_quality : a fit whose inlier fraction is below this is rejected (face lost).
    max_rms : a fit whose inlier RMS exceeds this is rejected [m].
    near, far : working range of the camera [m]; depth outside is ignored.
    max_points : mask vertices that generate ICP rows per iteration (speed vs. noise averaging). None
        (default): ``MAX_POINTS_GENERIC`` for a generic rig, every mask vertex for a calibrated actor (a rig
        whose ``meta`` holds ``"calibration"``). More rows help only a rig that fits the face: on 2 unseen
        performers their actors went 0.0575 / 0.0550 -> 0.0533 / 0.0505 weight MAE with every vertex
        (the ICT head on its own rig 0.064 -> 0.054), while the generic rig on them went 0.121 / 0.074 ->
        0.129 / 0.072 (an identity the rig does not have leaks into the weights more confidently).
    depth_noise_1m : depth noise the fit assumes at 1 m [m]; it grows with the square of the distance
        and sets ``fit.sigma`` each frame (``for_camera`` picks it per RealSense model).
    landmark_weights : (478,) float in [0, 1], optional
        How much each MediaPipe landmark counts in the fit (multiplies its confidence). None: the lid
        contours only (``facecap.landmarks.EYE_CONTOURS``), where depth is weakest, at weight 1 for a
        generic rig and ``ACTOR_LID_WEIGHT`` for a calibrated actor; the iris points drive the gaze
        (``facecap.gaze``) either way. ``np.ones(478)`` fits every landmark.
    prior : None, "builtin" or an ``facecap.prior.ExpressionPrior``
        An expression prior learned from real performances (:mod:`facecap.prior`; use it with
        ``fit.lambda_s=0.25``). Off by default: on the ICT head driven by held-out real takes it halves
        the weight error (0.076 -> 0.035), but it pulls rare, asymmetric expressions toward the usual
        ones (blinks read at gain 0.4, a one-sided smile nearly vanishes), which needs a better prior.
    rgb_prior : "builtin" (default), an ``facecap.prior.ExpressionPrior`` or None
        The expression prior of colour-only frames (``Frame(depth=None)``), weighted by
        ``facecap.fit.LAMBDA_PRIOR_RGB``, where 2-D landmarks alone leave the most to a prior (see there
        for what it gains). It too pulls rare expressions toward the usual ones: 28 procedural expressions
        held still read at a median gain of 0.10 with it, 0.17 without. ``prior``,
        when set, serves colour-only frames too. None: the L1 alone.
    landmark_consistency : colour-only frames weigh each landmark by how steadily it moves
        (:class:`facecap.landmark_confidence.TemporalConfidence`: a point that jitters more than the
        others counts less). On the real videos of ``bench_rgb`` jawOpen's correlation with MediaPipe's
        0.83-0.97 -> 0.89-0.98 (d6 0.85 -> 0.96) and the weights jitter 7-31 % less; the synthetic takes'
        weight MAE is unchanged (0.0738 / 0.0749 -> 0.0743 / 0.0746). Not on depth frames: there the lids
        alone are fused, their fast moves are the blinks, and an unseen identity lost 0.106 -> 0.108.
    refine_iris : move the iris landmarks onto the iris edge in the frame's colour image before the gaze
        is solved from them (:func:`facecap.gaze.refine_iris`, about 0.2 ms a frame, on the tracker's
        thread so that it never slows detection; its shift smoothed over ``IRIS_SHIFT_TAU_S``): median gaze
        error 2.81 -> 1.61 deg in ``bench_gaze``.
    adapt_identity : fit a generic rig's neutral to the face being tracked, without a calibration
        protocol (:class:`facecap.calibration.online.IdentityAdapter`: 6 depth frames with the mouth at
        rest in each of at least 4 of the protocol's 5 neutral head poses, solved on a worker thread in
        about 1.5 s, then tracked with the fitted rig; the tracker's ``adapter`` holds its state). On 3
        unseen identities turning their heads at rest (``bench_online_identity``): neutral 0.49-1.35 ->
        0.19-0.46 mm, a held smile with the jaw open then read at weight MAE 0.008-0.021 instead of
        0.067-0.103; performing the 7 real takes back to back, head within +-25 / +-15 deg: solved after
        224-268 frames, MAE 0.080-0.121 -> 0.071-0.081 (after the swap 0.077-0.117 -> 0.064-0.065). Off
        by default: it needs the head turned and the face at rest part of the time, and on the rig's own
        face it fuses the takes' rest values into the neutral (the ICT head 0.0645 -> 0.0661). With a
        calibrated actor as the rig it is an error (ValueError).
    adapt_inline : with ``adapt_identity``, solve inside the :meth:`Tracker.track` call whose frame completes
        the views (that call takes the solve's 1-2 s longer) instead of on a worker thread: the swap then
        comes at the same frame on every machine, as offline runs want (``facecap track``, ``play``
        without ``--realtime``, ``demo``). Live capture keeps the worker thread, so no frame waits.
    smoothing : a :class:`facecap.smoothing.OneEuro` to filter the reported weights (and the gaze made
        from them) over time, or None (default: the fit's own estimate). The fit goes on from its
        unfiltered estimate. See ``bench/bench_smoothing.py`` for what it gains and the lag it costs.
    """

    fit: FitParams = field(default_factory=FitParams)
    acquire_iterations: int = 12
    min_quality: float = 0.3
    max_rms: float = 0.006
    near: float = 0.2
    far: float = 1.5
    max_points: int | None = None
    depth_noise_1m: float = 0.0083
    prior: object = None
    rgb_prior: object = "builtin"
    landmark_weights: np.ndarray | None = None
    landmark_consistency: bool = True
    refine_iris: bool = True
    adapt_identity: bool = False
    adapt_inline: bool = False
    smoothing: OneEuro | None = None

    @classmethod
    def for_camera(cls, camera: str, **kw) -> TrackerConfig:
        """Settings for a RealSense model named anywhere in ``camera`` (``"d415"``,
        ``"Intel RealSense D435"``); unknown models get the D435's noisier prior."""
        name = (camera or "").lower()
        key = next((k for k in DEPTH_NOISE_1M if k in name), "d435")
        return cls(depth_noise_1m=DEPTH_NOISE_1M[key], **kw)


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def detect_face(
    depth: np.ndarray, intr: Intrinsics, near: float = 0.2, far: float = 1.5
) -> np.ndarray | None:
    """Find a face in a depth image without landmarks.

    The face is taken to be the nearest sizeable surface: the connected region within 15 cm behind the
    nearest valid depth; its upper part (one head height) is the head, and the face centre is the
    centroid of that part's front surface.

    Parameters
    ----------
    depth : (H, W) float32, metres (0 = no data)
    intr : Intrinsics of the depth image

    Returns
    -------
    (3,) float64 camera-frame point at the centre of the face surface, metres, or None when there is
    no face-sized surface in range.
    """
    valid = (depth > near) & (depth < far)
    if np.count_nonzero(valid) < 200:
        return None
    z_near = float(np.percentile(depth[valid], 0.5))
    blob = valid & (depth < z_near + 0.15)
    lab, n = ndimage.label(blob)
    if n == 0:
        return None
    sizes = ndimage.sum_labels(blob, lab, index=np.arange(1, n + 1))
    k = int(np.argmax(sizes)) + 1
    px_per_m = intr.fy / z_near
    if sizes[k - 1] < (0.06 * px_per_m) ** 2:  # smaller than a 6 x 6 cm patch: no face
        return None
    rows, cols = np.nonzero(lab == k)
    top = rows.min()
    head = rows < top + 0.22 * px_per_m
    rows, cols = rows[head], cols[head]
    z = depth[rows, cols]
    front = z <= np.percentile(z, 60)
    rows, cols, z = rows[front], cols[front], z[front]
    if len(z) < 100:
        return None
    x = (cols - intr.cx) / intr.fx * z
    y = (rows - intr.cy) / intr.fy * z
    c = np.array([np.median(x), np.median(y), np.median(z)])
    width = np.ptp(x)
    if width < 0.08 or width > 0.35:  # not face-sized
        return None
    return c


def face_centre(rig: Rig) -> np.ndarray:
    """(3,) float64 rig-space point, metres: where :func:`detect_face` puts the centre of this rig's own
    neutral face (rendered frontally at 0.6 m), so that acquisition starts the fit there. Rigs differ in
    how much forehead, ear and neck they carry, which moves the detector's centre on the face by cm (on
    the ICT rig the centre of its front vertices lay 2-4 cm off: acquisition fell into a wrong basin)."""
    from .synth.render import render_rig

    intr = Intrinsics(640, 480, 600.0, 600.0, 319.5, 239.5)
    t = np.array([0.0, 0.0, 0.6])
    depth = render_rig(rig, np.zeros(arkit.NUM_SHAPES), pose.FRONTAL, t, intr).depth
    c = detect_face(depth, intr)
    if c is None:  # a rig too small or too odd for the detector: the centre of its front half
        b0 = rig.neutral[rig.masks["track"]] if "track" in rig.masks else rig.neutral
        return np.median(b0[b0[:, 2] > np.percentile(b0[:, 2], 40)], axis=0).astype(np.float64)
    return pose.FRONTAL.T @ (c - t)


class Tracker:
    """Tracks head pose and 52 ARKit weights frame after frame.

    Parameters
    ----------
    rig : Rig, default the built-in rig (ICT-FaceKit)
    intrinsics : Intrinsics of the depth images that will be passed to :meth:`track`
        (depth aligned to color shares the color intrinsics).
    config : TrackerConfig, optional

    Notes
    -----
    State carried between frames: pose and weights (warm start), the previous weights (temporal prior)
    and whether the face is currently tracked. After a rejected fit the next frame re-acquires the face
    from depth alone.
    """

    def __init__(
        self,
        rig: Rig | None = None,
        intrinsics: Intrinsics | None = None,
        config: TrackerConfig | None = None,
    ):
        self.rig = rig if rig is not None else load_rig()
        if not isinstance(self.rig, Rig):
            raise TypeError(f"rig must be a facecap.Rig, got {type(self.rig).__name__}")
        if intrinsics is not None and not isinstance(intrinsics, Intrinsics):
            raise TypeError("intrinsics must be a facecap.Intrinsics (e.g. frame.depth_intrinsics)")
        self.intrinsics = intrinsics
        self.config = config or TrackerConfig()
        if self.config.adapt_identity and is_actor(self.rig):
            raise ValueError(
                f"adapt_identity fits a generic rig to the face it tracks; {self.rig.name!r} is a calibrated "
                "actor, already fitted to its performer"
            )
        self._prior = self._prior_terms(self.config.prior)
        rgb = self.config.rgb_prior if self.config.prior is None else None
        self._rgb_prior = (
            self._prior if rgb is None else self._prior_terms(rgb) | {"lambda_prior": LAMBDA_PRIOR_RGB}
        )
        self._use_rig(self.rig)
        self.adapter = None  # the online identity refinement (TrackerConfig.adapt_identity), from a frame on
        self._blend = None  # (t0, b0, lmk p0 before, mask model and lmk p0 after) while a neutral blends in
        self.reset()

    def _use_rig(self, rig: Rig, setup: dict | None = None) -> None:
        """Track with ``rig`` from now on (at start, and when the identity adapter swaps it); ``setup``:
        its :meth:`_rig_setup`, when already made (the adapter makes it on its worker thread)."""
        self.__dict__.update(setup if setup is not None else self._rig_setup(rig))

    def _rig_setup(self, rig: Rig) -> dict:
        """Everything that depends on the rig (about 50 ms), as attributes; changes nothing."""
        model = MaskModel.from_rig(rig, max_points=max_points(self.config, rig))
        lmk = _landmark_tables(rig, model)
        _, lt, lb, BL = lmk
        try:  # gaze from the iris landmarks, when the rig has them on its eyeballs
            gaze = GazeSolver(rig)
        except ValueError:
            gaze = None
        return {
            "rig": rig,
            "model": model,
            "_buf": Buffers(len(model.sample)),
            "_face_centre_rig": face_centre(rig),
            "_lmk": lmk,
            "_lmk_BL": BL,
            "_lmk_p0": np.einsum("lq,lqd->ld", lb, model.b0[lt]),  # (L, 3) at the neutral, rig space
            "_lmk_weight": self._landmark_weights(self.config.landmark_weights, is_actor(rig)),
            "_rgb_weight": _selection(RGB_LANDMARKS),  # colour only: lids, lips and nose
            "_gaze": gaze,
        }

    def _blend_step(self, timestamp: float) -> None:
        """The mask model of this frame while a new neutral is blended in (``SWAP_BLEND_S``)."""
        t0, b0, p0, model, lmk_p0 = self._blend
        a = (timestamp - t0) / SWAP_BLEND_S
        if not 0.0 <= a < 1.0:  # done (or the clock went back: no blend to follow)
            self.model, self._lmk_p0, self._blend = model, lmk_p0, None
            return
        self.model = replace(model, b0=b0 + a * (model.b0 - b0))
        self._lmk_p0 = p0 + a * (lmk_p0 - p0)

    def reset(self) -> None:
        """Forget the face: the next frame is acquired from scratch (an identity adapter keeps what it has
        collected, and a fitted rig stays)."""
        self.R = pose.FRONTAL.copy()
        self.t = np.zeros(3)
        self.w = np.zeros(arkit.NUM_SHAPES)
        self.tracked = False
        self.last_fit_ms = 0.0
        self._gaze_prev: dict = {}  # side -> (h, v) of the last open-eye gaze
        self._iris_shift: tuple | None = None  # (timestamp, (10, 2) smoothed refinement of the iris)
        self._steadiness = TemporalConfidence()  # colour-only frames' per-landmark confidence
        self._smoother = WeightFilter(self.config.smoothing) if self.config.smoothing is not None else None

    @staticmethod
    def _landmark_weights(weights, actor: bool = False) -> np.ndarray:
        if weights is None:
            return _selection(EYE_CONTOURS) * (ACTOR_LID_WEIGHT if actor else 1.0)
        out = np.asarray(weights, dtype=np.float64)
        if out.shape != (478,) or not np.isfinite(out).all() or (out < 0).any() or (out > 1).any():
            raise ValueError(f"landmark_weights must be (478,) values in [0, 1], got {out.shape}")
        return out

    # ------------------------------------------------------------------ public
    def track(
        self, frame: Frame, landmarks: np.ndarray | None = None, confidences: np.ndarray | None = None
    ) -> FaceState:
        """Fit one frame.

        Parameters
        ----------
        frame : Frame with depth (H, W) float32 metres, or a colour-only frame (``depth=None``: a webcam,
            a video), which is fitted to the landmarks alone (lids, lips and nose,
            ``facecap.landmarks.RGB_LANDMARKS``; the rig's metric size sets the distance)
        landmarks : (478, 2) or (468, 2) float pixels in the depth image, MediaPipe order, optional
            (required for a colour-only frame; NaN rows are ignored). A simulated detector may pass
            projected ground truth with noise. The iris points (468-477) give the gaze (facecap.gaze).
        confidences : (len(landmarks),) float in [0, 1], optional (default 1)

        Returns
        -------
        FaceState; ``tracked`` is False (weights 0, quality 0) when no face was found or the fit was
        rejected. Never raises on empty, all-zero or NaN depth.
        """
        if not isinstance(frame, Frame):
            raise TypeError(f"track() needs a facecap.Frame, got {type(frame).__name__}")
        intr = frame.depth_intrinsics
        if self.intrinsics is not None and (intr.width, intr.height) != (
            self.intrinsics.width,
            self.intrinsics.height,
        ):
            raise ValueError(
                f"frame is {intr.width}x{intr.height}, tracker was set up for "
                f"{self.intrinsics.width}x{self.intrinsics.height}"
            )
        depth = frame.depth
        if self.adapter is not None and (fitted := self.adapter.take(frame.index)) is not None:
            # the identity fitted to this face: same pose and weights, its neutral blended in
            b0, p0 = self.model.b0, self._lmk_p0
            self._use_rig(fitted, self.adapter.prepared)
            self._blend = (frame.timestamp, b0, p0, self.model, self._lmk_p0)
        if self._blend is not None:
            self._blend_step(frame.timestamp)
        lmk = self._prepare_landmarks(landmarks, confidences, rgb=depth is None)
        t0 = time.perf_counter()
        res = None
        # one BLAS thread: the 58x58 normal equations are too small to gain from more, and extra
        # threads only contend with the rest of the capture loop (measured 2.8 vs 4.2 ms per frame)
        with _blas_controller().limit(limits=1, user_api="blas"):
            if depth is None:  # colour only: the landmarks are all there is
                res = self._track_rgb(intr, lmk)
            elif self.tracked:
                res = self._fit(depth, intr, lmk, self._params(self.t[2]), w_prev=self.w)
                if not self._accept(res):
                    res = None
            if res is None and depth is not None:
                res = self._acquire(depth, intr, lmk)
        self.last_fit_ms = (time.perf_counter() - t0) * 1000
        if res is None:
            self.tracked = False
            if self._smoother is not None:
                self._smoother.reset()  # a face that comes back starts afresh
            return FaceState(timestamp=frame.timestamp, index=frame.index, tracked=False)
        self.R, self.t, self.w, self.tracked = res.rotation, res.translation, res.weights, True
        out = self.w
        if lmk is not None and self._gaze is not None and len(landmarks) >= 478:
            # eyeLook* from the iris landmarks (depth barely sees the eyes turn); closed eyes hold. The
            # depth fit keeps its own (its warm start): its lids fit better without the iris's eyeLook
            uv = np.asarray(landmarks, np.float64)
            if self.config.refine_iris and frame.color is not None:
                uv = self._refined_iris(frame, uv)
            out, solved, _ = self._gaze.solve(
                uv, self.R, self.t, self.w, (intr.fx, intr.fy, intr.cx, intr.cy), previous=self._gaze_prev
            )
            self._gaze_prev.update(solved)
        if self._smoother is not None:  # what is reported, never what the next frame fits from
            out = self._smoother(out, frame.timestamp)
        w = out.astype(np.float32)
        state = FaceState(
            timestamp=frame.timestamp,
            weights=w,
            rotation=self.R.copy(),
            translation=self.t.copy(),
            tracked=True,
            quality=float(res.quality),
            gaze=gaze_from_weights(w),
            index=frame.index,
            rms_mm=float(res.rms * 1000),
        )
        if self.config.adapt_identity and depth is not None:
            if self.adapter is None:
                from .calibration.online import IdentityAdapter

                noise = self.config.depth_noise_1m
                camera = next((k for k, v in DEPTH_NOISE_1M.items() if v == noise), "d435")
                inline = self.config.adapt_inline
                self.adapter = IdentityAdapter(self.rig, intr, camera, background=not inline,
                                               prepare=self._rig_setup)  # fmt: skip
            self.adapter.offer(depth, state)
        return state

    # ------------------------------------------------------------------ internals
    def _refined_iris(self, frame: Frame, uv: np.ndarray) -> np.ndarray:
        """(478, 2) depth pixels with the iris points refined on the colour image (``uv`` if the colour
        image cannot be reached from the depth image's pixels); the refinement's shift is smoothed over
        time (``IRIS_SHIFT_TAU_S``)."""
        c = depth_to_color_pixels(uv[:478], frame)
        if c is None:
            return uv
        back = color_to_depth_pixels(refine_iris(frame.color, c), frame)
        shift = back[468:478] - uv[468:478]  # NaN where a point is missing
        if self._iris_shift is not None:
            t0, prev = self._iris_shift
            dt = frame.timestamp - t0
            if dt > 0:  # the shift, not the points, is smoothed: MediaPipe's points keep their pace
                a = 1.0 - np.exp(-dt / IRIS_SHIFT_TAU_S)
                both = np.isfinite(shift) & np.isfinite(prev)
                shift = np.where(both, a * shift + (1.0 - a) * prev, shift)
        self._iris_shift = (frame.timestamp, shift)
        out = uv.copy()
        out[468:478] = uv[468:478] + np.nan_to_num(shift)  # a missing point stays missing
        return out

    def _prepare_landmarks(self, landmarks, confidences, rgb: bool = False):
        if landmarks is None:
            self._steadiness.gap()
            return None
        uv = np.asarray(landmarks, dtype=np.float64)
        if uv.ndim != 2 or uv.shape[1] != 2 or uv.shape[0] < 468:
            raise ValueError(
                f"landmarks must be (468, 2) or (478, 2) pixels in MediaPipe order, got {uv.shape}"
            )
        conf = np.ones(len(uv)) if confidences is None else np.asarray(confidences, dtype=np.float64)
        if conf.shape != (len(uv),):
            raise ValueError(f"confidences must be ({len(uv)},), got {conf.shape}")
        ids, lt, lb, BL = self._lmk
        have = ids < len(uv)  # 468 rows: no iris points
        sel_uv = np.full((len(ids), 2), np.nan)
        sel_uv[have] = uv[ids[have]]
        sel_c = np.zeros(len(ids))
        weight = self._rgb_weight if rgb else self._lmk_weight
        if rgb and self.config.landmark_consistency:
            self._steadiness.update(uv)
            steady = self._steadiness.confidences(weight[: len(uv)] > 0)
            conf = conf if steady is None else conf * steady
        sel_c[have] = conf[ids[have]] * weight[ids[have]]
        sel_c = np.where(np.isfinite(sel_uv).all(1), np.clip(np.nan_to_num(sel_c), 0, 1), 0.0)
        return np.nan_to_num(sel_uv), sel_c, lt, lb, BL

    def _fit(self, depth, intr, lmk, params, w_prev=None, R=None, t=None, w=None):
        return fit_frame(
            self.model,
            depth,
            (intr.fx, intr.fy, intr.cx, intr.cy),
            self.R if R is None else R,
            self.t if t is None else t,
            self.w if w is None else w,
            params,
            w_prev=w_prev,
            landmarks=lmk,
            buffers=self._buf,
        )

    @staticmethod
    def _prior_terms(prior) -> dict:
        from .prior import ExpressionPrior, load_prior

        if prior is None:
            return {}
        if isinstance(prior, str) and prior == "builtin":
            prior = load_prior()
        if not isinstance(prior, ExpressionPrior):
            raise TypeError(
                f"prior must be 'builtin', a facecap.prior.ExpressionPrior or None, got {prior!r}"
            )
        return {"prior_mean": prior.mean, "prior_precision": prior.precision}

    def _params(self, z: float, rgb: bool = False) -> FitParams:
        """Fit parameters with the noise level at distance z (metres); ``rgb``: for a colour-only frame."""
        sigma = float(np.clip(self.config.depth_noise_1m * z * z, 0.0005, 0.01))
        extra = {}
        if self.config.fit.lambda_s is None:  # the frame and the rig (fitted to this performer?) decide
            actor = is_actor(self.rig)
            extra["lambda_s"] = LAMBDA_S_RGB if rgb else LAMBDA_S_ACTOR if actor else LAMBDA_S_GENERIC
        return replace(self.config.fit, sigma=sigma, **(self._rgb_prior if rgb else self._prior), **extra)

    def _track_rgb(self, intr, lmk):
        """Pose and weights from the landmarks alone (a colour-only frame), or None (no face or a bad
        fit). The rig's metric size sets the distance. Acquisition starts from a perspective-n-point pose
        of the neutral's landmarks (OpenCV's SQPnP)."""
        if lmk is None or np.count_nonzero(lmk[1]) < 30:
            return None
        fit = replace(self._params(0.6, rgb=True), sigma_px=RGB_SIGMA_PX)
        empty = np.zeros((1, 1), np.float32)  # no depth rows: every vertex projects off this image
        if self.tracked:
            res = self._judge_rgb(self._fit(empty, intr, lmk, fit, w_prev=self.w), lmk, intr)
            if res is not None:
                return res
        start = self._pnp(lmk, intr)
        if start is None:
            return None
        w0 = np.zeros(arkit.NUM_SHAPES)
        res = self._fit(empty, intr, lmk, replace(fit, iterations=8, max_iterations=12), R=start[0],
                        t=start[1], w=w0)  # fmt: skip
        return self._judge_rgb(res, lmk, intr)

    def _landmark_points(self, w) -> np.ndarray:
        """(L, 3) rig-space points of the rig's landmarks in the mask at weights w."""
        return self._lmk_p0 + self._lmk_BL @ w

    def _pnp(self, lmk, intr):
        import cv2

        uv, conf = lmk[0], lmk[1]
        use = conf > 0
        obj = self._landmark_points(np.zeros(arkit.NUM_SHAPES))[use]
        K = np.array([[intr.fx, 0, intr.cx], [0, intr.fy, intr.cy], [0, 0, 1]], np.float64)
        try:
            ok, rvec, tvec = cv2.solvePnP(obj, uv[use].astype(np.float64), K, None, flags=cv2.SOLVEPNP_SQPNP)
        except cv2.error:
            return None
        if not ok or not np.isfinite(tvec).all() or tvec[2, 0] <= 0:
            return None
        return cv2.Rodrigues(rvec)[0], tvec[:, 0].astype(np.float64)

    def _judge_rgb(self, res, lmk, intr):
        """The fit with quality = share of used landmarks within 3 px (scaled to 640 px wide and to
        ``RGB_JUDGE_DISTANCE_M``), or None when the landmarks are not explained (median error over 5 px)
        or the face is out of range."""
        x = self._landmark_points(res.weights) @ res.rotation.T + res.translation
        use = lmk[1] > 0
        z = x[use, 2]
        if (z <= 0.05).any():
            return None
        proj = np.stack([intr.fx * x[use, 0] / z + intr.cx, intr.fy * x[use, 1] / z + intr.cy], 1)
        near = min(1.0, float(res.translation[2]) / RGB_JUDGE_DISTANCE_M)  # a nearer face is larger
        err = np.linalg.norm(proj - lmk[0][use], axis=1) * (640.0 / intr.width) * near
        if not np.isfinite(err).all() or np.median(err) > 5.0:
            return None
        if not (self.config.near < res.translation[2] < RGB_FAR_M):
            return None
        inl = int(np.count_nonzero(err < 3.0))
        return FitResult(res.rotation, res.translation, res.weights, inl, int(use.sum()), float("nan"))

    def _accept(self, res) -> bool:
        c = self.config
        return bool(
            res.inliers > 50
            and res.quality >= c.min_quality
            and np.isfinite(res.rms)
            and res.rms <= c.max_rms
            and c.near < res.translation[2] < c.far + 0.2
        )

    def _acquire(self, depth, intr, lmk):
        """Find the face from depth alone and fit it: rigid ICP from a few yaw hypotheses, then a full fit."""
        c = self.config
        centre = detect_face(depth, intr, c.near, c.far)
        if centre is None:
            return None
        fit = self._params(float(centre[2]) + 0.08)
        rigid = replace(
            fit,
            solve_weights=False,
            iterations=c.acquire_iterations,
            max_dist=0.03,
            lambda_pose=1e-4,
            p2p_share=0.3,
        )
        best = None
        for yaw in (0.0, 0.35, -0.35):
            R0 = pose.from_euler(yaw, 0.0, 0.0)
            t0 = centre - R0 @ self._face_centre_rig
            w0 = np.zeros(arkit.NUM_SHAPES)
            res = self._fit(depth, intr, lmk, rigid, R=R0, t=t0, w=w0)
            # tighten
            res = self._fit(
                depth, intr, lmk, replace(rigid, max_dist=0.012), R=res.rotation, t=res.translation, w=w0
            )
            if best is None or res.quality > best.quality:
                best = res
            if best.quality > 0.6:
                break
        # expressions, from several starts: from one start alone the coarse stage falls into a
        # mouthClose/jawOpen local minimum on about half of the noise draws of a frame whose mouth is
        # open; that basin fits worse, so the lowest robust energy picks the right one
        res, energy = None, np.inf
        for start in ACQUIRE_STARTS:
            w0 = np.zeros(arkit.NUM_SHAPES)
            for name, value in start.items():
                w0[arkit.INDEX[name]] = value
            r = self._fit(
                depth, intr, lmk, replace(fit, max_dist=0.025, iterations=8),
                R=best.rotation, t=best.translation, w=w0,
            )  # fmt: skip
            r = self._fit(
                depth, intr, lmk, replace(fit, iterations=fit.iterations + 2),
                R=r.rotation, t=r.translation, w=r.weights,
            )  # fmt: skip
            e = robust_energy(
                self.model, depth, (intr.fx, intr.fy, intr.cx, intr.cy), r.rotation, r.translation,
                r.weights, fit, buffers=self._buf,
            )  # fmt: skip
            if e < energy:
                res, energy = r, e
        return res if self._accept(res) else None


def is_actor(rig: Rig) -> bool:
    """Whether ``rig`` was calibrated to its performer (its ``meta`` holds ``"calibration"``)."""
    return "calibration" in (rig.meta or {})


def max_points(config: TrackerConfig, rig: Rig) -> int:
    """The ICP row budget ``config.max_points``, or its default for ``rig`` (TrackerConfig)."""
    if config.max_points is not None:
        return int(config.max_points)
    return MAX_POINTS_ACTOR if is_actor(rig) else MAX_POINTS_GENERIC


def _landmark_tables(rig: Rig, model: MaskModel) -> tuple:
    """Mask-local triangles/barycentrics of the rig landmarks whose vertices are all in the mask:
    (ids (L,), tris (L, 3) mask-vertex ids, bary (L, 3), their deltas (L, 3, 52) float64 metres)."""
    remap = -np.ones(rig.n_vertices, np.int64)
    remap[model.index] = np.arange(len(model.index))
    lt = remap[rig.landmark_tris]
    ok = (lt >= 0).all(1)
    lt, lb = lt[ok], rig.landmark_bary[ok].astype(np.float64)
    BL = np.einsum("lq,lqdk->ldk", lb, model.BT[lt])  # (L, 3, 52) the landmarks' own deltas
    return rig.landmark_ids[ok], lt, lb, np.ascontiguousarray(BL)


def _selection(ids) -> np.ndarray:
    """(478,) float64 weights: 1 at the MediaPipe indices ``ids``, 0 elsewhere."""
    out = np.zeros(478)
    out[list(ids)] = 1.0
    return out


def gaze_from_weights(w: np.ndarray) -> np.ndarray:
    """Eye gaze (2, 2) float32 radians, rows (left, right), columns (yaw, pitch) from eyeLook weights.

    Yaw > 0 looks toward the subject's left; pitch > 0 looks down (facecap.pose conventions).
    """
    i = arkit.INDEX
    out = np.zeros((2, 2), np.float32)
    for row, side in enumerate(("Left", "Right")):
        inward = w[i["eyeLookIn" + side]]
        outward = w[i["eyeLookOut" + side]]
        # the left eye looks to the subject's left when it looks out; the right eye when it looks in
        toward_left = outward - inward if side == "Left" else inward - outward
        out[row, 0] = toward_left * EYE_LOOK_RANGE
        out[row, 1] = (w[i["eyeLookDown" + side]] - w[i["eyeLookUp" + side]]) * EYE_LOOK_RANGE
    return out


__all__ = ["Tracker", "TrackerConfig", "detect_face", "gaze_from_weights", "rodrigues"]
