"""Take recorder and reader: round trip, crash safety (SIGKILL), damaged files, full disk, Ctrl-C."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

import facecap.take as take_mod
import facecap.take.recorder as take_recorder
from facecap.pose import from_euler
from facecap.state import FaceState
from facecap.take import (
    CHUNK_HEADER_SIZE,
    RECORD_DTYPE,
    RECORD_SIZE,
    Take,
    TakeRecorder,
    TakeRecoveryWarning,
    TakeWriteError,
    load_take,
)
from facecap.timecode import frames_to_timecode, timecode_to_frames

ROOT = Path(__file__).resolve().parents[1]


def synthetic_states(n: int, fps: float = 60.0, seed: int = 0, lost_every: int = 0) -> list[FaceState]:
    """Seeded smooth weights (sums of sines in [0, 1]) and head motion, some frames lost."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fps
    freq = rng.uniform(0.2, 2.0, (3, 52))
    phase = rng.uniform(0, 2 * np.pi, (3, 52))
    w = np.clip(0.5 + 0.5 * np.sin(2 * np.pi * freq[None] * t[:, None, None] + phase[None]).mean(1), 0, 1)
    ang = 0.3 * np.sin(2 * np.pi * np.array([0.3, 0.5, 0.7]) * t[:, None] + rng.uniform(0, 6, 3))
    out = []
    for i in range(n):
        lost = lost_every > 0 and i % lost_every == lost_every - 1
        out.append(
            FaceState(
                timestamp=100.0 + t[i],
                weights=w[i].astype(np.float32),
                rotation=from_euler(*ang[i]),
                translation=np.array([0.01 * np.sin(t[i]), -0.02, 0.6 + 0.01 * np.cos(t[i])]),
                tracked=not lost,
                quality=0.0 if lost else float(rng.uniform(0.7, 1.0)),
                gaze=(0.2 * rng.standard_normal((2, 2))).astype(np.float32),
                index=i + 7,
                rms_mm=float("nan") if lost else float(rng.uniform(0.5, 2.0)),
            )
        )
    return out


def record(path, states, fps=60.0, **kw) -> Path:
    with TakeRecorder(path, fps=fps, **kw) as rec:
        for s in states:
            rec.write(s)
    return Path(path)


def assert_take_equals_states(take: Take, states: list[FaceState]) -> None:
    assert len(take) == len(states)
    np.testing.assert_array_equal(take.weights, np.array([s.weights for s in states], np.float32))
    np.testing.assert_array_equal(take.rotations, np.array([s.rotation for s in states]))
    np.testing.assert_array_equal(take.translations, np.array([s.translation for s in states]))
    np.testing.assert_array_equal(take.timestamps, [s.timestamp for s in states])
    np.testing.assert_array_equal(take.tracked, [s.tracked for s in states])
    np.testing.assert_array_equal(take.quality, np.array([s.quality for s in states], np.float32))
    np.testing.assert_array_equal(take.gaze, np.array([s.gaze for s in states], np.float32))
    np.testing.assert_array_equal(take.indices, [s.index for s in states])
    np.testing.assert_array_equal(take.rms_mm, np.array([s.rms_mm for s in states], np.float32))


