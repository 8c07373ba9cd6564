"""Streaming sinks: real UDP on 127.0.0.1, decoded with python-osc / an independent Live Link packer."""

from __future__ import annotations

import logging
import socket
import struct
import time
from contextlib import contextmanager

import numpy as np
import pytest
from conftest import LIVELINK_TAKES, osc_receiver, shared_path
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.parsing import osc_types
from scipy.spatial.transform import Rotation

from facecap import arkit
from facecap.livelink import read_csv
from facecap.pose import (
    FRONTAL,
    from_euler,
    head_euler,
    quat_xyzw,
    to_unity,
    unity_eye_quaternions,
    unity_head_local,
    viewer_euler,
    viewer_rotation,
)
from facecap.retarget import load_mapping
from facecap.sinks import (
    DEFAULT_PORTS,
    LIVELINK_NAMES,
    FaceCapSink,
    LiveLinkSink,
    MultiSink,
    OscSink,
    VMCSink,
    decode_livelink_packet,
    encode_livelink_packet,
    livelink_frame_time,
    open_sink,
    open_sinks,
)
from facecap.state import FaceState
from facecap.take import take_from_livelink

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
        assert np.allclose(viewer_euler(viewer_rotation(r)), head_euler(r), atol=1e-9)
        q = Rotation.from_matrix(r).as_quat()
        assert quat_close(quat_xyzw(r.tolist()), q, 1e-9)
        # VMC head: to_unity's rotation seen from an avatar facing the camera (Ry(180)^T r_u)
        t = rng.normal(size=3)
        p, q_loc = unity_head_local(r, t)
        p_ref, q_u = to_unity(r, t)
        ref = (Rotation.from_euler("y", np.pi).inv() * Rotation.from_quat(q_u)).as_quat()
        assert np.allclose(p, p_ref) and quat_close(q_loc, ref, 1e-9)
    g = rng.normal(0, 0.3, (2, 2))
    q_eye = unity_eye_quaternions(g)
    sx = np.diag([-1.0, 1.0, 1.0])
    for k in range(2):
        r_eye = Rotation.from_euler("YX", [g[k, 0], g[k, 1]]).as_matrix()
        assert quat_close(q_eye[k], Rotation.from_matrix(sx @ r_eye @ sx).as_quat(), 1e-9)


def test_vmc_head_rotation_semantics():
    # frontal face -> identity; the performer turns to their left -> the avatar's nose goes to its left
    _, q = unity_head_local(FRONTAL, np.array([0, 0, 0.6]))
    assert quat_close(q, [0, 0, 0, 1])
    _, q = unity_head_local(from_euler(0.4, 0, 0), np.zeros(3))
    nose = Rotation.from_quat(q).apply([0, 0, 1])  # Unity avatar: +z forward, +x its right
    assert nose[0] < -0.3 and nose[2] > 0.8
    _, q = unity_head_local(from_euler(0, 0.4, 0), np.zeros(3))  # pitch > 0: face down
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
    assert bones["Head"].params[1:4] == list(f32([0.0, 0.08, 0.0]))  # Neck -> Head rest offset, metres
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


def test_vmc_head_bone_pos_is_the_rest_offset_for_any_pose():
    """VMC Bone/Pos is the bone's local position (EVMC4U applies it to localPosition): by default the Head
    carries the Neck -> Head rest offset whatever the head does, decoded by python-osc off a real socket."""
    rng = np.random.default_rng(5)
    poses = [make_state(i, yaw=rng.uniform(-0.6, 0.6), pitch=rng.uniform(-0.4, 0.4),
                        roll=rng.uniform(-0.3, 0.3)) for i in range(6)]  # fmt: skip
    poses[2].translation = np.array([0.15, -0.1, 0.9])  # far off-centre
    poses[4].tracked = False
    for kw, want in (({}, [0.0, 0.08, 0.0]), ({"head_offset": (0.01, 0.1, -0.02)}, [0.01, 0.1, -0.02])):
        with osc_receiver() as (port, rec), VMCSink("127.0.0.1", port, eyes=False, **kw) as sink:
            for st in poses:
                sink.send(st)
            msgs = rec.messages("/VMC/Ext/Bone/Pos", until=len(poses))
        heads = [m for m in msgs if m.address == "/VMC/Ext/Bone/Pos" and m.params[0] == "Head"]
        assert len(heads) == len(poses)
        for m in heads:
            assert m.params[1:4] == list(f32(want))
    # the same override from a URL (commas inside the option survive open_sinks' URL splitting)
    with osc_receiver() as (port, rec):
        urls = f"vmc://127.0.0.1:{port}?head_offset=0.01,0.1,-0.02&eyes=0,osc://127.0.0.1:{port}"
        with open_sinks(urls) as sink:
            assert sink.sinks[0].head_offset == (0.01, 0.1, -0.02)
            sink.send(poses[0])
            msgs = rec.messages("/VMC/Ext/Bone/Pos", until=1)
    head = next(m for m in msgs if m.address == "/VMC/Ext/Bone/Pos")
    assert head.params[1:4] == list(f32([0.01, 0.1, -0.02]))


