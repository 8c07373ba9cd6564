"""RealSense sources through the real pyrealsense2: .db3 written by facecap, a ROS1 .bag in the RealSense
layout, damaged files (risky ones in a subprocess with a timeout), write failures, LiveSource without a
camera, and the `devices` / `info` commands."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from facecap import cli
from facecap.camera_access import import_pyrealsense2
from facecap.frames import Extrinsics, Frame, Intrinsics
from facecap.realsense import (  # noqa: E402
    NO_CAMERA_HELP,
    LiveSource,
    RecordingError,
    RecordingSource,
    list_devices,
    read_recording,
    recording_info,
    write_recording,
)
from facecap.realsense import container as rs_container
from facecap.realsense import convert as rs_convert
from facecap.realsense import live as rs_live
from facecap.realsense import writer as rs_writer

ROOT = Path(__file__).resolve().parents[1]
FPS = 30


def synth_frames(n: int, w: int, h: int, *, seed: int = 0, color: bool = True, t0: float = 100.0,
                 intrinsics: Intrinsics | None = None, color_intrinsics: Intrinsics | None = None,
                 extrinsics: Extrinsics | None = None) -> list[Frame]:  # fmt: skip
    """Seeded RGB-D frames: a tilted wall at ~0.8 m with a sphere ("head") drifting right, sensor noise and
    holes; color gradients plus noise. Depth is continuous (not on the 1 mm grid) to test quantisation."""
    rng = np.random.default_rng(seed)
    k_d = intrinsics or Intrinsics(w, h, 0.9 * w + 0.37, 0.9 * w + 0.11, w / 2 - 0.37, h / 2 + 0.21)
    k_c = color_intrinsics or k_d
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    vc, uc = np.mgrid[0 : k_c.height, 0 : k_c.width].astype(np.float64)
    out = []
    for i in range(n):
        z = 0.8 + 0.0004 * (u - w / 2) + 0.0002 * (v - h / 2)
        cx, cy, r = w * (0.4 + 0.01 * i), h / 2, 0.3 * h
        q = 1 - ((u - cx) ** 2 + (v - cy) ** 2) / r**2
        z = np.where(q > 0, 0.6 - 0.08 * np.sqrt(np.clip(q, 0, 1)), z) + rng.normal(0, 0.0015, z.shape)
        z[rng.random(z.shape) < 0.03] = 0  # dropouts
        z[: h // 10, : w // 8] = 0  # a hole
        rgb = None
        if color:
            rgb = np.stack([uc * 255 / k_c.width, vc * 255 / k_c.height, np.full_like(uc, 8.0 * i)], axis=-1)
            rgb = np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)
        out.append(Frame(z.astype(np.float32), k_d, rgb, k_c if color else None, extrinsics or Extrinsics(),
                         timestamp=t0 + i / FPS, index=i))  # fmt: skip
    return out


def assert_same_frames(written: list[Frame], read: list[Frame], depth_tol: float = 0.0005) -> None:
    assert len(read) == len(written)
    for i, (a, b) in enumerate(zip(written, read, strict=True)):
        assert b.index == i
        assert abs(b.timestamp - a.timestamp) < 1e-6, (i, a.timestamp, b.timestamp)
        assert b.depth.dtype == np.float32 and b.depth.shape == a.depth.shape
        err = np.abs(b.depth.astype(np.float64) - a.depth)
        assert err.max() <= depth_tol + 1e-6, (i, err.max())  # 1 mm quantisation: within half a step
        assert np.array_equal(b.depth == 0, a.depth < depth_tol)  # holes stay holes, nothing new appears
        if a.color is None:
            assert b.color is None
        else:
            assert b.color.dtype == np.uint8 and np.array_equal(b.color, a.color)


def same_intrinsics(a: Intrinsics, b: Intrinsics) -> bool:
    """Equal up to RealSense's float32 storage."""
    fa = [a.width, a.height, a.fx, a.fy, a.cx, a.cy, *a.coeffs]
    fb = [b.width, b.height, b.fx, b.fy, b.cx, b.cy, *b.coeffs]
    return a.model == b.model and np.allclose(fa, fb, rtol=1e-6, atol=1e-5)


