"""Slow: the benchmarks run end to end and the tracker keeps its accuracy (no timing assertions).

Run with ``python -m pytest -m slow``.
"""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def _bench(name, *args, timeout=900):
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_tracker_accuracy_on_the_synthetic_actor():
    res = _bench("bench_tracker.py", "--frames", "150", "--only", "synthetic,speed")
    d415, d435 = res["synthetic"]["d415"], res["synthetic"]["d435"]
    assert d415["tracked_fraction"] == 1.0 and d435["tracked_fraction"] == 1.0
    assert d415["mae_weights"] <= 0.025 and d435["mae_weights"] <= 0.045
    assert d415["rot_err_deg_median"] <= 0.5 and d415["trans_err_mm_median"] <= 1.0
    sp = res["speed"]
    assert sp["facecap_rot_err_deg_median"] < sp["open3d_rot_err_deg_median"]


def test_sink_and_playback_benchmarks_report_json():
    sinks = _bench("bench_sinks.py", "--frames", "300")
    assert sinks["results"]["livelink"]["send_failures"] == 0
    play = _bench("bench_playback.py", "--frames", "60", "--runs", "1")
    assert play["frames"] == 60 and play["fps_median"] > 0


def test_accuracy_benchmark_on_real_takes_runs(tmp_path):
    """The accuracy bench end to end (quick): every face tracked, the built-in rig far better than
    chance on its own head and on an unseen identity, a second rig file scored beside it, and the
    diagnostic sections (held expressions, the information bound) filled."""
    from facecap import metrics
    from facecap.formats import load_rig

    other = load_rig().save(tmp_path / "copy.npz")
    res = _bench("bench_accuracy.py", "--quick", "--no-mediapipe", "--rig-b", str(other), timeout=1200)
    ident = res["faces"]["identity1_d415"]
    assert ident["builtin"]["tracked_fraction"] > 0.95 and ident["rig_b"]["tracked_fraction"] > 0.95
    assert ident["builtin"]["mae50"] < 0.2 and abs(ident["rig_b"]["mae50"] - ident["builtin"]["mae50"]) < 0.02
    own = res["faces"]["ict_d415"]
    assert own["builtin"]["mae50"] < 0.12 and own["builtin+prior"]["mae50"] < own["builtin"]["mae50"]
    assert "builtin+prior_other_performer" in own and 0 <= own["builtin"]["constant_share"] <= 1
    held = res["held_expressions"]
    # a light L1 reads held expressions with less shrinkage than the default, the prior with the most
    assert held["lambda_s_0.1"]["main_gain_median"] > held["builtin"]["main_gain_median"] - 0.02
    assert held["builtin+prior"]["main_gain_median"] < held["builtin"]["main_gain_median"]
    info = res["information"]
    assert info["frames"] > 0 and set(info["weight_sd"]) == set(metrics.DEPTH_VISIBLE)
    assert info["weight_sd"]["jawOpen"] < info["weight_sd"]["eyeWideLeft"]  # the jaw is seen, lids barely


def test_acquisition_benchmark_has_no_coin_flips():
    acq = _bench("bench_tracker.py", "--only", "acquisition")["acquisition"]["three_starts"]
    assert acq["failures_mae_over_0.04"] <= 1 and acq["mae_median"] < 0.03


def test_truedepth_bench_acquires_the_frontal_photo(tmp_path):
    from conftest import shared_path

    shared_path("truedepth_rgbd", "iphone14_truedepth_face_frontal_meta.json")
    res = _bench(
        "bench_truedepth.py", "--photos", "iphone14_truedepth_face_frontal", "--out-dir", str(tmp_path)
    )
    for rig in ("ict",):
        r = res["iphone14_truedepth_face_frontal"][rig]
        assert r["tracked"] and r["rms_mm"] < 4.0 and r["mask_ray_residual"]["median_mm"] < 6.0
        yaw, pitch, roll = r["yaw_pitch_roll_deg"]
        assert abs(yaw) < 10 and abs(pitch) < 15 and abs(roll) < 10
        assert (tmp_path / f"iphone14_truedepth_face_frontal__{rig}.png").is_file()


