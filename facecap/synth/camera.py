"""Depth camera presets: the intrinsics of the aligned RGB-D stream plus the stereo facts the noise needs.

:data:`CAMERAS` holds the RealSense D415 and D435 at 640x480; :meth:`CameraPreset.at` rescales one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..frames import Intrinsics


@dataclass(frozen=True)
class CameraPreset:
    """A depth camera model: intrinsics of the aligned RGB-D stream plus the stereo facts noise needs.

    Attributes
    ----------
    name : str
    intrinsics : Intrinsics
        Of the rendered (aligned) depth and colour images.
    baseline : float, metres
        Stereo baseline of the depth module.
    min_range, max_range : float, metres
        Depth outside this range is invalid (0).
    """

    name: str
    intrinsics: Intrinsics
    baseline: float
    min_range: float
    max_range: float

    def at(self, width: int, height: int) -> CameraPreset:
        """The same camera at another size: focal length scaled with the width, principal point centred."""
        s = width / self.intrinsics.width
        f = self.intrinsics.fx * s
        k = Intrinsics(width, height, f, f, (width - 1) / 2, (height - 1) / 2)
        return CameraPreset(self.name, k, self.baseline, self.min_range, self.max_range)


def _preset(name: str, native_width: int, native_f: float, baseline: float, min_range: float) -> CameraPreset:
    f = native_f * 640 / native_width
    return CameraPreset(name, Intrinsics(640, 480, f, f, 319.5, 239.5), baseline, min_range, 4.0)


CAMERAS: dict[str, CameraPreset] = {
    # D415: f ~ 1005 px at 1280 wide, 55 mm baseline -> 502.5 px at 640x480 (65 deg horizontal FOV).
    "d415": _preset("d415", 1280, 1005.0, 0.055, 0.30),
    # D435: f ~ 447 px at 848 wide, 50 mm baseline -> 337.4 px at 640x480 (87 deg horizontal FOV).
    "d435": _preset("d435", 848, 447.0, 0.050, 0.20),
}
"""Camera presets at 640x480 (use :meth:`CameraPreset.at` for another size)."""


def get_camera(camera: str | CameraPreset) -> CameraPreset:
    """A preset by name (``"d415"``, ``"d435"``), or the preset itself."""
    if isinstance(camera, CameraPreset):
        return camera
    try:
        return CAMERAS[str(camera).lower()]
    except KeyError:
        raise ValueError(f"unknown camera {camera!r}; choose one of {sorted(CAMERAS)}") from None
