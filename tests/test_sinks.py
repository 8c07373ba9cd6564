"""Streaming sinks: real UDP on 127.0.0.1, decoded with python-osc / an independent Live Link packer."""

from __future__ import annotations

import logging
import socket
import time
from contextlib import contextmanager

import numpy as np
import pytest
from conftest import osc_receiver
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.parsing import osc_types
from scipy.spatial.transform import Rotation

from facecap import arkit
from facecap.pose import FRONTAL, from_euler, head_euler, to_unity
from facecap.retarget import load_mapping
from facecap.sinks import (
    DEFAULT_PORTS,
    LIVELINK_NAMES,
    FaceCapSink,
    LiveLinkSink,
    MultiSink,
    OscSink,
    VMCSink,
    _euler,
    _eye_quats_unity,
    _head_local_unity,
    _quat_xyzw,
    _viewer,
    decode_livelink_packet,
    encode_livelink_packet,
    livelink_frame_time,
    open_sink,
    open_sinks,
)
from facecap.state import FaceState

WAIT = 3.0  # seconds, upper bound for any receive


# ------------------------------------------------------------------------------------------- helpers
def make_state(seed: int = 0, *, tracked: bool = True, yaw=0.2, pitch=-0.1, roll=0.05) -> FaceState:
    rng = np.random.default_rng(seed)
    return FaceState(
        timestamp=1000.0 + seed * 0.0166,
        weights=rng.random(52).astype(np.float32),
        rotation=from_euler(yaw, pitch, roll),
        translation=np.array([0.02, -0.01, 0.55]) + rng.normal(0, 0.01, 3),
        tracked=tracked,
        quality=0.87,
        gaze=rng.normal(0, 0.15, (2, 2)).astype(np.float32),
        index=40 + seed,
        rms_mm=1.25,
    )


@contextmanager
def udp_receiver():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(WAIT)
    try:
        yield s.getsockname()[1], s
    finally:
        s.close()


def messages(datagrams: list[bytes]) -> list[OscMessage]:
    out = []
    for d in datagrams:
        if OscBundle.dgram_is_bundle(d):
            out += [m for m in OscBundle(d)]
        else:
            out.append(OscMessage(d))
    return out


def typetags(m: OscMessage) -> str:
    _, i = osc_types.get_string(m.dgram, 0)
    return osc_types.get_string(m.dgram, i)[0]


def f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def quat_close(a, b, atol=1e-5) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.allclose(a, b, atol=atol) or np.allclose(a, -b, atol=atol))


# ------------------------------------------------------------------------------------------- pose terms
def test_fast_pose_terms_match_facecap_pose():
    rng = np.random.default_rng(1)
    for _ in range(200):
        yaw, pitch, roll = rng.uniform(-1.2, 1.2), rng.uniform(-1.2, 1.2), rng.uniform(-1.2, 1.2)
        r = from_euler(yaw, pitch, roll)
        assert np.allclose(_euler(_viewer(r)), head_euler(r), atol=1e-9)
        q = Rotation.from_matrix(r).as_quat()
        assert quat_close(_quat_xyzw(r.tolist()), q, 1e-9)
        # VMC head: to_unity's rotation seen from an avatar facing the camera (Ry(180)^T r_u)
        t = rng.normal(size=3)
        p, q_loc = _head_local_unity(r, t)
        p_ref, q_u = to_unity(r, t)
        ref = (Rotation.from_euler("y", np.pi).inv() * Rotation.from_quat(q_u)).as_quat()
        assert np.allclose(p, p_ref) and quat_close(q_loc, ref, 1e-9)
    g = rng.normal(0, 0.3, (2, 2))
    q_eye = _eye_quats_unity(g)
    sx = np.diag([-1.0, 1.0, 1.0])
    for k in range(2):
        r_eye = Rotation.from_euler("YX", [g[k, 0], g[k, 1]]).as_matrix()
        assert quat_close(q_eye[k], Rotation.from_matrix(sx @ r_eye @ sx).as_quat(), 1e-9)


def test_vmc_head_rotation_semantics():
    # frontal face -> identity; the performer turns to their left -> the avatar's nose goes to its left
    _, q = _head_local_unity(FRONTAL, np.array([0, 0, 0.6]))
    assert quat_close(q, [0, 0, 0, 1])
    _, q = _head_local_unity(from_euler(0.4, 0, 0), np.zeros(3))
    nose = Rotation.from_quat(q).apply([0, 0, 1])  # Unity avatar: +z forward, +x its right
    assert nose[0] < -0.3 and nose[2] > 0.8
    _, q = _head_local_unity(from_euler(0, 0.4, 0), np.zeros(3))  # pitch > 0: face down
    assert Rotation.from_quat(q).apply([0, 0, 1])[1] < -0.3


