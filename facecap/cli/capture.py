"""Commands that run the capture loop (facecap.pipeline.run): demo, track, stream, live, play."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import format_table, run_demo
    from .outputs import (
        format_identity,
        format_outputs,
        landmarker_from_args,
        outputs_from_args,
        view_from_args,
    )

    # --vmc/--osc/--facecap/--livelink/--record/--retarget: every tracked frame also goes to Outputs
    with outputs_from_args(args, fps=30.0, meta={"source": "facecap demo", "seed": args.seed}) as outputs:
        landmarker = landmarker_from_args(args)
        view = view_from_args(args)
        try:
            res = run_demo(frames=args.frames, out=args.out, camera=args.camera, distance=args.distance,
                           seed=args.seed, max_angle_deg=args.max_angle, progress=None if args.json else True,
                           keep_recording=args.keep_recording, landmarker=landmarker, take=args.take,
                           identity=args.identity, actor=args.actor, adapt_identity=args.adapt_identity,
                           smoothing=smoothing_from_args(args), view=view,
                           sinks=outputs if (outputs.sinks or outputs.record) else None)  # fmt: skip
        finally:
            if landmarker is not None:
                landmarker.close()
            if view is not None:
                view.close()
    st = outputs.stats
    if args.json:
        print(json.dumps(res | ({"streams": st} if st["frames"] else {}), indent=2))
    else:
        print(format_table(res))
        if res.get("identity_adaptation"):
            print(format_identity(res["identity_adaptation"]))
        if args.out:
            print(f"results in {args.out}/ (results.json, tracked.png)")
        if st["frames"]:
            print(format_outputs(st))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..calibration import PROTOCOL, CalibrationError, load_protocol
    from ..calibration.recording import calibrate_recording
    from .files import refuse_overwrite

    protocol = load_protocol(args.protocol) if args.protocol else PROTOCOL
    if args.steps:
        print(f"protocol {protocol.name} v{protocol.version}: {len(protocol)} steps")
        for i, s in enumerate(protocol, 1):
            yaw, pitch = (round(math.degrees(a)) for a in s.head)
            head = "" if (yaw, pitch) == (0, 0) else f"  [head yaw {yaw:+d}, pitch {pitch:+d} deg]"
            print(f"{i:3d}. {s.name:16s} {s.hold_s:.1f} s  {s.prompt}{head}")
        return 0
    if not args.out:
        raise SystemExit(
            "calibrate needs --out ACTOR.npz (and --from RECORDING for a recording; live without)"
        )
    if not str(args.out).endswith(".npz"):
        raise SystemExit(f"--out must end in .npz (an actor profile in the rig format), got {args.out}")
    if args.recording and args.record:
        raise ValueError("--record records a live calibration; with --from the recording is already there")
    refuse_overwrite(args.out, args)
    try:
        if args.recording:
            from ..calibration.session import marks_path

            if marks_path(args.recording).is_file():
                print(
                    f"steps from the live session's marks ({marks_path(args.recording).name})",
                    file=sys.stderr,
                )
            actor, cal = calibrate_recording(args.recording, protocol=protocol, camera=args.camera,
                                             transition_s=args.transition, progress=True)  # fmt: skip
        else:
            session = calibrate_live(args, protocol)
            if session.calibrator is None:
                print("calibration stopped before the first frame: nothing captured", file=sys.stderr)
                return 130 if session.interrupted else 1
            if session.missing():
                print("not captured: " + ", ".join(session.missing()), file=sys.stderr)
            actor = session.calibrator.solve()
    except CalibrationError as e:
        print(f"calibration failed: {e}", file=sys.stderr)
        return 1
    meta = actor.meta["calibration"]
    for name, st in meta["steps"].items():
        why = max(st["rejected"], key=st["rejected"].get) if st["rejected"] else ""
        mark = "ok  " if st["accepted"] >= st["needed"] else "REDO"
        print(
            f"{mark} {name:16s} {st['accepted']:4d}/{st['needed']} frames"
            + (f"  (mostly: {why})" if why else "")
        )
    actor.save(args.out)
    views = len(meta["neutral_steps"])
    print(
        f"neutral fitted to {meta['neutral_residual_mm_median']:.2f} mm (median), {views} views -> {args.out}"
    )
    if meta["missing"]:
        print("redo these steps for a full calibration: " + ", ".join(meta["missing"]))
    return 0


def calibrate_live(args: argparse.Namespace, protocol):
    """The live calibration session on a RealSense camera, with prompts on the terminal."""
    from ..calibration.session import CalibrationSession, save_marks
    from ..realsense import LiveSource
    from .files import refuse_overwrite
    from .outputs import view_from_args

    if args.retries < 0 or args.countdown < 0:
        raise ValueError("--retries and --countdown must be >= 0")
    if args.record:
        if not str(args.record).endswith(".db3"):
            raise ValueError(f"--record must end in .db3 (a RealSense recording), got {args.record}")
        refuse_overwrite(args.record, args)
    src = LiveSource(640, 480, args.fps, serial=args.serial)  # checks its arguments; the camera opens later
    view = view_from_args(args)
    record = None  # made last: nothing after it may fail before the try that closes it
    if args.record:
        from pathlib import Path

        from ..realsense.raw import RawRecorder

        record = RawRecorder(Path(args.record), args.fps, segment_s=float("inf"))
    session = CalibrationSession(args.camera or "d435", protocol=protocol, fps=args.fps,
                                 countdown_s=args.countdown, retries=args.retries,
                                 listener=SessionPrinter(), view=view)  # fmt: skip
    frames = src if record is None else (record.put(f) or f for f in src)
    try:
        with src:  # started here, stopped on the way out (Ctrl-C too)
            session.camera = args.camera or src.device_name or "d435"
            print(f"calibrating on {src.device_name}: {len(protocol)} steps; Ctrl-C stops and keeps what "
                  "was captured", file=sys.stderr)  # fmt: skip
            session.run(frames)
    finally:
        if view is not None:
            view.close()
        if record is not None:
            n = record.close()
            if n:
                marks = save_marks(session, args.record)
                again = f"`facecap calibrate --from {args.record}` calibrates from them again"
                print(f"recorded {n} frames to {args.record}, the steps' marks to {marks.name} ({again})",
                      file=sys.stderr)  # fmt: skip
    return session


class SessionPrinter:
    """Prompts, countdowns and each step's result on the terminal (stderr) for a live calibration."""

    def __call__(self, e) -> None:
        if e.kind == "prompt":
            yaw, pitch = (round(math.degrees(a)) for a in e.step.head)
            head = "" if (yaw, pitch) == (0, 0) else f"  [head yaw {yaw:+d}, pitch {pitch:+d} deg]"
            again = f" (again, attempt {e.attempt})" if e.attempt > 1 else ""
            print(f"\n[{e.number}/{e.total}] {e.step.prompt}{head}{again}", file=sys.stderr)
        elif e.kind == "countdown":
            print(f"  {e.seconds_left}...", file=sys.stderr)
        elif e.kind == "hold":
            fb = e.feedback
            why = "" if fb.accepted else f"  ({fb.reason})"
            print(
                f"\r  hold: {fb.accepted_frames}/{fb.needed} frames{why}".ljust(72), end="", file=sys.stderr
            )
        elif e.kind == "retry":
            print(f"\n  not held ({e.reason}): once more", file=sys.stderr)
        elif e.kind == "step":
            print("\n  ok" if e.ok else f"\n  skipped ({e.reason}): redo it later", file=sys.stderr)