def test_calibration_benchmark_runs():
    """The calibration bench end to end on one performer (short takes): the fitted neutral is within
    0.5 mm of the truth and the actor tracks better than the generic rig; trimesh's NICP scored beside it."""
    res = _bench("bench_calibration.py", "--identities", "1", "--frames", "40", "--rgb", timeout=1200)
    p = res["performers"]["performer1"]
    assert p["neutral_mm"]["actor"]["median"] < 0.5 < p["neutral_mm"]["generic"]["median"]
    assert p["trimesh"]["seconds"] > 0 and p["missing_steps"] == []
    assert p["tracking"]["actor"]["mae50"] < p["tracking"]["generic"]["mae50"]
    assert p["tracking"]["actor_rgb"]["tracked_fraction"] > 0.9 and p["tracking"]["mediapipe"]["mae50"] > 0


def test_landmark_pipeline_benchmark_runs():
    res = _bench("bench_landmarks.py", "--frames", "60", "--rounds", "1", "--acquisitions", "8")
    acq = res["acquisition"]
    assert acq["detected"] > 0.9 and acq["landmarks"]["acquire_ms_median"] > 0
    fps = res["fps_median"]
    assert set(fps) == {"mediapipe_alone", "mediapipe_alone_confined", "depth_only", "inline", "pipelined",
                        "pipelined_db3", "live_90fps"}  # fmt: skip
    assert all(v > 0 for v in fps.values())
    best = max(fps["mediapipe_alone"], fps["mediapipe_alone_confined"])
    assert res["pipelined_over_mediapipe_alone"] == pytest.approx(fps["pipelined"] / best, abs=2e-3)
    assert res["latency_ms"]["live_90fps"]["p95"] >= res["latency_ms"]["live_90fps"]["median"] > 0


def test_gaze_benchmark_runs():
    res = _bench("bench_gaze.py", "--frames", "30")
    assert res["iris_true_landmarks"]["gaze_err_deg_median"] < res["depth_only"]["gaze_err_deg_median"]
    assert res["iris"]["eyelook_mae"] < res["mediapipe"]["eyelook_mae"]
    assert res["iris"]["gaze_err_deg_median"] < res["iris_unrefined"]["gaze_err_deg_median"]  # 1.5 vs 2.8 deg


def test_rgb_benchmark_runs():
    res = _bench("bench_rgb.py", "--frames", "20", "--video-frames", "40", "--no-identity")
    assert res["synthetic"]["ict"]["rgb_only"]["tracked_fraction"] > 0.9
    assert res["synthetic"]["ict"]["rgb_only_no_prior"]["tracked_fraction"] > 0.9
    assert res["videos_summary"]["face_fraction_min"] >= 0.95
    assert all(
        0 <= v["iris_refined_fraction"] <= 1 and v["gaze_jitter_deg"] >= 0 for v in res["videos"].values()
    )


def test_online_identity_benchmark_runs():
    """The online identity bench (one performer, short takes): the adapter solves on the rest session and
    its neutral is closer to the performer's than the generic one."""
    res = _bench("bench_online_identity.py", "--identities", "1", "--frames", "30")
    rest = res["rest"]["identity21"]
    assert rest["adapted"]["error"] is None and rest["adapted"]["solved_after_frames"] is not None
    assert rest["adapted"]["neutral_mm"] < 0.6 * rest["generic"]["neutral_mm"]
    assert set(res["takes"]) == {"identity21", "ict"}
    assert all(0 < res["takes"][k][r]["mae50"] < 0.3 for k in res["takes"] for r in ("generic", "adapted"))


def test_smoothing_benchmark_runs():
    """The smoothing bench (short takes): the smoothed weights of the same run jitter less than the raw."""
    res = _bench("bench_smoothing.py", "--frames", "20")
    assert res["rest"]["smoothed"]["mean_change"] < res["rest"]["raw"]["mean_change"]
    for face in ("ict_head", "unseen_identity_1"):
        r = res["takes"][face]
        assert r["smoothed"]["jitter"]["mean_change"] < r["raw"]["jitter"]["mean_change"]
        assert 0 < r["smoothed"]["mae"] < 0.3
    assert res["steps"]["smoothed"]["rise"]["median"] <= 8


def test_view_benchmark_runs():
    """The live view bench (short runs): a client watching the stream received pictures."""
    res = _bench("bench_view.py", "--frames", "90", "--rounds", "1")
    assert res["median"]["watched"]["pictures_per_s"] > 5 and res["median"]["none"]["pictures_per_s"] == 0
    assert res["draw_and_encode_ms_median"] > 0 and res["fit_ratio_watched_vs_none"] > 0
