"""facecap: markerless facial performance capture from RGB-D.

Public API::

    from facecap import Tracker, Frame, load_rig
"""

from ._version import __version__
from .arkit import ARKIT_NAMES
from .formats import load_rig
from .frames import Frame, Intrinsics
from .rig import Rig
from .state import FaceState
from .take import Take, TakeRecorder, load_take
from .tracker import Tracker, TrackerConfig

__all__ = [
    "ARKIT_NAMES",
    "FaceState",
    "Frame",
    "Intrinsics",
    "Rig",
    "Take",
    "TakeRecorder",
    "Tracker",
    "TrackerConfig",
    "load_rig",
    "load_take",
    "__version__",
]