def cmd_track(args: argparse.Namespace) -> int:
    from ..track import track_file
    from .files import refuse_overwrite
    from .outputs import format_identity

    refuse_overwrite(args.out, args)
    n = track_file(args.file, args.out, rig=args.rig, fmt=args.format, progress=True,
                   model=None if args.landmarks in (None, "auto") else args.landmarks,
                   adapt_identity=args.adapt_identity, smoothing=smoothing_from_args(args))  # fmt: skip
    if n["interrupted"]:  # the rows tracked so far are in the file
        print("interrupted", file=sys.stderr)
        return 130
    print(f"tracked {n['frames']} frames ({n['tracked_fraction'] * 100:.1f}% with a face) -> {args.out}")
    if n["dropped"]:
        print(f"dropped {n['dropped']} depth frames without a colour frame to align to")
    if n.get("truncated"):
        print(f"the video ends early: {n['truncated']} frames its header announced could not be decoded")
    if n.get("identity"):
        print(format_identity(n["identity"]))
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    import dataclasses
    import itertools

    import numpy as np

    from ..pipeline import Outputs, run
    from ..progress import StatusLine
    from ..sinks import open_sinks
    from .files import load_take_arg
    from .outputs import format_outputs

    if not args.speed > 0:
        raise ValueError(f"--speed must be > 0, got {args.speed}")
    take = load_take_arg(args)
    if not len(take):
        raise ValueError(f"take {args.take} has no frames")
    ts = take.timestamps - take.timestamps[0]
    if not (np.isfinite(ts).all() and (np.diff(ts) >= 0).all()):
        ts = np.arange(len(take)) / take.fps  # broken clock: play at the take's frame rate
    states = [dataclasses.replace(st, timestamp=float(t)) for st, t in zip(take.states(), ts, strict=True)]
    sink = open_sinks(args.to)
    # each loop round starts the pacing clock again (its first timestamp goes back)
    items = itertools.chain.from_iterable(itertools.repeat(states)) if args.loop else states
    status = StatusLine(None if args.loop else len(states), f"-> {sink.url}")
    res = run(items, None, Outputs([sink]), realtime=True, speed=args.speed, progress=status)
    if res["interrupted"]:
        print("interrupted", file=sys.stderr)
        return 130
    print(format_outputs({"sinks": sink.stats.get("sinks", [sink.stats])}))
    return 0


