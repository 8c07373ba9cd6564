"""Connected RealSense cameras: listing them and streaming depth + color from one (:class:`LiveSource`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from ..camera_access import import_pyrealsense2 as _rs
from ..frames import Frame
from .convert import FrameConverter

LIVE_SIZES = ((424, 240), (480, 270), (640, 480), (848, 480), (1280, 720))

LIVE_FPS = (6, 15, 30, 60, 90)

NO_CAMERA_HELP = "no RealSense camera connected (check the USB 3 cable, udev rules, `rs-enumerate-devices`)"


def list_devices() -> list[dict]:
    """Connected RealSense cameras.

    Returns
    -------
    list of dict
        One per camera with ``name``, ``serial``, ``firmware``, ``usb_type`` (e.g. ``"3.2"``; ``"2.1"`` means
        a USB 2 port or cable, too slow for depth + color), ``product_line`` (``"D400"``...) and ``port``.
        Values a camera does not report are None. Empty when no camera is connected.
    """
    rs = _rs()
    keys = {
        "name": "name",
        "serial": "serial_number",
        "firmware": "firmware_version",
        "usb_type": "usb_type_descriptor",
        "product_line": "product_line",
        "port": "physical_port",
    }
    out = []
    for dev in rs.context().query_devices():
        row = {}
        for key, attr in keys.items():
            ci = getattr(rs.camera_info, attr)
            row[key] = dev.get_info(ci) if dev.supports(ci) else None
        out.append(row)
    return out


class LiveSource:
    """Frames from a connected RealSense camera: depth z16 + color rgb8, depth aligned to color.

    Parameters
    ----------
    width, height : int, pixels
        Stream size for depth and color: 640x480 or 848x480 (up to 90 fps), 1280x720 (up to 30 fps),
        424x240, 480x270.
    fps : int
        6, 15, 30, 60 or 90. When the color sensor cannot reach it (many top out at 60 fps), color streams at
        the fastest of 60, 30, 15 fps that resolves; see :attr:`color_fps`.
    serial : str, optional
        Serial number of the camera to open (``facecap devices`` lists them); default the first one.
    align : bool
        Resample depth onto the color camera (``rs.align(rs.stream.color)``) so frames are pixel-aligned.
    color : bool
        Stream color too (default). Without it frames carry depth only.
    depth_units : float, optional, metres
        Depth step to set on the camera, e.g. 0.0001 for 0.1 mm steps at close range (max range 6.5 m).
        Default: leave the camera's setting (1 mm).
    timeout_s : float, seconds
        How long :meth:`read` waits for a frame before raising.

    Attributes
    ----------
    dropped : int
        Depth frames skipped since :meth:`start` because alignment needed their color frame and none came
        with them (every frame read has the same size).

    Examples
    --------
    >>> with LiveSource(640, 480, fps=60) as cam:          # doctest: +SKIP
    ...     for frame in cam:
    ...         print(frame.index, frame.depth.shape)
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        *,
        serial: str | None = None,
        align: bool = True,
        color: bool = True,
        depth_units: float | None = None,
        timeout_s: float = 5.0,
    ):
        if (int(width), int(height)) not in LIVE_SIZES:
            sizes = ", ".join(f"{w}x{h}" for w, h in LIVE_SIZES)
            raise ValueError(f"unsupported stream size {width}x{height}; RealSense depth streams {sizes}")
        if int(fps) not in LIVE_FPS:
            raise ValueError(f"unsupported fps {fps}; choose one of {', '.join(map(str, LIVE_FPS))}")
        if (int(width), int(height)) == (1280, 720) and int(fps) > 30:
            raise ValueError("1280x720 streams at most 30 fps; use 848x480 or 640x480 for 60/90 fps")
        if depth_units is not None and not (1e-6 <= float(depth_units) <= 0.01):
            raise ValueError(f"depth_units must be in metres, between 1e-6 and 0.01, got {depth_units}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.serial, self.align, self.color = serial, bool(align), bool(color)
        self.depth_units, self.timeout_s = depth_units, float(timeout_s)
        self.color_fps: int | None = None
        self.device_name: str | None = None
        self.depth_scale: float | None = None
        self._pipe = None
        self._convert: FrameConverter | None = None
        self._index = 0
        self.dropped = 0

    def _config(self, rs, color_fps: int | None):
        cfg = rs.config()
        if self.serial:
            cfg.enable_device(str(self.serial))
        cfg.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        if color_fps:
            cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, color_fps)
        return cfg

    def start(self) -> LiveSource:
        """Open the camera and start streaming (called by ``with``); raises RuntimeError without a camera."""
        if self._pipe is not None:
            return self
        rs = _rs()
        devices = list_devices()
        if not devices:
            raise RuntimeError(NO_CAMERA_HELP)
        if self.serial and self.serial not in {d["serial"] for d in devices}:
            found = ", ".join(f"{d['name']} ({d['serial']})" for d in devices)
            raise RuntimeError(f"no RealSense camera with serial {self.serial}; connected: {found}")
        pipe = rs.pipeline()
        wrapper = rs.pipeline_wrapper(pipe)
        rates = [self.fps] + [f for f in (60, 30, 15) if f < self.fps] if self.color else [None]
        for color_fps in rates:
            cfg = self._config(rs, color_fps)
            if cfg.can_resolve(wrapper):
                break
        else:
            what = f"depth{' + color' if self.color else ''} {self.width}x{self.height} at {self.fps} fps"
            usb = ", ".join(f"{d['name']} on USB {d['usb_type']}" for d in devices)
            raise RuntimeError(
                f"the camera cannot stream {what} ({usb}); USB 2 ports allow only low rates, "
                "try a USB 3 port, a smaller size or a lower fps"
            )
        try:
            if self.depth_units is not None:  # set before streaming starts
                sensor = cfg.resolve(wrapper).get_device().first_depth_sensor()
                if sensor.supports(rs.option.depth_units):
                    sensor.set_option(rs.option.depth_units, float(self.depth_units))
            profile = pipe.start(cfg)
        except RuntimeError as e:
            raise RuntimeError(f"could not start the RealSense camera: {e}. {NO_CAMERA_HELP}") from e
        try:  # the pipeline streams now: any failure below must release the camera again
            dev = profile.get_device()
            self.depth_scale = float(dev.first_depth_sensor().get_depth_scale())
            has_name = dev.supports(rs.camera_info.name)
            self.device_name = dev.get_info(rs.camera_info.name) if has_name else None
            dp = profile.get_stream(rs.stream.depth).as_video_stream_profile()
            cp = profile.get_stream(rs.stream.color).as_video_stream_profile() if self.color else None
            self.color_fps = cp.fps() if cp is not None else None
            self._convert = FrameConverter(dp, cp, self.depth_scale, self.align)
        except BaseException:
            try:
                pipe.stop()
            except RuntimeError:
                pass
            raise
        self._pipe, self._index, self.dropped = pipe, 0, 0
        return self

    def read(self) -> Frame:
        """The next frame; raises RuntimeError when none arrives within ``timeout_s``."""
        if self._pipe is None:
            self.start()
        deadline = time.monotonic() + self.timeout_s
        while True:
            ok, fs = self._pipe.try_wait_for_frames(int(self.timeout_s * 1000))
            d = fs.get_depth_frame() if ok else None
            if d:
                c = fs.get_color_frame() if self.color else None
                c = c if c else None
                if self._convert.drops(c):  # cannot be aligned: a frame of another size would follow
                    self.dropped += 1
                else:
                    frame = self._convert(d, c, self._index, fs)
                    self._index += 1
                    return frame
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no frame from the RealSense camera within {self.timeout_s:g} s "
                    "(unplugged? another program using it?)"
                )

    def stop(self) -> None:
        """Stop streaming and release the camera (safe to call twice)."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            try:
                pipe.stop()
            except RuntimeError:
                pass

    def __iter__(self) -> Iterator[Frame]:
        while True:
            yield self.read()

    def __enter__(self) -> LiveSource:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "streaming" if self._pipe is not None else "stopped"
        return f"LiveSource({self.width}x{self.height} @ {self.fps} fps, serial={self.serial!r}, {state})"
