"""Actor calibration: held poses in, a personalised rig out (Faceshift's "training" step).

:class:`Calibrator` takes the frames of each protocol step, checks that the pose was held and the face
seen (each frame gets an accepted / rejected verdict with a reason), fuses the neutral steps' depth into
one cloud in rig coordinates (noise averaged over every frame and view), deforms the rig's neutral onto
it by optimal-step nonrigid ICP (:mod:`facecap.calibration.nricp`), re-registers the frames to the
fitted face and fits again, and carries the expression deltas onto the new face through the fitted
per-vertex transforms (deformation transfer). Each expression step captured is then registered (on
what its target weights leave still), fused at its target weights, and the deltas are corrected
toward those scans (:func:`_refine_expressions`, example-based rigging): how far *this* performer's
jaw, smile or brows travel becomes what 1.0 means.
"""

from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from .. import pose
from .._kernels import fuse_depth, vertex_normals
from ..formats import load_rig
from ..frames import Frame, Intrinsics
from ..rig import Rig
from ..state import FaceState
from .nricp import nricp
from .protocol import PROTOCOL, Protocol

STILL_M = 0.001
"""An expression step's head pose is registered on the vertices its target weights move less than this."""
EXPRESSION_RIDGE = 0.05
"""Ridge weight of the expression refinement: a shape seen once at weight 1 moves 1 / 1.05 of the way."""
WORKERS = 2
"""Threads of the solve (registration, fusion, expression scans; the kernels release the GIL). Fixed, not
the machine's core count: the work is split the same way everywhere, so every sum adds in the same order."""


def _map(fn, items: list) -> list:
    """``[fn(x) for x in items]`` on :data:`WORKERS` threads, results in order."""
    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(fn, items))


def _halves(items: list) -> list[list]:
    """``items`` split into :data:`WORKERS` contiguous parts (fixed, whatever the machine)."""
    cut = np.linspace(0, len(items), WORKERS + 1).astype(int)
    return [items[a:b] for a, b in zip(cut[:-1], cut[1:], strict=True)]


@dataclass
class Feedback:
    """Verdict on one frame: ``accepted``, and if not, ``reason`` (what to tell the performer);
    ``step``; ``accepted_frames`` of the step so far; ``needed`` frames for the step (its hold time at the
    camera rate); ``yaw_pitch_deg`` the head pose read (None without a face)."""

    accepted: bool
    reason: str
    step: str
    accepted_frames: int
    needed: int
    yaw_pitch_deg: tuple[float, float] | None = None

    @property
    def done(self) -> bool:
        return self.accepted_frames >= self.needed


@dataclass
class _StepData:
    frames: list = field(default_factory=list)  # (depth (H, W) float32, R, t)
    rejected: dict = field(default_factory=dict)  # reason -> count


class CalibrationError(ValueError):
    """Calibration cannot be solved; ``redo`` names the steps to capture again."""

    def __init__(self, msg: str, redo: list[str]):
        super().__init__(msg)
        self.redo = redo


