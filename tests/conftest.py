"""Shared fixtures. Real test data lives in ../shared/data (never copied into this repository)."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from pythonosc import osc_server
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data; skips the test if missing, or fails it when CI is set."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        msg = f"shared test data missing: {p}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


# The seven real Live Link Face takes in ../shared/data/arkit_blendshape_takes.
LIVELINK_TAKES = (
    "livelinkface_MySlate_3_JMTechArt.csv",
    "livelinkface_alexdjulin_S07-001.csv",
    "livelinkface_alexdjulin_S88-001.csv",
    "livelinkface_alexdjulin_alex_rom_3.csv",
    "livelinkface_alexdjulin_alex_rom_4.csv",
    "livelinkface_alexdjulin_apfel.csv",
    "livelinkface_alexdjulin_facial.csv",
)

OSC_WAIT = 3.0  # seconds a test waits for datagrams on 127.0.0.1


def load_script(name: str):
    """A script of ``rigs/`` (e.g. ``"build_ict_rig"``) imported as a module, for its functions."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "rigs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def check_on_other_numeric_stack(script: str) -> subprocess.CompletedProcess:
    """Run ``rigs/<script>.py --check`` with every SIMD loop numpy dispatches at run time disabled and (on
    x86-64) another OpenBLAS core type: a generated file must come out the same on another CPU."""
    from numpy._core import _multiarray_umath as umath

    env = dict(os.environ, NPY_DISABLE_CPU_FEATURES=" ".join(umath.__cpu_dispatch__))
    if platform.machine().lower() in ("x86_64", "amd64"):
        env["OPENBLAS_CORETYPE"] = "Nehalem"
    cmd = [sys.executable, str(ROOT / "rigs" / f"{script}.py"), "--check"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


class OscRecorder(Dispatcher):
    """A python-osc dispatcher that keeps every raw datagram in arrival order (decoded by the tests)."""

    def __init__(self) -> None:
        super().__init__()
        self.datagrams: list[bytes] = []
        self.cond = threading.Condition()
        self.set_default_handler(lambda *a: None)

    def call_handlers_for_packet(self, data, client_address):
        with self.cond:
            self.datagrams.append(bytes(data))
            self.cond.notify_all()
        return super().call_handlers_for_packet(data, client_address)

    def wait(self, n: int, timeout: float = OSC_WAIT) -> list[bytes]:
        """The datagrams so far, after waiting until ``n`` have arrived."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.datagrams) >= n, timeout=timeout)
            return list(self.datagrams)

    def messages(self, address: str, until: int, timeout: float = OSC_WAIT) -> list[OscMessage]:
        """All messages so far, after waiting until ``until`` messages with ``address`` arrived."""

        def msgs():
            out = []
            for d in self.datagrams:
                out += list(OscBundle(d)) if OscBundle.dgram_is_bundle(d) else [OscMessage(d)]
            return out

        with self.cond:
            self.cond.wait_for(lambda: sum(m.address == address for m in msgs()) >= until, timeout=timeout)
            return msgs()


@contextmanager
def osc_receiver():
    """A real python-osc UDP server on an ephemeral 127.0.0.1 port: yields (port, OscRecorder)."""
    rec = OscRecorder()
    server = osc_server.BlockingOSCUDPServer(("127.0.0.1", 0), rec)
    th = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    th.start()
    try:
        yield server.server_address[1], rec
    finally:
        server.shutdown()
        server.server_close()
        th.join(OSC_WAIT)