def run_isolated(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter: a librealsense crash or hang fails the test, not the test run."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)  # fmt: skip


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """12 frames 320x240 with color, written once for the module."""
    frames = synth_frames(12, 320, 240, seed=1)
    path = tmp_path_factory.mktemp("rec") / "small.db3"
    assert write_recording(path, frames) == 12
    return path, frames


# ------------------------------------------------------------------------------------------- round trips
def test_round_trip_small(small):
    path, frames = small
    with sqlite3.connect(path) as con:  # raw images by default (fast), no PNG
        names = {n for (n,) in con.execute("SELECT name FROM topics")}
    assert "/device_0/sensor_0/Depth_0/image/data" in names
    back = list(read_recording(path))
    assert_same_frames(frames, back)
    for f in back:
        assert same_intrinsics(f.depth_intrinsics, frames[0].depth_intrinsics)
        assert f.aligned and f.depth_to_color.is_identity


def test_round_trip_640x480_png_compressed_with_distortion_model(tmp_path):
    k = Intrinsics(640, 480, 615.3, 615.9, 318.7, 241.2, "brown_conrady", (0.01, -0.02, 0.001, 0.0005, 0.003))
    frames = synth_frames(8, 640, 480, seed=2, intrinsics=k)
    path = tmp_path / "rs640.db3"
    assert write_recording(path, frames, compress=True) == 8
    with sqlite3.connect(path) as con:  # librealsense's lossless PNG topics
        names = {n for (n,) in con.execute("SELECT name FROM topics")}
    assert "/device_0/sensor_0/Depth_0/image/data/compressedDepth" in names
    src = RecordingSource(path)
    assert len(src) == 8 and src.has_color
    back = list(src)
    assert_same_frames(frames, back)
    assert same_intrinsics(back[0].depth_intrinsics, k) and back[0].depth_intrinsics.model == "brown_conrady"


def test_depth_quantisation_clipping_and_finer_units(tmp_path):
    k = Intrinsics(8, 4, 10.0, 10.0, 3.5, 1.5)
    d = np.array([[0.0, 0.0004, 0.0006, 0.5, 0.5004, 0.5006, 70.0, 65.535]] * 4, np.float32)
    frames = [Frame(d, k, timestamp=i / FPS) for i in range(3)]
    write_recording(tmp_path / "mm.db3", frames)
    got = next(read_recording(tmp_path / "mm.db3")).depth[0]
    np.testing.assert_allclose(got, [0, 0, 0.001, 0.5, 0.5, 0.501, 65.535, 65.535], atol=1e-6)
    write_recording(tmp_path / "fine.db3", frames, depth_units=0.0001)  # 0.1 mm steps, max 6.5535 m
    got = next(read_recording(tmp_path / "fine.db3")).depth[0]
    np.testing.assert_allclose(got, [0, 0.0004, 0.0006, 0.5, 0.5004, 0.5006, 6.5535, 6.5535], atol=1e-6)
    assert recording_info(tmp_path / "fine.db3")["depth_scale"] == pytest.approx(0.0001)


def test_depth_only_recording(tmp_path):
    frames = synth_frames(6, 160, 120, seed=3, color=False)
    path = tmp_path / "depth.db3"
    assert write_recording(path, frames) == 6
    info = recording_info(path)
    assert [s["stream"] for s in info["streams"]] == ["depth"] and info["aligned"] is None
    src = RecordingSource(path)
    assert not src.has_color
    assert_same_frames(frames, list(src))


def test_unaligned_streams_are_aligned_or_carry_extrinsics(tmp_path):
    """Depth 424x240 wide-angle, color 320x240, 15 mm baseline: align=True resamples depth onto color."""
    kd = Intrinsics(424, 240, 210.0, 210.0, 211.5, 119.5)
    kc = Intrinsics(320, 240, 300.0, 300.0, 159.5, 119.5)
    ex = Extrinsics(np.eye(3), np.array([0.015, 0.0, 0.0]))
    frames = synth_frames(5, 424, 240, seed=4, intrinsics=kd, color_intrinsics=kc, extrinsics=ex)
    for f in frames:  # a clean fronto-parallel wall: its aligned depth is known exactly
        f.depth = np.full_like(f.depth, 0.7 + 0.01 * f.index)
    path = tmp_path / "unaligned.db3"
    write_recording(path, frames)
    info = recording_info(path)
    assert info["aligned"] is False and info["depth_to_color"]["translation"][0] == pytest.approx(0.015)
    aligned = list(read_recording(path))
    assert len(aligned) == 5
    for a, b in zip(frames, aligned, strict=True):
        assert b.aligned and b.depth.shape == (240, 320) and same_intrinsics(b.depth_intrinsics, kc)
        assert np.array_equal(b.color, a.color)  # the first frame too (the syncer emits it split)
        valid = b.depth > 0
        assert valid.mean() > 0.95
        np.testing.assert_allclose(b.depth[valid], 0.7 + 0.01 * a.index, atol=0.0006)
    raw = list(read_recording(path, align=False))
    assert raw[0].depth.shape == (240, 424) and not raw[0].aligned
    np.testing.assert_allclose(raw[0].depth_to_color.translation, [0.015, 0, 0], atol=1e-7)
    np.testing.assert_allclose(raw[0].depth_to_color.rotation, np.eye(3), atol=1e-7)
    assert same_intrinsics(raw[0].depth_intrinsics, kd) and same_intrinsics(raw[0].color_intrinsics, kc)


def test_depth_without_color_is_dropped_when_it_must_be_aligned(tmp_path):
    """Streams that start and stop at different times (RealSense Viewer): the first and last depth frames have
    no color. Aligned playback drops them and counts them, so every frame has the color camera's size."""
    kd = Intrinsics(424, 240, 210.0, 210.0, 211.5, 119.5)
    kc = Intrinsics(320, 240, 300.0, 300.0, 159.5, 119.5)
    ex = Extrinsics(np.eye(3), np.array([0.015, 0.0, 0.0]))
    frames = synth_frames(6, 424, 240, seed=14, intrinsics=kd, color_intrinsics=kc, extrinsics=ex)
    path = tmp_path / "ragged.db3"
    writer = rs_writer._Db3Writer(path, frames[0], FPS, 0.001, "test")
    for f in frames:
        if f.index in (0, 5):  # depth only: what push() does without the color frame
            z = np.rint(f.depth * 1000).astype(np.uint16)
            raw = writer._software_frame(z, writer.depth_profile, 2, f.index, f.timestamp * 1000.0)
            raw.depth_units = 0.001
            writer.sensors[0][0].on_video_frame(raw)
            writer.last_timestamp = f.timestamp
        else:
            writer.push(f)
    writer.close()
    assert rs_container.db3_index(path)["frames"] == 6 and rs_container.db3_index(path)["color_frames"] == 4
    src = RecordingSource(path)
    aligned = list(src)
    assert src.dropped == 2 and [f.index for f in aligned] == [0, 1, 2, 3]
    for a, b in zip(frames[1:5], aligned, strict=True):
        assert b.aligned and b.depth.shape == (240, 320) and same_intrinsics(b.depth_intrinsics, kc)
        assert abs(b.timestamp - a.timestamp) < 1e-6 and np.array_equal(b.color, a.color)
    raw = list(RecordingSource(path, align=False))  # nothing to align: every depth frame, color or not
    assert len(raw) == 6 and {f.depth.shape for f in raw} == {(240, 424)}
    assert [f.color is None for f in raw] == [True, False, False, False, False, True]


def test_live_read_drops_depth_without_color_when_aligning():
    class Conv(rs_convert.FrameConverter):  # the real drops() decision, without a camera behind it
        def __init__(self):
            self._align = object()

        def __call__(self, d, c, index, fs=None):
            return (d, c, index)

    class FrameSet:
        def __init__(self, d, c):
            self.d, self.c = d, c

        def get_depth_frame(self):
            return self.d

        def get_color_frame(self):
            return self.c

    class Pipe:
        def __init__(self, sets):
            self.sets = list(sets)

        def try_wait_for_frames(self, timeout_ms):
            return True, self.sets.pop(0)

    cam = LiveSource(640, 480, 30)
    cam._pipe, cam._convert = Pipe([FrameSet("d0", None), FrameSet("d1", "c1"), FrameSet("d2", None),
                                    FrameSet("d3", "c3")]), Conv()  # fmt: skip
    assert cam.read() == ("d1", "c1", 0) and cam.dropped == 1
    assert cam.read() == ("d3", "c3", 1) and cam.dropped == 2
    cam._pipe = None


def test_live_start_releases_the_camera_when_setup_fails_after_pipe_start(monkeypatch):
    stopped = []

    class Anything:  # enough of pyrealsense2 for start() to reach pipe.start()
        def __getattr__(self, name):
            return Anything()

    class Config:
        def enable_stream(self, *a):
            pass

        def can_resolve(self, wrapper):
            return True

    class Profile:
        def get_device(self):
            raise RuntimeError("device went away")

    class Pipe:
        def start(self, cfg):
            return Profile()

        def stop(self):
            stopped.append(True)

    fake = Anything()
    fake.pipeline, fake.pipeline_wrapper, fake.config = Pipe, lambda pipe: None, Config
    monkeypatch.setattr(rs_live, "_rs", lambda: fake)
    monkeypatch.setattr(rs_live, "list_devices", lambda: [{"name": "fake", "serial": "1", "usb_type": "3.2"}])
    cam = LiveSource(640, 480, 30)
    with pytest.raises(RuntimeError, match="device went away"):
        cam.start()
    assert stopped == [True] and cam._pipe is None


@pytest.mark.parametrize("fmt", ["bgr8", "rgba8", "bgra8"])
def test_other_color_formats_come_back_as_rgb(tmp_path, fmt):
    frames = synth_frames(3, 64, 48, seed=5)
    path = tmp_path / f"{fmt}.db3"
    writer = rs_writer._Db3Writer(path, frames[0], FPS, 0.001, "test", color_format=fmt)
    for f in frames:
        writer.push(f)
    assert writer.close() == 3
    assert recording_info(path)["streams"][1]["format"] == fmt
    assert_same_frames(frames, list(read_recording(path)))


def test_extrinsics_rotation_convention():
    """librealsense stores rotations column-major; the conversion must round-trip a non-symmetric rotation."""
    c, s = np.cos(0.3), np.sin(0.3)
    r = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    e = rs_convert.extrinsics_to_rs(Extrinsics(r, np.array([0.01, 0.02, 0.03])))
    assert e.rotation[1] == pytest.approx(r[1, 0]) and e.rotation[3] == pytest.approx(r[0, 1])
    back = rs_convert.extrinsics_from_rs(e)
    np.testing.assert_allclose(back.rotation, r, atol=1e-7)


# ------------------------------------------------------------------------------------------- reading
def test_len_info_and_reiteration(small):
    path, frames = small
    src = RecordingSource(path)
    assert len(src) == 12 and src.frame_count == 12
    info = src.info()
    assert info == recording_info(path)
    assert info["frames"] == 12 and info["fps"] == FPS and info["resolution"] == [320, 240]
    assert info["duration_s"] == pytest.approx(12 / FPS, abs=1e-6)
    assert info["depth_scale"] == pytest.approx(0.001) and info["device"] == "facecap" and info["aligned"]
    assert [(s["stream"], s["format"]) for s in info["streams"]] == [("depth", "z16"), ("color", "rgb8")]
    for stop in (0, 5, 11):  # stopping early releases the player (no deadlock), the source plays again
        for f in src:
            if f.index == stop:
                break
    assert [f.index for f in src] == list(range(12))


def test_stalled_playback_raises_within_timeout(small):
    """The stall guard (librealsense #10312-style hangs): a player that neither stops nor delivers."""
    import time

    class Stuck:
        def get(self, timeout_s):
            time.sleep(timeout_s)

        def current_status(self):
            return import_pyrealsense2().playback_status.playing

    src = RecordingSource(small[0], timeout_s=0.3)
    t = time.monotonic()
    with pytest.raises(RecordingError, match="stalled after 0 frames"):
        list(src._play(Stuck(), Stuck(), None, FPS))
    assert time.monotonic() - t < 2


def test_unclosed_iteration_at_exit_does_not_hang(small):
    r = run_isolated(f"""
        from facecap.realsense import read_recording
        it = read_recording({str(small[0])!r})
        next(it); next(it)
        print("left open")
    """, timeout=60)  # fmt: skip
    assert r.returncode == 0 and "left open" in r.stdout, r.stderr


def test_damaged_and_wrong_files_fail_cleanly(small, tmp_path):
    good = small[0].read_bytes()
    rng = np.random.default_rng(6)
    files = {
        "truncated.db3": good[: len(good) // 2],
        "tail_cut.db3": good[: len(good) - 4096],
        "random.db3": rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes(),
        "text.db3": b"hello, this is not a recording\n",
        "text.bag": b"hello, this is not a recording\n",
        "empty.db3": b"",
        "empty.bag": b"",
        "junk_after_magic.bag": b"#ROSBAG V2.0\n" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "header_only.bag": b"#ROSBAG V2.0\n",
        "video.mp4": b"\x00\x00\x00\x18ftypmp42",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.db3").mkdir()
    # a frame whose image blob is garbage, inside a structurally valid file
    blob = tmp_path / "bad_frame.db3"
    shutil.copy(small[0], blob)
    con = sqlite3.connect(blob)
    (topic,) = con.execute("SELECT id FROM topics WHERE name LIKE '%Depth_0/image/data%'").fetchone()
    ids = [r[0] for r in con.execute("SELECT id FROM messages WHERE topic_id=? ORDER BY timestamp", (topic,))]
    con.execute("UPDATE messages SET data=? WHERE id=?", (b"\x00\x01\x00\x00garbage", ids[5]))
    con.commit()
    con.close()
    names = [*files, "folder.db3", "missing.db3", "bad_frame.db3"]
    r = run_isolated(f"""
        import json, pathlib
        from facecap.realsense import RecordingSource, recording_info
        out = {{}}
        for name in {names!r}:
            p = pathlib.Path({str(tmp_path)!r}) / name
            got = []
            for step in ("info", "read"):
                try:
                    if step == "info":
                        recording_info(p)
                    else:
                        for f in RecordingSource(p, timeout_s=3):
                            got.append(f.index)
                    out.setdefault(name, []).append(["ok", ""])
                except Exception as e:
                    out.setdefault(name, []).append([type(e).__name__, str(e)])
            out[name].append(got)
        print(json.dumps(out))
    """, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr  # no crash, no hang
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for name in ("truncated.db3", "tail_cut.db3"):
        assert out[name][0][0] == out[name][1][0] == "RecordingError"
        assert "damaged or truncated" in out[name][1][1]
    for name in ("random.db3", "text.db3"):
        assert out[name][1][0] == "RecordingError" and "not an SQLite database" in out[name][1][1]
    assert out["text.bag"][1][0] == "RecordingError" and "not a ROS1 bag" in out["text.bag"][1][1]
    for name in ("empty.db3", "empty.bag"):
        assert out[name][1][0] == "RecordingError" and "empty" in out[name][1][1]
    for name in ("junk_after_magic.bag", "header_only.bag"):
        assert out[name][1][0] == "RecordingError" and "cannot open" in out[name][1][1]
    assert out["video.mp4"][1][0] == "ValueError" and ".bag" in out["video.mp4"][1][1]
    assert out["folder.db3"][1][0] == "RecordingError" and "not a file" in out["folder.db3"][1][1]
    assert out["missing.db3"][1][0] == "FileNotFoundError"
    info, read, got = out["bad_frame.db3"]
    assert info == ["ok", ""] and read[0] == "RecordingError" and "after 5 of 12 frames" in read[1]
    assert got == [0, 1, 2, 3, 4]  # everything before the damaged frame was delivered


# ------------------------------------------------------------------------------------------- ROS1 .bag
STREAM_INFO_MSG = "uint32 fps\nstring encoding\nbool is_recommended\n"  # realsense_msgs/StreamInfo


def write_ros1_bag(path: Path, frames: list[Frame]) -> None:
    """A ROS1 bag in the RealSense SDK's v3 layout (what RealSense Viewer recorded), written with rosbags:
    librealsense 2.59 only writes ROS2 .db3, so this is how a .bag for tests comes about without a camera.
    Chunks stay uncompressed: librealsense's roslz4 rejects the LZ4 frames rosbags writes."""
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS1_NOETIC)
    ts.register(get_types_from_msg(STREAM_INFO_MSG, "realsense_msgs/msg/StreamInfo"))
    t = ts.types

    def stamp(sec):
        s = int(sec)
        return t["builtin_interfaces/msg/Time"](sec=s, nanosec=int(round((sec - s) * 1e9)))

    def header(seq, sec):
        return t["std_msgs/msg/Header"](seq=seq, stamp=stamp(sec), frame_id="")

    kv = t["diagnostic_msgs/msg/KeyValue"]
    with Writer(path) as w:
        conns = {}

        def put(topic, typ, msg, t_ns):
            if topic not in conns:
                conns[topic] = w.add_connection(topic, typ, typestore=ts)
            w.write(conns[topic], t_ns, ts.serialize_ros1(msg, typ))

        static = 1  # ns; ROS1 times must be > 0
        put("/file_version", "std_msgs/msg/UInt32", t["std_msgs/msg/UInt32"](data=3), static)
        put(
            "/device_0/info", "diagnostic_msgs/msg/KeyValue", kv(key="Name", value="ROS1 test camera"), static
        )
        sensors = [("Stereo Module", "Depth", "mono16", frames[0].depth_intrinsics)]
        if frames[0].color is not None:
            sensors.append(("RGB Camera", "Color", "rgb8", frames[0].color_intrinsics))
        for si, (sname, stype, enc, k) in enumerate(sensors):
            pre = f"/device_0/sensor_{si}/{stype}_0"
            put(
                f"/device_0/sensor_{si}/info",
                "diagnostic_msgs/msg/KeyValue",
                kv(key="Name", value=sname),
                static,
            )
            info = t["realsense_msgs/msg/StreamInfo"](fps=FPS, encoding=enc, is_recommended=True)
            put(f"{pre}/info", "realsense_msgs/msg/StreamInfo", info, static)
            roi = t["sensor_msgs/msg/RegionOfInterest"](
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
            )
            ci = t["sensor_msgs/msg/CameraInfo"](
                header=header(0, 0.0), height=k.height, width=k.width, distortion_model="Brown Conrady",
                D=np.array(k.coeffs, float), K=np.array([k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1.0]),
                R=np.eye(3).ravel(), P=np.zeros(12), binning_x=0, binning_y=0, roi=roi,
            )  # fmt: skip
            put(f"{pre}/info/camera_info", "sensor_msgs/msg/CameraInfo", ci, static)
            vec, quat = t["geometry_msgs/msg/Vector3"], t["geometry_msgs/msg/Quaternion"]
            tf = t["geometry_msgs/msg/Transform"](translation=vec(x=0.0, y=0.0, z=0.0),
                                                  rotation=quat(x=0.0, y=0.0, z=0.0, w=1.0))  # fmt: skip
            put(f"{pre}/tf/0", "geometry_msgs/msg/Transform", tf, static)
        opt = "/device_0/sensor_0/option/Depth Units"
        put(f"{opt}/value", "std_msgs/msg/Float32", t["std_msgs/msg/Float32"](data=0.001), static)
        put(f"{opt}/description", "std_msgs/msg/String", t["std_msgs/msg/String"](data="depth units"), static)
        for i, f in enumerate(frames):
            t_ns = 1000 + int(round((f.timestamp - frames[0].timestamp) * 1e9))
            z16 = np.rint(f.depth * 1000).astype("<u2")
            images = [(0, "Depth", "mono16", z16.view(np.uint8).reshape(z16.shape[0], -1))]
            if f.color is not None:
                images.append((1, "Color", "rgb8", f.color.reshape(f.color.shape[0], -1)))
            for si, stype, enc, data in images:
                img = t["sensor_msgs/msg/Image"](header=header(i, f.timestamp), height=data.shape[0],
                                                 width=f.depth.shape[1] if si == 0 else f.color.shape[1],
                                                 encoding=enc, is_bigendian=0, step=data.shape[1],
                                                 data=np.ascontiguousarray(data).ravel())  # fmt: skip
                put(f"/device_0/sensor_{si}/{stype}_0/image/data", "sensor_msgs/msg/Image", img, t_ns)
                md = kv(key="timestamp_domain", value="Hardware Clock")
                put(
                    f"/device_0/sensor_{si}/{stype}_0/image/metadata",
                    "diagnostic_msgs/msg/KeyValue",
                    md,
                    t_ns,
                )


def test_ros1_bag_reads_like_db3(tmp_path):
    pytest.importorskip("rosbags")
    frames = synth_frames(7, 96, 72, seed=7)
    path = tmp_path / "viewer.bag"
    write_ros1_bag(path, frames)
    src = RecordingSource(path)
    assert len(src) == 7  # from the bag's own index, no decoding
    info = src.info()
    assert info["format"] == "ROS1 .bag" and info["device"] == "ROS1 test camera" and info["frames"] == 7
    assert info["duration_s"] == pytest.approx(7 / FPS, abs=1e-6) and info["aligned"]
    assert_same_frames(frames, list(src))


def test_ros1_bag_depth_only_and_unfinished_index(tmp_path):
    pytest.importorskip("rosbags")
    frames = synth_frames(4, 64, 48, seed=8, color=False)
    path = tmp_path / "depth.bag"
    write_ros1_bag(path, frames)
    assert_same_frames(frames, list(read_recording(path)))
    # a bag whose recorder died before writing the index: the count is unknown, not wrong
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"index_pos=") + 10 : raw.index(b"index_pos=") + 18] = bytes(8)
    cut = tmp_path / "noindex.bag"
    cut.write_bytes(bytes(raw))
    assert rs_container._bag_index(cut) is None and rs_container._bag_index(path)["frames"] == 4


def test_color_only_recording_is_refused(tmp_path):
    rs = import_pyrealsense2()
    path = tmp_path / "color.db3"
    dev = rs.software_device()
    sensor = dev.add_sensor("RGB Camera")
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps, vs.bpp = rs.stream.color, 0, 0, 32, 24, FPS, 3
    vs.fmt = rs.format.rgb8
    vs.intrinsics = rs_convert.intrinsics_to_rs(Intrinsics(32, 24, 30.0, 30.0, 15.5, 11.5))
    profile = sensor.add_video_stream(vs).as_video_stream_profile()
    recorder = rs.recorder(str(path), dev)
    sync = rs.syncer()
    sensor.open(profile)
    sensor.start(sync)
    for i in range(3):
        f = rs.software_video_frame()
        f.pixels, f.bpp, f.stride, f.timestamp = np.zeros((24, 32, 3), np.uint8), 3, 96, i * 1000 / FPS
        f.domain, f.frame_number, f.profile = rs.timestamp_domain.hardware_clock, i, profile
        sensor.on_video_frame(f)
    sensor.stop()
    sensor.close()
    del recorder, sync
    with pytest.raises(RecordingError, match="no depth stream .*streams: color"):
        RecordingSource(path)


# ------------------------------------------------------------------------------------------- writing
def test_write_validation(tmp_path, small):
    frames = synth_frames(3, 32, 24, seed=9)
    with pytest.raises(ValueError, match=r"\.db3 extension"):
        write_recording(tmp_path / "take.bag", frames)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_recording(tmp_path / "nope" / "take.db3", frames)
    with pytest.raises(ValueError, match="no frames"):
        write_recording(tmp_path / "empty.db3", [])
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_recording(small[0], frames)
    same_time = [Frame(f.depth, f.depth_intrinsics, f.color, f.color_intrinsics) for f in frames]
    with pytest.raises(ValueError, match="increasing timestamps"):
        write_recording(tmp_path / "t0.db3", same_time)
    with pytest.raises(ValueError, match="fps must be an integer"):
        write_recording(tmp_path / "fps.db3", frames, fps=29.97)
    assert not list(tmp_path.glob("*.db3"))  # nothing half-made was left behind
    p = tmp_path / "again.db3"
    write_recording(p, frames)
    assert write_recording(p, frames[:2], overwrite=True) == 2 and len(RecordingSource(p)) == 2


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_write_into_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match="cannot write into"):
        write_recording(ro / "take.db3", synth_frames(2, 32, 24))


