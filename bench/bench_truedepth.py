"""Real iPhone TrueDepth photos (../shared/data/truedepth_rgbd): acquisition, fit residual and an overlay.

    python bench/bench_truedepth.py [--photos NAME,...] [--rigs ict] [--repeats N]
                                    [--out-dir DIR] [--out FILE.json]

Each photo's 8-bit disparity PNG is decoded with its meta JSON (disparity[1/m] = min + v/255 * (max - min),
depth = 1 / disparity; HEIF depth representation for the iPhone 14 files, Apple's apdi float range for
the iPhone XS) into a 480x640 (portrait) depth frame with the stored intrinsics scaled to it. The colour
PNG is the same view resized to the depth size (Apple registers the two), so it shares the intrinsics.

Per photo and rig (the built-in ICT-FaceKit rig; others by name) the same frame is tracked N times
(D435 preset; the first call acquires, the rest warm-start) and the JSON on stdout reports: tracked,
``rms_mm`` (the fit's inlier point-to-plane RMS), quality, head yaw/pitch/roll in degrees, the top-5
weights, the acquisition time, and the median distance along the camera ray between the posed "track"
mask vertices and the depth surface (nearest pixel, valid depth only). The baseline, in the same run,
is Open3D's point-to-plane ICP (rigid) of the rig's neutral mask to the photo's point cloud, started
from a frontal pose at the detected face and from facecap's acquisition: fitness, inlier RMSE, time.

A photo whose stored focal lengths differ (fx != fy: the iPhone 14 chin-up file) is also run with
fx = fy as a second entry, ``<name>@fx=fy``, since the stored fx looks wrong (see ``_fx_fy_variant``).

Pictures: ``<out-dir>/<photo>__<rig>.png``, the colour photo (left) and the depth image (right) with the
fitted mesh's front-facing "track" triangles drawn on them, and a label (rig, residual, angles).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

from facecap import Frame, Intrinsics, Tracker, TrackerConfig, arkit, load_rig, pose  # noqa: E402
from facecap.tracker import detect_face  # noqa: E402

PHOTOS = (
    "iphone14_truedepth_face_frontal",
    "iphone14_truedepth_face_chin_up",
    "iphoneXS_truedepth_face_chin_up",
)
RIGS = {"ict": "ict"}


def truedepth_frame(name: str, data: Path = SHARED / "truedepth_rgbd", fx_fy: bool = False) -> Frame:
    """A TrueDepth photo as a Frame: depth (640, 480) float32 metres and the registered colour image.

    The conversion of ``tests/test_tracker.py::_truedepth_frame``, extended to the iPhone XS file (whose
    meta gives Apple's apdi float range instead of a HEIF depth representation). ``fx_fy`` replaces the
    stored fx by fy (square pixels).
    """
    from PIL import Image

    meta = json.loads((data / f"{name}_meta.json").read_text())
    v = np.asarray(Image.open(data / f"{name}_depth_640x480_8bit.png"), np.float64)
    if "heif_depth_representation" in meta:
        rep = meta["heif_depth_representation"]
        lo, hi = rep["d_min"], rep["d_max"]
    else:
        rep = meta["apple_apdi"]
        lo, hi = rep["FloatMinValue"], rep["FloatMaxValue"]
    depth = (1.0 / (lo + v / 255.0 * (hi - lo))).astype(np.float32)
    fx, fy, cx, cy = meta["fx_fy_cx_cy_scaled_to_depth"]
    intr = Intrinsics(depth.shape[1], depth.shape[0], fy if fx_fy else fx, fy, cx, cy)
    color = np.asarray(Image.open(data / f"{name}_color_480x640.png").convert("RGB"))
    if color.shape[:2] != depth.shape:
        raise SystemExit(f"{name}: colour {color.shape[:2]} and depth {depth.shape} sizes differ")
    return Frame(depth=depth, depth_intrinsics=intr, color=color, color_intrinsics=intr)


def _fx_fy_variant(name: str, data: Path = SHARED / "truedepth_rgbd") -> bool:
    fx, fy = json.loads((data / f"{name}_meta.json").read_text())["fx_fy_cx_cy_scaled_to_depth"][:2]
    return abs(fx / fy - 1) > 0.01


def _posed(rig, w, R, t, mask):
    return (R @ rig.evaluate(w)[mask].T).T + t


def ray_residual_mm(points: np.ndarray, depth: np.ndarray, intr: Intrinsics) -> dict:
    """Distance along the camera ray from each point to the depth surface at its (nearest) pixel.

    points : (n, 3) float, metres, camera frame. Pixels without depth are skipped.
    Returns median and 90th percentile in mm and the fraction of points that landed on valid depth.
    """
    z = points[:, 2]
    uv = intr.project(points)
    u, v = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
    inside = (z > 0) & (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
    d = np.zeros(len(points))
    d[inside] = depth[v[inside], u[inside]]
    ok = inside & (d > 0)
    if not ok.any():
        return {"median_mm": None, "p90_mm": None, "valid_fraction": 0.0}
    r = np.linalg.norm(points[ok], axis=1) * np.abs(1.0 - d[ok] / z[ok]) * 1000
    return {
        "median_mm": round(float(np.median(r)), 3),
        "p90_mm": round(float(np.percentile(r, 90)), 3),
        "valid_fraction": round(float(ok.mean()), 3),
    }


def _angles(R) -> list[float]:
    return [round(float(a), 2) for a in np.degrees(pose.head_euler(R))]


def track_photo(rig, frame: Frame, repeats: int) -> tuple[dict, object, object]:
    """Track one frame ``repeats`` times; returns (numbers, final state, acquisition state)."""
    tr = Tracker(rig=rig, intrinsics=frame.depth_intrinsics, config=TrackerConfig.for_camera("d435"))
    states, ms = [], []
    for _ in range(repeats):
        states.append(tr.track(frame))
        ms.append(tr.last_fit_ms)
    s = states[-1]
    out = {
        "tracked": bool(s.tracked),
        "tracked_calls": f"{sum(x.tracked for x in states)}/{repeats}",
        "acquired_on_first_call": bool(states[0].tracked),
        "rms_mm": round(s.rms_mm, 3) if s.tracked else None,
        "quality": round(s.quality, 3),
        "yaw_pitch_roll_deg": _angles(s.rotation) if s.tracked else None,
        "translation_m": [round(float(x), 4) for x in s.translation] if s.tracked else None,
        "top5_weights": {
            arkit.ARKIT_NAMES[i]: round(float(s.weights[i]), 3) for i in np.argsort(-s.weights)[:5]
        }
        if s.tracked
        else None,
        "acquire_ms": round(ms[0], 1),
        "warm_fit_ms_median": round(float(np.median(ms[1:])), 2) if repeats > 1 else None,
        "mask_ray_residual": ray_residual_mm(
            _posed(rig, s.weights, s.rotation, s.translation, rig.masks["track"]),
            frame.depth,
            frame.depth_intrinsics,
        )
        if s.tracked
        else None,
    }
    return out, s, states[0]


def open3d_icp(rig, frame: Frame, init: np.ndarray, max_dist: float = 0.01) -> dict:
    """Open3D point-to-plane ICP (rigid) of the neutral "track" mask to the photo's point cloud near the
    face, from the 4x4 rig -> camera pose ``init``."""
    from facecap.camera_access import import_open3d

    o3d = import_open3d()
    intr = frame.depth_intrinsics
    mask = rig.masks["track"]
    near = float(np.percentile(frame.depth[frame.depth > 0], 0.5))
    d = np.where((frame.depth > 0) & (frame.depth < near + 0.25), frame.depth, 0).astype(np.float32)
    K = o3d.camera.PinholeCameraIntrinsic(intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy)
    src = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(rig.neutral[mask].astype(np.float64)))
    crit = o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=30)
    t0 = time.perf_counter()
    tgt = o3d.geometry.PointCloud.create_from_depth_image(
        o3d.geometry.Image(d), K, depth_scale=1.0, depth_trunc=2.0, stride=2
    )
    tgt.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.01, max_nn=30))
    tgt.orient_normals_towards_camera_location(np.zeros(3))
    reg = o3d.pipelines.registration.registration_icp(
        src, tgt, max_dist, init, o3d.pipelines.registration.TransformationEstimationPointToPlane(), crit
    )
    ms = (time.perf_counter() - t0) * 1000
    T = np.asarray(reg.transformation)
    return {
        "fitness": round(float(reg.fitness), 3),
        "inlier_rmse_mm": round(float(reg.inlier_rmse) * 1000, 3),
        "yaw_pitch_roll_deg": _angles(T[:3, :3]),
        "ms": round(ms, 1),
        "mask_ray_residual": ray_residual_mm(
            _posed(rig, np.zeros(52), T[:3, :3], T[:3, 3], mask), frame.depth, intr
        ),
    }


def _frontal_init(rig, frame: Frame) -> np.ndarray | None:
    """Frontal pose with the rig's face-front centre on the face ``detect_face`` finds (as the tracker's
    first acquisition hypothesis does)."""
    centre = detect_face(frame.depth, frame.depth_intrinsics)
    if centre is None:
        return None
    b0 = rig.neutral[rig.masks["track"]]
    front = np.median(b0[b0[:, 2] > np.percentile(b0[:, 2], 40)], axis=0)
    T = np.eye(4)
    T[:3, :3] = pose.FRONTAL
    T[:3, 3] = centre - pose.FRONTAL @ front
    return T


def _depth_rgb(depth: np.ndarray) -> np.ndarray:
    """Grey image of the nearest 25 cm (brighter = nearer), so the face's relief shows."""
    ok = depth > 0
    lo = float(np.percentile(depth[ok], 0.5)) if ok.any() else 0.0
    g = np.clip((lo + 0.25 - depth) / 0.25, 0, 1) * 255 * ok
    return np.repeat(g.astype(np.uint8)[..., None], 3, axis=2)


