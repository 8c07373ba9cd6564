"""facecap: markerless facial performance capture from RGB-D.

Public API::

    from facecap import Tracker, Frame, load_rig

The names below are imported on first use (PEP 562), so ``import facecap`` (and the command line's
start-up, before it installs its signal handling) stays light.
"""

from __future__ import annotations

import importlib

from ._version import __version__

_LAZY = {
    "ARKIT_NAMES": ".arkit",
    "FaceState": ".state",
    "Frame": ".frames",
    "Intrinsics": ".frames",
    "Rig": ".rig",
    "Take": ".take",
    "TakeRecorder": ".take",
    "Tracker": ".tracker",
    "TrackerConfig": ".tracker",
    "load_rig": ".formats",
    "load_take": ".take",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'facecap' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [*_LAZY, "__version__"]
