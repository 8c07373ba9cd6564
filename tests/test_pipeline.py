"""facecap.pipeline and the `live` / `play` / `demo` output flags, end to end with real components:
a synthetic .db3 recording, pyrealsense2 playback, the tracker, UDP sinks to a python-osc server, takes."""

from __future__ import annotations

import json
import re
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import osc_receiver, shared_path
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

from facecap import arkit, cli, pipeline
from facecap.cli import outputs as cli_outputs
from facecap.cli.outputs import target_url
from facecap.frames import Extrinsics, Frame, Intrinsics, color_to_depth_pixels, depth_to_color_pixels
from facecap.pipeline import Outputs, run
from facecap.realsense import RecordingSource, write_recording
from facecap.retarget import load_mapping
from facecap.take import load_take

N = 20
FPS = 30
PERFECT_SYNC = {arkit.pascal_name(n) for n in arkit.ARKIT_NAMES}


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def rig():
    from facecap.formats import load_rig

    return load_rig()


@pytest.fixture(scope="module")
def recording(tmp_path_factory, rig):
    """20 frames of the synthetic actor at 320x240 (D415 optics), expressions and head motion."""
    from facecap.synth import SyntheticActor, get_camera, head_motion, procedural_performance

    w = procedural_performance(N, fps=FPS, seed=3)
    R, t = head_motion(N, fps=FPS, seed=3, max_angle_deg=10.0, distance_m=0.5)
    actor = SyntheticActor(rig, get_camera("d415").at(320, 240), distance=0.5, seed=3)
    path = tmp_path_factory.mktemp("rec") / "actor.db3"
    n = write_recording(path, (f for f, _ in actor.frames(w, R, t, fps=FPS)), fps=FPS)
    assert n == N
    return path


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def blend_values(msgs: list[OscMessage], name: str) -> np.ndarray:
    return np.array([m.params[1] for m in msgs if m.address == "/VMC/Ext/Blend/Val" and m.params[0] == name])


def play(args: list[str], capsys) -> tuple[int, dict | str, str]:
    rc = cli.main(["play", *args])
    out, err = capsys.readouterr()
    if "--json" in args and rc in (0, 130):
        return rc, json.loads(out), err
    return rc, out, err


# ------------------------------------------------------------------------------------------- play
def test_play_streams_vmc_bundles_and_records_take(recording, tmp_path, capsys):
    take_dir = tmp_path / "take1"
    with osc_receiver() as (port, rec):
        rc, res, _ = play([str(recording), "--vmc", f"127.0.0.1:{port}", "--record", str(take_dir), "--json"],
                          capsys)  # fmt: skip
        msgs = rec.messages("/VMC/Ext/Blend/Apply", N)
    assert rc == 0
    assert res["frames"] == N and res["take_frames"] == N and res["take"] == str(take_dir)
    assert res["tracked_fraction"] > 0.9  # the synthetic actor is easy to track
    assert all(OscBundle.dgram_is_bundle(d) for d in rec.datagrams)
    assert sum(m.address == "/VMC/Ext/Blend/Apply" for m in msgs) == N
    names = {m.params[0] for m in msgs if m.address == "/VMC/Ext/Blend/Val"}
    assert names == PERFECT_SYNC
    assert {m.params[0] for m in msgs if m.address == "/VMC/Ext/Bone/Pos"} == {"Head", "LeftEye", "RightEye"}
    (sink,) = res["sinks"]
    assert sink["frames"] == N and sink["datagrams_failed"] == 0

    take = load_take(take_dir)
    assert len(take) == N and take.meta["complete"] and take.fps == FPS
    assert take.meta["user"]["source"] == str(recording)
    # what was streamed is what was recorded: jawOpen per frame
    np.testing.assert_allclose(
        blend_values(msgs, "JawOpen"), take.weights[:, arkit.INDEX["jawOpen"]], atol=1e-6
    )


