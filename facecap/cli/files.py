"""Commands that read and write files: rig, take, export, synth, retarget, info, devices."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_rig_info(args: argparse.Namespace) -> int:
    from ..formats import load_rig

    rig = load_rig(args.rig)
    s = rig.summary()
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    print(f"rig        {s['name']}")
    print(f"vertices   {s['vertices']}   triangles {s['triangles']}")
    print(f"extent     {' x '.join(f'{e:.0f}' for e in s['extent_mm'])} mm (x, y, z)")
    print(f"landmarks  {s['landmarks']} MediaPipe-indexed points")
    print(f"masks      {', '.join(f'{k} ({v} vertices)' for k, v in s['masks'].items())}")
    print(f"shapes     {s['shapes']} ARKit blendshapes, peak motion in mm:")
    items = list(s["peak_motion_mm"].items())
    for i in range(0, len(items), 3):
        print("  " + "".join(f"{n:<22}{p:6.1f}   " for n, p in items[i : i + 3]))
    return 0


def cmd_rig_export(args: argparse.Namespace) -> int:
    from ..formats import load_rig
    from ..gltf import export_rig

    rig = load_rig(args.rig)
    refuse_overwrite(args.out, args)
    path = export_rig(rig, args.out)
    print(f"wrote {path} ({len(rig.names)} morph targets, {rig.n_vertices} vertices)")
    return 0


def refuse_overwrite(out, args: argparse.Namespace) -> None:
    """``ValueError`` when ``out`` exists and ``--force`` was not given."""
    from pathlib import Path

    if Path(out).exists() and not getattr(args, "force", False):
        raise ValueError(f"{out} exists; pass --force to replace it")


def load_take_arg(args: argparse.Namespace):
    """``args.take`` loaded (``--skip-bad-rows`` for a Live Link CSV); skipped rows are reported."""
    from ..take import as_take

    take = as_take(args.take, skip_bad_rows=getattr(args, "skip_bad_rows", False))
    lines = take.meta.get("skipped_lines") or []
    if lines:
        shown = ", ".join(map(str, lines[:10])) + (
            f" ... ({len(lines) - 10} more)" if len(lines) > 10 else ""
        )
        print(f"facecap: warning: {args.take}: skipped {len(lines)} malformed row(s), line(s) {shown}",
              file=sys.stderr)  # fmt: skip
    return take


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import default_out_path, export_take, infer_format

    if args.format is None and args.out is None:
        raise ValueError("give --format (e.g. --format glb) or an --out path whose suffix names the format")
    fmt = args.format or infer_format(args.out)
    out = args.out or default_out_path(args.take, fmt)
    refuse_overwrite(out, args)
    take = load_take_arg(args)
    path = export_take(take, out, fmt, rig=args.rig, progress=True)
    print(f"wrote {path} ({fmt}, {len(take)} frames at {take.fps:g} fps)")
    return 0


def cmd_take_info(args: argparse.Namespace) -> int:

    take = load_take_arg(args)
    s = take.summary()
    m = take.meta
    if args.json:
        print(json.dumps({**s, "meta": m}, indent=2, default=str))
        return 0
    print(f"take        {args.take}")
    print(f"frames      {s['frames']} at {s['fps']:g} fps, {s['duration_s']:.2f} s")
    if s["lost"] or s["recorded"] != s["frames"]:
        from ..take.recover import format_ranges

        lost = format_ranges([(a, b + 1) for a, b in s["lost_ranges"]])
        print(f"recovered   {s['frames']} of {s['recorded']} recorded; lost {s['lost']}: frames {lost}")
    for problem in (m.get("recovery") or {}).get("problems", []):
        print(f"damage      {problem}")
    print(f"timecode    {s['timecode_in']} -> {s['timecode_out']}")
    print(f"tracked     {s['tracked_frames']} frames ({s['tracked_percent']:.1f} %)")
    print(f"complete    {s['complete']}" + (f"  ({m['error']})" if m.get("error") else ""))
    for key in ("rig", "camera", "calibration", "start_time", "raw_rgbd", "source", "user"):
        if m.get(key) not in (None, {}, ""):
            print(f"{key:<11} {json.dumps(m[key]) if isinstance(m[key], (dict, list)) else m[key]}")
    if isinstance(m.get("versions"), dict):
        print("versions    " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v))
    return 0


def cmd_take_repair(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..take.recover import format_ranges
    from ..take.repair import repair_take

    src = Path(args.take)
    out = Path(args.out) if args.out else src.with_name(src.name + "-repaired")
    r = repair_take(src, out)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    for problem in r["problems"]:
        print(f"damage      {problem}")
    print(f"recorded    {r['recorded']} frames")
    print(f"recovered   {r['recovered']} frames -> {r['out']}")
    lost = format_ranges([(a, b + 1) for a, b in r["lost_ranges"]], limit=50)
    print(f"lost        {r['lost']} frames" + (f": {lost}" if r["lost"] else ""))
    if r["invalid_marked_untracked"]:
        bad = r["invalid_marked_untracked"]
        print(f"invalid     {len(bad)} tracked frames held NaN/inf or weights outside [0, 1]; kept as "
              f"untracked: {', '.join(map(str, bad[:20]))}" + (" ..." if len(bad) > 20 else ""))  # fmt: skip
    for seg in r.get("raw", []):
        how = "salvaged" if seg["salvaged"] else ("copied" if seg["messages"] else "unreadable, left out")
        unplayable = (
            "; no stream description, not playable" if seg["messages"] and not seg["playable"] else ""
        )
        print(f"raw RGB-D   {seg['segment']}: {how} ({seg['messages']} messages{unplayable})")
    return 0


def cmd_salvage(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..realsense import read_recording
    from ..realsense.salvage import salvage_db3

    src = Path(args.file)
    out = Path(args.out) if args.out else src.with_name(src.stem + ".salvaged.db3")
    r = salvage_db3(src, out)
    n = sum(1 for _ in read_recording(out, align=False))
    print(f"salvaged {r['messages']} messages ({n} RGB-D frames) of {src} -> {out}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..synth import record_synthetic_take

    out = Path(args.out)
    if out.suffix.lower() != ".db3":
        raise ValueError(f"--out must end in .db3 (RealSense ROS2 recording), got {out.name}")
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; pass --force to replace it")
    if args.frames is not None and args.frames < 1:
        raise ValueError("--frames must be at least 1")
    rec = record_synthetic_take(out, args.frames, camera=args.camera, distance=args.distance, fps=args.fps,
                                seed=args.seed, take_csv=args.take, max_angle_deg=args.max_angle,
                                noise=not args.no_noise, background=not args.no_background, rig=args.rig,
                                overwrite=args.force, progress=True)  # fmt: skip
    print(f"wrote {rec.path} ({rec.n_frames} frames, {rec.camera}, {rec.distance} m) "
          f"and ground truth {rec.truth_path.name}")  # fmt: skip
    return 0


def cmd_rig_preview(args: argparse.Namespace) -> int:
    from ..formats import load_rig
    from ..synth import rig_preview

    rig = load_rig(args.rig)
    refuse_overwrite(args.out, args)
    img = rig_preview(rig, args.out, tile=args.tile, cols=args.cols)
    print(f"wrote {args.out} ({img.size[0]}x{img.size[1]}, neutral + 52 expressions of {rig.name})")
    return 0


def cmd_retarget(args: argparse.Namespace) -> int:
    import numpy as np

    from ..retarget import apply_to_gltf, load_mapping

    take = load_take_arg(args)
    mapping = load_mapping(args.mapping, mirror=True if args.mirror else None)
    weights = np.nan_to_num(take.weights, nan=0.0)  # face-lost frames: neutral
    refuse_overwrite(args.out, args)
    out = apply_to_gltf(args.puppet, mapping, weights, take.fps, args.out)
    print(f"wrote {out} ({len(take)} frames at {take.fps:g} fps through mapping {mapping.name!r})")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from ..camera_access import access_problem, usb_cameras
    from ..realsense import NO_CAMERA_HELP, list_devices

    devices = list_devices()
    # a camera the USB bus shows but librealsense did not list: usually missing udev rules
    problem = None if devices else access_problem(usb_cameras())
    if args.json:
        print(json.dumps(devices, indent=2))
        if problem:
            print(problem, file=sys.stderr)
        return 0
    if not devices:
        print(problem or NO_CAMERA_HELP)
        return 0
    for d in devices:
        usb = d["usb_type"] or "?"
        slow = "  (USB 2: too slow for depth + color; use a USB 3 port)" if usb.startswith("2") else ""
        line = d["product_line"] or ""
        print(f"{d['name']}  serial {d['serial']}  firmware {d['firmware']}  USB {usb}  {line}{slow}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..realsense import recording_info

    info = recording_info(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"file       {info['path']} ({info['size_bytes'] / 1e6:.1f} MB, {info['format']})")
    print(f"device     {info['device'] or 'unknown'}")
    for s in info["streams"]:
        size = f"{s['width']}x{s['height']}" if "width" in s else ""
        k = s.get("intrinsics")
        lens = f"  fx {k['fx']:.1f} fy {k['fy']:.1f} cx {k['cx']:.1f} cy {k['cy']:.1f}" if k else ""
        print(f"stream     {s['stream']:<6} {s['format']:<6} {size:>9} @ {s['fps']} fps{lens}")
    frames = "unknown" if info["frames"] is None else str(info["frames"])
    dur = "" if info["duration_s"] is None else f" over {info['duration_s']:.2f} s"
    print(f"frames     {frames}{dur}")
    if info["depth_scale"]:
        print(f"depth      {info['depth_scale'] * 1000:.3g} mm per z16 step")
    if info["aligned"] is not None:
        print(f"aligned    {'yes' if info['aligned'] else 'no (facecap aligns depth to color on playback)'}")
    return 0