def test_vmc_head_position_modes_and_lost_frames():
    a = make_state(0)
    b = make_state(1)
    b.translation = a.translation + np.array([0.01, 0.02, -0.03])  # to their left, up, forward
    rest = np.array([0.0, 0.08, 0.0])
    with VMCSink(port=free_port(), eyes=False, head_position="relative") as sink:
        v0, v1 = sink._values(a).copy(), sink._values(b).copy()
        assert np.allclose(v0[1:4], rest)
        # head motion rides on the rest offset; the avatar faces the camera: camera +x (the performer's
        # left) is the avatar's -x (its left), camera y down is its -y, camera z is its -z
        assert np.allclose(v1[1:4], rest + [-0.01, -0.02, 0.03])
        lost = make_state(2, tracked=False)
        lost.rotation = np.eye(3)  # garbage pose while lost
        v2 = sink._values(lost).copy()
        assert np.allclose(v2[1:8], v1[1:8])  # pose held
        assert np.allclose(v2[8:60], f32(lost.weights))  # weights as given
    with VMCSink(port=free_port(), head_position="relative", head_offset=(0, 0.1, 0.01)) as sink:
        sink._values(a)
        assert np.allclose(sink._values(b)[1:4], [-0.01, 0.1 - 0.02, 0.01 + 0.03])
    with VMCSink(port=free_port()) as sink:  # default "rest": no head translation at all
        assert np.allclose(sink._values(a)[1:4], rest) and np.allclose(sink._values(b)[1:4], rest)
    with VMCSink(port=free_port(), head_position="camera") as sink:
        assert np.allclose(sink._values(a)[1:4], to_unity(a.rotation, a.translation)[0])
    with VMCSink(port=free_port(), head_offset=(0, 0, 0)) as sink:
        assert np.allclose(sink._values(b)[1:4], 0)
    with pytest.raises(ValueError, match="head_position"):
        VMCSink(port=free_port(), head_position="world")
    with pytest.raises(ValueError, match="head_offset=\\(0, 0, 0\\)"):
        VMCSink(port=free_port(), head_position="zero")
    for bad in ((0, 0.08), (0, float("nan"), 0), "up"):
        with pytest.raises(ValueError, match="head_offset"):
            VMCSink(port=free_port(), head_offset=bad)
    with pytest.raises(ValueError, match="comma-separated"):
        open_sink("vmc://127.0.0.1?head_offset=0,up,0")


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
    t = st.translation * 100.0  # centimetres (Faceit scales by 0.01, OpenMoBu reads MotionBuilder cm)
    assert by["/HT"].params == pytest.approx([t[0], -t[1], -t[2]], abs=1e-4)
    assert by["/HR"].params == pytest.approx(np.degrees([-0.1, 0.2, 0.05]).tolist(), abs=1e-4)
    r_v = FRONTAL @ st.rotation
    assert quat_close(by["/HRQ"].params, Rotation.from_matrix(r_v).as_quat(), 1e-6)
    g = np.degrees(st.gaze.astype(float))
    assert by["/ELR"].params == pytest.approx([g[0, 1], g[0, 0]], abs=1e-4)
    assert by["/ERR"].params == pytest.approx([g[1, 1], g[1, 0]], abs=1e-4)


