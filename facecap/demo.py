"""`facecap demo`: the whole pipeline on an embedded default, scored against ground truth.

A synthetic actor (the built-in ICT-FaceKit head, a procedural expression script and smooth head motion,
RealSense D415 noise at 0.6 m) is recorded to a RealSense ``.db3`` file, played back through pyrealsense2
into the tracker, and the tracked weights and pose are compared with the truth. No camera, no download,
no shared data. ``take=`` drives the face with a real Live Link Face CSV instead, ``identity=`` makes it
an unseen person (:func:`facecap.synth.random_identity`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from . import metrics
from ._io import owned_temp_dir
from .arkit import ARKIT_NAMES, INDEX

KEY_SHAPES = ("jawOpen", "eyeBlinkLeft", "eyeBlinkRight", "mouthSmileLeft", "mouthSmileRight", "browInnerUp")


def run_demo(
    frames: int = 300,
    out: str | Path | None = None,
    *,
    camera: str = "d415",
    distance: float = 0.6,
    fps: float = 30.0,
    seed: int = 0,
    max_angle_deg: float = 20.0,
    sinks=None,
    recorder=None,
    landmarker=None,
    progress=None,
    keep_recording: bool = False,
    take: str | Path | None = None,
    identity: int | None = None,
    actor=None,
    adapt_identity: bool = False,
    smoothing=None,
    view=None,
) -> dict:
    """Synthesize, record, play back, track and score a take: the synthetic actor, then the capture loop
    (:func:`facecap.pipeline.run`), then :func:`facecap.metrics.score`.

    Parameters
    ----------
    frames : int, number of frames (30 fps)
    out : directory for results.json, tracked.png (and demo.db3 with ``keep_recording``); None: no files
    camera : "d415" or "d435" noise and intrinsics preset
    distance : float, metres from the camera
    sinks : optional facecap.pipeline.Outputs or facecap.sinks.Sink to stream every tracked frame to
        (an Outputs is closed when the loop ends, which finalises its take)
    recorder : optional facecap.take.TakeRecorder that records every FaceState
    landmarker : optional facecap.landmarks.FaceLandmarker: MediaPipe landmarks of the colour render
        go to the tracker (facecap.landmark_stream.detect_landmarks); the caller closes it
    progress : None (silent), True (status lines on stderr) or a ``facecap.progress.Progress`` factory
        ``progress(total, label)``
    take : a Live Link Face CSV whose weights the face performs (resampled to ``fps``; ``frames`` stops
        earlier), or None for the procedural script
    identity : seed of an unseen face (:func:`facecap.synth.random_identity` of the built-in head, 5-8 mm
        smooth shape changes) tracked with the built-in rig, or None for the rig's own face
    actor : a Rig or rig file (e.g. from ``facecap calibrate``) to track with instead of the built-in rig
    adapt_identity : fit the rig's neutral to the face while tracking (``TrackerConfig.adapt_identity``);
        the summary's ``identity`` says whether and when it did
    smoothing : a ``facecap.smoothing.OneEuro`` to filter the weights over time (``TrackerConfig.smoothing``);
        the score is of the filtered weights
    view : a :class:`facecap.view.ViewServer` the tracked frames are shown on (``--view``)

    Returns
    -------
    dict: the accuracy summary (see :func:`facecap.metrics.score`) plus fit_ms_median and paths.
    """
    from .formats import load_rig
    from .pipeline import Outputs, run
    from .progress import StatusLine
    from .realsense import read_recording, write_recording
    from .rig import Rig
    from .sinks import Collector
    from .synth import SyntheticActor, make_performance, random_identity
    from .tracker import Tracker, TrackerConfig

    if frames < 2:
        raise ValueError("the demo needs at least 2 frames")
    if not 0.3 <= distance <= 1.2:
        raise ValueError(
            f"distance must be 0.3-1.2 m (the camera's working range for a face), got {distance}"
        )
    reporter = (StatusLine if progress is True else progress) or None
    if take is not None and not Path(take).is_file():
        raise FileNotFoundError(f"take not found: {take} (a Live Link Face .csv)")
    rig = load_rig()
    true_w, true_R, true_t = make_performance(frames, fps, seed, None if take is None else str(take),
                                              max_angle_deg, distance)  # fmt: skip
    frames = len(true_w)
    if frames < 2:
        raise ValueError(f"the take {take} is shorter than 2 frames")
    face = rig if identity is None else random_identity(rig, seed=int(identity))
    performer = SyntheticActor(face, camera=camera, distance=distance, seed=seed)
    out = Path(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    collector = Collector()
    outputs = sinks if isinstance(sinks, Outputs) else Outputs([s for s in (sinks,) if s is not None])
    outputs.add(collector)
    if recorder is not None:
        outputs.add(recorder)
    # the recording lives in a temporary folder (stale ones of killed demos are removed first)
    with owned_temp_dir("facecap-demo-") as tmp:
        rec_path = (out if (keep_recording and out is not None) else tmp) / "demo.db3"
        try:
            bar = reporter(frames, "synthesizing") if reporter else None
            write_recording(rec_path, (f for f, _gt in performer.frames(true_w, true_R, true_t, fps=fps)),
                            fps=int(round(fps)), device_name=f"facecap synthetic {camera.upper()}",
                            progress=(lambda n: bar.update(1)) if bar else False)  # fmt: skip
            if bar:
                bar.close()
            tracking_rig = rig if actor is None else actor if isinstance(actor, Rig) else load_rig(actor)
            config = TrackerConfig.for_camera(camera, adapt_identity=adapt_identity, adapt_inline=True,
                                              smoothing=smoothing)  # fmt: skip
            tracker = Tracker(rig=tracking_rig, config=config)
            status = reporter(frames, "tracking") if reporter else None
            summary = run(read_recording(rec_path), tracker, outputs, landmarker=landmarker,
                          progress=status, max_frames=frames, view=view)  # fmt: skip
        finally:
            outputs.close()
    if summary["interrupted"]:
        raise KeyboardInterrupt
    states = collector.states
    if len(states) < frames:
        raise RuntimeError(f"playback returned {len(states)} of {frames} frames")
    W = np.array([s.weights for s in states], np.float32)
    Rs = np.array([s.rotation for s in states])
    ts = np.array([s.translation for s in states])
    tracked = np.array([s.tracked for s in states])
    res = metrics.score(W, true_w, Rs, true_R, ts, true_t, tracked)
    res |= {
        "fit_ms_median": summary["fit_ms_median"],
        "camera": camera,
        "distance_m": distance,
        "fps": fps,
        "seed": seed,
        "max_angle_deg": max_angle_deg,
        "performance": str(take) if take is not None else "procedural",
        "identity": identity,
        "identity_adaptation": summary["identity"],
        "smoothing": None if smoothing is None else dataclasses.asdict(smoothing),
    }
    if out is not None:
        (out / "results.json").write_text(json.dumps(res, indent=2))
        plot_curves(W, true_w, tracked, fps, out / "tracked.png")
        res["outputs"] = [str(out / "results.json"), str(out / "tracked.png")]
    return res


def plot_curves(
    weights: np.ndarray,
    true_weights: np.ndarray,
    tracked: np.ndarray,
    fps: float,
    path: Path,
    shapes: tuple[str, ...] = KEY_SHAPES,
) -> Path:
    """PNG of tracked (solid) vs. true (dashed) weight curves for key shapes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(weights)) / fps
    fig, axes = plt.subplots(len(shapes), 1, figsize=(10, 1.6 * len(shapes)), sharex=True)
    for ax, name in zip(axes, shapes, strict=True):
        k = INDEX[name]
        ax.plot(t, true_weights[:, k], "k--", lw=1, label="truth")
        ax.plot(t, np.where(tracked, weights[:, k], np.nan), "C0", lw=1.2, label="tracked")
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, ncol=2)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("facecap demo: tracked vs. true blendshape weights")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def format_table(res: dict) -> str:
    """The accuracy table printed at the end of the demo."""
    if res.get("mae_weights") is None:
        return f"frames            {res['frames']}   tracked 0%: no face was found, nothing to score"
    lines = [
        f"frames            {res['frames']}   tracked {res['tracked_fraction'] * 100:.1f}%",
        f"weights MAE       {res['mae_weights']:.4f}  (50 shapes)",
        f"                  {res['mae_depth_blind']:.4f}  (eyeLook*, tongueOut: depth barely sees them)",
        f"head rotation     {res['rot_err_deg_median']:.3f} deg median  ({res['rot_err_deg_p95']:.3f} p95)",
        f"head translation  {res['trans_err_mm_median']:.3f} mm median  ({res['trans_err_mm_p95']:.3f} p95)",
        f"fit time          {res['fit_ms_median']:.2f} ms median per frame",
        "worst shapes (MAE): "
        + ", ".join(
            f"{k} {v:.3f}" for k, v in sorted(res["mae_by_shape"].items(), key=lambda kv: -kv[1])[:5]
        ),
    ]
    return "\n".join(lines)


__all__ = ["run_demo", "format_table", "plot_curves", "ARKIT_NAMES"]