def test_inconsistent_frame_stops_cleanly_and_keeps_what_was_written(tmp_path):
    frames = synth_frames(6, 64, 48, seed=10)
    frames[4] = synth_frames(1, 80, 60, seed=10, t0=frames[3].timestamp + 0.04)[0]
    path = tmp_path / "mixed.db3"
    with pytest.raises(ValueError, match="frame 4: depth intrinsics") as e:
        write_recording(path, frames)
    assert any("4 frames were written" in n for n in e.value.__notes__)
    assert_same_frames(frames[:4], list(read_recording(path)))


def test_disk_filling_up_stops_cleanly(tmp_path, monkeypatch):
    real = shutil.disk_usage
    calls = []

    def fake(p):
        calls.append(p)
        u = real(p)
        return u._replace(free=0 if len(calls) > 2 else u.free)  # full after the check at frame 8

    monkeypatch.setattr(rs_writer.shutil, "disk_usage", fake)
    frames = synth_frames(20, 64, 48, seed=11)
    path = tmp_path / "full.db3"
    with pytest.raises(OSError, match="disk almost full") as e:
        write_recording(path, frames)
    assert e.value.errno == errno.ENOSPC
    assert any("8 frames were written" in n for n in e.value.__notes__)
    monkeypatch.undo()
    assert_same_frames(frames[:8], list(read_recording(path)))
    with pytest.raises(OSError, match="disk almost full"):  # refused before anything is created
        write_recording(tmp_path / "never.db3", frames, min_free_bytes=2**62)
    assert not (tmp_path / "never.db3").exists()


