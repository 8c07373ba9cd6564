"""Turn a take into a glTF animation of the generic rig (opens in Blender, three.js, any glTF viewer).

    python examples/take_to_gltf.py TAKE OUT.glb [--rig RIG]

TAKE is a folder recorded by ``facecap live/play/demo --record`` or a Live Link Face ``.csv`` (e.g. made
on an iPhone). The file holds the rig mesh with its 52 ARKit morph targets, a morph-weights animation at
the take's rate, and the head's rotation and translation.
"""

from __future__ import annotations

import argparse
import sys

from facecap.export import export_take
from facecap.take import as_take


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("take", help="take folder or Live Link Face .csv")
    p.add_argument("out", help="output .glb or .gltf")
    p.add_argument(
        "--rig", help="rig to animate (.npz/.glb/ICT folder); default: the take's rig, else facecap's"
    )
    args = p.parse_args(argv)
    take = as_take(args.take)  # a take folder, or a Live Link CSV imported as a take
    # face-lost frames hold the last tracked pose and weights; the head moves in a y-up viewer frame
    path = export_take(take, args.out, rig=args.rig)
    print(f"wrote {path}: {take.summary()['frames']} frames at {take.fps:g} fps, 52 ARKit morph targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