def smoothing_from_args(args: argparse.Namespace):
    """A ``facecap.smoothing.OneEuro`` (its defaults) for ``--smooth``, else None."""
    from ..smoothing import OneEuro

    return OneEuro() if getattr(args, "smooth", False) else None


def refuse_adapt_without_depth(args: argparse.Namespace, source) -> None:
    """``--adapt-identity`` on a colour-only source (a video, a webcam): a clear error, not a silent no-op."""
    if getattr(args, "adapt_identity", False):
        raise ValueError(f"--adapt-identity fits the face to depth images; {source} is colour only")


LIVE_LANDMARK_MAX_AGE_S = 0.05
"""Live: a frame whose own landmarks are late uses landmarks of a frame up to this much older [s]."""


def run_capture(args: argparse.Namespace, source, *, fps: float, camera: dict, meta: dict, verb: str,
                 realtime: bool = False, total: int | None = None, start=None) -> int:  # fmt: skip
    """Shared body of `live` and `play`: outputs, optional MediaPipe, the tracking loop, the summary."""
    from pathlib import Path

    from ..formats import load_rig
    from ..pipeline import run
    from ..tracker import Tracker, TrackerConfig
    from .outputs import format_summary, landmarker_from_args, outputs_from_args, view_from_args

    rig = load_rig(args.rig)
    rig_name = str(Path(args.rig).resolve()) if args.rig else rig.name
    smoothing = smoothing_from_args(args)
    if smoothing is not None:  # the take says its weights were filtered, and how
        meta = meta | {"smoothing": dataclasses.asdict(smoothing)}
    outputs = outputs_from_args(args, fps=fps, rig_name=rig_name, camera=camera, meta=meta)
    landmarker = view = None
    try:
        landmarker = landmarker_from_args(args)
        view = view_from_args(args, rig)
        if start is not None:
            start()
        device = getattr(source, "device_name", None) or camera.get("device") or ""
        # a recording played as fast as it goes swaps to the fitted identity at a set frame; paced, it
        # runs as live does (the solve on a worker thread)
        config = TrackerConfig.for_camera(device, adapt_identity=args.adapt_identity, smoothing=smoothing,
                                          adapt_inline=verb == "played" and not realtime)  # fmt: skip
        tracker = Tracker(rig=rig, config=config)
        live = verb != "played"  # a camera: capture never waits for MediaPipe
        res = run(source, tracker, outputs, landmarker=landmarker, realtime=realtime,
                  landmark_max_age_s=LIVE_LANDMARK_MAX_AGE_S if live else None,
                  speed=getattr(args, "speed", 1.0), progress=None if args.json else True, total=total,
                  label="playing" if verb == "played" else "capturing",
                  max_frames=args.max_frames, view=view)  # fmt: skip
    except BaseException as e:
        with contextlib.suppress(Exception):
            outputs.close(ended_by=type(e).__name__)  # finalise now, to say truthfully how it went
        st = outputs.stats
        if st["take"] and not args.json:
            take, n = st["take"], st["take_frames"]
            if st["take_complete"]:
                print(f"facecap: take {take} finalised with {n} frames", file=sys.stderr)
            else:
                print(f"facecap: take {take} keeps {n} frames but could not be finalised (take.json is "
                      "incomplete); `facecap take info` reads it, `facecap take repair` writes a clean copy",
                      file=sys.stderr)  # fmt: skip
        from ..take import TakeWriteError

        if isinstance(e, TakeWriteError | FileExistsError):  # the take could not be written (disk full...)
            raise RuntimeError(str(e)) from e
        raise
    finally:
        outputs.close(ended_by="error")  # no-op after run() closed it
        if landmarker is not None:
            landmarker.close()
        if view is not None:
            view.close()
    if res["interrupted"] and not args.json:
        where = f"; take {res['take']} finalised with {res['take_frames']} frames" if res.get("take") else ""
        print(f"stopped by Ctrl-C after {res['frames']} frames{where}", file=sys.stderr)
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print(format_summary(res, verb))
    return 130 if res["interrupted"] and verb == "played" else 0


