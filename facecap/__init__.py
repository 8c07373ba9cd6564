"""facecap: markerless facial performance capture from RGB-D.

Public API::

    from facecap import Tracker, Frame, load_rig
"""

__version__ = "0.1.0"

from .arkit import ARKIT_NAMES  # noqa: E402
from .formats import load_rig  # noqa: E402
from .frames import Frame, Intrinsics  # noqa: E402
from .rig import Rig  # noqa: E402
from .state import FaceState  # noqa: E402
from .take import Take, TakeRecorder, load_take  # noqa: E402
from .tracker import Tracker, TrackerConfig  # noqa: E402

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
