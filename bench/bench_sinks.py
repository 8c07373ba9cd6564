"""Per-frame cost of each streaming sink, against a raw ``socket.sendto`` of the same bytes.

Every sink sends ~2000 varied FaceStates to a bound UDP socket on 127.0.0.1 that a thread drains; the
baseline sends byte strings of the same sizes (same number of datagrams) with ``socket.sendto``.
Prints JSON: median / p90 milliseconds per frame, the baseline, and ``overhead`` = median - baseline.
Target: median <= 0.2 ms per frame per sink.

    python bench/bench_sinks.py [--frames 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
import threading
import time

import numpy as np

from facecap.pose import from_euler
from facecap.sinks import FaceCapSink, LiveLinkSink, OscSink, VMCSink
from facecap.state import FaceState

TARGET_MS = 0.2


def _states(n: int = 64) -> list[FaceState]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        out.append(
            FaceState(
                timestamp=100.0 + i / 60,
                weights=rng.random(52).astype(np.float32),
                rotation=from_euler(*rng.uniform(-0.4, 0.4, 3)),
                translation=np.array([0.0, 0.0, 0.6]) + rng.normal(0, 0.01, 3),
                tracked=True,
                quality=0.9,
                gaze=rng.normal(0, 0.1, (2, 2)).astype(np.float32),
                index=i,
                rms_mm=1.0,
            )
        )
    return out


class _Drain:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self._stop = False
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                self.sock.recv(65536)
                self.count += 1
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self._th.join(1.0)
        self.sock.close()


def _time(fn, frames: int, warmup: int = 100) -> np.ndarray:
    for i in range(warmup):
        fn(i)
    ts = np.empty(frames)
    clock = time.perf_counter_ns
    for i in range(frames):
        t0 = clock()
        fn(i)
        ts[i] = clock() - t0
    return ts / 1e6  # ms


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=2000, help="timed frames per sink")
    args = p.parse_args(argv)
    states = _states()
    drain = _Drain()
    configs = {
        "vmc": lambda port: VMCSink("127.0.0.1", port),
        "vmc+vrm0": lambda port: VMCSink("127.0.0.1", port, vrm0=True),
        "osc": lambda port: OscSink("127.0.0.1", port),
        "osc+per_shape": lambda port: OscSink("127.0.0.1", port, per_shape=True),
        "facecap": lambda port: FaceCapSink("127.0.0.1", port),
        "livelink": lambda port: LiveLinkSink("127.0.0.1", port),
        "vmc (python-osc every frame, fast=False)": lambda port: VMCSink("127.0.0.1", port, fast=False),
    }
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    results = {}
    try:
        for name, make in configs.items():
            sink = make(drain.port)
            sizes = [len(d) for d in sink.encode(states[0])]
            ms = _time(lambda i, s=sink: s.send(states[i % len(states)]), args.frames)
            failed = sink.stats["datagrams_failed"]
            sink.close()
            payloads = [bytes(n) for n in sizes]
            addr = ("127.0.0.1", drain.port)

            def baseline(i, payloads=payloads, addr=addr):
                for b in payloads:
                    raw.sendto(b, addr)

            base = _time(baseline, args.frames)
            med, bmed = float(np.median(ms)), float(np.median(base))
            results[name] = {
                "median_ms": round(med, 4),
                "p90_ms": round(float(np.percentile(ms, 90)), 4),
                "baseline_sendto_median_ms": round(bmed, 4),
                "overhead_median_ms": round(med - bmed, 4),
                "datagrams_per_frame": len(sizes),
                "bytes_per_frame": sum(sizes),
                "send_failures": failed,
            }
    finally:
        raw.close()
        drain.close()
    fast = {k: v for k, v in results.items() if "fast=False" not in k}
    out = {
        "benchmark": "facecap.sinks per-frame send cost",
        "frames": args.frames,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "target_median_ms": TARGET_MS,
        "all_within_target": all(v["median_ms"] <= TARGET_MS for v in fast.values()),
        "results": results,
    }
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
