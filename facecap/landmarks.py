"""MediaPipe Face Landmarker: 478 2-D landmarks and MediaPipe's own 52 blendshape scores per color image.

MediaPipe ships no model in its wheel; the model bundle ``face_landmarker.task`` is found, in order, at
the ``model`` argument, the ``FACECAP_MEDIAPIPE_MODEL`` environment variable, or the user cache
(``~/.cache/facecap/face_landmarker.task``). Download it once from Google's MediaPipe model page
(Face Landmarker, float16) and put it in one of those places.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .arkit import from_order

ENV_VAR = "FACECAP_MEDIAPIPE_MODEL"
# fmt: off
EYE_CONTOURS: tuple[int, ...] = (
    249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466,  # subject's left eye
    7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246,  # right eye
)
"""MediaPipe's lid contours of both eyes (its FACE_LANDMARKS_LEFT_EYE / RIGHT_EYE connections): the
landmarks the tracker fits by default, where depth sees least (a lid slides a few mm over the eyeball)."""
FACE_OVAL: tuple[int, ...] = (
    10, 21, 54, 58, 67, 93, 103, 109, 127, 132, 136, 148, 149, 150, 152, 162, 172, 176, 234, 251, 284, 288,
    297, 323, 332, 338, 356, 361, 365, 377, 378, 379, 389, 397, 400, 454,
)
"""MediaPipe's face-oval contour (FACE_LANDMARKS_FACE_OVAL): silhouette points that slide over the face
as it turns, so no fixed point of a rig matches them."""
LIPS: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
    270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415,
)
"""MediaPipe's outer and inner lip contours (FACE_LANDMARKS_LIPS)."""
NOSE: tuple[int, ...] = (
    1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440,
)
"""MediaPipe's nose points (FACE_LANDMARKS_NOSE)."""
RGB_LANDMARKS: tuple[int, ...] = EYE_CONTOURS + LIPS + NOSE
"""What colour-only tracking fits: lids, lips and nose. MediaPipe's other points disagree with the
built-in rig's map by pixels where expressions move little: the eye-socket points 257-260 sit 3-5 px
above the rig's, which a fit of all landmarks (less the face oval) read as eyeWide held at 0.7 (weight MAE
0.113 on the ICT head against 0.101 with these; adding the chin part of the oval: 0.127)."""
# fmt: on
CACHE_PATH = Path.home() / ".cache" / "facecap" / "face_landmarker.task"


def find_model(model: str | Path | None = None) -> Path:
    """Path of the Face Landmarker model bundle; ``FileNotFoundError`` saying where to put it.

    The first place that is *given* decides: ``model`` if not None, else ``$FACECAP_MEDIAPIPE_MODEL`` if
    set, else the user cache. A given path that is not a file is an error (no silent fallback to another
    model).
    """
    how = (
        f"Download the Face Landmarker model bundle (face_landmarker.task) from Google's MediaPipe models "
        f"page and pass its path, set {ENV_VAR}, or copy it to {CACHE_PATH}"
    )
    if model:
        p = Path(model).expanduser()
        if not p.is_file():
            what = " (a directory)" if p.is_dir() else ""
            raise FileNotFoundError(f"MediaPipe model {p} not found{what}. {how}")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"MediaPipe model {p} (from {ENV_VAR}) not found. {how}")
        return p
    if CACHE_PATH.is_file():
        return CACHE_PATH
    raise FileNotFoundError(
        f"MediaPipe model face_landmarker.task not found: no model given, {ENV_VAR} not set, nothing at "
        f"{CACHE_PATH}. {how}"
    )