def test_unreachable_receivers_do_not_fail_the_run(recording, tmp_path, capsys):
    port = free_port()  # nothing listens there: ECONNREFUSED on loopback
    take_dir = tmp_path / "take"
    t0 = time.perf_counter()
    args = [str(recording), "--vmc", str(port), "--livelink", f"127.0.0.1:{port}",
            "--osc", f"osc://localhost:{port}", "--record", str(take_dir), "--json"]  # fmt: skip
    rc, res, _ = play(args, capsys)
    assert rc == 0
    assert time.perf_counter() - t0 < 30
    assert res["frames"] == N and len(load_take(take_dir)) == N
    assert [s["url"].split(":")[0] for s in res["sinks"]] == ["vmc", "osc", "livelink"]
    for s in res["sinks"]:
        assert s["frames"] == N


def test_play_retarget_vrm0_sends_puppet_clips(recording, tmp_path, capsys):
    take_dir = tmp_path / "t"
    with osc_receiver() as (port, rec):
        rc, res, _ = play([str(recording), "--vmc", f"127.0.0.1:{port}", "--retarget", "vrm0",
                           "--record", str(take_dir), "--json"], capsys)  # fmt: skip
        msgs = rec.messages("/VMC/Ext/Blend/Apply", N)
    assert rc == 0
    vrm0 = load_mapping("vrm0")
    names = {m.params[0] for m in msgs if m.address == "/VMC/Ext/Blend/Val"}
    assert {"Blink", "A", "Blink_L", "Blink_R", "Joy"} <= names
    assert names == PERFECT_SYNC | set(vrm0.target_names)
    take = load_take(take_dir)
    assert take.meta["user"]["retarget"] == "vrm0"
    expected = vrm0.apply_array(take.weights)
    for k, clip in enumerate(vrm0.target_names):
        np.testing.assert_allclose(blend_values(msgs, clip), expected[:, k], atol=1e-6, err_msg=clip)


def test_retarget_needs_a_vmc_output(recording, capsys):
    rc, _, err = play([str(recording), "--osc", "127.0.0.1:9", "--retarget", "vrm0"], capsys)
    assert rc == 2 and "--vmc" in err
    rc, _, err = play([str(recording), "--vmc", "127.0.0.1:9", "--retarget", "no_such_mapping"], capsys)
    assert rc == 2 and "no_such_mapping" in err and "vrm0" in err


def test_ctrl_c_finalises_take_with_the_frames_seen(recording, tmp_path, rig):
    from facecap.tracker import Tracker

    k = 7

    def frames():
        for i, f in enumerate(RecordingSource(recording)):
            if i == k:
                raise KeyboardInterrupt
            yield f

    take_dir = tmp_path / "ctrl_c"
    with osc_receiver() as (port, rec):
        out = Outputs([f"vmc://127.0.0.1:{port}"], record=take_dir, fps=FPS)
        res = run(frames(), Tracker(rig=rig), out, progress=False)
        rec.messages("/VMC/Ext/Blend/Apply", k)
    assert res["interrupted"] and res["frames"] == k and res["take_frames"] == k
    take = load_take(take_dir)
    assert len(take) == k and take.meta["complete"] and take.meta["ended_by"] == "KeyboardInterrupt"
    with pytest.raises(RuntimeError, match="closed"):  # sockets closed, take finalised
        out.send(take.state(0))


def test_ctrl_c_in_play_command(recording, tmp_path, capsys, monkeypatch):
    k = 5
    original = RecordingSource.__iter__

    def interrupted(self):
        for i, f in enumerate(original(self)):
            if i == k:
                raise KeyboardInterrupt
            yield f

    monkeypatch.setattr(RecordingSource, "__iter__", interrupted)
    take_dir = tmp_path / "take"
    rc = cli.main(["play", str(recording), "--record", str(take_dir)])
    out, err = capsys.readouterr()
    assert rc == 130
    assert f"take {take_dir} finalised with {k} frames" in err and str(take_dir) in out
    assert len(load_take(take_dir)) == k


def test_play_realtime_paces_to_timestamps(recording, capsys):
    rc, fast, _ = play([str(recording), "--max-frames", "10", "--json"], capsys)
    assert rc == 0 and fast["frames"] == 10
    # 10 frames span 9 frame periods: 0.3 s of recording, 1.2 s at a quarter speed
    rc, paced, _ = play(
        [str(recording), "--realtime", "--speed", "0.25", "--max-frames", "10", "--json"], capsys
    )
    assert rc == 0 and paced["frames"] == 10
    assert paced["elapsed_s"] >= 9 / FPS / 0.25 * 0.95
    assert paced["elapsed_s"] - fast["elapsed_s"] > 0.5  # the time went into waiting, not tracking


