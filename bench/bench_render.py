"""Benchmark: how fast does the synthetic actor render 640x480 RGB-D, and does its noise follow the z² law?

Renders a procedural performance with head motion through :class:`facecap.synth.SyntheticActor` (D415
preset, 640x480, one process) and reports the median frame time with noise off and on (wall clock, and
this thread's CPU time, which a busy shared machine inflates less), the time of the
Numba rasterizer alone, and -- as the baseline in the same process, on the same posed mesh -- Open3D's
``RaycastingScene.cast_rays`` (depth + triangle ids only, no shading, all cores). It also measures the
noise model on a flat wall at several distances and fits ``sigma = a z^b`` (expected b = 2).

    .venv/bin/python bench/bench_render.py                      # built-in rig, JSON on stdout
    .venv/bin/python bench/bench_render.py --rig ../shared/data/ict_facekit --frames 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from facecap import synth
from facecap.formats import load_rig
from facecap.synth.render import _rasterize  # timed alone below

_CPU: dict[int, float] = {}  # id(fn) -> median CPU milliseconds of the last _median_ms call


def _median_ms(fn, n: int) -> float:
    """Median wall-clock milliseconds of ``fn(i)``; the median CPU time of this thread goes to _CPU
    (on a shared machine wall time includes waiting for a core, CPU time does not)."""
    fn(0)  # warm-up (JIT compile / caches)
    times, cpu = [], []
    for i in range(n):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    _CPU[id(fn)] = float(np.median(cpu) * 1e3)
    return float(np.median(times) * 1e3)


def _open3d_ms(cam_vertices: list[np.ndarray], triangles: np.ndarray, k, n: int) -> float | None:
    try:
        from facecap.camera_access import import_open3d

        o3d = import_open3d()
    except ImportError:
        return None
    ys, xs = np.mgrid[0 : k.height, 0 : k.width].astype(np.float32)
    d = np.stack([(xs - k.cx) / k.fx, (ys - k.cy) / k.fy, np.ones_like(xs)], -1)
    rays = o3d.core.Tensor(np.concatenate([np.zeros_like(d), d], -1))
    tri = o3d.core.Tensor(triangles.astype(np.uint32))

    def once(i: int) -> None:
        scene = o3d.t.geometry.RaycastingScene()  # the mesh deforms every frame: rebuild the BVH
        scene.add_triangles(o3d.core.Tensor(cam_vertices[i % len(cam_vertices)]), tri)
        ans = scene.cast_rays(rays)
        t_hit = ans["t_hit"].numpy()
        depth = np.where(np.isfinite(t_hit), t_hit, 0.0).astype(np.float32)  # ray z = 1: t is depth
        ans["primitive_ids"].numpy()
        return depth

    return _median_ms(once, n)


def _noise_law(actor: synth.SyntheticActor) -> dict:
    k, cam = actor.intrinsics, actor.camera
    model = synth.DepthNoise(depth_unit=1e-6)
    zs = np.array([0.4, 0.6, 0.8, 1.0, 1.2, 1.6])
    measured = []
    for i, z in enumerate(zs):
        noisy = synth.apply_depth_noise(
            np.full((k.height, k.width), z, np.float32), k.fx, cam.baseline, model, i
        )
        measured.append(float((noisy - z)[1:-1, 1:-1].std()))
    expect = model.sigma(zs, k.fx, cam.baseline)
    b, log_a = np.polyfit(np.log(zs), np.log(measured), 1)
    return {
        "camera": cam.name,
        "z_m": zs.tolist(),
        "sigma_measured_mm": [round(m * 1e3, 4) for m in measured],
        "sigma_model_mm": [round(float(e) * 1e3, 4) for e in expect],
        "max_rel_error": round(float(np.max(np.abs(np.array(measured) / expect - 1))), 4),
        "fit_exponent": round(float(b), 4),
        "fit_coefficient_mm_at_1m": round(float(np.exp(log_a)) * 1e3, 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rig", help="rig (.npz, .glb or ICT-FaceKit folder); default: built-in")
    ap.add_argument("--frames", type=int, default=200, help="frames per measurement (default 200)")
    ap.add_argument("--camera", default="d415", choices=sorted(synth.CAMERAS))
    ap.add_argument("--distance", type=float, default=0.6)
    args = ap.parse_args(argv)

    rig = load_rig(args.rig)
    n = args.frames
    weights = synth.procedural_performance(n, 30, seed=0)
    rot, trans = synth.head_motion(n, 30, seed=1, distance_m=args.distance)
    clean = synth.SyntheticActor(rig, args.camera, args.distance, noise=False, seed=0)
    noisy = synth.SyntheticActor(rig, args.camera, args.distance, noise=True, seed=0)
    k = clean.intrinsics
    tris = synth.render_triangles(rig)

    def render_clean(i: int) -> None:
        clean.render(weights[i], rot[i], trans[i], index=i)

    def render_noisy(i: int) -> None:
        noisy.render(weights[i], rot[i], trans[i], index=i)

    ms_clean = _median_ms(render_clean, n)
    ms_noisy = _median_ms(render_noisy, n)
    cams = [(rig.evaluate(weights[i]) @ rot[i].T + trans[i]).astype(np.float32) for i in range(n)]

    def raster(i: int) -> None:
        depth = np.full((k.height, k.width), np.inf, np.float32)
        tri_id = np.full((k.height, k.width), -1, np.int32)
        bary = np.empty((k.height, k.width, 3), np.float32)
        _rasterize(cams[i], k.fx, k.fy, k.cx, k.cy, tris, 0.05, depth, tri_id, bary)

    ms_raster = _median_ms(raster, n)
    res = clean.render_clean(weights[0], rot[0], trans[0])
    ms_o3d = _open3d_ms(cams, tris, k, max(20, n // 4))
    out = {
        "benchmark": "synthetic actor render, 640x480 RGB-D",
        "rig": rig.name,
        "vertices": rig.n_vertices,
        "triangles_drawn": int(len(tris)),
        "face_pixels": int((res.triangle >= 0).sum()),
        "camera": args.camera,
        "distance_m": args.distance,
        "frames": n,
        "render_clean_ms_median": round(ms_clean, 3),
        "render_clean_fps": round(1e3 / ms_clean, 1),
        "render_noisy_ms_median": round(ms_noisy, 3),
        "render_noisy_fps": round(1e3 / ms_noisy, 1),
        "render_clean_cpu_ms_median": round(_CPU[id(render_clean)], 3),
        "render_noisy_cpu_ms_median": round(_CPU[id(render_noisy)], 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "rasterize_only_ms_median": round(ms_raster, 3),
        "baseline_open3d_raycast_ms_median": None if ms_o3d is None else round(ms_o3d, 3),
        "baseline_open3d_note": "RaycastingScene rebuilt per frame (deforming mesh), depth + ids, no shading",
        "noise_law": _noise_law(clean),
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "numpy": np.__version__,
        },
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
