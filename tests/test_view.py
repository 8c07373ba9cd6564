"""The live view (facecap.view): the picture drawn, and the browser's HTTP endpoints over real sockets."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import replace

import numpy as np
import pytest

from facecap import Tracker, TrackerConfig, arkit, pose
from facecap.formats import load_rig
from facecap.state import FaceState
from facecap.synth import SyntheticActor
from facecap.view import PANEL_W, Overlay, ViewServer, draw_view


@pytest.fixture(scope="module")
def rig():
    return load_rig()


@pytest.fixture(scope="module")
def tracked(rig):
    """A frame of the built-in face turned a little, jaw half open, and the tracker's state for it."""
    actor = SyntheticActor(rig, camera="d415", seed=4)
    w = np.zeros(52)
    w[arkit.INDEX["jawOpen"]] = 0.5
    frame = actor.render(w, pose.from_euler(0.2, 0.05, 0.0), np.array([0.0, 0.0, 0.6]), index=0)
    tr = Tracker(rig, frame.depth_intrinsics, TrackerConfig.for_camera("d415"))
    for _ in range(3):
        state = tr.track(frame)
    assert state.tracked
    return frame, state


def _get(url: str, timeout: float = 20.0) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def test_the_picture_draws_the_fitted_face_where_it_is_and_the_weights(rig, tracked):
    frame, state = tracked
    ov = Overlay(rig)
    assert len(ov.thin) > 2000 and len(ov.bold) > 100  # MediaPipe's tesselation and contours, all mapped
    img = draw_view(frame, state, ov, ("[6/29] Open your jaw wide",))
    h, w = frame.depth.shape
    assert img.shape == (h, w + PANEL_W, 3) and img.dtype == np.uint8
    changed = np.abs(img[:, :w].astype(int) - frame.color.astype(int)).sum(2) > 60
    uv = frame.depth_intrinsics.project((state.rotation @ ov.points(state.weights).T).T + state.translation)
    (x0, y0), (x1, y1) = uv.min(0), uv.max(0)
    inside = changed[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1].sum()
    text_rows = changed[:30].sum() + changed[h - 30 :].sum()  # the prompt and the status line
    assert inside > 2000 and inside + text_rows > 0.95 * changed.sum()
    # the weights panel: jawOpen's bar is about half full, an unused shape's empty
    panel = img[:, w:]
    row = h // 52

    def bar(name):
        y = arkit.INDEX[name] * row + row // 2
        return int((panel[y, 118:] > 60).any(1).sum())

    assert abs(bar("jawOpen") - state.weights[arkit.INDEX["jawOpen"]] * (PANEL_W - 124)) <= 2
    assert bar("cheekPuff") <= 1 + state.weights[arkit.INDEX["cheekPuff"]] * (PANEL_W - 124)
    lost = draw_view(replace(frame, color=None), FaceState(), ov)  # no colour: the depth; no face: no mesh
    assert lost.shape == img.shape and (lost[:, w:] > 60).sum() < (panel > 60).sum()


def test_a_rig_without_mediapipe_landmarks_shows_its_mesh(rig):
    few = replace(rig, landmark_ids=rig.landmark_ids[:20], landmark_tris=rig.landmark_tris[:20],
                  landmark_bary=rig.landmark_bary[:20])  # fmt: skip
    ov = Overlay(few)
    assert len(ov.bold) == 0 and 1000 < len(ov.thin) and ov.points(np.zeros(52)).shape == rig.neutral.shape


def test_the_browser_gets_the_page_the_stream_a_picture_and_the_state(rig, tracked):
    frame, state = tracked
    with ViewServer(0, rig=rig) as view:
        assert view.url.startswith("http://127.0.0.1:")
        status, kind, body = _get(view.url)
        assert status == 200 and kind.startswith("text/html") and b"/stream.mjpg" in body
        assert json.loads(_get(view.url + "state.json")[2]) == {"frames": 0}
        with pytest.raises(urllib.error.HTTPError) as e:
            _get(view.url + "nope")
        assert e.value.code == 404
        view.show(frame, state, ("hello",))
        status, kind, jpg = _get(view.url + "frame.jpg")
        assert status == 200 and kind == "image/jpeg" and jpg[:2] == b"\xff\xd8"
        import cv2

        pic = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
        assert pic.shape == (frame.depth.shape[0], frame.depth.shape[1] + PANEL_W, 3)
        st = json.loads(_get(view.url + "state.json")[2])
        assert st["tracked"] and st["lines"] == ["hello"] and set(st["weights"]) == set(arkit.ARKIT_NAMES)
        assert abs(st["weights"]["jawOpen"] - float(state.weights[arkit.INDEX["jawOpen"]])) < 1e-3
        # the MJPEG stream: multipart parts, each a JPEG, a new one for each new frame
        with urllib.request.urlopen(view.url + "stream.mjpg", timeout=20) as r:
            assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=frame")
            for k in range(2):
                assert r.readline() == b"--frame\r\n"
                head = {}
                while (line := r.readline()) != b"\r\n":
                    key, val = line.decode().split(":", 1)
                    head[key.strip().lower()] = val.strip()
                part = r.read(int(head["content-length"]))
                assert head["content-type"] == "image/jpeg" and part[:2] == b"\xff\xd8"
                assert r.read(2) == b"\r\n"
                view.show(frame, state, (f"frame {k}",))
        # a browser that goes away mid-stream costs nothing: the next ones are served as before
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", int(view.url.rsplit(":", 1)[1].strip("/")))) as c:
                c.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
                assert c.recv(64).startswith(b"HTTP/1.0 200")
            view.show(frame, state)
        assert _get(view.url + "frame.jpg")[2][:2] == b"\xff\xd8"
    view.close()  # twice is fine


def test_a_port_in_use_is_a_clear_error(rig):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            ViewServer(port, rig=rig)
    with pytest.raises(ValueError, match="port"):
        ViewServer(70000, rig=rig)


def test_the_capture_loop_shows_each_tracked_frame(rig, capsys):
    """The capture loop hands every frame to the view; `facecap demo --view 0` says its address."""
    from facecap.cli import main
    from facecap.pipeline import run

    actor = SyntheticActor(rig, camera="d415", seed=5)
    R, t = actor.frontal_pose
    frames = [actor.render(np.zeros(52), R, t, index=i) for i in range(5)]
    with ViewServer(0, rig=rig) as view:
        tracker = Tracker(rig, frames[0].depth_intrinsics, TrackerConfig(adapt_identity=True))
        res = run(frames, tracker, view=view)
        st = json.loads(_get(view.url + "state.json")[2])
        assert res["frames"] == 5 and st["frames"] == 5 and st["index"] == frames[-1].index and st["tracked"]
        # with the online identity refinement on, the view tells the performer what it still needs
        assert st["lines"] == [tracker.adapter.status_line()] and "face the camera" in st["lines"][0]

    assert main(["demo", "--frames", "6", "--view", "0", "--json"]) == 0
    assert "live view: http://127.0.0.1:" in capsys.readouterr().err
    assert main(["demo", "--frames", "2", "--view", "x:y"]) == 2
    assert "--view takes [HOST:]PORT" in capsys.readouterr().err
