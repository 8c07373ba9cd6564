"""Print what a VMC sender (e.g. ``facecap`` with a ``vmc://`` sink) streams: head pose and top weights.

Run it, then point a sink at it::

    python examples/vmc_receiver.py --port 39539 --frames 100
    # elsewhere: sink = facecap.sinks.open_sink("vmc://127.0.0.1:39539")

One line is printed per frame (a frame ends with ``/VMC/Ext/Blend/Apply``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time


def _euler_deg(q: list[float]) -> tuple[float, float, float]:
    """Unity (left-handed) Euler angles in degrees, Unity's order: yaw about y (+ turns the avatar to its
    right), pitch about x (+ nods down), roll about z."""
    from scipy.spatial.transform import Rotation

    yaw, pitch, roll = Rotation.from_quat(q).as_euler("YXZ", degrees=True)
    return yaw, pitch, roll


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Listen for VMC protocol bundles (OSC over UDP) and print the head bone pose and the "
        "strongest blendshape clips of every frame.",
        epilog="example: python examples/vmc_receiver.py --port 39539 --frames 50 --top 5",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for all interfaces)")
    p.add_argument("--port", type=int, default=39539, help="UDP port (VMC default 39539)")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (0: run until Ctrl-C)")
    p.add_argument("--top", type=int, default=5, help="how many of the strongest clips to print")
    p.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds of silence")
    args = p.parse_args(argv)

    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import BlockingOSCUDPServer

    state = {"frames": 0, "blend": {}, "bones": {}, "t": math.nan, "last": time.monotonic()}

    def on_val(_addr, name, value):
        state["blend"][name] = value

    def on_bone(_addr, name, *v):
        state["bones"][name] = v

    def on_time(_addr, t):
        state["t"] = t

    def on_apply(_addr, *_):
        state["frames"] += 1
        state["last"] = time.monotonic()
        head = state["bones"].get("Head")
        if head is not None and len(head) == 7:
            yaw, pitch, roll = _euler_deg(list(head[3:7]))
            pos = " ".join(f"{x:+.3f}" for x in head[:3])
            pose = f"head pos ({pos}) m  yaw {yaw:+6.1f} pitch {pitch:+6.1f} roll {roll:+6.1f} deg"
        else:
            pose = "no head bone"
        top = sorted(state["blend"].items(), key=lambda kv: -kv[1])[: args.top]
        clips = "  ".join(f"{n} {v:.2f}" for n, v in top)
        print(f"#{state['frames']:5d} t={state['t']:8.3f}s  {pose}  | {clips}", flush=True)
        state["blend"].clear()

    d = Dispatcher()
    d.map("/VMC/Ext/Blend/Val", on_val)
    d.map("/VMC/Ext/Bone/Pos", on_bone)
    d.map("/VMC/Ext/T", on_time)
    d.map("/VMC/Ext/Blend/Apply", on_apply)
    d.set_default_handler(lambda *a: None)
    try:
        server = BlockingOSCUDPServer((args.host, args.port), d)
    except OSError as e:
        print(f"vmc_receiver: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    server.timeout = 0.2
    print(f"listening for VMC on {args.host}:{args.port} (Ctrl-C to stop)", file=sys.stderr)
    try:
        while not args.frames or state["frames"] < args.frames:
            server.handle_request()
            if args.timeout and time.monotonic() - state["last"] > args.timeout:
                print(f"vmc_receiver: nothing received for {args.timeout:g} s", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
