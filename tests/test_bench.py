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
