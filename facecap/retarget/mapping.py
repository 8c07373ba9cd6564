"""ARKit -> puppet mappings: the model (:class:`Curve`, :class:`Target`, :class:`Mapping`), parsing and
validation of mapping JSON, and loading files or the built-in mappings in ``facecap/data/rigs/``.

The JSON format and the formula each target evaluates are described in :mod:`facecap.retarget`.
"""

from __future__ import annotations

import difflib
import json
import math
from collections import Counter
from collections.abc import Mapping as _AbcMapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import arkit
from .._io import atomic_path

_PKG_RIGS = Path(__file__).resolve().parent.parent / "data" / "rigs"  # package data: installed with facecap
_TARGET_KEYS = ("sources", "gain", "offset", "min", "max", "curve", "description")
_TOP_KEYS = ("name", "description", "mirror", "targets", "version")
_CURVES = ("linear", "smoothstep", "gamma", "piecewise")


class MappingError(ValueError):
    """A mapping file or dict is malformed; the message names the file and the target."""


@dataclass(frozen=True)
class Curve:
    """A response curve applied to a target's summed input.

    Attributes
    ----------
    kind : str, one of ``linear``, ``smoothstep``, ``gamma``, ``piecewise``
    params : tuple of float, (edge0, edge1) for smoothstep, (exponent,) for gamma, flattened
        (x0, y0, x1, y1, ...) for piecewise, () for linear
    """

    kind: str = "linear"
    params: tuple[float, ...] = ()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Evaluate on any array of inputs (float64 out)."""
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "linear":
            return x
        if self.kind == "smoothstep":
            e0, e1 = self.params
            t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
            return t * t * (3.0 - 2.0 * t)
        if self.kind == "gamma":
            return np.clip(x, 0.0, 1.0) ** self.params[0]
        pts = np.asarray(self.params, dtype=np.float64).reshape(-1, 2)
        return np.interp(x, pts[:, 0], pts[:, 1])

    def to_json(self) -> str | dict:
        if self.kind == "linear":
            return "linear"
        if self.kind == "smoothstep":
            return {"type": "smoothstep", "edge0": self.params[0], "edge1": self.params[1]}
        if self.kind == "gamma":
            return {"type": "gamma", "exponent": self.params[0]}
        pts = np.asarray(self.params).reshape(-1, 2).tolist()
        return {"type": "piecewise", "points": pts}


@dataclass(frozen=True)
class Target:
    """One puppet shape: ``clip(curve(gain * sum(coef * w[src]) + offset), lo, hi)``.

    Attributes
    ----------
    name : str, the puppet's shape name
    sources : tuple of (canonical ARKit name, coefficient)
    gain, offset, lo, hi : float
    curve : Curve
    """

    name: str
    sources: tuple[tuple[str, float], ...]
    gain: float = 1.0
    offset: float = 0.0
    lo: float = 0.0
    hi: float = 1.0
    curve: Curve = field(default_factory=Curve)

    def to_json(self) -> dict:
        d: dict = {"sources": {n: c for n, c in self.sources}}
        if self.gain != 1.0:
            d["gain"] = self.gain
        if self.offset != 0.0:
            d["offset"] = self.offset
        if self.lo != 0.0:
            d["min"] = self.lo
        if self.hi != 1.0:
            d["max"] = self.hi
        if self.curve.kind != "linear":
            d["curve"] = self.curve.to_json()
        return d


class Mapping:
    """ARKit weights -> puppet shape values.

    Build with :func:`load_mapping` or :meth:`from_dict`; evaluate with :meth:`apply`.

    Parameters
    ----------
    targets : sequence of Target
    name : str
    mirror : bool
        Swap Left/Right of every source before evaluating (mirrored puppet).
    source : str
        Where the mapping came from (used in messages).
    """

    def __init__(self, targets, *, name: str = "mapping", mirror: bool = False, source: str = "<mapping>"):
        self.targets: tuple[Target, ...] = tuple(targets)
        if not self.targets:
            raise MappingError(f"{source}: a mapping needs at least one target")
        names = [t.name for t in self.targets]
        dup = sorted(n for n, k in Counter(names).items() if k > 1)  # linear: mappings may be large
        if dup:
            raise MappingError(f"{source}: duplicate target names {dup}")
        self.name = str(name)
        self.mirror = bool(mirror)
        self.source = source
        self.target_names: tuple[str, ...] = tuple(names)
        n = len(self.targets)
        coef = np.zeros((n, arkit.NUM_SHAPES), dtype=np.float64)
        for j, t in enumerate(self.targets):
            for src, c in t.sources:
                coef[j, arkit.INDEX[src]] += c
        if self.mirror:
            # mirrored puppet: target driven by the opposite side of each source
            coef = coef[:, arkit.MIRROR_PERM]
        self._coef = coef
        self._gain = np.array([t.gain for t in self.targets])
        self._offset = np.array([t.offset for t in self.targets])
        self._lo = np.array([t.lo for t in self.targets])
        self._hi = np.array([t.hi for t in self.targets])
        # curves grouped by kind so that one frame costs a few vector operations
        kinds = [t.curve.kind for t in self.targets]
        self._ss = np.array([j for j, k in enumerate(kinds) if k == "smoothstep"], dtype=np.intp)
        self._ss_e = np.array([self.targets[j].curve.params for j in self._ss]).reshape(-1, 2).T
        self._gm = np.array([j for j, k in enumerate(kinds) if k == "gamma"], dtype=np.intp)
        self._gm_p = np.array([self.targets[j].curve.params[0] for j in self._gm])
        self._pw = [(j, self.targets[j].curve) for j, k in enumerate(kinds) if k == "piecewise"]

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<dict>") -> Mapping:
        """Validate and build a mapping from its JSON-like dict (format: :mod:`facecap.retarget`)."""
        if not isinstance(data, _AbcMapping):
            raise MappingError(f"{source}: a mapping must be a JSON object, got {type(data).__name__}")
        _check_keys(data, _TOP_KEYS, f"{source}: top level")
        if "targets" not in data:
            raise MappingError(f"{source}: missing 'targets' (an object of puppet shape name -> spec)")
        tdata = data["targets"]
        if not isinstance(tdata, _AbcMapping) or not tdata:
            raise MappingError(f"{source}: 'targets' must be a non-empty object of name -> spec")
        mirror = data.get("mirror", False)
        if not isinstance(mirror, bool):
            raise MappingError(f"{source}: 'mirror' must be true or false, got {mirror!r}")
        targets = [_parse_target(str(k), v, source) for k, v in tdata.items()]
        return cls(targets, name=str(data.get("name", Path(source).stem)), mirror=mirror, source=source)

    def to_dict(self) -> dict:
        """JSON-ready dict; ``Mapping.from_dict(m.to_dict())`` reproduces ``m``."""
        return {
            "name": self.name,
            "mirror": self.mirror,
            "targets": {t.name: t.to_json() for t in self.targets},
        }

    def save(self, path: str | Path) -> Path:
        """Write the mapping as JSON (atomically: a failure leaves no half-written file)."""
        p = Path(path)
        with atomic_path(p) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return p

    def mirrored(self) -> Mapping:
        """The same mapping with Left/Right swapped (toggles ``mirror``)."""
        return Mapping(self.targets, name=self.name, mirror=not self.mirror, source=self.source)

    # ----------------------------------------------------------------------------------- evaluating
    def apply_array(self, weights: np.ndarray) -> np.ndarray:
        """Evaluate on canonical weights.

        Parameters
        ----------
        weights : (52,) or (N, 52) float, canonical ARKit order

        Returns
        -------
        (T,) or (N, T) float32, columns in ``target_names`` order
        """
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim not in (1, 2) or w.shape[-1] != arkit.NUM_SHAPES:
            raise ValueError(
                f"weights must be (52,) or (N, 52) in canonical ARKit order, got shape {w.shape}; "
                "reorder foreign orders with facecap.arkit.from_order"
            )
        if not np.isfinite(w.sum()):  # (a reduction is 5x cheaper than nan_to_num on every frame)
            w = np.nan_to_num(w, nan=0.0, posinf=1.0, neginf=0.0)
        x = (w @ self._coef.T) * self._gain + self._offset
        if len(self._ss):
            e0, e1 = self._ss_e
            u = np.clip((x[..., self._ss] - e0) / (e1 - e0), 0.0, 1.0)
            x[..., self._ss] = u * u * (3.0 - 2.0 * u)
        if len(self._gm):
            x[..., self._gm] = np.clip(x[..., self._gm], 0.0, 1.0) ** self._gm_p
        for j, curve in self._pw:
            x[..., j] = curve(x[..., j])
        return np.clip(x, self._lo, self._hi).astype(np.float32)

    def apply(self, weights: np.ndarray) -> dict[str, float] | np.ndarray:
        """Evaluate the mapping.

        Parameters
        ----------
        weights : (52,) or (N, 52) float, canonical ARKit order

        Returns
        -------
        dict {target name: value} for one frame (52,); an (N, T) float32 array for (N, 52), its
        columns named by ``target_names``.
        """
        out = self.apply_array(weights)
        if out.ndim == 1:
            return {n: float(v) for n, v in zip(self.target_names, out, strict=True)}
        return out

    def __len__(self) -> int:
        return len(self.targets)

    def __repr__(self) -> str:
        m = ", mirrored" if self.mirror else ""
        return f"Mapping({self.name!r}, {len(self)} targets{m})"


# --------------------------------------------------------------------------------------- parsing
def _check_keys(d: _AbcMapping, allowed: tuple[str, ...], where: str) -> None:
    for k in d:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed keys: {', '.join(allowed)}"
            raise MappingError(f"{where}: unknown key {k!r}{hint}")


def _number(v, what: str, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MappingError(f"{where}: {what} must be a number, got {v!r}")
    f = float(v)
    if not math.isfinite(f):
        raise MappingError(f"{where}: {what} must be finite, got {v!r}")
    return f


def _parse_curve(spec, where: str) -> Curve:
    if spec is None or spec == "linear":
        return Curve()
    if spec == "smoothstep":
        return Curve("smoothstep", (0.0, 1.0))
    if isinstance(spec, str):
        raise MappingError(f"{where}: unknown curve {spec!r}; choose one of {', '.join(_CURVES)}")
    if not isinstance(spec, _AbcMapping) or "type" not in spec:
        raise MappingError(f"{where}: curve must be a name or an object with a 'type', got {spec!r}")
    kind = spec["type"]
    if kind not in _CURVES:
        raise MappingError(f"{where}: unknown curve type {kind!r}; choose one of {', '.join(_CURVES)}")
    keys = {"linear": ("type",), "smoothstep": ("type", "edge0", "edge1"), "gamma": ("type", "exponent"),
            "piecewise": ("type", "points")}[kind]  # fmt: skip
    _check_keys(spec, keys, f"{where}: curve")
    if kind == "linear":
        return Curve()
    if kind == "smoothstep":
        e0 = _number(spec.get("edge0", 0.0), "curve edge0", where)
        e1 = _number(spec.get("edge1", 1.0), "curve edge1", where)
        if not e1 > e0:
            raise MappingError(f"{where}: smoothstep needs edge0 < edge1, got {e0} and {e1}")
        return Curve("smoothstep", (e0, e1))
    if kind == "gamma":
        if "exponent" not in spec:
            raise MappingError(f"{where}: gamma curve needs an 'exponent' (> 0)")
        g = _number(spec["exponent"], "gamma exponent", where)
        if g <= 0:
            raise MappingError(f"{where}: gamma exponent must be > 0, got {g}")
        return Curve("gamma", (g,))
    pts = spec.get("points")
    if not isinstance(pts, list) or len(pts) < 2:
        raise MappingError(
            f"{where}: piecewise curve needs 'points': [[x0, y0], [x1, y1], ...] (two or more)"
        )
    flat: list[float] = []
    for p in pts:
        if not isinstance(p, list | tuple) or len(p) != 2:
            raise MappingError(f"{where}: piecewise point must be [x, y], got {p!r}")
        flat += [_number(p[0], "piecewise x", where), _number(p[1], "piecewise y", where)]
    xs = flat[0::2]
    if any(b <= a for a, b in zip(xs, xs[1:], strict=False)):
        raise MappingError(f"{where}: piecewise x values must be strictly increasing, got {xs}")
    return Curve("piecewise", tuple(flat))


def _parse_sources(spec, where: str) -> tuple[tuple[str, float], ...]:
    if isinstance(spec, str):
        spec = {spec: 1.0}
    elif isinstance(spec, list):
        if not all(isinstance(s, str) for s in spec):
            raise MappingError(f"{where}: 'sources' list must hold ARKit names, got {spec!r}")
        spec = {s: 1.0 for s in spec}
    if not isinstance(spec, _AbcMapping) or not spec:
        raise MappingError(
            f"{where}: 'sources' must be an ARKit name, a list of names or an object name -> coefficient"
        )
    out: dict[str, float] = {}
    for k, c in spec.items():
        try:
            n = arkit.canonical_name(k)
        except (KeyError, TypeError) as e:
            raise MappingError(f"{where}: {e.args[0] if e.args else e}") from None
        out[n] = out.get(n, 0.0) + _number(c, f"coefficient of {k!r}", where)
    return tuple(out.items())


def _parse_target(name: str, spec, source: str) -> Target:
    where = f"{source}: target {name!r}"
    if not name:
        raise MappingError(f"{source}: target names must be non-empty")
    if isinstance(spec, str | list):
        spec = {"sources": spec}
    if not isinstance(spec, _AbcMapping):
        raise MappingError(f"{where}: spec must be an object with 'sources', got {spec!r}")
    _check_keys(spec, _TARGET_KEYS, where)
    if "sources" not in spec:
        raise MappingError(f"{where}: missing 'sources' (which ARKit weights drive this shape)")
    lo = _number(spec.get("min", 0.0), "min", where)
    hi = _number(spec.get("max", 1.0), "max", where)
    if lo > hi:
        raise MappingError(f"{where}: min ({lo}) is greater than max ({hi})")
    return Target(
        name=name,
        sources=_parse_sources(spec["sources"], where),
        gain=_number(spec.get("gain", 1.0), "gain", where),
        offset=_number(spec.get("offset", 0.0), "offset", where),
        lo=lo,
        hi=hi,
        curve=_parse_curve(spec.get("curve"), where),
    )


# --------------------------------------------------------------------------------------- files
def builtin_mappings() -> list[str]:
    """Names of the mapping files shipped in ``facecap/data/rigs/`` (load with ``load_mapping(name)``)."""
    return sorted(p.stem for p in _PKG_RIGS.glob("*.json"))


def _find_builtin(name: str) -> Path | None:
    p = _PKG_RIGS / f"{name}.json"
    return p if p.is_file() else None


def load_mapping(path: str | Path, *, mirror: bool | None = None) -> Mapping:
    """Load and validate a mapping JSON file.

    Parameters
    ----------
    path : str or Path
        A ``.json`` file, or the name of a built-in mapping (``"vrm0"``, ``"perfect_sync"``, ``"arkit"``;
        see :func:`builtin_mappings`).
    mirror : bool, optional
        Override the file's ``mirror`` flag.

    Raises
    ------
    FileNotFoundError
        No such file and no built-in mapping of that name.
    MappingError (a ValueError)
        Invalid JSON, unknown ARKit names (with suggestions), bad numbers, missing fields; the message
        names the file and the target.
    """
    p = Path(path)
    if not p.exists():
        b = _find_builtin(str(path)) if p.suffix == "" and p.parent == Path(".") else None
        if b is None:
            avail = ", ".join(builtin_mappings()) or "none found"
            raise FileNotFoundError(f"mapping {str(path)!r} not found (built-in mappings: {avail})")
        p = b
    if p.is_dir():
        raise MappingError(f"{p} is a directory; give a mapping .json file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MappingError(f"{p}: not a UTF-8 text file ({e.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MappingError(f"{p}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    m = Mapping.from_dict(data, source=str(p))
    if mirror is not None and mirror != m.mirror:
        m = m.mirrored()
    return m


def identity_mapping(style: str = "pascal") -> Mapping:
    """A 1:1 mapping of the 52 ARKit shapes to themselves.

    Parameters
    ----------
    style : {"pascal", "canonical", "raw"}
        Target spelling: ``EyeBlinkLeft`` (VRM perfect sync, Live Link), ``eyeBlinkLeft``
        (facecap, Ready Player Me) or ``eyeBlink_L`` (Face Cap, ICT-FaceKit).
    """
    spell = {"pascal": arkit.pascal_name, "canonical": arkit.canonical_name, "raw": arkit.raw_name}
    if style not in spell:
        raise ValueError(f"style must be one of {sorted(spell)}, got {style!r}")
    targets = [Target(spell[style](n), ((n, 1.0),)) for n in arkit.ARKIT_NAMES]
    return Mapping(targets, name=f"arkit_{style}", source=f"<identity {style}>")
