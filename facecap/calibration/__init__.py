"""Actor calibration: the protocol (:data:`PROTOCOL`), :class:`Calibrator` and nonrigid ICP (:func:`nricp`).

::

    from facecap.calibration import PROTOCOL, Calibrator
    cal = Calibrator(intrinsics, camera="d415")
    for step in PROTOCOL:
        for frame in frames_for(step):
            feedback = cal.add(step.name, frame)
    actor = cal.solve()          # a facecap Rig: actor.save("actor.npz")

Live, step by step (:class:`CalibrationSession`: prompts, countdowns, retries; Ctrl-C keeps the rest)::

    session = CalibrationSession("d415", listener=print)
    cal = session.run(camera_frames)
    actor = cal.solve()
"""

from .calibrator import CalibrationError, Calibrator, Feedback
from .nricp import NricpResult, nricp
from .online import IdentityAdapter
from .protocol import PROTOCOL, Protocol, Step, load_protocol
from .session import CalibrationSession, Event

__all__ = ["PROTOCOL", "CalibrationError", "CalibrationSession", "Calibrator", "Event", "Feedback",
           "IdentityAdapter", "NricpResult", "Protocol", "Step", "load_protocol", "nricp"]  # fmt: skip