def test_play_human_summary(recording, tmp_path, capsys):
    rc, out, err = play([str(recording), "--record", str(tmp_path / "t"), "--max-frames", "4"], capsys)
    assert rc == 0
    assert "played 4 frames" in out and f"take: {tmp_path / 't'} (4 frames)" in out
    assert "fps" in err and "tracked" in err and "fit" in err  # the status line


def test_play_bad_inputs_exit_2(recording, tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [
        ([str(tmp_path / "missing.db3")], "missing.db3"),
        ([str(recording), "--record", str(tmp_path / "full")], "not empty"),
        ([str(recording), "--vmc", "osc://127.0.0.1:9000"], "vmc://"),
        ([str(recording), "--vmc", "127.0.0.1:99999"], "port"),
        ([str(recording), "--landmarks", str(tmp_path / "nope.task")], "nope.task"),
    ]
    for args, needle in cases:
        rc, _, err = play(args, capsys)
        assert rc == 2, args
        assert needle in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "take").exists()


def test_play_with_mediapipe_landmarks(recording, capsys):
    model = shared_path("mediapipe_face_landmarker", "face_landmarker.task")
    rc, res, _ = play([str(recording), "--landmarks", str(model), "--json"], capsys)
    assert rc == 0 and res["landmarks_note"] is None
    assert res["landmark_frames"] >= N - 2  # the synthetic face is found by MediaPipe, even at 320x240
    assert res["tracked_fraction"] > 0.9


def test_disk_full_stops_with_a_clear_error_and_keeps_the_frames(recording, tmp_path, capsys, monkeypatch):
    import errno

    from facecap.take import TakeRecoveryWarning
    from facecap.take import recorder as take_mod

    real, calls = take_mod._os_write, {"n": 0}

    def full_after_a_few_writes(fd, data):
        calls["n"] += 1
        if calls["n"] > 9:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(take_mod, "_os_write", full_after_a_few_writes)
    take_dir = tmp_path / "full"
    rc, _, err = play([str(recording), "--record", str(take_dir), "--osc", "127.0.0.1:9"], capsys)
    monkeypatch.setattr(take_mod, "_os_write", real)
    assert rc == 2 and "the disk is full" in err and "Traceback" not in err
    saved = int(re.search(r"(\d+) frames \([0-9.]+ s\) were saved", err).group(1))
    assert 0 < saved < N and f"keeps {saved} frames but could not be finalised" in err  # not "finalised"
    with pytest.warns(TakeRecoveryWarning):  # the disk stayed full: take.json says incomplete
        take = load_take(take_dir)
    assert len(take) == saved and not take.meta["complete"]


# ------------------------------------------------------------------------------------------- live
def test_live_without_camera_exits_2_with_clear_message(tmp_path, capsys):
    from facecap.realsense import list_devices

    if list_devices():
        pytest.skip("a RealSense camera is connected")
    rc = cli.main(["live", "--vmc", "127.0.0.1:9", "--record", str(tmp_path / "take")])
    out, err = capsys.readouterr()
    assert rc == 2
    assert "no RealSense camera" in err and "Traceback" not in err
    assert not (tmp_path / "take").exists()  # nothing recorded, nothing created
    rc = cli.main(["live", "--width", "100", "--height", "100"])
    assert rc == 2 and "unsupported stream size" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- demo
def test_demo_streams_and_records(tmp_path, capsys):
    take_dir = tmp_path / "demo_take"
    with osc_receiver() as (port, rec):
        rc = cli.main(
            ["demo", "--frames", "6", "--vmc", f"127.0.0.1:{port}", "--record", str(take_dir), "--json"]
        )
        msgs = rec.messages("/VMC/Ext/Blend/Apply", 6)
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["frames"] == 6
    assert out["streams"]["take_frames"] == 6
    assert sum(m.address == "/VMC/Ext/Blend/Apply" for m in msgs) == 6
    take = load_take(take_dir)
    assert len(take) == 6 and take.meta["complete"]