def test_facecap_head_translation_is_centimetres():
    st = make_state(1)
    st.translation = np.array([0.05, -0.02, 0.6])  # 5 cm to image right, 2 cm up, 60 cm from the camera
    with osc_receiver() as (port, rec), FaceCapSink("127.0.0.1", port) as sink:
        sink.send(st)
        msgs = rec.messages("/HT", until=1)
    ht = next(m for m in msgs if m.address == "/HT")
    # centimetres, ARKit camera axes: x right, y up, z toward the viewer
    assert ht.params == pytest.approx([5.0, 2.0, -60.0], abs=1e-4)


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


# EARFaceBlendShape order, written out from docs/design.md §6 (Unreal's enum), not from facecap.arkit.
SPEC_LIVELINK_NAMES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawLeft", "JawRight", "JawOpen", "MouthClose",
    "MouthFunnel", "MouthPucker", "MouthLeft", "MouthRight", "MouthSmileLeft", "MouthSmileRight",
    "MouthFrownLeft", "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft",
    "MouthStretchRight", "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight",
    "TongueOut",
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip


def spec_decode_livelink(pkt: bytes) -> dict:
    """A Live Link Face v6 packet read field by field with ``struct`` from the field list in docs/design.md §6
    (big-endian: uint8 version, int32-length device id, int32-length subject, int32 frame, float32
    subframe, int32 rate numerator/denominator, uint8 count, count x float32) -- not facecap's decoder."""
    pos = 0

    def take(fmt: str):
        nonlocal pos
        out = struct.unpack_from(">" + fmt, pkt, pos)
        pos += struct.calcsize(">" + fmt)
        return out

    (version,) = take("B")
    (n,) = take("i")
    device = pkt[pos : pos + n].decode()
    pos += n
    (n,) = take("i")
    subject = pkt[pos : pos + n].decode()
    pos += n
    frame, sub, num, den = take("ifii")
    (count,) = take("B")
    vals = take(f"{count}f")
    assert pos == len(pkt), "trailing bytes"
    return {"version": version, "device": device, "subject": subject, "frame": frame, "subframe": sub,
            "rate": (num, den), "values": dict(zip(SPEC_LIVELINK_NAMES, vals, strict=True))}  # fmt: skip


def spec_weight(d: dict, canonical: str) -> float:
    return d["values"][canonical[0].upper() + canonical[1:]]


def test_livelink_names_match_the_spec():
    assert LIVELINK_NAMES == SPEC_LIVELINK_NAMES


def test_livelink_packet_golden_and_roundtrip():
    st = make_state(11)
    dev, subj = "DEADC0DE-1337-1337-1337-CAFEBABE0001", "facecap"
    unreal = [arkit.INDEX[arkit.canonical_name(n)] for n in LIVELINK_NAMES[:52]]
    yaw, pitch, roll = head_euler(st.rotation)
    g = st.gaze.astype(float)
    # Live Link's angle convention: facecap's yaw and roll negated, pitch kept (head and eyes alike)
    vals = [*st.weights[unreal], -yaw, pitch, -roll, -g[0, 0], g[0, 1], 0.0, -g[1, 0], g[1, 1], 0.0]
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
    assert head_yaw == pytest.approx(-0.2, abs=1e-6)  # facecap yaw 0.2 (toward the subject's left)
    spec = spec_decode_livelink(pkt)
    assert (spec["version"], spec["device"], spec["subject"]) == (6, dev, subj)
    assert (spec["frame"], spec["subframe"], spec["rate"]) == (123456, 0.25, (60, 1))
    for n in arkit.ARKIT_NAMES:
        assert spec_weight(spec, n) == f32(st.weights[arkit.INDEX[n]])
    d = decode_livelink_packet(pkt)
    assert (d["version"], d["device_id"], d["subject"]) == (6, dev, subj)
    assert (d["frame_number"], d["subframe"], d["fps_num"], d["fps_den"]) == (123456, 0.25, 60, 1)
    assert np.array_equal(d["weights"], f32(st.weights))
    assert np.allclose(d["head"], [-0.2, -0.1, -0.05], atol=1e-6)
    assert np.allclose(d["eyes"], [[-g[0, 0], g[0, 1], 0], [-g[1, 0], g[1, 1], 0]], atol=1e-7)
    with pytest.raises(ValueError, match="expected"):
        decode_livelink_packet(pkt[:-3])
    with pytest.raises(ValueError, match="version"):
        decode_livelink_packet(bytes([5]) + pkt[1:])
    with pytest.raises(ValueError, match="too short"):
        decode_livelink_packet(b"\x06\x00")
    with pytest.raises(ValueError, match="subframe"):
        encode_livelink_packet(st, dev, subj, 1, 1.0)


