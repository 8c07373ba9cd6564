"""The live view: what the tracker sees and fits, in a web browser (``--view PORT``).

:func:`draw_view` draws one frame: the colour image (the depth as grey when there is none) with the fitted
mask's mesh where the fit put it, the head pose, the fit's quality, and the 52 weights as bars.
:class:`ViewServer` serves the latest one as an MJPEG stream on a local HTTP port (``/``: the page,
``/stream.mjpg``: the stream, ``/frame.jpg``: one picture, ``/state.json``: the latest weights and pose), so
it works headless, over the network, and never slows the capture: the capture loop only hands over the
latest frame and state (:meth:`ViewServer.show`); drawing and JPEG encoding happen on the server's thread
for the clients that watch, at most ``max_fps`` times a second.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from . import arkit
from .frames import Frame
from .rig import Rig
from .state import FaceState

PANEL_W = 220
"""Width of the weights panel beside the image [px]."""
MAX_EDGES = 6000
"""Mesh edges drawn at most for a rig without MediaPipe's landmarks (every k-th edge of its face)."""


class Overlay:
    """What the view draws of a rig: MediaPipe's face mesh (its tesselation thin, the contours of eyes,
    brows, lips and face oval bold, from ``mediapipe``'s own connection tables) at the rig's landmarks, or
    for a rig without them, the edges of its face region.

    Attributes
    ----------
    thin, bold : (E, 2) int64 index pairs into :meth:`points`
    """

    def __init__(self, rig: Rig):
        ids = {int(m): k for k, m in enumerate(rig.landmark_ids)}
        pairs = _mediapipe_connections()
        thin, bold = ([(ids[a], ids[b]) for a, b in p if a in ids and b in ids] for p in pairs)
        if len(thin) >= 0.9 * len(pairs[0]):
            d = rig.deltas[:, rig.landmark_tris]  # (52, L, 3, 3)
            self._base = rig.landmark_points().astype(np.float64)
            self._deltas = np.einsum("lk,slkd->sld", rig.landmark_bary, d).astype(np.float64)
            self.thin, self.bold = np.array(thin, np.int64), np.array(bold, np.int64)
        else:
            mask = rig.masks.get("face", rig.masks.get("track"))
            tris = rig.triangles if mask is None else rig.triangles[mask[rig.triangles].all(1)]
            e = np.unique(
                np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), 1), axis=0
            )
            self._base, self._deltas = rig.neutral.astype(np.float64), rig.deltas.astype(np.float64)
            self.thin, self.bold = e[:: max(1, int(np.ceil(len(e) / MAX_EDGES)))], np.zeros((0, 2), np.int64)

    def points(self, weights: np.ndarray) -> np.ndarray:
        """(P, 3) float64 rig-space points of the overlay at ``weights`` (52,), metres."""
        return self._base + np.tensordot(np.asarray(weights, np.float64), self._deltas, axes=1)


def _mediapipe_connections() -> tuple[list, list]:
    """(tesselation, contours) of MediaPipe's face mesh as (a, b) landmark index pairs."""
    from mediapipe.tasks.python.vision import FaceLandmarksConnections as C

    def pairs(conns):
        return [(c.start, c.end) for c in conns]

    contours = C.FACE_LANDMARKS_CONTOURS + C.FACE_LANDMARKS_LEFT_IRIS + C.FACE_LANDMARKS_RIGHT_IRIS
    return pairs(C.FACE_LANDMARKS_TESSELATION), pairs(contours)


