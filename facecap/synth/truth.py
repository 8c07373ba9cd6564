"""The ground-truth sidecar ``FILE.truth.npz`` written beside a synthetic recording ``FILE.db3``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_path
from ..frames import GroundTruth
from .camera import CameraPreset, get_camera


@dataclass
class SyntheticTruth:
    """Ground truth of a synthetic recording (see :func:`save_truth`)."""

    weights: np.ndarray  # (N, 52) float32, canonical order
    rotations: np.ndarray  # (N, 3, 3) float64, rig -> camera
    translations: np.ndarray  # (N, 3) float64, metres
    timestamps: np.ndarray  # (N,) float64, seconds
    landmarks_2d: np.ndarray  # (N, L, 2) float32 pixels (L may be 0)
    camera: str
    distance: float
    seed: int
    rig_name: str
    fps: float
    intrinsics: dict

    @property
    def n_frames(self) -> int:
        return len(self.weights)


def truth_path(recording: str | os.PathLike) -> Path:
    """``FILE.truth.npz`` beside ``FILE.db3`` (or the path itself if it already ends in ``.truth.npz``)."""
    p = Path(recording)
    if p.name.endswith(".truth.npz"):
        return p
    return p.with_name(p.stem + ".truth.npz") if p.suffix else p.with_name(p.name + ".truth.npz")


def save_truth(
    recording: str | os.PathLike,
    truths: list[GroundTruth],
    timestamps,
    *,
    camera: str | CameraPreset,
    distance: float,
    seed: int,
    rig_name: str,
    fps: float,
) -> Path:
    """Write the ground truth of ``recording`` (``FILE.db3`` -> ``FILE.truth.npz``); return the path."""
    if not truths:
        raise ValueError("no ground truth to save (zero frames)")
    cam = get_camera(camera)
    n_lm = {0 if g.landmarks_2d is None else len(g.landmarks_2d) for g in truths}
    lms = (
        np.stack([g.landmarks_2d for g in truths]).astype(np.float32)
        if n_lm != {0}
        else np.zeros((len(truths), 0, 2), np.float32)
    )
    meta = {
        "camera": cam.name,
        "distance": float(distance),
        "seed": int(seed),
        "rig_name": str(rig_name),
        "fps": float(fps),
        "intrinsics": cam.intrinsics.to_dict(),
        "format": "facecap-truth-1",
    }
    path = truth_path(recording)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            weights=np.stack([g.weights for g in truths]).astype(np.float32),
            rotations=np.stack([g.rotation for g in truths]).astype(np.float64),
            translations=np.stack([g.translation for g in truths]).astype(np.float64),
            timestamps=np.asarray(timestamps, dtype=np.float64),
            landmarks_2d=lms,
            meta=np.array(json.dumps(meta)),
        )
    return path


def load_truth(path: str | os.PathLike) -> SyntheticTruth:
    """Read a sidecar written by :func:`save_truth`; ``path`` may be the recording or the ``.truth.npz``."""
    p = truth_path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"no ground truth beside the recording: {p} (only `facecap synth` writes one)"
        )
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, OSError, ValueError
        raise ValueError(f"{p} is not a readable ground-truth .npz ({e})") from e
    with z:
        need = {"weights", "rotations", "translations", "timestamps", "landmarks_2d", "meta"}
        if need - set(z.files):
            raise ValueError(f"{p} is not a facecap ground-truth file: missing {sorted(need - set(z.files))}")
        meta = json.loads(str(z["meta"]))
        return SyntheticTruth(
            weights=z["weights"],
            rotations=z["rotations"],
            translations=z["translations"],
            timestamps=z["timestamps"],
            landmarks_2d=z["landmarks_2d"],
            camera=meta["camera"],
            distance=meta["distance"],
            seed=meta["seed"],
            rig_name=meta["rig_name"],
            fps=meta["fps"],
            intrinsics=meta["intrinsics"],
        )
