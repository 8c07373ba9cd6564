"""Export takes to the formats engines and DCCs read.

==================  =============================  ===========================================================
format              suffix                         what is written
==================  =============================  ===========================================================
``livelink-csv``    ``.csv`` (``.livelink.csv``)   Live Link Face CSV (:func:`facecap.livelink.write_csv`):
                                                   the app's exact 63-column header and order, head
                                                   angles (:func:`facecap.pose.head_euler`) and eye
                                                   yaw/pitch (gaze) in Live Link's convention
                                                   (:func:`facecap.livelink.to_livelink_angles`: yaw
                                                   and roll negated), face-lost frames as
                                                   ``Timecode,0`` rows
``glb``/``gltf``    ``.glb``/``.gltf``             rig mesh + morph-weight and head-node animation
                                                   (:func:`facecap.gltf.export_animation`)
``usd``/``usda``/   ``.usd``/``.usda``/``.usdc``   UsdSkel stage (:func:`facecap.usd.export_usd`)
``usdc``
``csv``             ``.csv``                       plain table, one row per frame (columns below)
``json``            ``.json``                      one JSON document
``jsonl``           ``.jsonl``/``.ndjson``         JSON Lines: a header object, then one object per frame
==================  =============================  ===========================================================

Poses. ``csv``/``json``/``jsonl`` keep the take's own convention: rotation and translation map rig space
into the OpenCV camera frame (``x_cam = R x_rig + t``, metres). glTF and USD need a scene, so there
the head moves in the *viewer frame* (x right, y up, z toward the camera; the camera sits at the origin
looking down -z as glTF/USD cameras do): ``R_world = FRONTAL @ R``, ``t_world = FRONTAL @ t``, and a
face looking into the camera has identity rotation, about ``0.6 m`` down -z.

Face-lost frames. Live Link CSV writes them as ``Timecode,0`` rows like the app; csv/json write them with
``tracked`` false and their values as recorded; glTF and USD cannot say "lost", so those frames hold the
last tracked frame's weights and pose (frames before the first tracked one take its values).

Timing. glTF keys frame ``i`` at ``i / fps``. USD uses time code ``round((t_i - t_0) * fps)`` when those
increase strictly (gaps in a take stay gaps), else ``i``.

Plain CSV and JSON: the per-frame layout of :mod:`facecap.sinks.file` (the one ``facecap track`` writes):
columns ``frame, time, timecode, tracked, quality``, the 52 ARKit names, head angles, quaternion,
translation, eye angles and ``rms_mm``; JSON ``{"format": "facecap-take-json", "version": 1, "fps",
"n_frames", "blendshapes", "pose", "meta", "frames": [...]}``; JSON Lines the same header (``"format":
"facecap-take-jsonl"``) on line 1, then one frame object per line.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .livelink import held_indices
from .pose import FRONTAL
from .progress import as_progress
from .rig import Rig
from .sinks.file import CSV_COLUMNS, csv_row, json_frame, json_header
from .take import Take, as_take
from .take.livelink import take_to_livelink
from .timecode import LIVELINK_TIMECODE_RATE as LIVELINK_TIMECODE_RATE  # the rate Live Link Face writes
from .timecode import frame_offsets

FORMATS: dict[str, tuple[str, ...]] = {
    "livelink-csv": (".csv",),
    "glb": (".glb",),
    "gltf": (".gltf",),
    "usd": (".usd",),
    "usda": (".usda",),
    "usdc": (".usdc",),
    "csv": (".csv",),
    "json": (".json",),
    "jsonl": (".jsonl", ".ndjson"),
}
"""Export formats and the file suffixes each accepts (the first is the default)."""


def infer_format(path: str | Path) -> str:
    """Format of an output path from its suffix (``x.livelink.csv`` is Live Link, other ``.csv`` plain)."""
    name = Path(path).name.lower()
    if name.endswith(".livelink.csv"):
        return "livelink-csv"
    suffix = Path(name).suffix
    for fmt, sufs in FORMATS.items():
        if fmt != "livelink-csv" and suffix in sufs:
            return fmt
    raise ValueError(
        f"cannot tell the export format of {Path(path).name!r} from its suffix; give format= one of "
        f"{', '.join(FORMATS)} or use a suffix such as .glb, .usda, .csv, .livelink.csv, .json, .jsonl"
    )


def default_out_path(take_path: str | Path, format: str) -> Path:
    """Output path beside a take: ``TAKE.glb``, ``TAKE.livelink.csv``..."""
    _check_format(format)
    p = Path(take_path)
    stem = p.stem if p.is_file() else p.name
    suffix = ".livelink.csv" if format == "livelink-csv" else FORMATS[format][0]
    return p.with_name(stem + suffix)


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------------------- helpers
def world_pose(rotations: np.ndarray, translations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rig -> camera poses (N, 3, 3), (N, 3) to the viewer frame used by glTF/USD (see module doc)."""
    r = np.einsum("ij,njk->nik", FRONTAL, np.asarray(rotations, dtype=np.float64))
    t = np.asarray(translations, dtype=np.float64) @ FRONTAL.T
    return r, t