def draw_view(frame: Frame, state: FaceState, overlay: Overlay, lines: tuple[str, ...] = ()) -> np.ndarray:
    """One picture of the live view.

    Parameters
    ----------
    frame : the frame tracked (its colour image, else its depth as grey)
    state : the tracker's result for it (the face is drawn when ``tracked``)
    overlay : :class:`Overlay` of the rig tracked
    lines : text lines drawn at the top (a prompt, a status)

    Returns
    -------
    (H, W + PANEL_W, 3) uint8 RGB
    """
    import cv2

    if frame.color is not None:
        img = np.ascontiguousarray(frame.color[..., :3], dtype=np.uint8)
        intr = frame.color_intrinsics or frame.depth_intrinsics
    else:
        d = frame.depth
        ok = d > 0
        near = float(np.percentile(d[ok], 1)) if ok.any() else 0.0
        g = (np.clip((near + 0.3 - d) / 0.3, 0, 1) * 255 * ok).astype(np.uint8)  # the nearest 30 cm brighter
        img = np.repeat(g[..., None], 3, axis=2)
        intr = frame.depth_intrinsics
    h, w = img.shape[:2]
    out = np.zeros((h, w + PANEL_W, 3), np.uint8)
    out[:, :w] = img
    view = out[:, :w]
    if state.tracked:
        p = (state.rotation @ overlay.points(state.weights).T).T + state.translation
        uv = np.round(intr.project(p) * 16)  # 4 bits of sub-pixel precision
        ok = np.isfinite(uv).all(1) & (p[:, 2] > 0)
        for pairs, colour in ((overlay.thin, (40, 170, 90)), (overlay.bold, (120, 255, 160))):
            pairs = pairs[ok[pairs].all(1)]
            if len(pairs):
                cv2.polylines(view, list(uv[pairs].astype(np.int32)), False, colour, 1, cv2.LINE_AA, shift=4)
        yaw, pitch, roll = np.degrees(state.euler())
        z, q = state.translation[2], state.quality
        status = f"yaw {yaw:+.1f}  pitch {pitch:+.1f}  roll {roll:+.1f} deg   {z:.2f} m   quality {q:.2f}"
    else:
        status = "no face"
    _text(out, status, (6, h - 7))
    for k, line in enumerate(lines):
        _text(out, line, (6, 22 + 22 * k), scale=0.6)
    _weight_bars(out[:, w:], state.weights if state.tracked else np.zeros(arkit.NUM_SHAPES))
    return out


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45) -> None:
    """White text on a darkened box (legible over any image)."""
    import cv2

    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = org
    box = img[max(0, y - th - 4) : y + base + 2, max(0, x - 3) : x + tw + 3]
    box //= 3
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _weight_bars(panel: np.ndarray, w: np.ndarray) -> None:
    """The 52 weights as horizontal bars with their names, in the panel (H, PANEL_W, 3)."""
    import cv2

    h = panel.shape[0]
    row = max(1, h // arkit.NUM_SHAPES)
    x0, bar = 118, PANEL_W - 124
    for k, name in enumerate(arkit.ARKIT_NAMES):
        y = k * row
        v = float(np.clip(w[k], 0.0, 1.0))
        panel[y + 1 : y + row - 1, x0 : x0 + bar] = 40
        colour = (70, 160, 255) if v < 0.5 else (255, 170, 60)
        panel[y + 1 : y + row - 1, x0 : x0 + int(round(v * bar))] = colour
        if row >= 8:
            cv2.putText(panel, name[:18], (2, y + row - 2), cv2.FONT_HERSHEY_PLAIN, 0.62, (200, 200, 200), 1)


class ViewServer:
    """The live view on a local HTTP port: an MJPEG stream of :func:`draw_view` pictures.

    Parameters
    ----------
    port : TCP port (0: any free one; see :attr:`url`)
    host : interface to listen on (default 127.0.0.1; "0.0.0.0" for other machines on the network)
    rig : the rig tracked (the mesh drawn), default the built-in
    max_fps : pictures drawn per second at most, for all clients together
    quality : JPEG quality (1-100)
    """

    def __init__(self, port: int = 8080, host: str = "127.0.0.1", rig: Rig | None = None, *,
                 max_fps: float = 30.0, quality: int = 80):  # fmt: skip
        from .formats import load_rig

        if not 0 <= int(port) <= 65535:
            raise ValueError(f"port must be 0-65535, got {port}")
        if not (max_fps > 0 and 1 <= quality <= 100):
            raise ValueError(f"need max_fps > 0 and quality in 1-100, got {max_fps}, {quality}")
        self.rig = rig if rig is not None else load_rig()
        self.max_fps, self.quality = float(max_fps), int(quality)
        self._overlay: Overlay | None = None  # made for the first picture (mediapipe's tables take seconds)
        self._latest: tuple | None = None  # (frame, state, lines, serial)
        self._serial = 0
        self._jpeg: tuple[int, bytes] | None = None  # (serial, bytes) of the last picture drawn
        self._cond = threading.Condition()
        self._closed = False
        view = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet: the capture's terminal is not a web server log
                pass

            def do_GET(self):
                view._serve(self)

        try:
            self._httpd = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as e:
            raise OSError(f"the live view cannot listen on {host}:{port}: {e.strerror or e}") from e
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="facecap-view", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"

    def show(self, frame: Frame, state: FaceState, lines: tuple[str, ...] = ()) -> None:
        """Hand over the latest frame and its state (cheap: nothing is drawn here)."""
        with self._cond:
            self._serial += 1
            self._latest = (frame, state, tuple(lines), self._serial)
            self._cond.notify_all()

    def set_rig(self, rig: Rig) -> None:
        """The rig tracked changed (an identity adapter swapped it)."""
        with self._cond:
            self.rig, self._overlay = rig, None

    def picture(self, timeout: float | None = None, after: int = 0) -> tuple[int, bytes] | None:
        """(serial, JPEG bytes) of a picture newer than ``after``, waiting up to ``timeout`` s for one;
        None if none came or the view is closed."""
        import cv2

        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._closed and (self._latest is None or self._latest[3] <= after):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._cond.wait(left)
            if self._closed:
                return None
            frame, state, lines, serial = self._latest
            if self._jpeg is not None and self._jpeg[0] == serial:
                return self._jpeg
            overlay, rig = self._overlay, self.rig
        if overlay is None:
            overlay = Overlay(rig)
            with self._cond:
                if self.rig is rig:
                    self._overlay = overlay
        img = draw_view(frame, state, overlay, lines)
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        jpeg = (serial, buf.tobytes())
        with self._cond:
            self._jpeg = jpeg
        return jpeg

    def _serve(self, req: BaseHTTPRequestHandler) -> None:
        path = req.path.split("?")[0]

        def send(kind: str, body: bytes) -> None:
            req.send_response(200)
            req.send_header("Content-Type", kind)
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)

        try:
            if path == "/":
                send("text/html; charset=utf-8", _PAGE.encode())
            elif path == "/frame.jpg":
                pic = self.picture(timeout=5.0)
                if pic is None:
                    req.send_error(503, "no frame yet")
                    return
                send("image/jpeg", pic[1])
            elif path == "/state.json":
                send("application/json", json.dumps(self._state_dict()).encode())
            elif path == "/stream.mjpg":
                req.send_response(200)
                req.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                req.send_header("Cache-Control", "no-cache")
                req.end_headers()
                last, period = 0, 1.0 / self.max_fps
                while not self._closed:
                    t = time.monotonic()
                    pic = self.picture(timeout=1.0, after=last)
                    if pic is None:
                        continue
                    last = pic[0]
                    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(pic[1])
                    req.wfile.write(head)
                    req.wfile.write(pic[1] + b"\r\n")
                    time.sleep(max(0.0, period - (time.monotonic() - t)))
            else:
                req.send_error(404, "the live view serves /, /stream.mjpg, /frame.jpg and /state.json")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away

    def _state_dict(self) -> dict:
        with self._cond:
            latest = self._latest
        if latest is None:
            return {"frames": 0}
        _, st, lines, serial = latest
        w = np.round(st.weights.astype(float), 4).tolist()
        return {"frames": serial, "index": st.index, "timestamp": st.timestamp, "tracked": bool(st.tracked),
                "quality": float(st.quality), "head_euler_rad": [float(a) for a in st.euler()],
                "translation_m": [float(a) for a in st.translation],
                "weights": dict(zip(arkit.ARKIT_NAMES, w, strict=True)),
                "lines": list(lines)}  # fmt: skip

    def close(self) -> None:
        """Stop serving (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ViewServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>facecap live view</title>
<style>body{margin:0;background:#111;color:#ccc;font:14px sans-serif}img{display:block;max-width:100%}
p{margin:6px}</style></head>
<body><img src="/stream.mjpg" alt="facecap live view">
<p>facecap live view: the fitted mask over the camera image, the head pose and the 52 weights.
<a href="/state.json" style="color:#8cf">state.json</a></p></body></html>
"""

__all__ = ["PANEL_W", "Overlay", "ViewServer", "draw_view"]