def test_livelink_signs_over_udp_head_and_eyes_toward_the_subjects_right():
    """A head turned toward the subject's right, tilted down and rolled, eyes looking to the subject's right
    and down: HeadYaw > 0, eye yaw > 0 (the Right-named side, as the real iPhone takes show), pitch > 0,
    roll negated vs facecap. Decoded off a real socket by the spec decoder."""
    from facecap.tracker import gaze_from_weights

    r = from_euler(-0.3, 0.1, 0.2)
    nose = r @ [0.0, 0.0, 1.0]  # rig +z out of the face, in camera axes (x = image right = subject's left)
    assert nose[0] < -0.2 and nose[1] > 0.05  # really toward the subject's right, and down
    w = np.zeros(52, np.float32)
    for n in ("eyeLookInLeft", "eyeLookOutRight", "eyeLookDownLeft", "eyeLookDownRight"):
        w[arkit.INDEX[n]] = 0.6  # both eyes toward the subject's right (left eye in, right eye out), down
    st = FaceState(timestamp=10.0, weights=w, rotation=r, translation=np.array([0, 0, 0.6]), tracked=True,
                   quality=1.0, gaze=gaze_from_weights(w))  # fmt: skip
    with udp_receiver() as (port, rx), LiveLinkSink("127.0.0.1", port) as sink:
        sink.send(st)
        d = spec_decode_livelink(rx.recv(4096))["values"]
    assert d["HeadYaw"] == pytest.approx(0.3, abs=1e-6)
    assert d["HeadPitch"] == pytest.approx(0.1, abs=1e-6)
    assert d["HeadRoll"] == pytest.approx(-0.2, abs=1e-6)
    for eye in ("LeftEye", "RightEye"):
        assert d[eye + "Yaw"] > 0.1 and d[eye + "Pitch"] > 0.1 and d[eye + "Roll"] == 0.0


@pytest.mark.parametrize("name", LIVELINK_TAKES[:2])
def test_real_take_streams_its_own_eye_angles(name):
    """A real iPhone take imported and streamed: each packet's eye yaw/pitch equal the CSV's columns."""

    src = shared_path("arkit_blendshape_takes", name)
    ll = read_csv(src)
    take = take_from_livelink(ll)
    rows = np.flatnonzero(ll.tracked)[:: max(1, int(ll.tracked.sum()) // 40)]
    with udp_receiver() as (port, rx), LiveLinkSink("127.0.0.1", port) as sink:
        for i in rows:
            sink.send(take.state(int(i)))
            d = spec_decode_livelink(rx.recv(4096))["values"]
            got = [d["LeftEyeYaw"], d["LeftEyePitch"], d["RightEyeYaw"], d["RightEyePitch"]]
            assert got == pytest.approx(ll.eyes[i, [0, 1, 3, 4]].tolist(), abs=1e-6)
            assert [d["HeadYaw"], d["HeadPitch"], d["HeadRoll"]] == pytest.approx(ll.head[i], abs=1e-6)


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


def test_a_wrong_url_scheme_names_only_options_that_exist():
    from facecap.cli.outputs import target_url

    with pytest.raises(ValueError, match=r"use --osc for osc://"):
        target_url("vmc", "osc://127.0.0.1:9000")
    with pytest.raises(ValueError, match=r"there is no http:// output") as e:
        target_url("vmc", "http://x")
    assert "--http" not in str(e.value)
    assert target_url("vmc", "39539") == "vmc://127.0.0.1:39539"