# ------------------------------------------------------------------------------------------- VMC
def test_vmc_messages_received_and_decoded():
    st = make_state(3)
    mapping = load_mapping("vrm0")
    with osc_receiver() as (port, rec), VMCSink("127.0.0.1", port, vrm0=True) as sink:
        sink.send(st)
        n = len(sink.layout.groups)
        got = rec.wait(n)
    assert len(got) == n >= 2  # split to stay under max_datagram
    assert all(len(d) <= 1400 for d in got)
    msgs = messages(got)
    addr = [m.address for m in msgs]
    assert addr[0] == "/VMC/Ext/OK" and typetags(msgs[0]) == ",i" and msgs[0].params == [1]
    assert addr[1] == "/VMC/Ext/T" and typetags(msgs[1]) == ",f"
    bones = {m.params[0]: m for m in msgs if m.address == "/VMC/Ext/Bone/Pos"}
    assert set(bones) == {"Head", "LeftEye", "RightEye"}
    assert all(typetags(m) == ",sfffffff" for m in bones.values())
    p_u, q_u = to_unity(st.rotation, st.translation)
    q_ref = (Rotation.from_euler("y", np.pi).inv() * Rotation.from_quat(q_u)).as_quat()
    assert quat_close(bones["Head"].params[4:], f32(q_ref), 1e-6)
    assert np.allclose(bones["Head"].params[1:4], 0.0)  # relative position: first frame is the origin
    for k, bone in enumerate(("LeftEye", "RightEye")):
        sx = np.diag([-1.0, 1.0, 1.0])
        r_eye = Rotation.from_euler("YX", st.gaze[k].astype(float)).as_matrix()
        assert quat_close(bones[bone].params[4:], Rotation.from_matrix(sx @ r_eye @ sx).as_quat(), 1e-6)
    vals = [m for m in msgs if m.address == "/VMC/Ext/Blend/Val"]
    assert all(typetags(m) == ",sf" for m in vals)
    named = {m.params[0]: m.params[1] for m in vals}
    pascal = {arkit.pascal_name(n) for n in arkit.ARKIT_NAMES}
    assert pascal <= set(named) and len(vals) == 52 + len(mapping)
    for i, n in enumerate(arkit.ARKIT_NAMES):
        assert named[arkit.pascal_name(n)] == pytest.approx(float(f32(st.weights[i])), abs=1e-7)
    for n, v in mapping.apply(st.weights).items():
        assert named[n] == pytest.approx(v, abs=1e-6)
    assert addr[-1] == "/VMC/Ext/Blend/Apply" and typetags(msgs[-1]) == ","
    assert max(i for i, a in enumerate(addr) if a == "/VMC/Ext/Blend/Val") < len(addr) - 1


def test_vmc_head_position_modes_and_lost_frames():
    a = make_state(0)
    b = make_state(1)
    b.translation = a.translation + np.array([0.01, 0.02, -0.03])  # performer moves right-up-forward
    with VMCSink(port=free_port(), eyes=False) as sink:
        v0, v1 = sink._values(a).copy(), sink._values(b).copy()
        assert np.allclose(v0[1:4], 0)
        # avatar faces the camera: camera +x (performer's left) is the avatar's -x, camera z is its -z
        assert np.allclose(v1[1:4], [-0.01, -0.02, 0.03])
        lost = make_state(2, tracked=False)
        lost.rotation = np.eye(3)  # garbage pose while lost
        v2 = sink._values(lost).copy()
        assert np.allclose(v2[1:8], v1[1:8])  # pose held
        assert np.allclose(v2[8:60], f32(lost.weights))  # weights as given
    with VMCSink(port=free_port(), head_position="camera") as sink:
        assert np.allclose(sink._values(a)[1:4], to_unity(a.rotation, a.translation)[0])
    with VMCSink(port=free_port(), head_position="zero") as sink:
        assert np.allclose(sink._values(b)[1:4], 0)
    with pytest.raises(ValueError, match="head_position"):
        VMCSink(port=free_port(), head_position="world")


