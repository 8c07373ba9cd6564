"""The ``facecap`` command line. The parser is built inside :func:`main`, never at import."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__

EPILOG = """\
examples:
  facecap demo                       synthesize a take, track it, score it against ground truth
  facecap rig info                   what the built-in tracking rig contains
  facecap rig export face.glb        the rig as glTF with 52 named morph targets (opens in Blender)

Run `facecap COMMAND --help` for each command's options.
"""


def _cmd_rig_info(args: argparse.Namespace) -> int:
    from .rig import load_rig

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
    from .gltf import export_rig
    from .rig import load_rig

    rig = load_rig(args.rig)
    path = export_rig(rig, args.out)
    print(f"wrote {path} ({len(rig.names)} morph targets, {rig.n_vertices} vertices)")
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
    # (more rig subcommands register here)

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
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        print(f"facecap: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
