"""Rig file formats: one ``load_rig`` / ``save_rig`` dispatch by suffix.

Each format module declares what it reads and writes (``RIG_LOADERS`` / ``RIG_SAVERS``: suffix -> function,
``"folder"`` for a directory layout) and imports only :mod:`facecap.rig`; this module collects the tables
(as trimesh's ``exchange/load.py`` does), so no format module imports the dispatcher and ``rig`` imports
no format.

========================  ===========================================  =====================
suffix                    format                                       module
========================  ===========================================  =====================
``.npz``                  facecap's own rig file (no pickle)            :mod:`facecap.rig`
``.glb`` / ``.gltf``      glTF 2.0 with ARKit-named morph targets        :mod:`facecap.gltf`
a folder                  ICT-FaceKit (``generic_neutral_mesh.obj``...)  :mod:`facecap.facekit`
========================  ===========================================  =====================
"""

from __future__ import annotations

from pathlib import Path

from . import facekit, gltf
from .rig import DEFAULT_RIG_PATH, Rig

BUILTIN_RIGS = {"ict": DEFAULT_RIG_PATH}
"""Rigs that ship with facecap, by name: the ICT-FaceKit rig (``rigs/build_ict_rig.py``, derived from the
MIT ICT Face Model; licence beside it), the default."""

LOADERS = {".npz": Rig.load, **gltf.RIG_LOADERS, **facekit.RIG_LOADERS}
SAVERS = {".npz": Rig.save, **gltf.RIG_SAVERS}


def load_rig(path: str | Path | None = None) -> Rig:
    """Load a rig: the built-in tracking rig by default, a built-in rig by name (:data:`BUILTIN_RIGS`:
    ``"ict"``), else a ``.npz``, ``.glb``/``.gltf`` file or an ICT-FaceKit folder (see the
    module table).

    Raises
    ------
    FileNotFoundError
        The path (or, for the default, the built-in rig) does not exist.
    ValueError
        The file is not a rig in the format its suffix names.
    """
    if path is None:
        if not DEFAULT_RIG_PATH.is_file():
            raise FileNotFoundError(
                f"the built-in rig {DEFAULT_RIG_PATH} is missing; rebuild it with "
                "`python rigs/build_ict_rig.py`"
            )
        return Rig.load(DEFAULT_RIG_PATH)
    if isinstance(path, str) and path in BUILTIN_RIGS:
        return Rig.load(BUILTIN_RIGS[path])
    p = Path(path)
    if p.is_dir():
        return LOADERS["folder"](p)
    return LOADERS.get(p.suffix.lower(), Rig.load)(p)


def save_rig(rig: Rig, path: str | Path) -> Path:
    """Write ``rig`` in the format its suffix names (``.npz``, ``.glb``, ``.gltf``); returns the path."""
    p = Path(path)
    saver = SAVERS.get(p.suffix.lower())
    if saver is None:
        raise ValueError(
            f"cannot write a rig as {p.suffix or 'a file without suffix'}; use {', '.join(SAVERS)}"
        )
    return saver(rig, p)


__all__ = ["BUILTIN_RIGS", "LOADERS", "SAVERS", "load_rig", "save_rig"]
