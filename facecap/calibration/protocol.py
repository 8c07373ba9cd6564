"""The calibration protocol: the poses a performer holds, as data (``facecap/data/calibration/*.json``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import arkit

PROTOCOL_DIR = Path(__file__).resolve().parents[1] / "data" / "calibration"


@dataclass(frozen=True)
class Step:
    """One held pose of the protocol.

    name : str, unique; prompt : str, what the performer is told; hold_s : float, seconds to hold;
    head : (yaw, pitch) radians, the head pose to hold (yaw > 0: turned to the performer's left,
    pitch > 0: chin up); weights : dict ARKit name -> target weight in [0, 1] (what this pose is assumed to
    show; it defines 1.0 for the performer); neutral : bool, a relaxed face (builds the identity).
    """

    name: str
    prompt: str
    hold_s: float
    head: tuple[float, float]
    weights: dict[str, float] = field(default_factory=dict)
    neutral: bool = False

    def weight_vector(self) -> np.ndarray:
        """(52,) float64 target weights in canonical ARKit order."""
        w = np.zeros(arkit.NUM_SHAPES)
        for k, v in self.weights.items():
            w[arkit.INDEX[k]] = v
        return w


class Protocol(tuple):
    """A tuple of :class:`Step` with ``name`` and ``version``; ``protocol["smile"]`` looks a step up."""

    name: str
    version: int

    def __new__(cls, steps, name: str, version: int):
        self = super().__new__(cls, steps)
        self.name, self.version = name, version
        return self

    def __reduce__(self):
        return (Protocol, (tuple(self), self.name, self.version))

    def __getitem__(self, key):
        if isinstance(key, str):
            for s in self:
                if s.name == key:
                    return s
            raise KeyError(f"no step {key!r} in protocol {self.name} v{self.version}; steps: "
                           + ", ".join(s.name for s in self))  # fmt: skip
        return super().__getitem__(key)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self)


def load_protocol(path: str | Path | None = None) -> Protocol:
    """Read a protocol file (default: the built-in ``protocol_v1.json``), checking every field."""
    p = Path(path) if path is not None else PROTOCOL_DIR / "protocol_v1.json"
    try:
        doc = json.loads(p.read_text())
        steps = []
        for i, s in enumerate(doc["steps"]):
            bad = [k for k in s.get("weights", {}) if k not in arkit.INDEX]
            if bad:
                raise ValueError(f"step {i} ({s.get('name')}): unknown ARKit names {bad}")
            w = {k: float(v) for k, v in s.get("weights", {}).items()}
            if any(not (0.0 <= v <= 1.0) for v in w.values()):
                raise ValueError(f"step {i} ({s['name']}): weights must be in [0, 1]")
            yaw, pitch = (math.radians(float(a)) for a in s["head_deg"])
            hold = float(s["hold_s"])
            if not (0 < hold <= 30):
                raise ValueError(f"step {i} ({s['name']}): hold_s must be in (0, 30] seconds, got {hold}")
            neutral = bool(s.get("neutral"))
            steps.append(Step(str(s["name"]), str(s["prompt"]), hold, (yaw, pitch), w, neutral))
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError("step names must be unique")
        if not any(s.neutral for s in steps):
            raise ValueError("a protocol needs at least one neutral step")
        return Protocol(steps, str(doc["name"]), int(doc["version"]))
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: not a valid calibration protocol: {e}") from None


PROTOCOL = load_protocol()