# ------------------------------------------------------------------------------------------- units
def test_target_url():
    assert target_url("vmc", "127.0.0.1:39539") == "vmc://127.0.0.1:39539"
    assert target_url("osc", "9000") == "osc://127.0.0.1:9000"
    assert target_url("livelink", "studio-pc") == "livelink://studio-pc"
    assert target_url("vmc", "vmc://h:1?vrm0=1") == "vmc://h:1?vrm0=1"
    with pytest.raises(ValueError, match="--osc"):
        target_url("vmc", "osc://h:1")
    with pytest.raises(ValueError, match="needs a target"):
        target_url("facecap", " ")


def test_outputs_flags_parse_in_order():
    import argparse

    p = argparse.ArgumentParser()
    cli_outputs.add_output_arguments(p)
    a = p.parse_args(
        ["--vmc", "1.2.3.4:5", "--osc", "9000", "--vmc", "h", "--livelink", "x:1", "--landmarks", "auto"]
    )
    assert cli_outputs.sink_urls_from_args(a) == ["vmc://1.2.3.4:5", "vmc://h", "osc://127.0.0.1:9000",
                                               "livelink://x:1"]  # fmt: skip
    assert a.landmarks == "auto" and a.record is None and a.retarget is None


def test_outputs_without_record_writes_nothing(tmp_path, rig):
    from facecap.state import FaceState

    with Outputs([f"osc://127.0.0.1:{free_port()}"]) as out:
        for i in range(3):
            out.send(FaceState(index=i, timestamp=i / 30))
    assert out.stats["frames"] == 3 and out.stats["take"] is None
    with pytest.raises(TypeError, match="FaceState"):
        Outputs().send("frame")


def _frame(color_intr: Intrinsics | None, depth_intr: Intrinsics, ex: Extrinsics | None = None) -> Frame:
    color = None if color_intr is None else np.zeros((color_intr.height, color_intr.width, 3), np.uint8)
    depth = np.zeros((depth_intr.height, depth_intr.width), np.float32)
    return Frame(depth=depth, depth_intrinsics=depth_intr, color=color, color_intrinsics=color_intr,
                 depth_to_color=ex or Extrinsics())  # fmt: skip


def test_color_to_depth_pixels():
    k = Intrinsics(640, 480, 500.0, 500.0, 319.5, 239.5)
    uv = np.array([[100.0, 50.0], [319.5, 239.5], [700.0, 10.0]])
    got = color_to_depth_pixels(uv, _frame(k, k))
    np.testing.assert_array_equal(got[:2], uv[:2])
    assert np.isnan(got[2]).all()  # outside the depth image
    # same optical centre, half resolution: a pure intrinsics change (point at z=1 m projects consistently)
    half = k.scaled(320, 240)
    p = np.array([[0.1, -0.05, 1.0], [-0.2, 0.1, 0.8]])
    got = color_to_depth_pixels(k.project(p), _frame(k, half))
    np.testing.assert_allclose(got, half.project(p), atol=1e-9)
    np.testing.assert_allclose(
        depth_to_color_pixels(got, _frame(k, half)), k.project(p), atol=1e-9
    )  # inverse
    np.testing.assert_array_equal(depth_to_color_pixels(uv, _frame(k, k)), uv)
    # a stereo offset needs per-pixel depth: no mapping
    off = Extrinsics(np.eye(3), np.array([0.015, 0.0, 0.0]))
    for fn in (color_to_depth_pixels, depth_to_color_pixels):
        assert fn(uv, _frame(k, k, off)) is None
        assert fn(uv, _frame(None, k)) is None


