"""Live Link Face CSV takes: the 7 real takes read, and write back byte for byte; the angle signs they
show; timecodes; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import LIVELINK_TAKES, shared_path

from facecap import arkit
from facecap.livelink import (
    LIVELINK_COLUMNS,
    LiveLinkTake,
    from_livelink_angles,
    read_csv,
    to_livelink_angles,
    write_csv,
)
from facecap.take import take_from_livelink
from facecap.timecode import format_timecode, parse_timecode

LOST = {"livelinkface_alexdjulin_S88-001.csv": 277, "livelinkface_alexdjulin_apfel.csv": 35}


@pytest.mark.parametrize("name", LIVELINK_TAKES)
def test_real_takes_read_and_round_trip(name, tmp_path):
    src = shared_path("arkit_blendshape_takes", name)
    take = read_csv(src)
    lines = src.read_text().splitlines()
    assert take.n_frames == len(lines) - 1
    assert int((~take.tracked).sum()) == LOST.get(name, 0)
    assert np.isnan(take.weights[~take.tracked]).all() and np.isfinite(take.weights[take.tracked]).all()
    assert take.fps in (30.0, 59.94) and take.timecode_fps == 60 and not take.stray_first
    assert take.timestamps[0] == 0 and (np.diff(take.timestamps) > 0).all()
    # canonical order: check one value of each of a few columns against the raw text
    header = lines[0].split(",")
    first = next(i for i in range(take.n_frames) if take.tracked[i])
    row = lines[1 + first].split(",")
    for canon in ("jawOpen", "jawLeft", "mouthRight", "eyeBlinkRight", "tongueOut", "browInnerUp"):
        col = header.index(arkit.pascal_name(canon))
        assert take.weights[first, arkit.index(canon)] == float(row[col])
    assert take.eyes[first, 3] == float(row[header.index("RightEyeYaw")])

    out = write_csv(tmp_path / name, take)
    assert out.read_bytes() == src.read_bytes()  # identical header, values, face-lost rows
    again = read_csv(out)
    np.testing.assert_array_equal(again.tracked, take.tracked)
    np.testing.assert_array_equal(again.weights[take.tracked], take.weights[take.tracked])


def _corr(a, b) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.mark.parametrize("name", LIVELINK_TAKES)
def test_real_takes_fix_the_live_link_angle_signs(name):
    """The iPhone's own eye angles against its own eyeLook weights: eye yaw > 0 looks toward the subject's
    *right* (the Right-named side), pitch > 0 looks down. facecap's conversion must give exactly these
    signs, and an import must give gaze that agrees with facecap's gaze-from-weights."""
    from facecap.tracker import gaze_from_weights

    ll = read_csv(shared_path("arkit_blendshape_takes", name))
    tr = ll.tracked
    w, eyes = ll.weights[tr], ll.eyes[tr]
    i = arkit.INDEX
    toward_subject_left = {
        "Left": w[:, i["eyeLookOutLeft"]] - w[:, i["eyeLookInLeft"]],  # left eye out = to the left
        "Right": w[:, i["eyeLookInRight"]] - w[:, i["eyeLookOutRight"]],  # right eye in = to the left
    }
    for k, side in enumerate(("Left", "Right")):
        down = w[:, i["eyeLookDown" + side]] - w[:, i["eyeLookUp" + side]]
        c_yaw, c_pitch = _corr(eyes[:, 3 * k], toward_subject_left[side]), _corr(eyes[:, 3 * k + 1], down)
        assert c_yaw < -0.95 and c_pitch > 0.95, (side, c_yaw, c_pitch)
        # facecap: yaw > 0 toward the subject's left, pitch > 0 down; the data say what Live Link makes of it
        assert to_livelink_angles([1.0, 1.0, 0.0])[:2].tolist() == [np.sign(c_yaw), np.sign(c_pitch)]
    take = take_from_livelink(ll)
    g_w = np.array([gaze_from_weights(x) for x in take.weights[tr]])
    for k in range(2):
        assert _corr(take.gaze[tr][:, k, 0], g_w[:, k, 0]) > 0.95  # yaw, facecap convention
        assert _corr(take.gaze[tr][:, k, 1], g_w[:, k, 1]) > 0.95  # pitch


def test_angle_conversion_is_one_involution():
    a = np.random.default_rng(0).uniform(-1, 1, (5, 2, 3))
    ll = to_livelink_angles(a)
    np.testing.assert_array_equal(ll, a * [-1, 1, -1])  # yaw and roll negated, pitch kept
    np.testing.assert_array_equal(from_livelink_angles(ll), a)
    z = to_livelink_angles(np.zeros(3))
    assert not np.signbit(z).any()  # no -0.0 (a CSV would print -0.0000000000)
    with pytest.raises(ValueError, match="yaw, pitch, roll"):
        to_livelink_angles(np.zeros((4, 2)))


def test_header_constant_matches_design():
    assert len(LIVELINK_COLUMNS) == 63
    assert LIVELINK_COLUMNS[:4] == ("Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft")
    assert LIVELINK_COLUMNS[-9:-6] == ("HeadYaw", "HeadPitch", "HeadRoll")
    assert LIVELINK_COLUMNS.index("JawRight") < LIVELINK_COLUMNS.index("JawLeft")


def _tiny(tmp_path, body: str, name="t.csv", prefix: str = "") -> object:
    p = tmp_path / name
    p.write_bytes((prefix + ",".join(LIVELINK_COLUMNS) + "\n" + body).encode("utf-8"))
    return p


def _row(tc: str, v: float = 0.25) -> str:
    return f"{tc},61," + ",".join([f"{v:.10f}"] * 61) + "\n"