def test_real_write_failure_is_reported_and_file_stays_readable(tmp_path):
    """RLIMIT_FSIZE makes the OS refuse writes past 0.9 MB (of 1.7 MB), as a full disk does. librealsense
    swallows the error, so write_recording must notice by counting what reached the file."""
    path = tmp_path / "limited.db3"
    r = run_isolated(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_realsense import synth_frames
        from facecap.realsense import write_recording
        frames = synth_frames(30, 160, 120, seed=12)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (900_000, 900_000))
        try:
            write_recording({str(path)!r}, frames)
            print("no error")
        except OSError as e:
            print("OSError", e.errno, e.strerror)
    """, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = re.search(rf"OSError {errno.EIO} only (\d+) of 30 frames reached .* stays readable", r.stdout)
    assert m, r.stdout
    stored = int(m.group(1))  # complete depth + color pairs
    assert 0 < stored < 30
    back = list(read_recording(path))
    assert_same_frames(synth_frames(30, 160, 120, seed=12)[:stored], back[:stored])
    assert len(back) - stored <= 1 and all(
        f.color is None for f in back[stored:]
    )  # a depth whose color was lost


def test_progress_callback_and_bar(tmp_path, capsys):
    frames = synth_frames(4, 32, 24, seed=13)
    seen = []
    write_recording(tmp_path / "cb.db3", iter(frames), progress=seen.append)
    assert seen == [1, 2, 3, 4]
    write_recording(tmp_path / "bar.db3", frames, progress=True)
    assert "writing bar.db3" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- live + CLI
def test_list_devices_and_live_source_without_camera():
    devices = list_devices()
    assert isinstance(devices, list)
    if devices:
        pytest.skip("a RealSense camera is connected")
    with pytest.raises(RuntimeError, match="no RealSense camera connected .*USB 3 cable"):
        LiveSource(640, 480, 90).start()
    with pytest.raises(RuntimeError, match="no RealSense camera connected"), LiveSource(848, 480, 60) as cam:
        next(iter(cam))
    for bad in [dict(width=100, height=100), dict(fps=45), dict(width=1280, height=720, fps=60)]:
        with pytest.raises(ValueError):
            LiveSource(**bad)


def test_cli_devices_and_info(small, tmp_path, capsys):
    path, _ = small
    assert cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "frames     12 over 0.40 s" in out and "depth  z16" in out and "320x240 @ 30 fps" in out
    assert cli.main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(recording_info(path)))
    assert cli.main(["info", str(tmp_path / "missing.db3")]) == 2
    assert "recording not found" in capsys.readouterr().err
    assert cli.main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert cli.main(["devices"]) == 0
    if not listed:
        assert NO_CAMERA_HELP in capsys.readouterr().out


@pytest.mark.parametrize("keep", [1.0, 0.9, 0.5])
def test_salvage_rescues_the_frames_of_a_cut_recording(tmp_path, keep, capsys):
    """A .db3 cut short is 'malformed' to SQLite and librealsense; `facecap salvage` reads its pages
    itself and writes a recording librealsense plays, with the frames that were on disk, unchanged."""
    from facecap.cli import main

    frames = synth_frames(40, 64, 48, seed=5)
    src = tmp_path / "rec.db3"
    write_recording(src, frames, fps=FPS)
    data = src.read_bytes()
    cut = tmp_path / "cut.db3"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert main(["salvage", str(cut)]) == 0
    assert "salvaged" in capsys.readouterr().out
    back = list(read_recording(tmp_path / "cut.salvaged.db3", align=False))
    assert len(back) >= {1.0: 40, 0.9: 30, 0.5: 12}[keep], len(back)
    by_index = {round(f.timestamp, 4): f for f in back}
    for f in frames:
        g = by_index.get(round(f.timestamp, 4))
        if g is not None:
            np.testing.assert_allclose(g.depth, np.round(f.depth * 1000) / 1000, atol=1e-6)
            if g.color is not None:  # the last depth frame of a cut file may have lost its colour frame
                np.testing.assert_array_equal(g.color, f.color)
    assert sum(g.color is not None for g in back) >= len(back) - 1
    if keep < 1.0:  # the cut file itself is refused, and the message names the way out
        assert main(["info", str(cut)]) == 2
        assert "facecap salvage" in capsys.readouterr().err
    assert main(["salvage", str(cut)]) == 2  # never overwrites
    (tmp_path / "junk.db3").write_bytes(b"not sqlite at all")
    assert main(["salvage", str(tmp_path / "junk.db3")]) == 2
