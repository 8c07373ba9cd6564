"""The argument parser of every command (built inside :func:`facecap.cli.main`, never at import)."""

from __future__ import annotations

import argparse

from .._version import __version__
from . import capture, files
from .outputs import add_output_arguments

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


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    """``--adapt-identity`` and ``--smooth``: the tracker options every tracking command shares."""
    parser.add_argument(
        "--adapt-identity",
        action="store_true",
        help="fit the built-in rig to the performer's face while tracking, without a calibration: once "
        "it has seen a relaxed face facing the camera and turned (about 25 deg left or right, 15 deg up or "
        "down; 6 frames each), tracking goes on with the fitted face (unseen faces: weight error about "
        "1.3x lower). Needs depth; not with a calibrated --actor",
    )
    parser.add_argument(
        "--smooth",
        action="store_true",
        help="filter the reported weights over time (One Euro filter, facecap.smoothing): a still face's "
        "weights jitter about 2.5x less, a step reaches 90%% about 2 frames later (median)",
    )


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
    info.set_defaults(func=files.cmd_rig_info)
    exp = rig_sub.add_parser("export", help="write the rig as glTF 2.0 (.glb/.gltf) with named morph targets")
    exp.add_argument("out", help="output path, e.g. face.glb")
    exp.add_argument("--force", action="store_true", help="replace OUT if it exists")
    exp.add_argument("--rig", help="rig to export; default: built-in")
    exp.set_defaults(func=files.cmd_rig_export)
    prev = rig_sub.add_parser(
        "preview", help="contact sheet PNG of the neutral and all 52 expressions, labelled",
        description="Render the neutral and each of the 52 ARKit expressions at weight 1 (frontal, no noise, "
        "moving vertices tinted red) into one labelled PNG.",
    )  # fmt: skip
    prev.add_argument("out", help="output PNG, e.g. rig.png")
    prev.add_argument("--force", action="store_true", help="replace OUT if it exists")
    prev.add_argument("--rig", help="rig file (.npz, .glb) or ICT-FaceKit folder; default: built-in")
    prev.add_argument("--tile", type=int, default=200, help="tile size in pixels (default 200)")
    prev.add_argument("--cols", type=int, default=8, help="tiles per row (default 8: 8x7 sheet)")
    prev.set_defaults(func=files.cmd_rig_preview)
    # (more rig subcommands register here)

    # --- demo / track --------------------------------------------------------------------------
    demo = sub.add_parser(
        "demo",
        help="synthesize a take, record it as RealSense .db3, track it and score it against ground truth",
        description="The whole pipeline without a camera: a synthetic actor (the built-in ICT-FaceKit head, "
        "procedural expressions or a real Live Link Face take, head motion up to +-20 deg, RealSense noise) "
        "is written to a .db3 recording, played back through pyrealsense2 into the tracker, and the result "
        "is compared with the truth.",
    )
    demo.add_argument("--frames", type=int, default=300, help="frames to synthesize at 30 fps (default 300)")
    demo.add_argument("--out", help="directory for results.json and tracked.png (plot of key shapes)")
    demo.add_argument("--camera", choices=["d415", "d435"], default="d415", help="noise/intrinsics preset")
    demo.add_argument("--distance", type=float, default=0.6, help="face distance in metres (default 0.6)")
    demo.add_argument("--max-angle", type=float, default=20.0, help="head rotation amplitude in degrees")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the performance and the noise")
    demo.add_argument(
        "--take",
        metavar="CSV",
        help="a Live Link Face CSV the face performs instead of the "
        "procedural script (e.g. ../shared/data/arkit_blendshape_takes/*.csv)",
    )
    demo.add_argument(
        "--identity",
        type=int,
        metavar="SEED",
        help="perform as an unseen person: the "
        "built-in head reshaped by 5-8 mm (random per SEED), tracked with the uncalibrated rig",
    )
    demo.add_argument("--keep-recording", action="store_true", help="keep demo.db3 in --out")
    demo.add_argument(
        "--actor", help="track with this rig or calibrated actor (.npz) instead of the built-in"
    )
    demo.add_argument("--json", action="store_true", help="print the results as JSON (no progress line)")
    add_output_arguments(demo)
    add_tracking_arguments(demo)
    demo.set_defaults(func=capture.cmd_demo)

    track = sub.add_parser(
        "track",
        help="track a RealSense recording (.bag/.db3) or a video file (.mp4...) and write weights and pose",
    )
    track.add_argument(
        "file",
        help="recording made by RealSense Viewer or facecap (.bag or .db3), or a video "
        "(.mp4, .mov, .avi, .mkv, .webm: colour only, tracked from MediaPipe's landmarks)",
    )
    track.add_argument(
        "--landmarks",
        metavar="MODEL|auto",
        default=None,
        help="MediaPipe face_landmarker.task for a video (default: auto, the search of "
        "FACECAP_MEDIAPIPE_MODEL and ~/.cache/facecap)",
    )
    track.add_argument("--out", required=True, help="output file: .csv (one row per frame) or .jsonl")
    track.add_argument("--force", action="store_true", help="replace OUT if it exists")
    track.add_argument("--format", choices=["csv", "jsonl"], help="default: from the --out suffix")
    track.add_argument(
        "--rig",
        "--actor",
        dest="rig",
        help="tracking rig or calibrated actor (facecap calibrate) (.npz, .glb); default: built-in",
    )
    add_tracking_arguments(track)
    track.set_defaults(func=capture.cmd_track)

    cal = sub.add_parser(
        "calibrate",
        help="fit the rig to a performer: live, prompted at the camera, or from a recording of the protocol",
        description="Calibrate an actor: the performer holds the protocol's poses in order (neutral facing "
        "the camera, turned left/right/up/down, then expressions; `facecap calibrate --steps` lists them). "
        "Live (no --from): each step is prompted, counted down (--countdown) and held until enough good "
        "frames came; a pose not held is asked again (--retries), then left for later while the rest goes "
        "on; Ctrl-C stops and keeps the steps already captured. From a recording (--from): the steps where "
        "the live session that recorded it (--record) marked them, else each step reached over --transition "
        "seconds and held for its hold time. The neutral views are fused and the rig's "
        "face is fitted to them by nonrigid ICP; the expressions are carried onto the new face, then "
        "corrected toward each held expression's fused scan (how far this performer's jaw, smile or brows "
        "travel). The result is a rig file: pass it as --actor to track, live, play or demo.",
        epilog="examples:\n  facecap calibrate --steps\n"
        "  facecap calibrate --out actor.npz --record calib.db3   (live, the first RealSense camera)\n"
        "  facecap calibrate --from protocol.db3 --out actor.npz\n"
        "  facecap play take.db3 --actor actor.npz --vmc 127.0.0.1:39539",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cal.add_argument("--from", dest="recording", help="recording of the protocol (.bag or .db3)")
    cal.add_argument("--out", help="actor profile to write (.npz)")
    cal.add_argument("--force", action="store_true", help="replace OUT if it exists")
    cal.add_argument("--protocol", help="protocol file (JSON); default: the built-in protocol v1")
    cal.add_argument(
        "--camera", help="RealSense model for the depth noise (default: the camera's or recording's)"
    )
    cal.add_argument("--transition", type=float, default=0.6,
                     help="with --from and no marks: seconds between steps (default 0.6)")  # fmt: skip
    cal.add_argument("--serial", help="live: serial number of the camera (default: the first one found)")
    cal.add_argument(
        "--fps", type=int, default=30, choices=[15, 30, 60, 90], help="live: frame rate (default 30)"
    )
    cal.add_argument("--countdown", type=float, default=3.0,
                     help="live: seconds to get into each pose before its hold (default 3)")  # fmt: skip
    cal.add_argument("--retries", type=int, default=2,
                     help="live: times a pose not held is asked again, then left (default 2)")  # fmt: skip
    cal.add_argument("--record", metavar="FILE.db3",
                     help="live: also record the session's frames, with the steps' marks beside them "
                     "(FILE.db3.steps.json), for `--from FILE.db3` later")  # fmt: skip
    cal.add_argument("--view", metavar="[HOST:]PORT",
                     help="live: the camera image with each prompt, countdown and hold in the browser at "
                     "http://127.0.0.1:PORT/")  # fmt: skip
    cal.add_argument("--steps", action="store_true", help="list the protocol's steps and exit")
    cal.set_defaults(func=capture.cmd_calibrate)

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
        "--skip-bad-rows",
        action="store_true",
        help="Live Link CSV: drop malformed rows (a cut or edited file) and say which, instead of stopping",
    )
    ex.add_argument(
        "--format",
        choices=["livelink-csv", "gltf", "glb", "usd", "usda", "usdc", "csv", "json", "jsonl"],
        help="output format; default: from the --out suffix",
    )
    ex.add_argument("--out", help="output file; default: beside the take (TAKE.glb, TAKE.livelink.csv, ...)")
    ex.add_argument("--force", action="store_true", help="replace OUT if it exists")
    ex.add_argument("--rig", help="rig for glTF/USD (.npz, .glb, ICT-FaceKit folder); default: built-in")
    ex.set_defaults(func=files.cmd_export)
    tk = sub.add_parser("take", help="inspect recorded takes")
    tk_sub = tk.add_subparsers(dest="take_command", metavar="TAKE_COMMAND", required=True)
    ti = tk_sub.add_parser("info", help="frames, duration, timecode in/out, tracked %%, metadata")
    ti.add_argument("take", help="take folder, or a Live Link Face .csv")
    ti.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="Live Link CSV: drop malformed rows (a cut or edited file) and say which, instead of stopping",
    )
    ti.add_argument("--json", action="store_true", help="machine-readable output")
    ti.set_defaults(func=files.cmd_take_info)
    tr = tk_sub.add_parser(
        "repair", help="write the intact frames of a damaged take to a clean copy and say what was lost",
        description="Reads every intact frame of TAKE (damaged records, chunks and take.json are skipped "
        "or rebuilt, never the frames after them), writes them to a new take folder and prints the "
        "recorded / recovered / lost counts and the lost frame ranges. TAKE itself is not changed.",
    )  # fmt: skip
    tr.add_argument("take", help="take folder")
    tr.add_argument("--out", help="new take folder (default: TAKE-repaired)")
    tr.add_argument("--json", action="store_true", help="machine-readable report")
    tr.set_defaults(func=files.cmd_take_repair)

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
    syn.set_defaults(func=files.cmd_synth)
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
    stm.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="Live Link CSV: drop malformed rows (a cut or edited file) and say which, instead of stopping",
    )
    stm.add_argument("--to", action="append", required=True, metavar="URL", help="receiver URL (repeatable)")
    stm.add_argument("--loop", action="store_true", help="start over at the end until Ctrl-C")
    stm.add_argument("--speed", type=float, default=1.0, help="playback speed factor (default 1)")
    stm.set_defaults(func=capture.cmd_stream)
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
    rt.add_argument(
        "--skip-bad-rows",
        action="store_true",
        help="Live Link CSV: drop malformed rows (a cut or edited file) and say which, instead of stopping",
    )
    rt.add_argument("puppet", help="glTF/GLB puppet with named morph targets (mesh.extras.targetNames)")
    rt.add_argument("--mapping", default="arkit", help="mapping .json or built-in name (default: arkit)")
    rt.add_argument("--mirror", action="store_true", help="swap left/right (puppet mirrors the performer)")
    rt.add_argument("--out", required=True, help="output .glb or .gltf")
    rt.add_argument("--force", action="store_true", help="replace OUT if it exists")
    rt.set_defaults(func=files.cmd_retarget)
    # --- live / play (facecap.pipeline) ---------------------------------------------------------
    live = sub.add_parser(
        "live", help="track a connected RealSense camera and stream / record the face",
        description="Stream depth + color from a RealSense D4xx camera (depth aligned to color), track head "
        "pose and 52 ARKit weights every frame, and send them to receivers and/or record a take. "
        "Stop with Ctrl-C: the take is finalised and the receivers are released.",
        epilog="examples:\n  facecap live --vmc 127.0.0.1:39539\n"
        "  facecap live --fps 60 --livelink 192.168.1.20 --record takes/slate1_take1\n"
        "  facecap live --vmc 127.0.0.1:39539 --retarget vrm0 --landmarks auto\n"
        "  facecap live --webcam 0 --vmc 127.0.0.1:39539   (no depth camera: colour only)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    live.add_argument("--serial", help="serial number of the camera (default: the first one found)")
    live.add_argument(
        "--webcam",
        type=int,
        metavar="N",
        help="track a webcam (OpenCV index N, usually 0) instead of a RealSense: colour only, "
        "from MediaPipe's landmarks (--landmarks defaults to auto)",
    )
    live.add_argument(
        "--fov",
        type=float,
        default=60.0,
        help="with --webcam: its horizontal field of view in degrees (default 60)",
    )
    live.add_argument("--width", type=int, default=640, help="stream width in pixels (default 640)")
    live.add_argument("--height", type=int, default=480, help="stream height in pixels (default 480)")
    live.add_argument("--fps", type=int, default=30, choices=[6, 15, 30, 60, 90], help="frames per second")
    live.add_argument(
        "--rig",
        "--actor",
        dest="rig",
        help="tracking rig or calibrated actor (facecap calibrate) (.npz, .glb); default: built-in",
    )
    live.add_argument("--max-frames", type=int, help="stop after this many frames (default: until Ctrl-C)")
    live.add_argument("--json", action="store_true", help="print the summary as JSON (no status line)")
    add_output_arguments(live)
    add_tracking_arguments(live)
    live.set_defaults(func=capture.cmd_live)

    play = sub.add_parser(
        "play", help="track a recording (.bag/.db3) or a video and stream / record it like a live camera",
        description="Play a RealSense recording through the tracker and send every frame to receivers "
        "and/or record a take, as `facecap live` does with a camera. As fast as possible by default; "
        "--realtime keeps the recording's own pace.",
        epilog="examples:\n  facecap play take.db3 --realtime --vmc 127.0.0.1:39539\n"
        "  facecap play take.db3 --record takes/take1 --landmarks auto",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    play.add_argument(
        "file",
        help="recording made by RealSense Viewer or facecap (.bag or .db3), or a "
        "video (.mp4, .mov...: colour only, from MediaPipe's landmarks)",
    )
    play.add_argument(
        "--fov",
        type=float,
        default=60.0,
        help="for a video: the camera's horizontal field of view in degrees (default 60)",
    )
    play.add_argument("--realtime", action="store_true", help="pace frames to the recording's timestamps")
    play.add_argument("--speed", type=float, default=1.0, help="speed factor with --realtime (default 1)")
    play.add_argument(
        "--rig",
        "--actor",
        dest="rig",
        help="tracking rig or calibrated actor (facecap calibrate) (.npz, .glb); default: built-in",
    )
    play.add_argument("--max-frames", type=int, help="stop after this many frames")
    play.add_argument("--json", action="store_true", help="print the summary as JSON (no status line)")
    add_output_arguments(play)
    add_tracking_arguments(play)
    play.set_defaults(func=capture.cmd_play)
    dev = sub.add_parser(
        "devices", help="list connected RealSense cameras (name, serial, firmware, USB type)",
        description="List the RealSense cameras this computer sees, with serial numbers for "
        "`facecap live --serial`. USB 2 connections are flagged: they cannot carry depth + color at 30+ fps.",
    )  # fmt: skip
    dev.add_argument("--json", action="store_true", help="machine-readable output")
    dev.set_defaults(func=files.cmd_devices)

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
    sal = sub.add_parser(
        "salvage", help="rescue the frames of a .db3 recording that will not open (cut short, or killed)",
        description="Reads a damaged ROS2 .db3 page by page without SQLite and writes every intact message "
        "to a new .db3 that RealSense tools and `facecap play` open. For recordings cut short or killed "
        "while being written (librealsense keeps no journal: SQLite calls them malformed).",
    )  # fmt: skip
    sal.add_argument("file", help="the damaged .db3")
    sal.add_argument("--out", help="new recording (default: FILE.salvaged.db3)")
    sal.set_defaults(func=files.cmd_salvage)
    inf.set_defaults(func=files.cmd_info)
    # (more commands register here)
    return p