def test_run_without_color_tracks_and_notes_once(rig):
    """A landmarker is given but the frames have no colour: tracked from depth alone, said once."""
    from facecap.synth import SyntheticActor, get_camera
    from facecap.tracker import Tracker

    actor = SyntheticActor(rig, get_camera("d415").at(320, 240), distance=0.5, noise=False)
    frames = []
    for i in range(3):
        f = actor.render(np.zeros(52, np.float32), index=i)
        frames.append(
            Frame(depth=f.depth, depth_intrinsics=f.depth_intrinsics, timestamp=f.timestamp, index=i)
        )

    class Unused:
        def detect(self, *a):
            raise AssertionError("MediaPipe must not run on frames without colour")

    res = run(frames, Tracker(rig=rig), None, landmarker=Unused(), progress=False)
    assert res["frames"] == 3 and res["tracked_frames"] == 3
    assert res["landmark_frames"] == 0 and "no colour stream" in res["landmarks_note"]


def test_run_reports_the_frames_the_source_dropped():
    """`play`/`live` say how many depth frames the source dropped (no colour frame to align to)."""

    class Source(list):
        dropped = 2

    class Tracker:
        last_fit_ms = 1.0

        def track(self, frame, landmarks=None):
            return pipeline.FaceState(timestamp=frame.timestamp, index=frame.index)

    k = Intrinsics(8, 6, 10.0, 10.0, 3.5, 2.5)
    frames = Source(Frame(depth=np.zeros((6, 8), np.float32), depth_intrinsics=k, index=i) for i in range(3))
    res = run(frames, Tracker(), None, progress=False)
    assert res["frames"] == 3 and res["dropped"] == 2
    assert "dropped 2 depth frames" in cli_outputs.format_summary(res, "played")
    res = run(list(frames), Tracker(), None, progress=False)
    assert res["dropped"] == 0 and "dropped" not in cli_outputs.format_summary(res, "played")


def test_implausible_intrinsics_are_refused_where_they_enter():
    with pytest.raises(ValueError, match="implausible"):
        Intrinsics(640, 480, 1e-30, 1e-30, 319.5, 239.5)
    with pytest.raises(ValueError, match="implausible"):
        Intrinsics(640, 480, 1e9, 1e9, 319.5, 239.5)
    with pytest.raises(ValueError, match="principal point"):
        Intrinsics(640, 480, 600.0, 600.0, 1e6, 239.5)
    assert Intrinsics(640, 480, 600.0, 600.0, 319.5, 239.5).fx == 600.0


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64])
def test_depth_in_millimetres_gets_a_hint(dtype):
    k = Intrinsics(640, 480, 600.0, 600.0, 319.5, 239.5)
    mm = np.full((480, 640), 600, dtype)
    with pytest.raises(ValueError, match="millimetres"):
        Frame(depth=mm, depth_intrinsics=k)
    f = Frame(depth=(mm / 1000.0).astype(np.float64), depth_intrinsics=k)  # metres in float64 are fine
    assert f.depth.dtype == np.float32 and f.depth[0, 0] == np.float32(0.6)


CLI = [sys.executable, "-c", "import sys; from facecap.cli import main; sys.exit(main())"]


def _pid_alive(pid: int) -> bool:
    from facecap._io import _alive

    return _alive(pid)


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory, rig):
    """300 frames at 320x240: long enough to signal a `play` mid-way."""
    from facecap.synth import SyntheticActor, get_camera, head_motion, procedural_performance

    n = 300
    w = procedural_performance(n, fps=FPS, seed=4)
    R, t = head_motion(n, fps=FPS, seed=4, max_angle_deg=10.0, distance_m=0.5)
    actor = SyntheticActor(rig, get_camera("d415").at(320, 240), distance=0.5, seed=4)
    path = tmp_path_factory.mktemp("rec") / "long.db3"
    assert write_recording(path, (f for f, _ in actor.frames(w, R, t, fps=FPS)), fps=FPS) == n
    return path


