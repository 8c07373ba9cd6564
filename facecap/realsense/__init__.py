"""Intel RealSense frame sources: live cameras and ``.bag`` / ``.db3`` recordings (docs/design.md).

Everything goes through ``pyrealsense2`` (imported lazily: ``import facecap`` works without a camera stack):

- :func:`list_devices` lists connected cameras;
- :class:`LiveSource` streams depth z16 + color rgb8 from a camera, depth aligned to color;
- :class:`RecordingSource` / :func:`read_recording` play a ROS1 ``.bag`` (older SDKs and RealSense Viewers)
  or ROS2 ``.db3`` (the current SDK's recorder, and everything facecap writes) as fast as they decode,
  never in real time, with timeouts and end-of-file detection so a damaged file ends in an exception instead
  of a hang;
- :func:`write_recording` writes frames as a ``.db3`` in the camera's own format (``rs.software_device`` +
  ``rs.recorder``), so synthetic takes replay through exactly the code path real recordings use;
- :func:`recording_info` summarises a file without decoding its images (``facecap info FILE``).

Modules: ``convert`` (pyrealsense2 <-> facecap types), ``live`` (cameras), ``container`` (file checks and
indexes without decoding), ``playback`` (reading), ``writer`` (writing ``.db3``), ``info`` (summaries).

Every source yields :class:`facecap.frames.Frame`: depth float32 metres (0 = no data), color RGB uint8,
intrinsics from the stream profiles, timestamps in seconds of the device clock, and ``index`` counting from 0.
With ``align=True`` (the default) depth is resampled onto the color camera with ``rs.align`` whenever the two
streams differ in intrinsics or pose, so ``frame.aligned`` holds; with ``align=False`` frames keep the native
depth image and carry the depth -> color extrinsics instead.
"""

from .container import RECORDING_SUFFIXES
from .convert import DEPTH_UNITS, RecordingError
from .info import recording_info
from .live import LIVE_FPS, LIVE_SIZES, NO_CAMERA_HELP, LiveSource, list_devices
from .playback import RecordingSource, read_recording
from .writer import MIN_FREE_BYTES, write_recording

__all__ = [
    "DEPTH_UNITS", "LIVE_FPS", "LIVE_SIZES", "MIN_FREE_BYTES", "NO_CAMERA_HELP", "RECORDING_SUFFIXES",
    "LiveSource", "RecordingError", "RecordingSource", "list_devices", "read_recording", "recording_info",
    "write_recording",
]  # fmt: skip