def resolve_rig(take: Take, rig: Rig | str | Path | None = None) -> Rig:
    """The rig to export with: ``rig`` if given (a Rig or anything :func:`facecap.rig.load_rig` reads),
    else the take's ``meta["rig"]`` when that names an existing rig file or folder, else the built-in rig."""
    from .formats import load_rig

    if isinstance(rig, Rig):
        return rig
    if rig is not None:
        return load_rig(rig)
    named = take.meta.get("rig")
    if isinstance(named, str) and named and Path(named).exists():
        return load_rig(named)
    return load_rig()


def _atomic_text(path: Path, write) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        write(f)
    return path


# ----------------------------------------------------------------------------------------- formats
to_livelink = take_to_livelink
"""The take as a :class:`facecap.livelink.LiveLinkTake` (:func:`facecap.take.livelink.take_to_livelink`)."""


def _write_livelink(take: Take, path: Path) -> Path:
    from .livelink import write_csv

    if not len(take):
        raise ValueError("the take has no frames; nothing to export")
    return write_csv(path, take_to_livelink(take))


def _animation(take: Take):
    idx = held_indices(take.tracked)
    r, t = world_pose(take.rotations[idx], take.translations[idx])
    return take.weights[idx], r, t


def _write_gltf(take: Take, path: Path, rig: Rig) -> Path:
    from .gltf import export_animation

    w, r, t = _animation(take)
    name = str(take.meta.get("name") or Path(str(take.meta.get("source") or "take")).stem or "take")
    return export_animation(rig, w, take.fps, path, rotations=r, translations=t, name=name)


def _write_usd(take: Take, path: Path, rig: Rig, progress: bool = False) -> Path:
    from .usd import export_usd

    w, r, t = _animation(take)
    codes = frame_offsets(take.timestamps, take.fps)
    if len(codes) > 1 and not np.all(np.diff(codes) > 0):
        codes = np.arange(len(take))
    return export_usd(
        rig, w, take.fps, path, rotations=r, translations=t, time_codes=codes, progress=progress
    )


def _rows(take: Take, progress, what: str):
    """(state, seconds since the first frame, timecode) per frame, with an optional status line."""
    n = len(take)
    rel = take.timestamps - take.timestamps[0] if n else take.timestamps
    bar = as_progress(progress, n, what)
    try:
        for i, st in enumerate(take.states()):
            yield st, float(rel[i]), take.timecodes[i]
            bar.update(1)
    finally:
        bar.close()


def _write_csv(take: Take, path: Path, progress=None) -> Path:
    def write(f):
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(CSV_COLUMNS)
        for st, rel, tc in _rows(take, progress, f"writing {path.name}"):
            wr.writerow(csv_row(st, rel, tc))

    return _atomic_text(path, write)


def _write_json(take: Take, path: Path, progress=None) -> Path:
    doc = json_header("facecap-take-json", take.fps, len(take), take.meta)
    doc["frames"] = [json_frame(*r) for r in _rows(take, progress, f"writing {path.name}")]
    return _atomic_text(path, lambda f: f.write(json.dumps(doc, allow_nan=False) + "\n"))


def _write_jsonl(take: Take, path: Path, progress=None) -> Path:
    def write(f):
        f.write(
            json.dumps(json_header("facecap-take-jsonl", take.fps, len(take), take.meta), allow_nan=False)
            + "\n"
        )
        for r in _rows(take, progress, f"writing {path.name}"):
            f.write(json.dumps(json_frame(*r), allow_nan=False) + "\n")

    return _atomic_text(path, write)


# ----------------------------------------------------------------------------------------- public
def export_take(
    take: Take | str | Path,
    out_path: str | Path,
    format: str | None = None,
    *,
    rig: Rig | str | Path | None = None,
    progress: bool = False,
) -> Path:
    """Write a take in another format.

    Parameters
    ----------
    take : Take, or a take directory, or a Live Link Face ``.csv``
    out_path : str or Path
        Output file; its folder must exist. Written under a temporary name and renamed.
    format : str, optional
        One of :data:`FORMATS`; default from the suffix (:func:`infer_format`).
    rig : Rig, or path, optional
        Mesh for glTF/USD; default: the take's rig when ``meta["rig"]`` is a file, else the built-in.
    progress : bool
        Show a tqdm bar over the frames (csv, json, jsonl, usd).

    Returns
    -------
    Path of the file written.
    """
    out = Path(out_path)
    fmt = infer_format(out) if format is None else format
    _check_format(fmt)
    if out.suffix.lower() not in FORMATS[fmt]:
        raise ValueError(f"format {fmt!r} writes {' or '.join(FORMATS[fmt])} files, got {out.name!r}")
    if not out.parent.exists():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    t = as_take(take)
    if fmt == "livelink-csv":
        return _write_livelink(t, out)
    if fmt == "csv":
        return _write_csv(t, out, progress)
    if fmt == "json":
        return _write_json(t, out, progress)
    if fmt == "jsonl":
        return _write_jsonl(t, out, progress)
    if not len(t):
        raise ValueError("the take has no frames; nothing to export")
    r = resolve_rig(t, rig)
    if fmt in ("glb", "gltf"):
        return _write_gltf(t, out, r)
    return _write_usd(t, out, r, progress)