def cmd_live(args: argparse.Namespace) -> int:
    from ..realsense import LiveSource

    if args.webcam is not None:  # colour only: MediaPipe's landmarks are all the tracker has
        from ..video import VideoSource

        refuse_adapt_without_depth(args, f"webcam {args.webcam}")

        src = VideoSource(args.webcam, fov_deg=args.fov, wall_clock=True)
        args.landmarks = args.landmarks or "auto"
        camera = {"kind": "webcam", "index": args.webcam, "fov_deg": args.fov,
                  "resolution": [src.intrinsics.width, src.intrinsics.height]}  # fmt: skip
        try:
            meta = {"source": f"webcam {args.webcam}"}
            return run_capture(args, src, fps=src.fps, camera=camera, meta=meta, verb="captured")
        finally:
            src.close()
    src = LiveSource(args.width, args.height, args.fps, serial=args.serial)  # validates size and rate

    def start():
        src.start()
        camera.update(device=src.device_name, color_fps=src.color_fps, depth_scale=src.depth_scale)

    camera = {"kind": "realsense", "serial": args.serial, "width": args.width, "height": args.height,
              "fps": args.fps}  # fmt: skip
    try:
        return run_capture(args, src, fps=args.fps, camera=camera, meta={"source": "live"}, verb="captured",
                            start=start)  # fmt: skip
    finally:
        src.stop()


def cmd_play(args: argparse.Namespace) -> int:
    from ..realsense import RecordingSource
    from ..video import VideoSource, is_video

    if is_video(args.file):  # colour only: tracked from MediaPipe's landmarks
        refuse_adapt_without_depth(args, args.file)
        src = VideoSource(args.file, fov_deg=args.fov)
        args.landmarks = args.landmarks or "auto"
        camera = {"kind": "video", "fov_deg": args.fov, "fps": src.fps,
                  "resolution": [src.intrinsics.width, src.intrinsics.height]}  # fmt: skip
        return run_capture(args, src, fps=src.fps, camera=camera, meta={"source": str(args.file)},
                           verb="played", realtime=args.realtime, total=src.frame_count)  # fmt: skip
    src = RecordingSource(args.file)
    info = src.info()
    camera = {"kind": "recording", "device": info.get("device"), "resolution": info.get("resolution"),
              "fps": info.get("fps")}  # fmt: skip
    return run_capture(args, src, fps=float(info.get("fps") or 30), camera=camera,
                        meta={"source": str(src.path)}, verb="played", realtime=args.realtime,
                        total=src.frame_count)  # fmt: skip