# ----------------------------------------------------------------------------------------- round trip
def test_record_then_load_is_exact_across_chunks(tmp_path):
    states = synthetic_states(300, fps=30, lost_every=17)
    p = record(tmp_path / "t", states, fps=30, chunk_frames=128, start_timecode="01:02:03:04",
               rig_name="actor.npz", camera={"model": "D415", "serial": "123"},
               calibration={"scale": 1.0}, meta={"slate": "S1", "take": 3})  # fmt: skip
    assert sorted(q.name for q in p.iterdir()) == [
        "frames-000.bin",
        "frames-001.bin",
        "frames-002.bin",
        "take.json",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        take = load_take(p)
    assert_take_equals_states(take, states)
    assert take.fps == 30.0
    assert take.timecodes[0] == "01:02:03:04"
    assert take.timecodes[30] == "01:02:04:04"
    assert take.timecodes[-1] == frames_to_timecode(timecode_to_frames("01:02:03:04", 30) + 299, 30)
    m = take.meta
    assert m["complete"] is True and m["frames"] == 300 and m["chunks"] == 3
    assert (
        m["rig"] == "actor.npz" and m["camera"]["serial"] == "123" and m["user"] == {"slate": "S1", "take": 3}
    )
    assert m["calibration"] == {"scale": 1.0}
    assert m["versions"]["facecap"] and m["versions"]["numpy"] == np.__version__
    assert "pyrealsense2" in m["versions"] and m["start_time"]
    s = take.summary()
    assert s["frames"] == 300 and s["tracked_frames"] == 300 - 300 // 17
    assert s["duration_s"] == pytest.approx(10.0, abs=1e-6)
    # playback path: states() gives back the FaceStates
    back = list(take.states())
    assert back[5].index == states[5].index and np.array_equal(back[5].weights, states[5].weights)
    # from_states builds the same take in memory
    mem = Take.from_states(states, 30, start_timecode="01:02:03:04")
    assert mem.timecodes == take.timecodes
    np.testing.assert_array_equal(mem.weights, take.weights)


def test_record_layout_matches_dtype():
    assert RECORD_SIZE == RECORD_DTYPE.itemsize == 349
    s = synthetic_states(1)[0]
    rec = np.frombuffer(TakeRecorder._pack(s), RECORD_DTYPE)[0]
    assert rec["index"] == s.index and rec["timestamp"] == s.timestamp and rec["tracked"] == 1
    np.testing.assert_array_equal(rec["weights"], s.weights)
    np.testing.assert_array_equal(rec["rotation"], s.rotation)
    assert rec["crc"] == zlib.crc32(TakeRecorder._pack(s)[:-4])


def test_timecode_from_timestamps_keeps_gaps(tmp_path):
    states = synthetic_states(10, fps=30)
    states = states[:5] + states[8:]  # 3 frames dropped by the source
    take = load_take(record(tmp_path / "t", states, fps=30, start_timecode="00:00:59:28"))
    assert take.timecodes[:6] == ["00:00:59:28", "00:00:59:29", "00:01:00:00", "00:01:00:01", "00:01:00:02",
                                  "00:01:00:06"]  # fmt: skip
    # equal timestamps: counted frame by frame
    flat = [FaceState(timestamp=0.0) for _ in range(3)]
    take = load_take(record(tmp_path / "u", flat, fps=90, start_timecode="10:00:00:88"))
    assert take.timecodes == ["10:00:00:88", "10:00:00:89", "10:00:01:00"]


def test_timecode_helpers():
    assert timecode_to_frames("00:00:01:00", 24) == 24
    assert frames_to_timecode(timecode_to_frames("23:59:59:29", 30) + 1, 30) == "00:00:00:00"
    assert timecode_to_frames("00:00:01:00", 29.97) == 30  # NDF labels at the rounded rate
    for bad, why in [("10:00:00;00", "drop-frame"), ("1:2:3", "SMPTE"), ("00:00:00:30", "out of range")]:
        with pytest.raises(ValueError, match=why):
            timecode_to_frames(bad, 30)
    tc = take_mod.wallclock_timecode(60)
    assert 0 <= timecode_to_frames(tc, 60) < 24 * 3600 * 60


def test_timecode_starts_at_the_first_frame_by_default(tmp_path):
    rec = TakeRecorder(tmp_path / "t", fps=30)
    time.sleep(1.2)  # camera warm-up between creating the recorder and the first frame
    before = timecode_to_frames(take_mod.wallclock_timecode(30), 30)
    rec.write(synthetic_states(1)[0])
    after = timecode_to_frames(take_mod.wallclock_timecode(30), 30)
    written = json.loads((tmp_path / "t" / "take.json").read_text())["start_timecode"]
    rec.close()
    if after < before:  # midnight passed during the test
        return
    assert before <= timecode_to_frames(written, 30) <= after
    assert load_take(tmp_path / "t").timecodes[0] == written


def test_recorder_validates_input(tmp_path):
    with pytest.raises(ValueError, match="fps"):
        TakeRecorder(tmp_path / "a", fps=0)
    with pytest.raises(ValueError, match="JSON"):
        TakeRecorder(tmp_path / "b", fps=30, meta={"x": object()})
    with pytest.raises(ValueError, match="SMPTE"):
        TakeRecorder(tmp_path / "c", fps=30, start_timecode="noon")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        TakeRecorder(tmp_path / "full", fps=30)
    assert (tmp_path / "full" / "x").read_text() == "keep me"
    with TakeRecorder(tmp_path / "d", fps=30) as rec:
        rec.write(synthetic_states(1)[0])
        with pytest.raises(ValueError, match=r"\(52,\)"):
            rec.write(FaceState(weights=np.zeros(51, np.float32)))
        with pytest.raises(ValueError, match="rotation"):
            rec.write(FaceState(rotation=np.eye(4)))
        with pytest.raises(RuntimeError, match="raw_rgbd=True"):
            rec.write_frame(None)
    assert len(load_take(tmp_path / "d")) == 1  # the bad states wrote nothing
    with pytest.raises(RuntimeError, match="closed"):
        rec.write(synthetic_states(1)[0])


def test_background_fsync_runs(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(take_recorder.os, "fsync", lambda fd: (synced.append(time.monotonic()), real(fd)))
    rec = TakeRecorder(tmp_path / "t", fps=60, sync_interval=0.1)
    n0 = len(synced)
    for s in synthetic_states(30):
        rec.write(s)
        time.sleep(0.01)
    assert len(synced) > n0 + 1  # fsynced in the background while recording
    rec.close()


# ----------------------------------------------------------------------------------------- crash safety
_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from facecap.state import FaceState
    from facecap.take import TakeRecorder

    fps = 90.0
    rec = TakeRecorder(sys.argv[1], fps=fps, start_timecode="12:00:00:00")
    w = np.linspace(0, 1, 52, dtype=np.float32)
    t0 = time.perf_counter()
    i = 0
    while True:
        rec.write(FaceState(timestamp=i / fps, weights=w, tracked=True, quality=1.0, index=i))
        if i == 0:
            print("started", flush=True)
        i += 1
        delay = t0 + i / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    """
)


def test_sigkill_loses_at_most_the_last_second(tmp_path):
    p = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(p)], stdout=subprocess.PIPE, cwd=ROOT, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "started"
        t_start = time.monotonic()
        time.sleep(1.5)
        elapsed = time.monotonic() - t_start
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with pytest.warns(TakeRecoveryWarning, match="not closed") as rec:
        take = load_take(p)
    assert not any("damaged" in str(w.message) or "truncated" in str(w.message) for w in rec)
    assert len(take) >= (elapsed - 1.0) * 90, (len(take), elapsed)
    np.testing.assert_array_equal(take.indices, np.arange(len(take)))  # every record intact, in order
    np.testing.assert_array_equal(
        take.weights, np.tile(np.linspace(0, 1, 52, dtype=np.float32), (len(take), 1))
    )
    assert take.meta["complete"] is False and take.timecodes[0] == "12:00:00:00"


def test_truncated_chunk_loads_up_to_the_damage_and_says_what_is_lost(tmp_path):
    states = synthetic_states(50)
    p = record(tmp_path / "t", states)
    f = p / "frames-000.bin"
    f.write_bytes(f.read_bytes()[: CHUNK_HEADER_SIZE + 40 * RECORD_SIZE + 100])  # cut inside record 40
    with pytest.warns(TakeRecoveryWarning, match=r"recovered 40 of 50 frames.*lost frames 40-49"):
        take = load_take(p)
    assert_take_equals_states(take, states[:40])
    s = take.summary()
    assert (
        s["complete"] is False and s["recorded"] == 50 and s["lost"] == 10 and s["lost_ranges"] == [[40, 49]]
    )


def test_a_damaged_record_costs_that_record_only(tmp_path):
    states = synthetic_states(60)
    p = record(tmp_path / "t", states, chunk_frames=25)
    f = p / "frames-000.bin"
    data = bytearray(f.read_bytes())
    data[CHUNK_HEADER_SIZE + 20 * RECORD_SIZE + 50] ^= 0xFF  # flip bits inside record 20's weights
    f.write_bytes(bytes(data))
    with pytest.warns(
        TakeRecoveryWarning, match=r"1 damaged record skipped.*recovered 59 of 60.*lost frames 20$"
    ):
        take = load_take(p)
    assert_take_equals_states(take, states[:20] + states[21:])
    # a damaged chunk header costs nothing: the records start at byte 32 and the name gives the number
    data[:8] = b"garbage!"
    f.write_bytes(bytes(data))
    with pytest.warns(TakeRecoveryWarning, match="damaged header"):
        assert len(load_take(p)) == 59


def test_missing_chunk_costs_its_frames_only(tmp_path):
    states = synthetic_states(60)
    p = record(tmp_path / "t", states, chunk_frames=25)
    (p / "frames-001.bin").unlink()
    with pytest.warns(
        TakeRecoveryWarning, match=r"frames-001.bin is missing.*recovered 35 of 60.*lost frames 25-49"
    ):
        take = load_take(p)
    assert_take_equals_states(take, states[:25] + states[50:])
    # the last chunk deleted, or cut on a record boundary: take.json's count says what is missing
    p = record(tmp_path / "u", states, chunk_frames=25)
    (p / "frames-002.bin").unlink()
    with pytest.warns(TakeRecoveryWarning, match=r"recovered 50 of 60.*lost frames 50-59"):
        assert load_take(p).summary()["complete"] is False
    p = record(tmp_path / "v", states, chunk_frames=25)
    f = p / "frames-002.bin"
    f.write_bytes(f.read_bytes()[: CHUNK_HEADER_SIZE + 4 * RECORD_SIZE])
    with pytest.warns(TakeRecoveryWarning, match=r"recovered 54 of 60.*lost frames 54-59"):
        load_take(p)


def test_swapped_and_renamed_chunks_are_ordered_by_their_headers(tmp_path):
    states = synthetic_states(60)
    p = record(tmp_path / "t", states, chunk_frames=25)
    a, b = p / "frames-000.bin", p / "frames-001.bin"
    tmp = p / "swap"
    a.rename(tmp), b.rename(a), tmp.rename(b)
    with pytest.warns(TakeRecoveryWarning, match="holds chunk 1"):
        take = load_take(p)
    assert_take_equals_states(take, states)
    assert take.summary()["lost"] == 0


@pytest.mark.parametrize("damage", ["deleted", "not json", "not a take", "empty", "fps gone"])
def test_a_lost_take_json_is_rebuilt_from_the_chunks(tmp_path, damage):
    states = synthetic_states(60)  # 60 fps
    p = record(tmp_path / "t", states, chunk_frames=25)
    mp = p / "take.json"
    if damage == "deleted":
        mp.unlink()
    elif damage == "fps gone":
        mp.write_text(json.dumps({**json.loads(mp.read_text()), "fps": "sixty"}))
    else:
        mp.write_text({"not json": "{not json", "not a take": "[1, 2]", "empty": ""}[damage])
    with pytest.warns(TakeRecoveryWarning, match="fps 60 estimated" if damage == "fps gone" else "rebuilt"):
        take = load_take(p)
    assert_take_equals_states(take, states)
    assert take.fps == 60.0 and take.summary()["complete"] is (damage == "fps gone")  # no frame is missing


def test_odd_but_valid_take_json_fields_are_ignored_with_a_reason(tmp_path, capsys):
    from facecap.cli import main

    p = record(tmp_path / "t", synthetic_states(10))
    m = json.loads((p / "take.json").read_text())
    for field, value in (("versions", [1, 2]), ("fps", float("inf")), ("fps", 1e308), ("frames", "ten"),
                         ("start_timecode", 5), ("complete", "yes")):  # fmt: skip
        (p / "take.json").write_text(json.dumps({**m, field: value}))
        with pytest.warns(TakeRecoveryWarning, match=f"{field!r} must be"):
            take = load_take(p)
        assert len(take) == 10 and np.isfinite(take.fps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TakeRecoveryWarning)
            assert main(["take", "info", str(p)]) == 0
        assert "must be" in capsys.readouterr().out


def test_bad_take_folders_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_take(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="take.json is missing and there are no frames"):
        load_take(tmp_path / "empty")
    (tmp_path / "empty" / "take.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*no frames-"):
        load_take(tmp_path / "empty")
    p = record(tmp_path / "t", synthetic_states(5))
    (p / "take.json").write_text(json.dumps({"format": "facecap-take", "version": 99, "fps": 30}))
    with pytest.raises(ValueError, match="version 99"):
        load_take(p)
    with pytest.raises(ValueError, match="not a take directory"):
        load_take(p / "frames-000.bin")
    (p / "take.json").write_text(
        json.dumps({"format": "facecap-take", "version": 1, "fps": 30, "record": 80})
    )
    with pytest.warns(TakeRecoveryWarning, match="'record' must be an object"):
        assert len(load_take(p)) == 5


# ----------------------------------------------------------------------------------------- full disk
def test_disk_full_is_reported_and_earlier_frames_stay_readable(tmp_path, monkeypatch):
    states = synthetic_states(40)
    real = take_recorder._os_write
    calls = {"n": 0}

    def flaky(fd, data):
        calls["n"] += 1
        if calls["n"] > 26:  # 25 records fit, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        if calls["n"] == 26:  # the 26th record only partly fits: a short write, then ENOSPC
            return real(fd, bytes(data)[:100])
        return real(fd, data)

    p = tmp_path / "t"
    rec = TakeRecorder(p, fps=60, start_timecode="10:00:00:00")
    monkeypatch.setattr(take_recorder, "_os_write", flaky)
    with pytest.raises(TakeWriteError) as ei:
        for s in states:
            rec.write(s)
    err = ei.value
    assert err.errno == errno.ENOSPC and err.frames_saved == 25 and err.path == p
    assert "disk is full" in str(err) and "25 frames" in str(err) and str(p) in str(err)
    with pytest.raises(TakeWriteError):  # later writes keep failing loudly
        rec.write(states[30])
    monkeypatch.setattr(take_recorder, "_os_write", real)
    rec.close()
    meta = json.loads((p / "take.json").read_text())
    assert meta["complete"] is False and "disk is full" in meta["error"] and meta["frames"] == 25
    assert (p / "frames-000.bin").stat().st_size == CHUNK_HEADER_SIZE + 25 * RECORD_SIZE  # partial record cut
    with pytest.warns(TakeRecoveryWarning, match="disk is full"):
        take = load_take(p)
    assert_take_equals_states(take, states[:25])


# ----------------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_finalises_the_take(tmp_path):
    states = synthetic_states(100)
    p = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        with TakeRecorder(p, fps=60) as rec:
            for i, s in enumerate(states):
                if i == 50:
                    raise KeyboardInterrupt
                rec.write(s)
    meta = json.loads((p / "take.json").read_text())
    assert meta["complete"] is True and meta["frames"] == 50 and meta["ended_by"] == "KeyboardInterrupt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        take = load_take(p)
    assert_take_equals_states(take, states[:50])


# ----------------------------------------------------------------------------------------- raw RGB-D
def test_raw_rgbd_is_written_beside_the_take(tmp_path):
    from facecap.frames import Frame, Intrinsics
    from facecap.realsense import read_recording

    intr = Intrinsics(width=64, height=48, fx=60.0, fy=60.0, cx=32.0, cy=24.0)
    rng = np.random.default_rng(1)
    frames = []
    for i in range(12):
        depth = rng.uniform(0.4, 0.8, (48, 64)).astype(np.float32)
        color = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        frames.append(Frame(depth=depth, depth_intrinsics=intr, color=color, color_intrinsics=intr,
                            timestamp=i / 30, index=i))  # fmt: skip
    p = tmp_path / "t"
    states = synthetic_states(12, fps=30)
    with TakeRecorder(p, fps=30, raw_rgbd=True) as rec:
        for f, s in zip(frames, states, strict=True):
            rec.write_frame(f)
            rec.write(s)
    take = load_take(p)
    assert take.meta["raw_rgbd"] == "raw.db3" and take.meta["raw_rgbd_frames"] == 12
    back = list(read_recording(p / "raw.db3", align=False))
    assert len(back) == 12
    np.testing.assert_allclose(back[5].depth, frames[5].depth, atol=0.0006)
    np.testing.assert_array_equal(back[5].color, frames[5].color)


def test_raw_rgbd_is_written_in_segments_that_each_play(tmp_path):
    from facecap.frames import Frame, Intrinsics
    from facecap.realsense import read_recording

    intr = Intrinsics(width=64, height=48, fx=60.0, fy=60.0, cx=32.0, cy=24.0)
    p = tmp_path / "t"
    with TakeRecorder(p, fps=30, raw_rgbd=True, raw_segment_s=0.2) as rec:  # 6 frames a segment
        for i in range(20):
            d = np.full((48, 64), 0.5 + 0.01 * i, np.float32)
            rec.write_frame(Frame(depth=d, depth_intrinsics=intr, timestamp=i / 30, index=i))
            rec.write(synthetic_states(1)[0])
    m = load_take(p).meta
    assert m["raw_rgbd_segments"] == ["raw.db3", "raw-001.db3", "raw-002.db3", "raw-003.db3"]
    assert m["raw_rgbd_frames"] == 20
    back = [f for name in m["raw_rgbd_segments"] for f in read_recording(p / name, align=False)]
    assert len(back) == 20
    np.testing.assert_allclose([f.depth[0, 0] for f in back], 0.5 + 0.01 * np.arange(20), atol=6e-4)


def test_sigkill_during_raw_recording_keeps_every_closed_segment(tmp_path):
    """librealsense's bag writer keeps no journal: a bag killed open cannot be read at all. Segments
    bound the loss: after SIGKILL every closed segment plays, and the tracked frames are all there."""
    from facecap.realsense import read_recording

    p = tmp_path / "t"
    code = textwrap.dedent(f"""
        import numpy as np
        from facecap.frames import Frame, Intrinsics
        from facecap.state import FaceState
        from facecap.take import TakeRecorder
        intr = Intrinsics(width=64, height=48, fx=60.0, fy=60.0, cx=32.0, cy=24.0)
        with TakeRecorder({str(p)!r}, fps=30, raw_rgbd=True, raw_segment_s=0.2) as rec:
            i = 0
            while True:
                d = np.full((48, 64), 0.5, np.float32)
                rec.write_frame(Frame(depth=d, depth_intrinsics=intr, timestamp=i / 30, index=i))
                rec.write(FaceState(timestamp=i / 30, index=i))
                i += 1
                print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if int(line) >= 40 and (p / "raw-003.db3").exists():
            break
    time.sleep(0.1)  # the open segment gets some frames
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TakeRecoveryWarning)
        take = load_take(p)
    assert len(take) >= 40 and take.summary()["lost"] == 0
    segments = sorted(p.glob("raw*.db3"), key=lambda q: int(q.stem[4:] or 0))  # raw, raw-001, raw-002...
    closed = segments[:-1]  # the segment open at the kill may be lost
    assert len(closed) >= 3
    for s in closed:
        assert len(list(read_recording(s, align=False))) == 6, s.name
    # take repair copies the closed segments and salvages what the open one holds
    from facecap.take.repair import repair_take

    r = repair_take(p, tmp_path / "fixed")
    assert [x["segment"] for x in r["raw"]] == [q.name for q in segments]
    assert all(x["messages"] > 0 and x["playable"] for x in r["raw"][:-1])
    # the segment open at the kill may hold rows before its streams' description: kept, not playable
    fixed = [f for x in r["raw"] if x["playable"]
             for f in read_recording(tmp_path / "fixed" / x["segment"], align=False)]  # fmt: skip
    assert len(fixed) >= 6 * len(closed)
    assert load_take(tmp_path / "fixed").meta["raw_rgbd_segments"] == [
        x["segment"] for x in r["raw"] if x["playable"]
    ]


def test_raw_rgbd_writer_failures_do_not_lose_tracked_frames(tmp_path, monkeypatch):
    import facecap.realsense.raw as rs_mod

    def broken(path, frames, fps=None):
        next(iter(frames))
        raise ValueError("frame 0 has no depth")

    monkeypatch.setattr(rs_mod, "write_recording", broken)
    states = synthetic_states(20)
    rec = TakeRecorder(tmp_path / "a", fps=60, raw_rgbd=True)
    rec.write_frame(object())
    for s in states:
        rec.write(s)
    time.sleep(0.2)
    with pytest.raises(RuntimeError, match="raw RGB-D recording .* failed"):
        rec.write_frame(object())
    with pytest.raises(RuntimeError, match="20 tracked frames are saved"):
        rec.close()
    meta = json.loads((tmp_path / "a" / "take.json").read_text())
    assert meta["complete"] is True and "no depth" in meta["raw_rgbd_error"]
    assert_take_equals_states(load_take(tmp_path / "a"), states)

    def fails_at_the_end(path, frames, fps=None):
        n = sum(1 for _ in frames)
        raise OSError(errno.EIO, f"only {n - 1} of {n} frames reached {path}")

    monkeypatch.setattr(rs_mod, "write_recording", fails_at_the_end)
    rec = TakeRecorder(tmp_path / "d", fps=60, raw_rgbd=True)
    rec._raw.stall_s = 5
    for s in states[:3]:
        rec.write_frame(object())
        rec.write(s)
    t = time.monotonic()
    with pytest.raises(RuntimeError, match="only 2 of 3 frames"):
        rec.close()
    assert time.monotonic() - t < 1.0  # reported at once, no wait for a stall
    assert len(load_take(tmp_path / "d")) == 3

    def stuck(path, frames, fps=None):
        for _ in frames:
            pass
        time.sleep(3)  # a librealsense hang at the end of the file
        return 0

    monkeypatch.setattr(rs_mod, "write_recording", stuck)
    rec = TakeRecorder(tmp_path / "b", fps=60, raw_rgbd=True)
    rec._raw.stall_s = 0.3
    rec.write_frame(object())
    rec.write(states[0])
    t = time.monotonic()
    with pytest.raises(RuntimeError, match="stalled"):
        rec.close()
    assert time.monotonic() - t < 2.5
    assert len(load_take(tmp_path / "b")) == 1

    rec = TakeRecorder(tmp_path / "c", fps=60, raw_rgbd=True)  # raw requested, no raw frame given
    rec.write(states[0])
    rec.close()
    assert not (tmp_path / "c" / "raw.db3").exists()
    assert json.loads((tmp_path / "c" / "take.json").read_text())["raw_rgbd_frames"] == 0


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_raw_writer_that_cannot_start_leaks_no_thread_or_file(tmp_path, monkeypatch):
    import threading

    from facecap import camera_access
    from facecap.realsense import raw as rs_raw

    def no_realsense(*a, **k):
        raise ImportError(
            "pyrealsense2 failed to import (no libusb); install it with `pip install pyrealsense2`"
        )

    threads, fds = set(threading.enumerate()), _open_fds()
    monkeypatch.setattr(rs_raw, "RawRecorder", no_realsense)
    with pytest.raises(ImportError, match="pip install pyrealsense2"):
        TakeRecorder(tmp_path / "a", fps=60, raw_rgbd=True)
    assert set(threading.enumerate()) <= threads and _open_fds() <= fds
    assert not (tmp_path / "a").exists()  # nothing half-made

    # the raw writer started, then the take itself cannot be created: its thread ends too
    monkeypatch.undo()
    monkeypatch.setattr(camera_access, "import_pyrealsense2", lambda: None)

    def chunk_fails(self, i):
        raise OSError(errno.EACCES, "permission denied")

    monkeypatch.setattr(TakeRecorder, "_open_chunk", chunk_fails)
    with pytest.raises(OSError, match="permission denied"):
        TakeRecorder(tmp_path / "b", fps=60, raw_rgbd=True)
    assert set(threading.enumerate()) <= threads and _open_fds() <= fds


def test_interrupt_inside_a_write_leaves_no_partial_record(tmp_path, monkeypatch):
    states = synthetic_states(10)
    real = take_recorder._os_write
    calls = {"n": 0}

    def interrupted(fd, data):
        calls["n"] += 1
        if calls["n"] == 6:
            real(fd, bytes(data)[:100])
            raise KeyboardInterrupt
        return real(fd, data)

    p = tmp_path / "t"
    with pytest.raises(KeyboardInterrupt):
        with TakeRecorder(p, fps=60, start_timecode="10:00:00:00") as rec:
            monkeypatch.setattr(take_recorder, "_os_write", interrupted)
            for s in states:
                rec.write(s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        take = load_take(p)
    assert_take_equals_states(take, states[:5])


# ----------------------------------------------------------------------------------------- fuzzing
def _corrupt(files: dict[str, bytes], rng, log: list | None = None) -> dict[str, bytes]:
    """One to three random damages of a take's files: bit flips, a truncation, a deleted or inserted
    byte run, a garbled header, swapped chunk names, a deleted chunk, a deleted or garbled take.json."""
    files = dict(files)
    chunks = sorted(k for k in files if k.startswith("frames-"))
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(
            ["flip", "flip", "truncate", "delete", "insert", "header", "swap", "unlink", "meta"]
        )
        name = chunks[int(rng.integers(len(chunks)))]
        if log is not None:
            log.append((str(kind), name))
        if name not in files:
            continue
        d = bytearray(files[name])
        if kind == "flip" and len(d):
            for pos in rng.integers(0, len(d), int(rng.integers(1, 6))):
                d[pos] ^= 1 << int(rng.integers(8))
        elif kind == "truncate":
            d = d[: int(rng.integers(0, len(d) + 1))]
        elif kind == "delete" and len(d):
            a = int(rng.integers(len(d)))
            del d[a : a + int(rng.integers(1, 3 * RECORD_SIZE))]
        elif kind == "insert":
            a = int(rng.integers(len(d) + 1))
            d[a:a] = rng.integers(0, 256, int(rng.integers(1, 2 * RECORD_SIZE)), dtype=np.uint8).tobytes()
        elif kind == "header":
            d[: int(rng.integers(1, CHUNK_HEADER_SIZE))] = b"\x00" * int(rng.integers(1, CHUNK_HEADER_SIZE))
        elif kind == "swap":
            other = chunks[int(rng.integers(len(chunks)))]
            if other in files:
                files[name], files[other] = files[other], files[name]
                continue
        elif kind == "unlink":
            del files[name]
            continue
        elif kind == "meta":
            if rng.random() < 0.5:
                files.pop("take.json", None)
            else:
                files["take.json"] = b"{garbled"
            continue
        files[name] = bytes(d)
    return files


@pytest.mark.parametrize("seed", range(4))
def test_fuzzed_takes_lose_no_intact_record(tmp_path, seed):
    """250 random corruptions per seed (1,000 in all) of a 100-frame, 4-chunk take: every record whose
    349 bytes survive anywhere in a chunk file is recovered, in recording order, and what is reported
    lost is exactly what is missing."""
    states = synthetic_states(100, seed=seed)
    src = record(tmp_path / "src", states, chunk_frames=30)
    original = {p.name: p.read_bytes() for p in src.iterdir()}
    body = b"".join(original[f"frames-{i:03d}.bin"][CHUNK_HEADER_SIZE:] for i in range(4))
    recs = [body[i * RECORD_SIZE : (i + 1) * RECORD_SIZE] for i in range(100)]
    rng = np.random.default_rng(seed)
    for trial in range(250):
        files = _corrupt(original, rng)
        d = tmp_path / f"t{trial}"
        d.mkdir()
        for name, data in files.items():
            (d / name).write_bytes(data)
        blob = b"|".join(v for k, v in files.items() if k.startswith("frames-"))
        intact = [i for i, r in enumerate(recs) if r in blob]
        if not any(k.startswith("frames-") for k in files) and "take.json" not in files:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TakeRecoveryWarning)
            try:
                take = load_take(d)
            except (FileNotFoundError, ValueError) as e:  # nothing left to recover: a clear error
                assert not intact, (trial, e)
                continue
        got = list(take.indices - 7)  # synthetic_states index = i + 7
        assert set(intact) <= set(got), (trial, sorted(set(intact) - set(got)))
        assert got == sorted(got), trial  # recording order
        s = take.summary()
        if s["recorded"] is not None and s["recorded"] <= 100:
            assert s["lost"] == s["recorded"] - len(take), trial
        assert s["complete"] is (
            len(take) == 100 and "take.json" in files and files["take.json"] == original["take.json"]
        ), trial


def test_take_repair_writes_a_clean_copy_and_names_the_lost_frames(tmp_path, capsys):
    from facecap.cli import main

    states = synthetic_states(100)
    p = record(tmp_path / "t", states, chunk_frames=30)
    f = p / "frames-001.bin"
    data = bytearray(f.read_bytes())
    for k in (5, 6, 20):  # records 35, 36 and 50 of the take
        data[CHUNK_HEADER_SIZE + k * RECORD_SIZE + 9] ^= 0x10
    f.write_bytes(bytes(data))
    (p / "frames-003.bin").unlink()  # frames 90-99
    before = {q.name: q.read_bytes() for q in p.iterdir()}
    assert main(["take", "repair", str(p)]) == 0
    out = capsys.readouterr().out
    assert "recovered   87 frames" in out and "lost        13 frames: 35-36, 50, 90-99" in out, out
    assert {q.name: q.read_bytes() for q in p.iterdir()} == before  # the damaged take is untouched
    with warnings.catch_warnings():
        warnings.simplefilter("error", TakeRecoveryWarning)  # the copy is clean
        fixed = load_take(tmp_path / "t-repaired")
    keep = [s for i, s in enumerate(states) if i not in (35, 36, 50) and i < 90]
    assert_take_equals_states(fixed, keep)
    assert fixed.summary()["complete"] is True
    assert fixed.meta["repaired"]["lost_ranges"] == [[35, 36], [50, 50], [90, 99]]
    # the copy's folder must be new
    assert main(["take", "repair", str(p)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["take", "repair", str(p), "--out", str(p)]) == 2


def test_take_info_says_recorded_recovered_and_lost(tmp_path, capsys):
    from facecap.cli import main

    p = record(tmp_path / "t", synthetic_states(100), chunk_frames=30)
    (p / "frames-003.bin").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TakeRecoveryWarning)
        assert main(["take", "info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "recovered   90 of 100 recorded; lost 10: frames 90-99" in out and "complete    False" in out, out


def test_recovery_warnings_on_the_command_line_are_one_plain_line(tmp_path, capsys):
    from facecap.cli import main

    p = record(tmp_path / "t", synthetic_states(100), chunk_frames=30)
    (p / "frames-001.bin").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["take", "info", str(p)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facecap: warning: take "), err
    assert "lost frames 30-59" in err[0]


def test_bad_values_are_refused_at_record_time_not_at_export(tmp_path):
    from dataclasses import replace

    good = synthetic_states(3)
    w_nan = good[0].weights.copy()
    w_nan[4] = np.nan
    with TakeRecorder(tmp_path / "t", fps=60) as rec:
        for bad, what in ((replace(good[0], weights=w_nan), "NaN or inf in weights"),
                          (replace(good[0], weights=np.full(52, 7.0, np.float32)), r"in \[0, 1\]"),
                          (replace(good[0], rotation=np.full((3, 3), np.inf)), "NaN or inf in rotation"),
                          (replace(good[0], rotation=2 * np.eye(3)), "not a rotation"),
                          (replace(good[0], timestamp=float("nan")), "timestamp")):  # fmt: skip
            with pytest.raises(ValueError, match=what):
                rec.write(bad)
        with pytest.raises(TypeError, match="FaceState frames, got dict"):
            rec.write({"weights": np.zeros(52)})
        # a lost frame carries no measurement: its NaNs are stored as the neutral face
        rec.write(replace(good[1], tracked=False, weights=w_nan, translation=np.full(3, np.nan)))
        rec.write(good[2])
    take = load_take(tmp_path / "t")
    assert len(take) == 2 and not take.tracked[0] and take.tracked[1]
    assert (take.weights[0] == 0).all() and (take.translations[0] == 0).all()
    assert np.isfinite(take.rotations).all()
    from facecap.export import export_take

    for fmt, suffix in (("livelink-csv", "csv"), ("glb", "glb"), ("usda", "usda"), ("jsonl", "jsonl")):
        assert export_take(take, tmp_path / f"out.{suffix}", fmt).is_file()


def test_a_live_link_csv_with_a_bad_row_is_usable_from_the_command_line(tmp_path, capsys):
    from conftest import shared_path

    from facecap.cli import main

    src = shared_path("arkit_blendshape_takes", "livelinkface_alexdjulin_S07-001.csv")
    lines = src.read_text().splitlines(keepends=True)
    lines[30] = lines[30][: len(lines[30]) // 2] + "\n"  # a row cut in half (line 31)
    bad = tmp_path / "cut.csv"
    bad.write_text("".join(lines))
    assert main(["take", "info", str(bad)]) == 2
    assert "line 31: malformed row" in capsys.readouterr().err
    assert main(["take", "info", str(bad), "--skip-bad-rows"]) == 0
    out = capsys.readouterr()
    assert "skipped 1 malformed row(s), line(s) 31" in out.err and "complete    False" in out.out
    assert main(["export", str(bad), "--skip-bad-rows", "--out", str(tmp_path / "x.jsonl")]) == 0
    out_lines = (tmp_path / "x.jsonl").read_text().splitlines()
    assert json.loads(out_lines[0])["n_frames"] == len(out_lines) - 1 == len(lines) - 2  # CSV header, bad row


def test_commands_that_write_a_file_do_not_overwrite_without_force(tmp_path, capsys):
    from facecap.cli import main

    p = record(tmp_path / "t", synthetic_states(5))
    out = tmp_path / "x.jsonl"
    out.write_text("precious")
    assert main(["export", str(p), "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err and out.read_text() == "precious"
    assert main(["export", str(p), "--out", str(out), "--force"]) == 0
    assert out.read_text() != "precious"
    png = tmp_path / "sheet.png"
    png.write_text("precious")
    assert main(["rig", "preview", str(png)]) == 2 and png.read_text() == "precious"


def test_a_bad_start_timecode_is_reported_and_replaced(tmp_path):
    p = record(tmp_path / "t", synthetic_states(5))
    m = json.loads((p / "take.json").read_text())
    (p / "take.json").write_text(json.dumps({**m, "start_timecode": "noon"}))
    with pytest.warns(TakeRecoveryWarning, match="start_timecode 'noon' is not HH:MM:SS:FF"):
        take = load_take(p)
    assert take.timecodes[0] == "00:00:00:00" and len(take) == 5


def test_repair_keeps_an_old_takes_invalid_tracked_frame_as_untracked(tmp_path, capsys):
    """A take from before the recorder checked its input can hold a tracked frame with NaN weights:
    repair copies it as untracked (so every export works) and names it."""
    from facecap.cli import main

    states = synthetic_states(10)
    p = record(tmp_path / "t", states)
    f = p / "frames-000.bin"
    recs = np.frombuffer(f.read_bytes()[CHUNK_HEADER_SIZE:], RECORD_DTYPE).copy()
    recs["weights"][4, 7] = np.nan
    recs["tracked"][4] = 1
    body = recs.tobytes()
    heads = [body[i * RECORD_SIZE : (i + 1) * RECORD_SIZE - 4] for i in range(len(recs))]
    fixed = b"".join(h + zlib.crc32(h).to_bytes(4, "little") for h in heads)  # the old recorder's CRCs
    f.write_bytes(f.read_bytes()[:CHUNK_HEADER_SIZE] + fixed)
    assert main(["take", "repair", str(p)]) == 0
    assert "1 tracked frames held NaN/inf" in capsys.readouterr().out
    take = load_take(tmp_path / "t-repaired")
    assert len(take) == 10 and not take.tracked[4] and np.isfinite(take.weights).all()


def test_take_json_writes_leave_no_temporary_file_on_any_path(tmp_path, monkeypatch):
    """take.json is written unnamed first where the system can (O_TMPFILE), else through a named temporary
    file; either way the new content replaces the old whole, and nothing else is left in the folder, also
    when the disk fills up mid-write."""
    import errno

    from facecap.take import recorder

    p = tmp_path / "take.json"
    fd = recorder._unnamed_file(tmp_path)
    if fd is not None:  # the unnamed path is taken where it exists
        os.close(fd)
        named = []
        real = recorder._name_unnamed
        monkeypatch.setattr(recorder, "_name_unnamed", lambda f, q: named.append(real(f, q)) or named[-1])
        recorder._write_json_atomic(p, {"case": "unnamed"})
        assert named == [True]
        monkeypatch.undo()

    def no_link(*a, **k):
        raise OSError(errno.ENOENT, "no /proc")

    for case in ("default", "no O_TMPFILE", "no /proc"):
        with monkeypatch.context() as m:
            if case == "no O_TMPFILE":
                m.delattr(os, "O_TMPFILE", raising=False)
            if case == "no /proc":
                m.setattr(os, "link", no_link)
            recorder._write_json_atomic(p, {"case": case})
        assert json.loads(p.read_text()) == {"case": case}
        assert [q.name for q in tmp_path.iterdir()] == ["take.json"]

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    for case in ("default", "no O_TMPFILE"):
        with monkeypatch.context() as m:
            m.setattr(recorder, "_os_write", full)
            if case == "no O_TMPFILE":
                m.delattr(os, "O_TMPFILE", raising=False)
            with pytest.raises(OSError, match="No space"):
                recorder._write_json_atomic(p, {"case": "lost"})
        assert json.loads(p.read_text()) == {"case": "no /proc"}
        assert [q.name for q in tmp_path.iterdir()] == ["take.json"]
