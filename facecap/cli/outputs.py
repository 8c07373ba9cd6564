"""The output flags every capturing command shares, Ctrl-C/SIGTERM handling and the summary lines.

``--vmc/--osc/--facecap/--livelink TARGET`` (repeatable), ``--record DIR``, ``--retarget MAP``,
``--landmarks MODEL|auto``, ``--view PORT``: :func:`add_output_arguments` adds them,
:func:`outputs_from_args` turns them into a :class:`facecap.pipeline.Outputs`.
"""

from __future__ import annotations

import argparse

SINK_FLAGS = ("vmc", "osc", "facecap", "livelink")
"""Output flags, one per ``facecap.sinks`` URL scheme."""

_FLAG_HELP = {
    "vmc": "VMC protocol receiver (VSeeFace, Warudo, VMagicMirror; default port 39539)",
    "osc": "facecap OSC namespace receiver (default port 9000)",
    "facecap": "Face Cap OSC receiver (Blender AddRoutes, Faceit; default port 8080)",
    "livelink": "Unreal Live Link Face receiver (default port 11111)",
}


def target_url(kind: str, target: str) -> str:
    """Sink URL for an output flag value.

    Parameters
    ----------
    kind : {"vmc", "osc", "facecap", "livelink"}
    target : str
        ``host:port``, ``host``, a bare port (``39539`` = 127.0.0.1:39539) or a full URL of the same
        scheme (``vmc://host:port?vrm0=1``).

    Returns
    -------
    str, e.g. ``"vmc://127.0.0.1:39539"``
    """
    if kind not in SINK_FLAGS:
        raise ValueError(f"unknown output kind {kind!r}; choose one of {', '.join(SINK_FLAGS)}")
    t = str(target).strip()
    if not t:
        raise ValueError(f"--{kind} needs a target such as 127.0.0.1:39539")
    if "://" in t:
        scheme = t.split("://", 1)[0].lower()
        if scheme != kind:
            known = ", ".join(k + "://" for k in SINK_FLAGS)
            other = (f"use --{scheme} for {scheme}://" if scheme in SINK_FLAGS
                     else f"facecap sends {known}; there is no {scheme}:// output")  # fmt: skip
            raise ValueError(f"--{kind} {t}: the URL scheme must be {kind}:// ({other})")
        return t
    if t.isdigit():
        t = f"127.0.0.1:{t}"
    return f"{kind}://{t}"


def add_output_arguments(parser: argparse.ArgumentParser, *, landmarks: bool = True) -> None:
    """Add the shared output flags (``--vmc/--osc/--facecap/--livelink``, ``--record``, ``--retarget``,
    and ``--landmarks`` unless ``landmarks=False``) to a command's parser."""
    g = parser.add_argument_group(
        "outputs", "stream every frame (each flag repeatable; TARGET is host:port, a port, or a full URL "
        "such as vmc://127.0.0.1:39539?vrm0=1) and record a take"
    )  # fmt: skip
    for kind in SINK_FLAGS:
        g.add_argument(f"--{kind}", action="append", default=[], metavar="TARGET", help=_FLAG_HELP[kind])
    g.add_argument("--record", metavar="DIR", help="record a take into DIR (new or empty folder)")
    g.add_argument("--retarget", metavar="MAP",
                   help="mapping .json or built-in name (vrm0, perfect_sync, arkit): send the puppet's clips "
                   "too, as extra VMC blendshape clips (needs --vmc)")  # fmt: skip
    g.add_argument("--view", metavar="[HOST:]PORT",
                   help="a live view in the browser at http://127.0.0.1:PORT/ (the image, the fitted face, "
                   "the head pose and the 52 weights; HOST 0.0.0.0: watch from another machine)")  # fmt: skip
    if landmarks:
        g.add_argument("--landmarks", metavar="MODEL|auto",
                       help="use MediaPipe face landmarks from the colour image: a face_landmarker.task "
                       "path, or 'auto' ($FACECAP_MEDIAPIPE_MODEL, then "
                       "~/.cache/facecap/face_landmarker.task)")  # fmt: skip