def _thread_ids() -> set[int]:
    """Native ids of this process's threads (Linux ``/proc``; empty where there is none)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


@dataclass
class Detection:
    """One face found in an image.

    landmarks : (478, 2) float32 pixels (x right, y down)
    depth : (478,) float32, MediaPipe's relative z (same scale as x in pixels, not metric)
    blendshapes : (52,) float32 MediaPipe's own scores in canonical ARKit order (tongueOut = 0)
    matrix : (4, 4) float32 MediaPipe's facial transformation matrix (cm), or None
    """

    landmarks: np.ndarray
    depth: np.ndarray
    blendshapes: np.ndarray
    matrix: np.ndarray | None


class FaceLandmarker:
    """MediaPipe Face Landmarker in VIDEO mode (tracks across frames).

    Parameters
    ----------
    model : path of ``face_landmarker.task`` (see module docstring for the search order)
    min_confidence : detection / presence / tracking confidence thresholds
    blendshapes : also run MediaPipe's blendshape model (its 52 scores, ``Detection.blendshapes``);
        False leaves them at 0 and saves about a fifth of the detector's time (the tracker needs only
        the landmarks)

    Use as a context manager, or call :meth:`close` (MediaPipe's own finaliser misbehaves at exit).
    """

    def __init__(
        self, model: str | Path | None = None, min_confidence: float = 0.5, blendshapes: bool = True
    ):
        from mediapipe.tasks.python import BaseOptions, vision

        path = find_model(model)
        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=1,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
            output_face_blendshapes=bool(blendshapes),
            output_facial_transformation_matrixes=True,
        )
        before = _thread_ids()
        try:
            self._lm = vision.FaceLandmarker.create_from_options(opts)
        except Exception as e:  # MediaPipe raises RuntimeError/ValueError for a bad bundle
            raise ValueError(f"{path} is not a usable Face Landmarker model bundle ({e})") from e
        self._threads = _thread_ids() - before  # MediaPipe's graph threads (Linux; empty elsewhere)
        self._last_ms = -1

    def pin(self, cpus: set[int]) -> bool:
        """Confine MediaPipe's threads and the calling thread to ``cpus`` (Linux; elsewhere a no-op).

        MediaPipe hands each frame between several threads of its graph; on a small virtual machine those
        hand-offs across cores cost about a tenth of its throughput (2 vCPUs, 300 frames 640x480: alone
        87-107 fps free, 98-112 fps confined to one core). :class:`facecap.landmark_stream.LandmarkStream`
        confines detection to all CPUs but the first, so that one is left to the fit.

        Returns
        -------
        bool : whether the threads were confined
        """
        if not hasattr(os, "sched_setaffinity") or not cpus:
            return False
        try:
            for tid in (0, *sorted(self._threads)):  # 0: the calling thread
                os.sched_setaffinity(tid, cpus)
        except OSError:  # a thread that has ended, or CPUs not allowed: leave the rest as they are
            return False
        return True

    def detect(self, color: np.ndarray, timestamp_s: float) -> Detection | None:
        """Detect the face in an RGB image.

        Parameters
        ----------
        color : (H, W, 3) uint8 RGB
        timestamp_s : seconds; must increase from call to call (VIDEO mode)

        Returns
        -------
        Detection, or None when no face is found.
        """
        import mediapipe as mp

        c = np.ascontiguousarray(color)
        if c.ndim != 3 or c.shape[2] != 3 or c.dtype != np.uint8:
            raise ValueError(f"color must be (H, W, 3) uint8 RGB, got {c.shape} {c.dtype}")
        ms = int(round(timestamp_s * 1000))
        ms = max(ms, self._last_ms + 1)  # MediaPipe requires strictly increasing timestamps
        self._last_ms = ms
        res = self._lm.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=c), ms)
        if not res.face_landmarks:
            return None
        h, w = c.shape[:2]
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in res.face_landmarks[0]], np.float32)
        bs = np.zeros(52, np.float32)
        if res.face_blendshapes:
            scores = np.array([b.score for b in res.face_blendshapes[0]], np.float32)
            bs = from_order(scores, "mediapipe")
        mats = res.facial_transformation_matrixes
        mat = np.asarray(mats[0], np.float32) if mats else None
        return Detection(landmarks=pts[:, :2] - 0.5, depth=pts[:, 2], blendshapes=bs, matrix=mat)

    def close(self) -> None:
        if getattr(self, "_lm", None) is not None:
            self._lm.close()
            self._lm = None

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