# ------------------------------------------------------------------------------------------- own OSC
def test_osc_namespace_received():
    st = make_state(5)
    with osc_receiver() as (port, rec), OscSink("127.0.0.1", port, per_shape=True) as sink:
        sink.send(st)
        got = rec.wait(len(sink.layout.groups))
    msgs = {m.address: m for m in messages(got)}
    assert typetags(msgs["/facecap/frame"]) == ",id" and msgs["/facecap/frame"].params == [
        st.index,
        st.timestamp,
    ]
    assert typetags(msgs["/facecap/tracked"]) == ",i" and msgs["/facecap/tracked"].params == [1]
    assert msgs["/facecap/quality"].params == pytest.approx([0.87, 1.25], abs=1e-6)
    assert msgs["/facecap/head/position"].params == pytest.approx(list(f32(st.translation)), abs=1e-7)
    assert quat_close(
        msgs["/facecap/head/quaternion"].params, Rotation.from_matrix(st.rotation).as_quat(), 1e-6
    )
    assert msgs["/facecap/head/euler"].params == pytest.approx([0.2, -0.1, 0.05], abs=1e-6)
    assert msgs["/facecap/gaze"].params == pytest.approx(list(st.gaze.ravel()), abs=1e-7)
    w = msgs["/facecap/weights"]
    assert typetags(w) == "," + "f" * 52 and np.array_equal(f32(w.params), f32(st.weights))
    for i, n in enumerate(arkit.ARKIT_NAMES):
        m = msgs[f"/facecap/blend/{n}"]
        assert typetags(m) == ",f" and m.params[0] == float(f32(st.weights[i]))


# ------------------------------------------------------------------------------------------- Face Cap
@pytest.mark.parametrize("bundle", [True, False])
def test_facecap_osc_received(bundle):
    st = make_state(7)
    with osc_receiver() as (port, rec), FaceCapSink("127.0.0.1", port, bundle=bundle) as sink:
        sink.send(st)
        got = rec.wait(1 if bundle else 57)
    assert len(got) == (1 if bundle else 57)
    msgs = messages(got)
    w_msgs = [m for m in msgs if m.address == "/W"]
    assert len(w_msgs) == 52 and all(typetags(m) == ",if" for m in w_msgs)
    assert [m.params[0] for m in w_msgs] == list(range(52))
    order = arkit.ORDERS["facecap_osc"]
    for m in w_msgs:
        assert m.params[1] == float(f32(st.weights[arkit.INDEX[order[m.params[0]]]]))
    by = {m.address: m for m in msgs}
    assert typetags(by["/HT"]) == ",fff" and typetags(by["/HRQ"]) == ",ffff" and typetags(by["/ELR"]) == ",ff"
    t = st.translation
    assert by["/HT"].params == pytest.approx([t[0], -t[1], -t[2]], abs=1e-6)
    assert by["/HR"].params == pytest.approx(np.degrees([-0.1, 0.2, 0.05]).tolist(), abs=1e-4)
    r_v = FRONTAL @ st.rotation
    assert quat_close(by["/HRQ"].params, Rotation.from_matrix(r_v).as_quat(), 1e-6)
    g = np.degrees(st.gaze.astype(float))
    assert by["/ELR"].params == pytest.approx([g[0, 1], g[0, 0]], abs=1e-4)
    assert by["/ERR"].params == pytest.approx([g[1, 1], g[1, 0]], abs=1e-4)


# ------------------------------------------------------------------------------------------- layout
@pytest.mark.parametrize(
    "make",
    [
        lambda: VMCSink(port=free_port()),
        lambda: VMCSink(port=free_port(), vrm0=True, max_datagram=600),
        lambda: OscSink(port=free_port(), per_shape=True),
        lambda: FaceCapSink(port=free_port()),
        lambda: FaceCapSink(port=free_port(), bundle=False),
    ],
)
def test_patched_datagrams_equal_python_osc_built(make):
    with make() as sink:
        for seed in range(5):
            st = make_state(seed, tracked=seed != 3, yaw=0.1 * seed)
            v = sink._values(st).copy()
            fast = [bytes(d) for d in sink.layout.render(v)]
            assert fast == sink.layout.reference(v)
        sink.fast = False
        assert sink.encode(make_state(9)) == [
            bytes(d) for d in sink.layout.render(sink._values(make_state(9)))
        ]