def view_from_args(args: argparse.Namespace, rig=None):
    """A started :class:`facecap.view.ViewServer` for ``--view [HOST:]PORT`` (its URL said on stderr), or
    None without the flag."""
    spec = getattr(args, "view", None)
    if not spec:
        return None
    import sys

    from ..view import ViewServer

    host, _, port = str(spec).rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--view takes [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080, got {spec!r}")
    view = ViewServer(int(port), host or "127.0.0.1", rig)
    print(f"live view: {view.url}", file=sys.stderr)
    return view


def sink_urls_from_args(args: argparse.Namespace) -> list[str]:
    """The sink URLs of the output flags, in flag order."""
    return [target_url(kind, t) for kind in SINK_FLAGS for t in (getattr(args, kind, None) or [])]


def outputs_from_args(args: argparse.Namespace, **kwargs):
    """:class:`facecap.pipeline.Outputs` from the parsed output flags; ``kwargs`` go to the constructor
    (fps, camera...)."""
    from ..pipeline import Outputs

    return Outputs(sink_urls_from_args(args), record=getattr(args, "record", None),
                   retarget=getattr(args, "retarget", None), **kwargs)  # fmt: skip


def landmarker_from_args(args: argparse.Namespace):
    """A ``facecap.landmarks.FaceLandmarker`` for ``--landmarks MODEL|auto``, or None without the flag."""
    spec = getattr(args, "landmarks", None)
    if not spec:
        return None
    from ..landmarks import FaceLandmarker

    return FaceLandmarker(None if spec == "auto" else spec, blendshapes=False)  # the fit needs landmarks only


def format_summary(res: dict, verb: str = "tracked") -> str:
    """Human-readable lines for a :func:`run` summary."""
    lines = [
        f"{verb} {res['frames']} frames in {res['elapsed_s']:.1f} s ({res['fps']:.1f} fps), "
        f"face tracked in {res['tracked_fraction'] * 100:.1f}%, fit {res['fit_ms_median']:.1f} ms median"
        + (", stopped by Ctrl-C" if res["interrupted"] else "")
    ]
    if res.get("dropped"):
        lines.append(f"dropped {res['dropped']} depth frames without a colour frame to align to")
    if res.get("landmarks_note"):
        lines.append(f"landmarks: not used ({res['landmarks_note']})")
    elif res.get("landmark_frames"):
        lines.append(f"landmarks: MediaPipe found the face in {res['landmark_frames']} frames")
    if res.get("identity"):
        lines.append(format_identity(res["identity"]))
    out = format_outputs(res)
    return "\n".join(lines + ([out] if out else []))


def format_identity(ident: dict) -> str:
    """One line on the online identity refinement (``--adapt-identity``) of a run."""
    st = ident["state"]
    if st == "fitted":
        at = "" if ident.get("taken_at") is None else f" from frame {ident['taken_at']} on"
        return (f"identity: fitted to the performer, tracked with it{at} (neutral residual "
                f"{ident['neutral_residual_mm_median']:.2f} mm median)")  # fmt: skip
    if st == "failed":
        return f"identity: the fit failed ({ident['error']}); tracked with the generic rig"
    if st == "solving":
        return "identity: the fit was still running when the input ended; tracked with the generic rig"
    have = ", ".join(f"{k} {n}/{ident['per_view']}" for k, n in ident["views"].items())
    return (
        "identity: not fitted, too few rest frames in the head turns (" + have + "); hold a relaxed "
        "face facing the camera and turned about 25 deg left or right and 15 deg up or down"
    )


def format_outputs(stats: dict) -> str:
    """Lines saying where the take is and what each sink sent (:attr:`Outputs.stats` or a run summary)."""
    lines = []
    if stats.get("take"):
        lines.append(f"take: {stats['take']} ({stats['take_frames']} frames)")
    for s in stats.get("sinks", []):
        err = f", errors {s['errors']}" if s.get("errors") else ""
        lines.append(f"{s['url']}: {s['frames']} frames, {s['datagrams_sent']} datagrams sent{err}")
    return "\n".join(lines)
