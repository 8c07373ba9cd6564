"""Making ``pyrealsense2`` importable and RealSense cameras reachable on a machine with nothing installed.

- :func:`import_pyrealsense2` imports ``pyrealsense2``. On Linux its binary links ``libusb-1.0.so.0``; when
  the system has none, the library the ``libusb-package`` wheel ships is preloaded first (the system one wins
  whenever it is present), so ``pip install facecap`` is the whole set-up.
- :func:`import_open3d` does the same for Open3D, whose wheel links libusb as well.
- :func:`usb_cameras` lists the RealSense cameras the USB bus shows (Linux sysfs) and whether this user may
  open them, so ``facecap devices`` can tell "no camera" from "a camera without udev rules".
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

INTEL_VENDOR = "8086"
# D400-family USB product ids (librealsense src/ds/d400/d400-private.h), for cameras whose product string
# does not say "RealSense" (recovery and USB 2 modes)
REALSENSE_PRODUCTS = frozenset(
    "0ad1 0ad2 0ad3 0ad4 0ad5 0ad6 0adb 0adc 0af2 0af6 0afe 0aff 0b00 0b01 0b03 0b07 0b0c 0b3a 0b48 0b4b "
    "0b4d 0b52 0b5b 0b5c 0b64 0b68 0b6a 0b6b 0b6d 0b72 0b73 0b75 0b76 0b7b 0b84".split()
)

UDEV_HELP = (
    "A RealSense camera is connected but this user may not open it ({paths}). Install Intel's udev rules "
    "once, then replug the camera:\n"
    "  sudo curl -fsSL https://raw.githubusercontent.com/IntelRealSense/librealsense/master/config/"
    "99-realsense-libusb.rules -o /etc/udev/rules.d/99-realsense-libusb.rules\n"
    "  sudo udevadm control --reload-rules && sudo udevadm trigger\n"
    "(or run facecap as root to check that the camera works)."
)


def preload_libusb() -> str | None:
    """Load a ``libusb-1.0`` into the process's global namespace so ``pyrealsense2`` links against it.

    Returns "system", "wheel" or None (not Linux, or neither library could be loaded: the import will then
    fail with the loader's own message).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        ctypes.CDLL("libusb-1.0.so.0", mode=ctypes.RTLD_GLOBAL)
        return "system"
    except OSError:
        pass
    try:
        import libusb_package
    except ImportError:
        return None
    path = libusb_package.get_library_path()
    if not path:
        return None
    try:
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None
    return "wheel"


@functools.cache
def import_open3d():
    """The ``open3d`` module; its Linux wheel links ``libusb-1.0.so.0`` too (for its RealSense reader), so the
    same preload applies.

    Raises
    ------
    ImportError
        open3d is not installed (``pip install 'facecap[bench]'``) or cannot load.
    """
    preload_libusb()
    try:
        import open3d
    except ImportError as e:
        raise ImportError(
            f"open3d failed to import ({e}). Install it with `pip install open3d libusb-package`."
        ) from e
    return open3d


@functools.cache
def import_pyrealsense2():
    """The ``pyrealsense2`` module, imported on first use (``import facecap`` works without a camera stack).

    Raises
    ------
    ImportError
        pyrealsense2 or libusb is missing; the message says how to fix it.
    """
    source = preload_libusb()
    try:
        import pyrealsense2 as rs
    except ImportError as e:
        hint = "Install it with `pip install pyrealsense2 libusb-package`"
        if "libusb" in str(e) and source is None:
            hint += " (libusb-package ships the libusb-1.0 that pyrealsense2 needs on Linux)"
        raise ImportError(f"pyrealsense2 failed to import ({e}). {hint}.") from e
    return rs


def usb_cameras(sysfs: str | os.PathLike = "/sys/bus/usb/devices", dev: str | os.PathLike = "/dev/bus/usb"):
    """RealSense cameras on the USB bus, whether or not librealsense can open them (Linux only).

    Parameters
    ----------
    sysfs : folder of USB devices (one sub-folder per device with ``idVendor``, ``idProduct``, ``busnum``,
        ``devnum`` and ``product`` files)
    dev : folder of USB device nodes (``BBB/DDD``)

    Returns
    -------
    list of dict with ``product`` (str), ``product_id`` (hex str), ``node`` (device node path) and
    ``accessible`` (bool: this user may read and write the node). Empty on other systems.
    """
    root = Path(sysfs)
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):

        def read(name, d=d):
            try:
                return (d / name).read_text(errors="replace").strip()
            except OSError:
                return ""

        if read("idVendor").lower() != INTEL_VENDOR:
            continue
        pid, product = read("idProduct").lower(), read("product")
        if pid not in REALSENSE_PRODUCTS and "realsense" not in product.lower():
            continue
        try:
            node = Path(dev) / f"{int(read('busnum')):03d}" / f"{int(read('devnum')):03d}"
        except ValueError:
            continue
        out.append(
            {
                "product": product or f"Intel USB device {pid}",
                "product_id": pid,
                "node": str(node),
                "accessible": node.exists() and os.access(node, os.R_OK | os.W_OK),
            }
        )
    return out


def access_problem(cameras: list[dict]) -> str | None:
    """How to fix access when the bus shows cameras this user cannot open (None when there is none)."""
    blocked = [c["node"] for c in cameras if not c["accessible"]]
    return UDEV_HELP.format(paths=", ".join(blocked)) if blocked else None


__all__ = [
    "UDEV_HELP",
    "access_problem",
    "import_open3d",
    "import_pyrealsense2",
    "preload_libusb",
    "usb_cameras",
]