def _signalled(command, take_dir, sigs, gap_s=0.0, after_frames=10):
    """Run a facecap ``command`` (it records to ``take_dir``) as its own process; once ``after_frames``
    frames are on disk send it ``sigs`` ("INT"/"TERM"). Returns (exit code, stderr, pid)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen([*CLI, *command, "--record", str(take_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    chunk = take_dir / "frames-000.bin"
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120 and proc.poll() is None:
        if chunk.exists() and chunk.stat().st_size > 32 + after_frames * 349:
            break
        time.sleep(0.005)
    for s in sigs:
        proc.send_signal({"INT": signal.SIGINT, "TERM": signal.SIGTERM}[s])
        time.sleep(gap_s)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, proc.pid


@pytest.mark.parametrize(
    "sigs, gap_s, rc",
    [(["TERM"], 0, 143), (["INT", "INT"], 0.02, 130), (["INT"] * 3, 0.02, 130), (["INT"] * 5, 0, 130)],
    ids=["sigterm", "two-sigint", "three-sigint", "five-sigint-burst"],
)
def test_one_signal_policy_for_long_commands(long_recording, tmp_path, sigs, gap_s, rc):
    """First SIGINT/SIGTERM finalises and exits 130/143, a second is ignored while finalising, a third
    forces the exit; in every case the take loads with every frame it recorded and nothing prints a
    traceback (before: 5 quick SIGINTs aborted with 'FATAL: exception not rethrown', rc -6)."""
    import warnings

    from facecap.take import TakeRecoveryWarning

    take_dir = tmp_path / "take"
    code, err, _ = _signalled(["play", str(long_recording)], take_dir, sigs, gap_s)
    assert code == rc, err[-800:]
    assert "Traceback" not in err and "FATAL" not in err, err[-800:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TakeRecoveryWarning)  # a forced exit may leave take.json open
        take = load_take(take_dir)
    assert len(take) >= 10 and take.summary()["lost"] == 0


def test_demo_on_sigterm_finalises_its_take_and_leaves_no_temporary_files(tmp_path):
    import glob
    import tempfile

    stale = Path(tempfile.mkdtemp(prefix="facecap-demo-"))  # as a killed demo leaves it
    (stale / "facecap-owner.pid").write_text("999999999")
    (stale / "demo.db3").write_bytes(b"x" * 1000)
    take_dir = tmp_path / "take"
    code, err, pid = _signalled(["demo", "--frames", "300"], take_dir, ["TERM"], after_frames=5)
    assert code == 143, err[-800:]
    assert load_take(take_dir).summary()["complete"] is True
    assert not stale.exists()  # its owner is gone: removed
    owners = [Path(d, "facecap-owner.pid") for d in glob.glob(tempfile.gettempdir() + "/facecap-demo-*")]
    assert str(pid) not in [o.read_text() for o in owners if o.is_file()]  # its own folder is gone


@pytest.mark.parametrize("delay_s", [0.3, 0.8, 1.5])
def test_ctrl_c_during_start_up_exits_quietly(delay_s):
    """A Ctrl-C while a command is still importing its libraries (about 2 s for the demo) exits 130 with
    one line, no traceback: the signal policy is installed before anything heavy is imported."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(
        [*CLI, "demo", "--frames", "300"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )  # fmt: skip  (still running at 1.5 s on any machine)
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-800:]
    assert "Traceback" not in err, err[-800:]


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_loadable_takes(long_recording, tmp_path):
    """SIGKILL at 20 random moments each of `play --record` and `demo --record` (start-up, capture, the
    take's close): every take that was started loads, no record is damaged (at most a write cut short),
    no temporary file is left beside it, and the demo's temporary recording of a killed run is removed
    by the next demo."""
    import glob
    import signal
    import subprocess
    import tempfile
    import time
    import warnings

    from facecap.take import TakeRecoveryWarning

    rng = np.random.default_rng(11)
    started, leftovers = 0, []
    for k in range(40):  # 20 kills of each command
        take_dir = tmp_path / f"take{k}"
        cmd = ["play", str(long_recording)] if k % 2 == 0 else ["demo", "--frames", "60"]
        proc = subprocess.Popen([*CLI, *cmd, "--record", str(take_dir)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.5, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (take_dir / "take.json").exists():
            continue  # killed before the take began
        started += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TakeRecoveryWarning)
            take = load_take(take_dir)
        rec = take.meta["recovery"]
        cut = [p for p in rec["problems"] if "damaged record" in p]
        assert rec["lost"] <= 1 and len(cut) <= 1, (k, rec)  # a record cut mid-write at most
        leftovers += [p.name for p in take_dir.iterdir() if ".tmp" in p.name]
    assert started >= 20
    assert not leftovers, leftovers  # no half-written take.json beside a take
    subprocess.run([*CLI, "demo", "--frames", "2"], capture_output=True, check=True)
    owners = [Path(d, "facecap-owner.pid") for d in glob.glob(tempfile.gettempdir() + "/facecap-demo-*")]
    assert all(_pid_alive(int(o.read_text())) for o in owners if o.is_file())


@pytest.mark.slow
def test_sigkill_of_synth_and_track_leaves_readable_output(long_recording, tmp_path):
    """20 random SIGKILLs each of `synth` (a .db3 being written: it opens, or `facecap salvage` rescues
    its frames) and `track` (a CSV being written: every complete row parses, at most the last is cut)."""
    import csv as csv_mod
    import signal
    import subprocess
    import time

    from facecap.realsense import read_recording
    from facecap.realsense.salvage import salvage_db3

    rng = np.random.default_rng(12)
    rescued = 0
    for k in range(20):
        out = tmp_path / f"s{k}.db3"
        proc = subprocess.Popen([*CLI, "synth", "--frames", "200", "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(1.0, 5.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not out.exists() or out.stat().st_size < 100_000:
            continue  # killed before the first frames reached the file
        try:
            n = sum(1 for _ in read_recording(out, align=False))
        except Exception:  # noqa: BLE001 - malformed: what salvage is for
            fixed = out.with_suffix(".fixed.db3")
            salvage_db3(out, fixed)
            n = sum(1 for _ in read_recording(fixed, align=False))
        rescued += n > 0
    assert rescued >= 10
    for k in range(20):
        out = tmp_path / f"t{k}.csv"
        proc = subprocess.Popen([*CLI, "track", str(long_recording), "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not out.exists():
            continue
        rows = list(csv_mod.reader(out.read_text().splitlines()))
        widths = [len(r) for r in rows]
        assert len(set(widths[:-1])) <= 1, (k, set(widths))  # only the last row may be cut


def test_a_signal_inside_a_callback_from_c_still_stops_the_command():
    """SIGINT arrives while Python runs a callback from C (as Numba's cache writer is when a command
    compiles its kernels): the interrupt is not lost to an "Exception ignored" message, it reaches the
    command once the callback returns."""
    import subprocess
    import textwrap

    script = textwrap.dedent(
        """
        import ctypes, os, signal, time
        from facecap.cli.signals import signal_policy

        CB = ctypes.CFUNCTYPE(None)
        def busy():  # a callback from C, like llvmlite's object-cache notify
            os.kill(os.getpid(), signal.SIGINT)
            t = time.monotonic()
            while time.monotonic() - t < 0.2:
                pass
        cb = CB(busy)
        with signal_policy() as policy:
            try:
                cb()
                time.sleep(5)  # the re-delivered interrupt ends this
                print("not interrupted")
            except KeyboardInterrupt:
                print("interrupted", policy.exit_code)
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "interrupted 130", (r.stdout, r.stderr)
    assert "Exception ignored" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_destructor_errors_left_by_an_interrupt_are_not_printed():
    """An interrupt inside a constructor (as Ctrl-C during start-up can cut llvmlite's pass builder off
    half-built) leaves an object whose destructor raises: after the signal, that error is not printed
    as "Exception ignored ... Traceback"; the same error before any signal still is."""
    import subprocess
    import textwrap

    script = textwrap.dedent(
        """
        import gc, os, signal, time
        from facecap.cli.signals import signal_policy

        class HalfBuilt:
            def __init__(self, interrupt):
                if interrupt:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
                self.handle = 1
            def __del__(self):
                del self.handle  # AttributeError when __init__ never got there

        class Broken:
            def __del__(self):
                raise AttributeError("a real destructor bug")

        with signal_policy(restore=False):
            Broken()
            gc.collect()
            try:
                HalfBuilt(interrupt=True)
            except KeyboardInterrupt:
                print("interrupted")
            gc.collect()
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "interrupted", (r.stdout, r.stderr)
    assert r.stderr.count("Exception ignored") == 1 and "a real destructor bug" in r.stderr, r.stderr
    assert "handle" not in r.stderr, r.stderr