def draw_overlay(rig, state, frame: Frame, label: str, path: Path) -> Path:
    """Colour (left) with the posed "track" mesh flat-shaded at 45 % opacity, and depth (right) with
    its wireframe; front-facing triangles only, nearest drawn last. Written to ``path`` (PNG)."""
    from PIL import Image, ImageDraw

    h, w = frame.depth.shape
    canvas = Image.new("RGBA", (2 * w, h + 40), (0, 0, 0, 255))
    canvas.paste(Image.fromarray(frame.color).convert("RGBA"), (0, 0))
    canvas.paste(Image.fromarray(_depth_rgb(frame.depth)).convert("RGBA"), (w, 0))
    shaded = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    wire = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    if state.tracked:
        verts = (state.rotation @ rig.evaluate(state.weights).T).T + state.translation
        tris = rig.triangles[rig.masks["track"][rig.triangles].all(1)]
        a, b, c = (verts[tris[:, k]] for k in range(3))
        n = np.cross(b - a, c - a)
        centre = (a + b + c) / 3
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        keep = np.einsum("ij,ij->i", n, centre) < 0  # counter-clockwise seen from outside: facing us
        light = np.array([-0.5, -0.6, -1.0]) / np.linalg.norm([-0.5, -0.6, -1.0])  # from upper left
        cos = np.clip(n[keep] @ light, 0, 1) ** 2
        order = np.argsort(-centre[keep, 2])  # far first
        tris, cos = tris[keep][order], cos[order]
        # the colour image is registered to depth; its own intrinsics (scaled if its size differed)
        ci = frame.color_intrinsics or frame.depth_intrinsics
        uv_c = ci.project(verts)
        uv_d = frame.depth_intrinsics.project(verts) + [w, 0]
        ds, dw = ImageDraw.Draw(shaded), ImageDraw.Draw(wire)
        for tri, k in zip(tris, cos, strict=True):
            g = int(40 + 215 * k)
            ds.polygon([tuple(q) for q in uv_c[tri]], fill=(g // 3, g, g // 2, 255))
            dw.polygon([tuple(q) for q in uv_d[tri]], outline=(0, 200, 90, 255))
        shaded.putalpha(shaded.getchannel("A").point(lambda x: x * 115 // 255))
        wire.putalpha(wire.getchannel("A").point(lambda x: x * 150 // 255))
    out = Image.alpha_composite(Image.alpha_composite(canvas, shaded), wire)
    draw = ImageDraw.Draw(out)
    for k, line in enumerate(label.split("\n")[:2]):
        draw.text((6, h + 4 + 17 * k), line, fill=(255, 255, 255, 255))
    out.convert("RGB").save(path)
    return path


def _warm_up(rigs: dict, frame: Frame) -> None:
    """One throwaway acquisition per rig, so the timed acquisitions do not include JIT compilation."""
    for rig in rigs.values():
        Tracker(rig=rig, intrinsics=frame.depth_intrinsics).track(frame)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", default=",".join(PHOTOS), help="comma-separated photo names (default: all 3)")
    ap.add_argument("--rigs", default="ict", help="comma-separated built-in rig names (default: ict)")
    ap.add_argument("--repeats", type=int, default=8, help="track calls on the same frame (default 8)")
    ap.add_argument("--no-fx-fy", action="store_true", help="skip the fx = fy variant of anisotropic files")
    ap.add_argument(
        "--out-dir", default="bench-results/truedepth", help="folder for the overlay PNGs (created)"
    )
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    data = SHARED / "truedepth_rgbd"
    if not data.is_dir():
        raise SystemExit(f"shared data missing: {data}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rigs = {r: load_rig(RIGS[r]) for r in args.rigs.split(",")}
    cases = []
    for name in args.photos.split(","):
        cases.append((name, name, False))
        if not args.no_fx_fy and _fx_fy_variant(name, data):
            cases.append((f"{name}@fx=fy", name, True))
    res = {"bench": "truedepth", "repeats": args.repeats, "config": "TrackerConfig.for_camera('d435')"}
    t_all = time.perf_counter()
    _warm_up(rigs, truedepth_frame(cases[0][1], data))
    for key, name, fx_fy in cases:
        frame = truedepth_frame(name, data, fx_fy=fx_fy)
        di = frame.depth_intrinsics
        entry = {"intrinsics_fx_fy_cx_cy": [round(x, 2) for x in (di.fx, di.fy, di.cx, di.cy)]}
        for rname, rig in rigs.items():
            r, s, first = track_photo(rig, frame, args.repeats)
            base = {}
            init = _frontal_init(rig, frame)
            if init is not None:
                base["from_frontal"] = open3d_icp(rig, frame, init)
            if first.tracked:
                T = np.eye(4)
                T[:3, :3], T[:3, 3] = first.rotation, first.translation
                base["from_facecap_acquisition"] = open3d_icp(rig, frame, T)
            r["open3d_icp_rigid_neutral"] = base
            if s.tracked:
                ypr = r["yaw_pitch_roll_deg"]
                label = (
                    f"{key} | {rname} | rms {r['rms_mm']:.2f} mm, ray median "
                    f"{r['mask_ray_residual']['median_mm']:.2f} mm, q {r['quality']:.2f}\n"
                    f"yaw {ypr[0]:.1f}  pitch {ypr[1]:.1f}  roll {ypr[2]:.1f} deg"
                )
            else:
                label = f"{key} | {rname} | NOT TRACKED"
            png = out_dir / f"{key.replace('@', '__').replace('=', '')}__{rname}.png"
            r["png"] = str(draw_overlay(rig, s, frame, label, png))
            entry[rname] = r
            print(f"[{key} {rname}: tracked={r['tracked']}]", file=sys.stderr)
        res[key] = entry
    res["seconds"] = round(time.perf_counter() - t_all, 1)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
