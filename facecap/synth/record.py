"""Record the synthetic actor as a RealSense ``.db3`` plus its ground truth: what ``facecap synth`` runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..rig import Rig
from .actor import SyntheticActor, make_performance
from .camera import CameraPreset, get_camera
from .noise import DepthNoise
from .truth import save_truth


@dataclass(frozen=True)
class SyntheticRecording:
    """What :func:`record_synthetic_take` wrote.

    Attributes
    ----------
    path : Path -- the RealSense recording ``FILE.db3`` (as given, not resolved).
    truth_path : Path -- its ground-truth sidecar ``FILE.truth.npz`` (:func:`load_truth` reads it).
    n_frames : int -- frames written.
    camera : str -- camera preset name (``"d415"``, ``"d435"``).
    distance : float, metres -- camera to rig origin.
    """

    path: Path
    truth_path: Path
    n_frames: int
    camera: str
    distance: float


def record_synthetic_take(
    out: str | os.PathLike,
    n_frames: int | None = None,
    *,
    camera: str | CameraPreset = "d415",
    distance: float = 0.6,
    fps: float = 30.0,
    seed: int = 0,
    take_csv: str | os.PathLike | None = None,
    max_angle_deg: float = 20.0,
    noise: bool | DepthNoise = True,
    background: bool | float = True,
    rig: Rig | str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> SyntheticRecording:
    """Render the synthetic actor performing a take into a RealSense recording plus its ground truth.

    The performance comes from :func:`make_performance` (a Live Link Face CSV or the procedural script,
    with smooth head motion), the frames from :class:`SyntheticActor`; they are written by
    :func:`facecap.realsense.write_recording` and the truth by :func:`save_truth` (``FILE.truth.npz``).

    Parameters
    ----------
    out : str or Path, must end in ``.db3``
    n_frames : int >= 1, optional; default 300, or the whole ``take_csv``
    camera : ``"d415"``, ``"d435"`` or a CameraPreset
    distance : float, metres, camera to rig origin
    fps : float, frames per second
    seed : int, seeds the performance, the head motion and the noise
    take_csv : path of a Live Link Face CSV driving the expressions, optional
    max_angle_deg : float, head rotation bound, degrees
    noise : bool or DepthNoise; False gives clean depth and colour
    background : bool or float, see :class:`SyntheticActor`
    rig : Rig, or a path :func:`facecap.formats.load_rig` reads; default: the built-in rig
    overwrite : bool, replace an existing ``out`` (and its sidecar)
    progress : bool, show a tqdm bar on stderr

    Returns
    -------
    SyntheticRecording

    Raises
    ------
    ValueError
        ``out`` does not end in ``.db3``, or ``n_frames < 1``.
    FileExistsError
        ``out`` exists and ``overwrite`` is False.
    """
    out = Path(out)
    if out.suffix.lower() != ".db3":
        raise ValueError(f"out must end in .db3 (RealSense ROS2 recording), got {out.name}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    if n_frames is not None and n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    from ..realsense import write_recording

    if not isinstance(rig, Rig):
        from ..formats import load_rig

        rig = load_rig(rig)
    cam = get_camera(camera)
    weights, rot, trans = make_performance(n_frames, fps, seed, take_csv, max_angle_deg, distance)
    actor = SyntheticActor(rig, cam, distance, noise=noise, seed=seed, background=background)
    pairs = actor.frames(weights, rot, trans, fps)
    if progress:
        from tqdm import tqdm

        pairs = tqdm(pairs, total=len(weights), unit="frame", desc=f"synth {out.name}")
    truths, stamps = [], []

    def frames():
        for frame, gt in pairs:
            truths.append(gt)
            stamps.append(frame.timestamp)
            yield frame

    n = write_recording(
        out,
        frames(),
        fps=int(round(fps)),
        overwrite=overwrite,
        device_name=f"facecap synthetic {cam.name.upper()}",
    )
    side = save_truth(
        out, truths, stamps, camera=cam, distance=distance, seed=seed, rig_name=rig.name, fps=fps
    )
    return SyntheticRecording(out, side, n, cam.name, float(distance))