class Calibrator:
    """Collects protocol frames and solves for the performer's rig.

    Parameters
    ----------
    intrinsics : Intrinsics of the depth images (aligned to colour or not)
    camera : RealSense model name (sets the depth noise the tracker assumes)
    rig : the generic rig to personalise (default: the built-in ICT rig)
    protocol : Protocol (default :data:`facecap.calibration.PROTOCOL`)
    fps : camera rate, to turn hold times into frame counts
    head_tol_deg : a frame whose head yaw/pitch is farther than this from the step's hint is rejected
    hold_tol_deg, hold_tol_m : a frame that moved more than this from the step's first accepted frame is
        rejected (the pose was not held)
    """

    def __init__(
        self,
        intrinsics: Intrinsics,
        camera: str = "d415",
        rig: Rig | None = None,
        protocol: Protocol = PROTOCOL,
        *,
        fps: float = 30.0,
        head_tol_deg: float = 12.0,
        hold_tol_deg: float = 3.0,
        hold_tol_m: float = 0.006,
    ):
        from ..tracker import Tracker, TrackerConfig

        if not isinstance(intrinsics, Intrinsics):
            raise TypeError("intrinsics must be a facecap.Intrinsics (e.g. frame.depth_intrinsics)")
        self.intrinsics = intrinsics
        self.camera = camera
        self.rig = rig if rig is not None else load_rig()
        self.protocol = protocol
        self.fps = float(fps)
        self.head_tol, self.hold_tol_deg, self.hold_tol_m = head_tol_deg, hold_tol_deg, hold_tol_m
        self._config = TrackerConfig.for_camera(camera)
        self._tracker = Tracker(self.rig, intrinsics, self._config)
        self._tracker_step: str | None = None
        self.steps: dict[str, _StepData] = {s.name: _StepData() for s in protocol}
        self.last_state: FaceState | None = None  # the tracker's result for the last frame added
        self.fused = None  # after solve(): (points (P, 3), normals (P, 3), template vertex ids, triangles)

    # ------------------------------------------------------------------ capture
    def needed(self, step_name: str) -> int:
        return max(3, int(round(self.protocol[step_name].hold_s * self.fps * 0.5)))

    def add(self, step_name: str, frame: Frame) -> Feedback:
        """Check one frame of a held step and keep it if it is good.

        Rejected (with the reason): no face, head not in the step's pose, head moved since the step's
        first accepted frame. Steps may be captured in any order and again (frames add up); call
        :meth:`clear` to redo a step from scratch.
        """
        step = self.protocol[step_name]
        if not isinstance(frame, Frame):
            raise TypeError(f"add() needs a facecap.Frame, got {type(frame).__name__}")
        data = self.steps[step.name]
        need = self.needed(step.name)

        def verdict(ok: bool, reason: str, yp=None) -> Feedback:
            if not ok:
                data.rejected[reason] = data.rejected.get(reason, 0) + 1
            return Feedback(ok, reason, step.name, len(data.frames), need, yp)

        if self._tracker_step != step.name:  # each step starts from a fresh acquisition
            self._tracker.reset()
            self._tracker_step = step.name
        st = self.last_state = self._tracker.track(frame)
        if not st.tracked:
            return verdict(False, "no face found")
        yaw, pitch, _ = pose.head_euler(st.rotation)
        yp = (round(float(np.degrees(yaw)), 1), round(float(np.degrees(pitch)), 1))
        dy, dp = np.degrees(yaw - step.head[0]), np.degrees(pitch - step.head[1])
        if abs(dy) > self.head_tol or abs(dp) > self.head_tol:
            hint = []
            if abs(dy) > self.head_tol:
                hint.append("turn more to your " + ("left" if dy < 0 else "right"))
            if abs(dp) > self.head_tol:
                hint.append("chin " + ("up" if dp < 0 else "down"))
            return verdict(False, "head not in pose: " + " and ".join(hint), yp)
        if data.frames:
            _, R0, t0 = data.frames[0]
            if (pose.rotation_angle_deg(R0, st.rotation) > self.hold_tol_deg
                    or np.linalg.norm(st.translation - t0) > self.hold_tol_m):  # fmt: skip
                return verdict(False, "moved: hold the pose still", yp)
        data.frames.append((np.array(frame.depth, np.float32), st.rotation.copy(), st.translation.copy()))
        return verdict(True, "ok", yp)

    def clear(self, step_name: str) -> None:
        """Forget the frames of one step (to capture it again); its next frame is acquired afresh."""
        self.steps[self.protocol[step_name].name] = _StepData()
        self._tracker_step = None  # the head may have moved far since: no warm start from before

    def missing(self) -> list[str]:
        """Steps without enough accepted frames, in protocol order."""
        return [s.name for s in self.protocol if len(self.steps[s.name].frames) < self.needed(s.name)]

    # ------------------------------------------------------------------ solve
    def solve(
        self, *, rounds: int = 3, frames_per_step: int = 12, refine: float | None = EXPRESSION_RIDGE
    ) -> Rig:
        """The personalised rig (a :class:`facecap.Rig`; ``meta["calibration"]`` holds the record).

        The identity comes from the neutral steps; the expressions are the generic deltas carried onto
        it, then (``refine`` not None) corrected toward the fused scans of the expression steps
        captured (see :func:`_refine_expressions`; ``refine`` is its ridge weight).

        Raises
        ------
        CalibrationError
            when no neutral step has enough frames (``.redo`` lists the steps to capture).
        """
        neutral_steps = [s.name for s in self.protocol if s.neutral]
        usable = [n for n in neutral_steps if len(self.steps[n].frames) >= self.needed(n)]
        redo = [n for n in neutral_steps if n not in usable]
        if self.protocol[0].neutral and self.protocol[0].name not in usable:
            usable = []  # the frontal neutral is the reference: without it the identity is unreliable
        if not usable:
            raise CalibrationError(
                "calibration needs the neutral steps; capture again: " + ", ".join(redo), redo
            )
        rig = self.rig
        idx, tris = face_part(rig)
        frames = []
        for n in usable:  # up to ``frames_per_step`` of each held step, evenly spread
            fs = self.steps[n].frames
            frames += [fs[i] for i in np.unique(np.linspace(0, len(fs) - 1, frames_per_step).astype(int))]
        current = rig
        res = None
        followers = _followers(rig, idx)
        generic = None
        for _ in range(max(1, rounds)):
            if current is not rig:  # the rounds change the neutral only: the generic model, moved to it
                generic = self._model(rig) if generic is None else generic
                fitted = replace(generic, b0=current.neutral[generic.index].astype(np.float64))
            poses = frames if current is rig else self._register(fitted, frames)
            cloud, normals, rim, seen_ids = _fuse(poses, self.intrinsics, current, idx, tris)
            # the scan's rim outside the tracked face (cheeks' and forehead's edge, neck) holds no
            # correspondence: what lies beyond it stays template-like (the eye and mouth rims are kept)
            track = rig.masks["track"][idx][seen_ids]
            # the first round walks the stiffness schedule (a stiffer first step, 30, measured no better;
            # alpha 1 alone fitted the neutral as well, but its transforms carried the deltas worse: actor
            # MAE 0.0558 against 0.0525 on performer 1); later rounds refine once at the last stiffness,
            # preconditioned by the first round's factorisation
            first = res is None
            res = nricp(rig.neutral[idx], tris, cloud, normals, stiffness=(5.0, 1.0) if first else (1.0,),
                        inner=2 if first else 1, init=res, target_boundary=rim & ~track)  # fmt: skip
            current = _personalised(rig, idx, res, followers, deltas=False)  # the next round: neutral only
        current = _personalised(rig, idx, res, followers)
        self.fused = (cloud, normals, idx, tris)  # the last fused neutral and the fitted template part
        assert res is not None
        missing = set(self.missing())
        expr = [s for s in self.protocol if not s.neutral and s.name not in missing]
        residuals = {}
        if refine is not None and expr:
            model = self._model(current)

            def scan(step):  # one expression step's fused scan (on one of the solve's threads)
                fs = self.steps[step.name].frames
                # half as many frames as a neutral step: an expression scan is fused once, not in rounds
                pick = [
                    fs[i]
                    for i in np.unique(np.linspace(0, len(fs) - 1, max(3, frames_per_step // 2)).astype(int))
                ]
                w = step.weight_vector()
                motion = np.tensordot(w[w != 0], current.deltas[w != 0], 1)
                posed = replace(current, neutral=current.neutral + motion)
                # the head pose from what the step does not move, so that a shape that travels further
                # than the rig's is not explained by turning the head
                still = np.linalg.norm(motion, axis=1)[model.index[model.sample]] < STILL_M
                held = replace(model, sample=model.sample[still]) if still.sum() > 300 else model
                poses = self._register(held, pick, w, threads=False)
                try:
                    pts, nrm, _, ids = _fuse(poses, self.intrinsics, posed, idx, tris, threads=False)
                except CalibrationError:  # nothing of this step's face fused: it keeps the transferred shapes
                    return None
                off = np.einsum("ij,ij->i", pts - posed.neutral[idx][ids], nrm)
                return step.name, w, ids, off, nrm

            scans = [sc for sc in _map(scan, expr) if sc is not None]
            current, residuals = _refine_expressions(current, idx, tris, scans, refine)
        seen = res.weights > 0
        meta = {
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "camera": self.camera,
            "protocol": {"name": self.protocol.name, "version": self.protocol.version},
            "base_rig": rig.name,
            "neutral_steps": usable,
            "neutral_residual_mm_median": round(float(np.median(res.distances[seen]) * 1000), 3),
            "face_vertices_seen": round(float(seen.mean()), 3),
            "steps": {
                s.name: {
                    "accepted": len(self.steps[s.name].frames),
                    "needed": self.needed(s.name),
                    "rejected": dict(self.steps[s.name].rejected),
                }  # fmt: skip
                for s in self.protocol
            },
            "missing": self.missing(),
            "expressions": "deformation transfer of the generic deltas"
            + (f", refined toward the fused scans of {len(residuals)} expression steps" if residuals else ""),
            "expression_residual_mm_median": residuals,  # step -> [before, after] refinement
        }
        return replace(current, name="facecap-actor", meta={**rig.meta, "calibration": meta})

    def _model(self, rig: Rig):
        from ..fit import MaskModel
        from ..tracker import max_points

        # the base rig's row budget while solving (the rigs fitted on the way are not actors yet)
        return MaskModel.from_rig(rig, max_points=max_points(self._config, self.rig))

    def _register(self, model, frames: list, weights: np.ndarray | None = None, threads: bool = True) -> list:
        """Rigid re-registration of each frame to a rig's ``model`` (:meth:`_model`; its neutral, or the
        expression ``weights`` (52,) held fixed), from the frame's previous pose (``threads``: the
        frames split over :data:`WORKERS` threads)."""
        from ..fit import Buffers, FitParams, fit_frame

        intr = self.intrinsics
        k = (intr.fx, intr.fy, intr.cx, intr.cy)
        w = np.zeros(52) if weights is None else np.asarray(weights, np.float64)

        def run(part: list) -> list:
            buf = Buffers(len(model.sample))
            out = []
            for depth, R, t in part:
                sigma = float(np.clip(self._config.depth_noise_1m * t[2] ** 2, 0.0005, 0.01))
                p = replace(FitParams(), sigma=sigma, solve_weights=False, iterations=4, max_iterations=4)
                r = fit_frame(model, depth, k, R, t, w, p, buffers=buf)
                out.append((depth, r.rotation, r.translation) if r.inliers > 50 else (depth, R, t))
            return out

        return [f for part in (_map if threads else map)(run, _halves(frames)) for f in part]


def _refine_expressions(rig: Rig, idx, tris, scans, ridge: float, smooth: int = 2):
    """Correct the rig's deltas toward fused expression scans (example-based rigging, Li et al. 2010).

    Each scan ``(name, w (52,), ids (P,), off (P,), normals (P, 3))`` says how far, along the posed
    face's normal, the performer's surface lies from the rig at the step's target weights ``w`` (metres,
    on the face vertices ``ids`` into ``idx``). Per vertex, the corrections ``E_k`` (3,) of the shapes
    solve, in the least-norm sense with the ridge ``ridge``, ``n_s . sum_k w_sk E_k = off_s`` over the
    scans that saw it; the offsets are first smoothed over the mesh (``smooth`` rounds of one-ring
    averaging) so that depth noise does not become shape detail. Shapes no step used, and vertices no
    scan saw, keep the transferred deltas.

    Returns
    -------
    rig : the rig with corrected deltas; residuals : dict step name -> [median |off| before, after] mm
    """
    if not scans:
        return rig, {}
    n = len(idx)
    e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    nbr = sparse.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    nbr = ((nbr + nbr.T) > 0).astype(np.float64) + sparse.identity(n)
    S = len(scans)
    off = np.zeros((S, n))
    seen = np.zeros((S, n))
    W = np.array([sc[1] for sc in scans])  # (S, 52)
    normals = np.zeros((S, n, 3))
    for s, (_, _, ids, o, nrm) in enumerate(scans):
        m = np.zeros(n)
        m[ids] = 1.0
        v = np.zeros(n)
        v[ids] = o
        for _ in range(smooth):  # average over the seen one-ring
            v = np.where(m > 0, (nbr @ (v * m)) / np.maximum(nbr @ m, 1.0), 0.0)
        off[s], seen[s] = v, m
        normals[s, ids] = nrm
    # per vertex: G c = off with G_st = (w_s . w_t)(n_s . n_t) + ridge delta_st (a normal is 0 where its
    # scan did not see the vertex); E = sum_s c_s w_s n_s. Batched products, no (n, S, S) temporaries
    nv = np.ascontiguousarray(normals.transpose(1, 0, 2))  # (n, S, 3)
    G = nv @ nv.transpose(0, 2, 1)
    G *= W @ W.T
    G[:, np.arange(S), np.arange(S)] += ridge
    F = np.linalg.solve(G, (off * seen).T[:, :, None]) * nv  # (n, S, 3): c_s n_s
    F = F.transpose(1, 0, 2).reshape(S, 3 * n)
    E = (W.T @ F).reshape(-1, n, 3)  # (52, n, 3)
    deltas = rig.deltas.astype(np.float64)
    deltas[:, idx] += E
    after = off - np.einsum("svi,svi->sv", normals, ((W @ W.T) @ F).reshape(S, n, 3))  # sum_k w_sk E_k . n_s
    residuals = {}
    for s, (name, _, ids, o, _) in enumerate(scans):
        residuals[name] = [round(float(np.median(np.abs(o)) * 1000), 3),
                           round(float(np.median(np.abs(after[s, ids])) * 1000), 3)]  # fmt: skip
    return replace(rig, deltas=deltas.astype(np.float32)), residuals


def face_part(rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """The skin of the face that calibration fits: (V',) rig vertex ids and (F', 3) triangles over them."""
    face = rig.masks["face"] & ~rig.masks.get("interior", np.zeros(rig.n_vertices, bool))
    idx = np.flatnonzero(face)
    remap = -np.ones(rig.n_vertices, np.int64)
    remap[idx] = np.arange(len(idx))
    return idx, remap[rig.triangles[face[rig.triangles].all(1)]]


def _fuse(frames, intr, rig: Rig, idx, tris, band: float = 0.01, min_count: int = 20, threads: bool = True):
    """Fuse the depth of every frame into one surface: robust averaging along the face's normals.

    Each face vertex of ``rig`` that faces the camera is projected into every frame (through the frame's
    pose); the depth pixels of the 3x3 window there are measured along the vertex normal (point to plane,
    in rig coordinates), and the trimmed mean of all those offsets over every frame and view moves the
    vertex onto the fused surface. The depth noise averages out along the normal, where it lies.
    Vertices with fewer than ``min_count`` samples (unseen) give no point. The frames are summed in
    :data:`WORKERS` fixed parts (on as many threads with ``threads``), the same arithmetic either way.

    Returns
    -------
    points, normals : (P, 3) float64 metres, unit normals pointing out of the face
    rim : (P,) bool, points of vertices next to an unseen one (where the fused surface stops)
    ids : (P,) int, the face vertex (index into ``idx``) of each point
    """
    v0 = np.ascontiguousarray(rig.neutral[idx], dtype=np.float64)
    nrm = vertex_normals(rig.neutral.astype(np.float64), rig.triangles)[idx]  # compiled: 10x numpy's
    n = len(v0)
    k = (float(intr.fx), float(intr.fy), float(intr.cx), float(intr.cy))
    frames = [(np.ascontiguousarray(d, np.float32), np.ascontiguousarray(R, np.float64),
               np.ascontiguousarray(t, np.float64)) for d, R, t in frames]  # fmt: skip
    mean = sd = np.zeros(n)

    def part_sums(part: list, mean, sd, trim: bool) -> tuple:
        sums = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
        for depth, R, t in part:
            fuse_depth(depth, R, t, *k, v0, nrm, band, mean, sd, trim, *sums)
        return sums

    for trim in (False, True):  # all offsets within the band; then those within 2 sd of their mean
        sums = partial(part_sums, mean=mean, sd=sd, trim=trim)
        parts = list((_map if threads else map)(sums, _halves(frames)))
        count, s1, s2 = (sum(p[j] for p in parts) for j in range(3))
        mean = s1 / np.maximum(count, 1)
        sd = np.sqrt(np.maximum(s2 / np.maximum(count, 1) - mean**2, 0.0))
    seen = np.flatnonzero(count >= min_count)
    if len(seen) < 100:
        raise CalibrationError("the neutral frames held no face surface to fuse", [])
    ok = count >= min_count
    e = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    rim = np.zeros(n, bool)
    cut = ok[e[:, 0]] != ok[e[:, 1]]
    rim[e[cut].ravel()] = True
    return v0[seen] + nrm[seen] * mean[seen, None], nrm[seen], rim[seen], seen


def _followers(rig: Rig, idx: np.ndarray) -> tuple:
    """The vertices outside the face part ``idx`` (R,), their 8 nearest face vertices (R, 8) (indices into
    ``idx``) and inverse-square-distance weights (R, 8) summing to 1: how they follow the fitted face."""
    rest = np.setdiff1d(np.arange(rig.n_vertices), idx)
    if not len(rest):
        return rest, np.zeros((0, 8), np.int64), np.zeros((0, 8))
    d, nn = cKDTree(rig.neutral[idx]).query(rig.neutral[rest], k=8, workers=-1)
    wt = 1.0 / np.maximum(d, 1e-4) ** 2
    return rest, nn, wt / wt.sum(1, keepdims=True)


def _personalised(rig: Rig, idx: np.ndarray, res, followers: tuple, deltas: bool = True) -> Rig:
    """The rig with its face moved to the fit (the rest follows the nearest face vertices) and each delta
    carried through its vertex's fitted linear transform (``deltas=False``: the generic deltas kept).
    ``followers``: :func:`_followers` of ``rig`` and ``idx``."""
    rest, nn, wt = followers
    disp = np.zeros_like(rig.neutral, dtype=np.float64)
    disp[idx] = res.vertices - rig.neutral[idx]
    A = np.repeat(np.eye(3)[None], rig.n_vertices, 0)
    A[idx] = res.transforms[:, :3, :]
    if len(rest):
        disp[rest] = np.einsum("rk,rkj->rj", wt, disp[idx][nn])
        A[rest] = np.einsum("rk,rkij->rij", wt, A[idx][nn])
    neutral = (rig.neutral + disp).astype(np.float32)
    if not deltas:
        return replace(rig, neutral=neutral)
    carried = np.einsum("kvi,vij->kvj", rig.deltas.astype(np.float64), A, optimize=True)
    return replace(rig, neutral=neutral, deltas=carried.astype(np.float32))