# ------------------------------------------------------------------------------------------- Live Link
def golden_livelink(values61, dev: str, subj: str, frame: int, sub: float, num: int, den: int) -> bytes:
    """Packet v6 assembled field by field from the spec, without facecap's struct format."""
    d, s = dev.encode(), subj.encode()
    return b"".join([
        bytes([6]),
        len(d).to_bytes(4, "big"), d,
        len(s).to_bytes(4, "big"), s,
        frame.to_bytes(4, "big", signed=True),
        np.array([sub], ">f4").tobytes(),
        num.to_bytes(4, "big"), den.to_bytes(4, "big"),
        bytes([61]),
        np.asarray(values61, ">f4").tobytes(),
    ])  # fmt: skip


def test_livelink_packet_golden_and_roundtrip():
    st = make_state(11)
    dev, subj = "DEADC0DE-1337-1337-1337-CAFEBABE0001", "facecap"
    unreal = [arkit.INDEX[arkit.canonical_name(n)] for n in LIVELINK_NAMES[:52]]
    yaw, pitch, roll = head_euler(st.rotation)
    g = st.gaze.astype(float)
    vals = [*st.weights[unreal], yaw, pitch, roll, g[0, 0], g[0, 1], 0.0, g[1, 0], g[1, 1], 0.0]
    pkt = encode_livelink_packet(st, dev, subj, 123456, 0.25, 60, 1)
    assert pkt == golden_livelink(vals, dev, subj, 123456, 0.25, 60, 1)
    assert len(pkt) == 1 + 4 + 36 + 4 + 7 + 16 + 1 + 61 * 4
    assert pkt[0] == 6 and pkt[1:5] == (36).to_bytes(4, "big")
    k = 1 + 4 + 36 + 4 + 7 + 16
    assert pkt[k] == 61
    first = np.frombuffer(pkt[k + 1 : k + 5], ">f4")[0]
    assert first == f32(st.weights[arkit.INDEX["eyeBlinkLeft"]])  # EARFaceBlendShape 0 = EyeBlinkLeft
    jaw_left = np.frombuffer(pkt[k + 1 + 15 * 4 : k + 1 + 16 * 4], ">f4")[0]
    assert jaw_left == f32(st.weights[arkit.INDEX["jawLeft"]])  # 15 = JawLeft (CSV has JawRight here)
    head_yaw = np.frombuffer(pkt[k + 1 + 52 * 4 : k + 1 + 53 * 4], ">f4")[0]
    assert head_yaw == pytest.approx(0.2, abs=1e-6)
    d = decode_livelink_packet(pkt)
    assert (d["version"], d["device_id"], d["subject"]) == (6, dev, subj)
    assert (d["frame_number"], d["subframe"], d["fps_num"], d["fps_den"]) == (123456, 0.25, 60, 1)
    assert np.array_equal(d["weights"], f32(st.weights))
    assert np.allclose(d["head"], [0.2, -0.1, 0.05], atol=1e-6)
    assert np.allclose(d["eyes"], [[g[0, 0], g[0, 1], 0], [g[1, 0], g[1, 1], 0]], atol=1e-7)
    with pytest.raises(ValueError, match="expected"):
        decode_livelink_packet(pkt[:-3])
    with pytest.raises(ValueError, match="version"):
        decode_livelink_packet(bytes([5]) + pkt[1:])
    with pytest.raises(ValueError, match="too short"):
        decode_livelink_packet(b"\x06\x00")
    with pytest.raises(ValueError, match="subframe"):
        encode_livelink_packet(st, dev, subj, 1, 1.0)


def test_livelink_sink_over_udp():
    st = make_state(2)
    st.timestamp = 3600.5 + 0.3 / 60
    with udp_receiver() as (port, rx), LiveLinkSink("127.0.0.1", port, subject="Actor", fps=60) as sink:
        sink.send(st)
        d = decode_livelink_packet(rx.recv(4096))
    assert d["subject"] == "Actor" and d["device_id"] == sink.device_id
    assert d["frame_number"] == 3600 * 60 + 30 and d["subframe"] == pytest.approx(0.3, abs=1e-4)
    assert np.array_equal(d["weights"], f32(st.weights))
    assert livelink_frame_time(86400 * 3 + 1.0, 30, 1) == (30, 0.0)  # time of day


# ------------------------------------------------------------------------------------------- robustness
@pytest.mark.parametrize("scheme", ["vmc", "osc", "facecap", "livelink"])
def test_dead_receiver_never_raises_or_blocks(scheme, caplog):
    port = free_port()  # nothing listens here
    caplog.set_level(logging.WARNING, logger="facecap.sinks")
    with open_sink(f"{scheme}://127.0.0.1:{port}") as sink:
        t0 = time.perf_counter()
        for i in range(100):
            sink.send(make_state(i % 4))
        elapsed = time.perf_counter() - t0
        st = sink.stats
    assert elapsed < 1.0  # a hang guard, not a benchmark
    assert st["frames"] == 100
    assert st["datagrams_sent"] + st["datagrams_failed"] >= 100
    assert st["datagrams_failed"] > 0 and "ECONNREFUSED" in st["errors"]  # Linux: ICMP port unreachable
    warnings = [r for r in caplog.records if "ECONNREFUSED" in r.getMessage()]
    assert len(warnings) == 1  # reported once


