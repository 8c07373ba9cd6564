"""Decode Live Link Face UDP packets (Unreal's iPhone app, or a ``livelink://`` facecap sink).

::

    python examples/livelink_decoder.py --port 11111 --packets 20
    # elsewhere: sink = facecap.sinks.open_sink("livelink://127.0.0.1:11111")

Each packet is decoded with :func:`facecap.sinks.decode_livelink_packet` and printed on one line. Angles are
printed as sent, in Live Link's convention (:mod:`facecap.livelink`): yaw > 0 toward the subject's right,
pitch > 0 down, roll the opposite of facecap's.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Listen for Live Link Face UDP packets (version 6) and print subject, frame time, head "
        "and eye angles (degrees, Live Link's signs: yaw > 0 toward the subject's right, pitch > 0 down) "
        "and the strongest blendshapes of each.",
        epilog="example: python examples/livelink_decoder.py --port 11111 --packets 20 --top 4",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for all interfaces)")
    p.add_argument("--port", type=int, default=11111, help="UDP port (Live Link Face default 11111)")
    p.add_argument("--packets", type=int, default=0, help="stop after N packets (0: run until Ctrl-C)")
    p.add_argument("--top", type=int, default=5, help="how many of the strongest blendshapes to print")
    p.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds of silence")
    args = p.parse_args(argv)

    from facecap import arkit
    from facecap.sinks import decode_livelink_packet

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print(f"livelink_decoder: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    sock.settimeout(0.2)
    print(f"listening for Live Link Face on {args.host}:{args.port} (Ctrl-C to stop)", file=sys.stderr)
    n, last = 0, time.monotonic()
    try:
        while not args.packets or n < args.packets:
            try:
                data, sender = sock.recvfrom(65536)
            except TimeoutError:
                if args.timeout and time.monotonic() - last > args.timeout:
                    print(f"livelink_decoder: nothing received for {args.timeout:g} s", file=sys.stderr)
                    return 1
                continue
            last = time.monotonic()
            n += 1
            try:
                d = decode_livelink_packet(data)
            except ValueError as e:
                print(f"#{n:5d} from {sender[0]}: {len(data)} bytes, not a v6 packet: {e}")
                continue
            rate = d["fps_num"] / d["fps_den"]
            secs = (d["frame_number"] + d["subframe"]) / rate
            head = " ".join(f"{math.degrees(a):+6.1f}" for a in d["head"])
            eyes = " ".join(f"{math.degrees(a):+5.1f}" for a in d["eyes"][:, :2].ravel())
            w = d["weights"]
            top = sorted(range(len(w)), key=lambda i: -w[i])[: args.top]
            shapes = "  ".join(f"{arkit.pascal_name(arkit.ARKIT_NAMES[i])} {w[i]:.2f}" for i in top)
            print(
                f"#{n:5d} {d['subject']} frame {d['frame_number']}+{d['subframe']:.3f} @ {rate:g} fps "
                f"({secs:.3f} s)  head yaw/pitch/roll {head} deg  eyes {eyes}  | {shapes}",
                flush=True,
            )
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
