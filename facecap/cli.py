"""The ``facecap`` command line. The parser is built inside :func:`main`, never at import."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__

EPILOG = """\
examples:
  facecap demo                       synthesize a take, track it, score it against ground truth
  facecap demo --frames 90 --out res write results.json and a plot of tracked vs. true curves
  facecap track take.db3 --out w.csv track a RealSense recording
  facecap live --vmc 127.0.0.1:39539 --record takes/t1
                                     track the camera, stream to a VTuber app, record a take (Ctrl-C stops)
  facecap play take.db3 --realtime --livelink 192.168.1.20
                                     replay a recording through the tracker into Unreal Live Link
  facecap rig info                   what the built-in tracking rig contains
  facecap rig export face.glb        the rig as glTF with 52 named morph targets (opens in Blender)

Run `facecap COMMAND --help` for each command's options.
"""


def _cmd_rig_info(args: argparse.Namespace) -> int:
    from .formats import load_rig

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


def _cmd_rig_export(args: argparse.Namespace) -> int:
    from .formats import load_rig
    from .gltf import export_rig

    rig = load_rig(args.rig)
    path = export_rig(rig, args.out)
    print(f"wrote {path} ({len(rig.names)} morph targets, {rig.n_vertices} vertices)")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import format_table, run_demo
    from .pipeline import format_outputs, landmarker_from_args, outputs_from_args

    # --vmc/--osc/--facecap/--livelink/--record/--retarget: every tracked frame also goes to Outputs
    with outputs_from_args(args, fps=30.0, meta={"source": "facecap demo", "seed": args.seed}) as outputs:
        landmarker = landmarker_from_args(args)
        try:
            res = run_demo(frames=args.frames, out=args.out, camera=args.camera, distance=args.distance,
                           seed=args.seed, max_angle_deg=args.max_angle, progress=not args.json,
                           keep_recording=args.keep_recording, landmarker=landmarker,
                           sinks=outputs if (outputs.sinks or outputs.record) else None)  # fmt: skip
        finally:
            if landmarker is not None:
                landmarker.close()
    st = outputs.stats
    if args.json:
        print(json.dumps(res | ({"streams": st} if st["frames"] else {}), indent=2))
    else:
        print(format_table(res))
        if args.out:
            print(f"results in {args.out}/ (results.json, tracked.png)")
        if st["frames"]:
            print(format_outputs(st))
    return 0


def _cmd_track(args: argparse.Namespace) -> int:
    from .track import track_file

    n = track_file(args.file, args.out, rig=args.rig, fmt=args.format, progress=True)
    print(f"tracked {n['frames']} frames ({n['tracked_fraction'] * 100:.1f}% with a face) -> {args.out}")
    if n["dropped"]:
        print(f"dropped {n['dropped']} depth frames without a colour frame to align to")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import default_out_path, export_take, infer_format
    from .take import as_take

    if args.format is None and args.out is None:
        raise ValueError("give --format (e.g. --format glb) or an --out path whose suffix names the format")
    fmt = args.format or infer_format(args.out)
    out = args.out or default_out_path(args.take, fmt)
    take = as_take(args.take)
    path = export_take(take, out, fmt, rig=args.rig, progress=True)
    print(f"wrote {path} ({fmt}, {len(take)} frames at {take.fps:g} fps)")
    return 0


def _cmd_take_info(args: argparse.Namespace) -> int:
    from .take import as_take

    take = as_take(args.take)
    s = take.summary()
    m = take.meta
    if args.json:
        print(json.dumps({**s, "meta": m}, indent=2, default=str))
        return 0
    print(f"take        {args.take}")
    print(f"frames      {s['frames']} at {s['fps']:g} fps, {s['duration_s']:.2f} s")
    print(f"timecode    {s['timecode_in']} -> {s['timecode_out']}")
    print(f"tracked     {s['tracked_frames']} frames ({s['tracked_percent']:.1f} %)")
    print(f"complete    {s['complete']}" + (f"  ({m['error']})" if m.get("error") else ""))
    for key in ("rig", "camera", "calibration", "start_time", "raw_rgbd", "source", "user"):
        if m.get(key) not in (None, {}, ""):
            print(f"{key:<11} {json.dumps(m[key]) if isinstance(m[key], (dict, list)) else m[key]}")
    if m.get("versions"):
        print("versions    " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .synth import record_synthetic_take

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


def _cmd_rig_preview(args: argparse.Namespace) -> int:
    from .formats import load_rig
    from .synth import rig_preview

    rig = load_rig(args.rig)
    img = rig_preview(rig, args.out, tile=args.tile, cols=args.cols)
    print(f"wrote {args.out} ({img.size[0]}x{img.size[1]}, neutral + 52 expressions of {rig.name})")
    return 0


def _cmd_stream(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from .pipeline import _pace, format_outputs
    from .sinks import open_sinks
    from .take import as_take

    if not args.speed > 0:
        raise ValueError(f"--speed must be > 0, got {args.speed}")
    take = as_take(args.take)
    if not len(take):
        raise ValueError(f"take {args.take} has no frames")
    ts = take.timestamps - take.timestamps[0]
    if not (np.isfinite(ts).all() and (np.diff(ts) >= 0).all()):
        ts = np.arange(len(take)) / take.fps  # broken clock: play at the take's frame rate
    with open_sinks(args.to) as sink:
        wall0 = src0 = None  # each loop round starts the clock again (its first timestamp goes back)
        while True:
            for i, st in enumerate(tqdm(take.states(), total=len(take), unit="frame", desc=f"-> {sink.url}")):
                wall0, src0 = _pace(float(ts[i]), wall0, src0, args.speed)
                sink.send(st)
            if not args.loop:
                break
        stats = sink.stats
    print(format_outputs({"sinks": stats.get("sinks", [stats])}))
    return 0


def _cmd_retarget(args: argparse.Namespace) -> int:
    import numpy as np

    from .retarget import apply_to_gltf, load_mapping
    from .take import as_take

    take = as_take(args.take)
    mapping = load_mapping(args.mapping, mirror=True if args.mirror else None)
    weights = np.nan_to_num(take.weights, nan=0.0)  # face-lost frames: neutral
    out = apply_to_gltf(args.puppet, mapping, weights, take.fps, args.out)
    print(f"wrote {out} ({len(take)} frames at {take.fps:g} fps through mapping {mapping.name!r})")
    return 0


def _run_capture(args: argparse.Namespace, source, *, fps: float, camera: dict, meta: dict, verb: str,
                 realtime: bool = False, total: int | None = None, start=None) -> int:  # fmt: skip
    """Shared body of `live` and `play`: outputs, optional MediaPipe, the tracking loop, the summary."""
    from pathlib import Path

    from .formats import load_rig
    from .pipeline import format_summary, landmarker_from_args, outputs_from_args, run, sigterm_as_interrupt
    from .tracker import Tracker, TrackerConfig

    rig = load_rig(args.rig)
    rig_name = str(Path(args.rig).resolve()) if args.rig else rig.name
    outputs = outputs_from_args(args, fps=fps, rig_name=rig_name, camera=camera, meta=meta)
    landmarker = None
    try:
        landmarker = landmarker_from_args(args)
        with sigterm_as_interrupt():
            if start is not None:
                start()
            device = getattr(source, "device_name", None) or camera.get("device") or ""
            tracker = Tracker(rig=rig, config=TrackerConfig.for_camera(device))
            res = run(source, tracker, outputs, landmarker=landmarker, realtime=realtime,
                      speed=getattr(args, "speed", 1.0), progress=not args.json, total=total,
                      label="playing" if verb == "played" else "capturing",
                      max_frames=args.max_frames)  # fmt: skip
    except OSError as e:  # the take could not be written (disk full...): its message says what was saved
        from .take import TakeWriteError

        if isinstance(e, TakeWriteError | FileExistsError):
            raise RuntimeError(str(e)) from e
        raise
    finally:
        outputs.close(ended_by="error")  # no-op after run() closed it
        if landmarker is not None:
            landmarker.close()
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print(format_summary(res, verb))
    return 130 if res["interrupted"] and verb == "played" else 0


def _cmd_live(args: argparse.Namespace) -> int:
    from .realsense import LiveSource

    src = LiveSource(args.width, args.height, args.fps, serial=args.serial)  # validates size and rate

    def start():
        src.start()
        camera.update(device=src.device_name, color_fps=src.color_fps, depth_scale=src.depth_scale)

    camera = {"kind": "realsense", "serial": args.serial, "width": args.width, "height": args.height,
              "fps": args.fps}  # fmt: skip
    try:
        return _run_capture(args, src, fps=args.fps, camera=camera, meta={"source": "live"}, verb="captured",
                            start=start)  # fmt: skip
    finally:
        src.stop()


def _cmd_play(args: argparse.Namespace) -> int:
    from .realsense import RecordingSource

    src = RecordingSource(args.file)
    info = src.info()
    camera = {"kind": "recording", "device": info.get("device"), "resolution": info.get("resolution"),
              "fps": info.get("fps")}  # fmt: skip
    return _run_capture(args, src, fps=float(info.get("fps") or 30), camera=camera,
                        meta={"source": str(src.path)}, verb="played", realtime=args.realtime,
                        total=src.frame_count)  # fmt: skip


def _cmd_devices(args: argparse.Namespace) -> int:
    from .camera_access import access_problem, usb_cameras
    from .realsense import NO_CAMERA_HELP, list_devices

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


def _cmd_info(args: argparse.Namespace) -> int:
    from .realsense import recording_info

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="facecap",
        description="Markerless facial performance capture from a depth camera: head pose and 52 ARKit "
        "blendshape weights per frame, streamed to engines and recorded as takes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"facecap {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    # --- rig -----------------------------------------------------------------------------------
    rig = sub.add_parser("rig", help="inspect, export and preview tracking rigs")
    rig_sub = rig.add_subparsers(dest="rig_command", metavar="RIG_COMMAND", required=True)
    info = rig_sub.add_parser("info", help="print vertices, triangles, the 52 shapes and landmarks")
    info.add_argument("--rig", help="rig file (.npz, .glb) or ICT-FaceKit folder; default: built-in")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=_cmd_rig_info)
    exp = rig_sub.add_parser("export", help="write the rig as glTF 2.0 (.glb/.gltf) with named morph targets")
    exp.add_argument("out", help="output path, e.g. face.glb")
    exp.add_argument("--rig", help="rig to export; default: built-in")
    exp.set_defaults(func=_cmd_rig_export)
    prev = rig_sub.add_parser(
        "preview", help="contact sheet PNG of the neutral and all 52 expressions, labelled",
        description="Render the neutral and each of the 52 ARKit expressions at weight 1 (frontal, no noise, "
        "moving vertices tinted red) into one labelled PNG.",
    )  # fmt: skip
    prev.add_argument("out", help="output PNG, e.g. rig.png")
    prev.add_argument("--rig", help="rig file (.npz, .glb) or ICT-FaceKit folder; default: built-in")
    prev.add_argument("--tile", type=int, default=200, help="tile size in pixels (default 200)")
    prev.add_argument("--cols", type=int, default=8, help="tiles per row (default 8: 8x7 sheet)")
    prev.set_defaults(func=_cmd_rig_preview)
    # (more rig subcommands register here)

    # --- demo / track --------------------------------------------------------------------------
    demo = sub.add_parser(
        "demo",
        help="synthesize a take, record it as RealSense .db3, track it and score it against ground truth",
        description="The whole pipeline without a camera: a synthetic actor (built-in rig, procedural "
        "expressions, head motion up to +-20 deg, RealSense noise) is written to a .db3 recording, played "
        "back through pyrealsense2 into the tracker, and the result is compared with the truth.",
    )
    demo.add_argument("--frames", type=int, default=300, help="frames to synthesize at 30 fps (default 300)")
    demo.add_argument("--out", help="directory for results.json and tracked.png (plot of key shapes)")
    demo.add_argument("--camera", choices=["d415", "d435"], default="d415", help="noise/intrinsics preset")
    demo.add_argument("--distance", type=float, default=0.6, help="face distance in metres (default 0.6)")
    demo.add_argument("--max-angle", type=float, default=20.0, help="head rotation amplitude in degrees")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the performance and the noise")
    demo.add_argument("--keep-recording", action="store_true", help="keep demo.db3 in --out")
    demo.add_argument("--json", action="store_true", help="print the results as JSON (no progress line)")
    from .pipeline import add_output_arguments

    add_output_arguments(demo)
    demo.set_defaults(func=_cmd_demo)

    track = sub.add_parser("track", help="track a RealSense recording (.bag/.db3) and write weights and pose")
    track.add_argument("file", help="recording made by RealSense Viewer or facecap (.bag or .db3)")
    track.add_argument("--out", required=True, help="output file: .csv (one row per frame) or .jsonl")
    track.add_argument("--format", choices=["csv", "jsonl"], help="default: from the --out suffix")
    track.add_argument("--rig", help="tracking rig (.npz/.glb); default: built-in")
    track.set_defaults(func=_cmd_track)

    # --- export / take --------------------------------------------------------------------------
    ex = sub.add_parser(
        "export",
        help="convert a take to Live Link CSV, glTF, USD, CSV or JSON",
        description="Convert a recorded take (a take folder, or a Live Link Face .csv) for engines and DCCs. "
        "Formats: livelink-csv (the iPhone app's CSV: exact columns, face-lost rows as 'Timecode,0'), "
        "glb/gltf (rig mesh + morph-weight and head animation), usd/usda/usdc (UsdSkel blend shapes), "
        "csv (plain table), json (one document), jsonl (JSON Lines).",
        epilog="examples:\n  facecap export takes/take1 --format glb\n"
        "  facecap export takes/take1 --out take1.livelink.csv\n"
        "  facecap export takes/take1 --format usda --rig actor.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ex.add_argument("take", help="take folder written by facecap, or a Live Link Face .csv")
    ex.add_argument(
        "--format",
        choices=["livelink-csv", "gltf", "glb", "usd", "usda", "usdc", "csv", "json", "jsonl"],
        help="output format; default: from the --out suffix",
    )
    ex.add_argument("--out", help="output file; default: beside the take (TAKE.glb, TAKE.livelink.csv, ...)")
    ex.add_argument("--rig", help="rig for glTF/USD (.npz, .glb, ICT-FaceKit folder); default: built-in")
    ex.set_defaults(func=_cmd_export)
    tk = sub.add_parser("take", help="inspect recorded takes")
    tk_sub = tk.add_subparsers(dest="take_command", metavar="TAKE_COMMAND", required=True)
    ti = tk_sub.add_parser("info", help="frames, duration, timecode in/out, tracked %%, metadata")
    ti.add_argument("take", help="take folder, or a Live Link Face .csv")
    ti.add_argument("--json", action="store_true", help="machine-readable output")
    ti.set_defaults(func=_cmd_take_info)

    syn = sub.add_parser(
        "synth", help="render a synthetic actor into a RealSense recording (.db3) with ground truth",
        description="Render the rig performing a take (a Live Link Face CSV, or the built-in procedural "
        "expression script) with smooth head motion, as a RealSense D415/D435 would see it (depth noise, "
        "holes, flying pixels, 1 mm quantisation), into FILE.db3, plus FILE.truth.npz with the true "
        "weights, head poses and projected landmarks (facecap.synth.load_truth reads it).",
        epilog="example: facecap synth --frames 300 --camera d435 --distance 0.5 --out actor.db3",
    )  # fmt: skip
    syn.add_argument("--out", required=True, help="output recording, must end in .db3")
    syn.add_argument("--take", help="Live Link Face CSV driving the expressions (default: procedural script)")
    syn.add_argument("--camera", choices=["d415", "d435"], default="d415", help="camera model (default d415)")
    syn.add_argument("--distance", type=float, default=0.6, help="camera to head, metres (default 0.6)")
    syn.add_argument("--frames", type=int, default=None,
                     help="number of frames (default: 300, or the whole --take)")  # fmt: skip
    syn.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    syn.add_argument("--seed", type=int, default=0, help="seed of the performance, head motion and noise")
    syn.add_argument("--max-angle", type=float, default=20.0, help="head rotation bound, deg (default 20)")
    syn.add_argument("--no-noise", action="store_true", help="clean depth and colour")
    syn.add_argument("--no-background", action="store_true", help="no wall behind the head (depth 0 there)")
    syn.add_argument("--rig", help="rig file (.npz, .glb) or ICT-FaceKit folder; default: built-in")
    syn.add_argument("--force", action="store_true", help="replace an existing --out file")
    syn.set_defaults(func=_cmd_synth)
    # --- stream / retarget (facecap.sinks, facecap.retarget) -------------------------------------
    stm = sub.add_parser(
        "stream",
        help="play a take to VMC / OSC / Face Cap / Live Link receivers in real time",
        description="Send a recorded take frame by frame, at its own pace, to one or more receivers. "
        "URLs: vmc://host:39539 (VSeeFace, Warudo, VMagicMirror), osc://host:9000 (facecap's OSC namespace), "
        "facecap://host:8080 (Face Cap OSC: Blender AddRoutes, Faceit), livelink://host:11111 (Unreal). "
        "Options ride in the query string, e.g. vmc://127.0.0.1?vrm0=1 adds VRM0 preset clips; "
        "vmc://127.0.0.1?head_offset=0,0.09,0.01 sets the Head Bone/Pos (the avatar's Neck->Head rest "
        "offset, metres, default 0,0.08,0) and &head_position=relative adds head motion on top of it. "
        "Units and signs per receiver: see the README's output table.",
        epilog="examples:\n  facecap stream takes/take1 --to vmc://127.0.0.1:39539\n"
        "  facecap stream take.csv --to livelink://192.168.1.20 --to osc://127.0.0.1:9000 --loop",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stm.add_argument("take", help="take folder written by facecap, or a Live Link Face .csv")
    stm.add_argument("--to", action="append", required=True, metavar="URL", help="receiver URL (repeatable)")
    stm.add_argument("--loop", action="store_true", help="start over at the end until Ctrl-C")
    stm.add_argument("--speed", type=float, default=1.0, help="playback speed factor (default 1)")
    stm.set_defaults(func=_cmd_stream)
    rt = sub.add_parser(
        "retarget",
        help="animate a glTF puppet's morph targets with a take through a mapping",
        description="Write a copy of a glTF/GLB puppet with a morph-weight animation: each puppet shape is "
        "driven by the take's ARKit weights through a mapping file (gain, offset, clamp, response curve, "
        "mirroring). Built-in mappings: vrm0 (A I U E O, Blink, Joy, ...), perfect_sync (PascalCase ARKit "
        "names), arkit (camelCase ARKit names).",
        epilog="examples:\n  facecap retarget takes/take1 avatar.glb --mapping vrm0 --out avatar_anim.glb\n"
        "  facecap retarget take.csv puppet.glb --mapping my_puppet.json --mirror --out out.gltf",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rt.add_argument("take", help="take folder written by facecap, or a Live Link Face .csv")
    rt.add_argument("puppet", help="glTF/GLB puppet with named morph targets (mesh.extras.targetNames)")
    rt.add_argument("--mapping", default="arkit", help="mapping .json or built-in name (default: arkit)")
    rt.add_argument("--mirror", action="store_true", help="swap left/right (puppet mirrors the performer)")
    rt.add_argument("--out", required=True, help="output .glb or .gltf")
    rt.set_defaults(func=_cmd_retarget)
    # --- live / play (facecap.pipeline) ---------------------------------------------------------
    live = sub.add_parser(
        "live", help="track a connected RealSense camera and stream / record the face",
        description="Stream depth + color from a RealSense D4xx camera (depth aligned to color), track head "
        "pose and 52 ARKit weights every frame, and send them to receivers and/or record a take. "
        "Stop with Ctrl-C: the take is finalised and the receivers are released.",
        epilog="examples:\n  facecap live --vmc 127.0.0.1:39539\n"
        "  facecap live --fps 60 --livelink 192.168.1.20 --record takes/slate1_take1\n"
        "  facecap live --vmc 127.0.0.1:39539 --retarget vrm0 --landmarks auto",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    live.add_argument("--serial", help="serial number of the camera (default: the first one found)")
    live.add_argument("--width", type=int, default=640, help="stream width in pixels (default 640)")
    live.add_argument("--height", type=int, default=480, help="stream height in pixels (default 480)")
    live.add_argument("--fps", type=int, default=30, choices=[6, 15, 30, 60, 90], help="frames per second")
    live.add_argument("--rig", help="tracking rig (.npz, .glb, ICT-FaceKit folder); default: built-in")
    live.add_argument("--max-frames", type=int, help="stop after this many frames (default: until Ctrl-C)")
    live.add_argument("--json", action="store_true", help="print the summary as JSON (no status line)")
    add_output_arguments(live)
    live.set_defaults(func=_cmd_live)

    play = sub.add_parser(
        "play", help="track a RealSense recording (.bag/.db3) and stream / record it like a live camera",
        description="Play a RealSense recording through the tracker and send every frame to receivers "
        "and/or record a take, as `facecap live` does with a camera. As fast as possible by default; "
        "--realtime keeps the recording's own pace.",
        epilog="examples:\n  facecap play take.db3 --realtime --vmc 127.0.0.1:39539\n"
        "  facecap play take.db3 --record takes/take1 --landmarks auto",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    play.add_argument("file", help="recording made by RealSense Viewer or facecap (.bag or .db3)")
    play.add_argument("--realtime", action="store_true", help="pace frames to the recording's timestamps")
    play.add_argument("--speed", type=float, default=1.0, help="speed factor with --realtime (default 1)")
    play.add_argument("--rig", help="tracking rig (.npz, .glb, ICT-FaceKit folder); default: built-in")
    play.add_argument("--max-frames", type=int, help="stop after this many frames")
    play.add_argument("--json", action="store_true", help="print the summary as JSON (no status line)")
    add_output_arguments(play)
    play.set_defaults(func=_cmd_play)
    dev = sub.add_parser(
        "devices", help="list connected RealSense cameras (name, serial, firmware, USB type)",
        description="List the RealSense cameras this computer sees, with serial numbers for "
        "`facecap live --serial`. USB 2 connections are flagged: they cannot carry depth + color at 30+ fps.",
    )  # fmt: skip
    dev.add_argument("--json", action="store_true", help="machine-readable output")
    dev.set_defaults(func=_cmd_devices)

    inf = sub.add_parser(
        "info", help="summarise a RealSense recording (.bag/.db3): streams, frames, duration, depth scale",
        description="Show what a RealSense recording holds without decoding its images: camera name, "
        "streams with size, format, fps and intrinsics, frame count, duration, depth scale, and whether "
        "depth is already aligned to color.",
        epilog="examples:\n  facecap info take.db3\n  facecap info take.bag --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    inf.add_argument("file", help="recording made by RealSense Viewer or facecap (.bag or .db3)")
    inf.add_argument("--json", action="store_true", help="machine-readable output")
    inf.set_defaults(func=_cmd_info)
    # (more commands register here)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, ImportError, ValueError, KeyError, RuntimeError) as e:  # OSError: disk full, permissions
        print(f"facecap: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