def test_unresolvable_host_is_counted_not_raised(caplog):
    caplog.set_level(logging.WARNING, logger="facecap.sinks")
    sink = VMCSink("no-such-host.invalid", 39539)
    try:
        for _ in range(5):
            sink.send(make_state())
        assert sink.stats["errors"].get("unresolved", 0) >= 5
        assert sink.stats["datagrams_sent"] == 0
    finally:
        sink.close()
    assert any("resolve" in r.getMessage() for r in caplog.records)


def test_multisink_fans_out():
    with osc_receiver() as (p1, rec1), udp_receiver() as (p2, rx):
        sink = open_sinks([f"facecap://127.0.0.1:{p1}", f"livelink://127.0.0.1:{p2}"])
        assert isinstance(sink, MultiSink) and len(sink.sinks) == 2
        with sink:
            sink.send(make_state(4))
            assert len(rec1.wait(1)) == 1
            assert decode_livelink_packet(rx.recv(4096))["subject"] == "facecap"
        assert [s["frames"] for s in sink.stats["sinks"]] == [1, 1]


def test_send_validates_input():
    with VMCSink(port=free_port()) as sink:
        bad = make_state()
        bad.weights = np.zeros(51, np.float32)
        with pytest.raises(ValueError, match="52"):
            sink.send(bad)
        with pytest.raises(TypeError, match="FaceState"):
            sink.send({"weights": 0})
        nan = make_state()
        nan.weights[3] = np.nan
        sink.send(nan)  # NaN weights go out as 0
        assert sink._values(nan)[8 + 8 + 3] == 0.0
    with pytest.raises(RuntimeError, match="closed"):
        sink.send(make_state())


# ------------------------------------------------------------------------------------------- URLs
def test_open_sink_urls_and_defaults():
    cases = {
        "vmc://": (VMCSink, "127.0.0.1", DEFAULT_PORTS["vmc"]),
        "osc://10.1.2.3": (OscSink, "10.1.2.3", 9000),
        "facecap://127.0.0.1:9100": (FaceCapSink, "127.0.0.1", 9100),
        "livelink://localhost": (LiveLinkSink, "localhost", 11111),
        "vmc://[::1]:40000": (VMCSink, "::1", 40000),
    }
    for url, (cls, host, port) in cases.items():
        with open_sink(url) as s:
            assert type(s) is cls and (s.host, s.port) == (host, port)
    with open_sink("vmc://127.0.0.1?vrm0=1&eyes=0&max_datagram=900") as s:
        assert s.mapping is not None and not s.eyes and max(s.layout.sizes) <= 900
    with open_sink("livelink://127.0.0.1?subject=Face2&fps=30", fps_den=1) as s:
        assert (s.subject, s.fps) == ("Face2", 30)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("127.0.0.1:39539", "scheme://host:port"),
        ("vcm://127.0.0.1", "did you mean vmc"),
        ("http://127.0.0.1", "unknown sink scheme"),
        ("vmc://127.0.0.1:99999", "port"),
        ("vmc://127.0.0.1:abc", "port"),
        ("vmc://127.0.0.1:0", "port"),
        ("vmc://127.0.0.1:39539/path", "only scheme://host:port"),
        ("vmc://user@127.0.0.1", "only scheme://host:port"),
        ("vmc://127.0.0.1?bogus=1", "unknown option 'bogus'"),
        ("vmc://127.0.0.1?eyes=maybe", "1/0/true/false"),
        ("livelink://127.0.0.1?fps=sixty", "integer"),
    ],
)
def test_bad_urls_raise(url, match):
    with pytest.raises(ValueError, match=match):
        open_sink(url)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="port"):
        VMCSink("127.0.0.1", 70000)
    with pytest.raises(ValueError, match="subject"):
        LiveLinkSink(subject="")
    with pytest.raises(ValueError, match="unknown option"):
        open_sink("vmc://127.0.0.1", colour=1)
    with pytest.raises(ValueError, match="no sink URL"):
        open_sinks("")