def test_tolerates_bom_blank_lines_lost_rows_and_stray_first_frame(tmp_path):
    body = _row("09:59:00:00.000") + "\n" + _row("10:00:00:02.000") + "   \n" + "10:00:00:04.000,0\n"
    body += _row("10:00:00:06.000", 0.5) + _row("10:00:00:08.000")
    p = _tiny(tmp_path, body, prefix="\ufeff")
    take = read_csv(p)
    assert take.n_frames == 5 and take.tracked.tolist() == [True, True, False, True, True]
    assert take.stray_first  # the first row is a minute earlier than the rest
    np.testing.assert_allclose(take.timestamps, np.arange(5) * 2 / 60, atol=1e-9)
    assert take.fps == 30.0
    held = take.held()
    assert held.weights[2, 0] == 0.25 and held.tracked[2] == np.False_
    np.testing.assert_allclose(take.sample([2.5 * 2 / 60])[0, 0], 0.375)  # between held row 2 and row 3
    out = write_csv(tmp_path / "o.csv", take)
    assert out.read_text().splitlines()[3] == "10:00:00:04.000,0"


def test_all_rows_lost_and_midnight(tmp_path):
    p = _tiny(tmp_path, "23:59:59:58.000,0\n00:00:00:00.000,0\n")
    take = read_csv(p)
    assert not take.tracked.any() and take.timestamps[1] == pytest.approx(2 / 60)
    with pytest.raises(ValueError, match="no tracked frame"):
        take.held()


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_csv(tmp_path / "missing.csv")
    (tmp_path / "bin.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ValueError, match="binary"):
        read_csv(tmp_path / "bin.csv")
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ValueError, match="empty"):
        read_csv(tmp_path / "empty.csv")
    (tmp_path / "other.csv").write_text("time,x,y\n0,1,2\n")
    with pytest.raises(ValueError, match="Timecode,BlendShapeCount"):
        read_csv(tmp_path / "other.csv")
    (tmp_path / "short.csv").write_text("Timecode,BlendShapeCount,EyeBlinkLeft\n00:00:00:00.000,1,0.1\n")
    with pytest.raises(ValueError, match="missing"):
        read_csv(tmp_path / "short.csv")
    with pytest.raises(ValueError, match="no frames"):
        read_csv(_tiny(tmp_path, ""))
    truncated = _row("10:00:00:00.000") + _row("10:00:00:02.000")[:100]
    with pytest.raises(ValueError, match="line 3.*truncated"):
        read_csv(_tiny(tmp_path, truncated))
    take = read_csv(_tiny(tmp_path, truncated), errors="skip")
    assert take.n_frames == 1 and take.skipped_lines == [3]
    with pytest.raises(ValueError, match="line 2"):
        read_csv(_tiny(tmp_path, "not-a-timecode,0\n"))


def test_write_refuses_nan_in_tracked_rows(tmp_path):
    w = np.zeros((3, 52))
    w[1, 4] = np.nan
    take = LiveLinkTake.from_arrays(w, fps=30)
    with pytest.raises(ValueError, match="row 1"):
        write_csv(tmp_path / "x.csv", take)
    assert not (tmp_path / "x.csv").exists()
    take.tracked[1] = False
    write_csv(tmp_path / "x.csv", take)
    back = read_csv(tmp_path / "x.csv")
    assert back.tracked.tolist() == [True, False, True] and back.fps == 30.0


def test_take_shape_validation():
    with pytest.raises(ValueError, match=r"head must be \(2, 3\)"):
        LiveLinkTake(
            np.zeros((2, 52)), np.zeros((2, 2)), np.zeros((2, 6)), [True, True], [0, 1], 30.0, ["a", "b"]
        )


def test_from_arrays_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    w = np.round(rng.random((40, 52)), 10)
    head = np.round(rng.uniform(-0.5, 0.5, (40, 3)), 10)
    take = LiveLinkTake.from_arrays(w, fps=60, head=head, start_seconds=3600 * 12 + 0.5)
    assert take.timecodes[0] == "12:00:00:30.000" and take.timecodes[1] == "12:00:00:31.000"
    back = read_csv(write_csv(tmp_path / "r.csv", take))
    np.testing.assert_array_equal(back.weights, w)
    np.testing.assert_array_equal(back.head, head)
    assert back.fps == 60.0


@pytest.mark.parametrize("tc", ["00:00:00:00.000", "12:21:59:06.595", "23:59:59:59.999", "16:48:39:43.245"])
def test_timecode_round_trip(tc):
    s = parse_timecode(tc, 60)
    assert format_timecode(s, 60) == tc


def test_timecode_parse_format():
    assert parse_timecode("01:02:03:15", 30) == pytest.approx(3723.5)
    assert parse_timecode("00:00:01:30.500", 60) == pytest.approx(1.5 + 0.5 / 60)
    for s in np.random.default_rng(1).uniform(0, 86399, 200):
        assert parse_timecode(format_timecode(s, 60), 60) == pytest.approx(s, abs=0.0005 / 60 + 1e-9)
    assert format_timecode(59.9999999, 30) == "00:01:00:00.000"  # carries into the next second
    assert format_timecode(86400 + 1, 30, digits=0) == "00:00:01:00"  # wraps at 24 h
    assert format_timecode(1 / 120 * 7, 120) == "00:00:00:007.000"
    for bad in ("12:00:00", "12:61:00:00", "12:00:00:60.000", "ab:00:00:00", "12:00:00;10", "-1:00:00:00"):
        with pytest.raises(ValueError):
            parse_timecode(bad, 60)
    with pytest.raises(ValueError):
        format_timecode(-1.0, 30)
