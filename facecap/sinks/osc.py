"""OSC layout: datagrams built once with python-osc, then only their numeric slots rewritten per frame."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

from ..state import FaceState
from .udp import FLOAT32_MAX, MAX_UDP_PAYLOAD, UdpSink


@dataclass(frozen=True)
class OscMsg:
    """One OSC message of a fixed layout: ``fixed[i]`` is a static argument or None (a per-frame slot)."""

    address: str
    types: str
    fixed: tuple


def osc_message(address: str, types: str, *fixed) -> OscMsg:
    fixed = fixed + (None,) * (len(types) - len(fixed))
    if len(fixed) != len(types):
        raise AssertionError(f"{address}: {len(fixed)} arguments for type tags {types!r}")
    return OscMsg(address, types, tuple(fixed))


def _build_message(m: OscMsg, values: Iterable[float] = ()) -> object:
    """python-osc message for ``m``; slots take ``values`` in order (0 placeholders when exhausted)."""
    it = iter(values)
    b = OscMessageBuilder(address=m.address)
    for t, f in zip(m.types, m.fixed, strict=True):
        if f is None:
            v = next(it, 0)
            f = int(v) if t == "i" else float(v)
        b.add_arg(f, t)
    return b.build()


def _slot_offsets(dgram: bytes) -> list[tuple[int, int, str]]:
    """(argument index, byte offset, type) of the numeric arguments of an OSC message datagram."""
    _, i = osc_types.get_string(dgram, 0)
    tags, i = osc_types.get_string(dgram, i)
    out = []
    for a, t in enumerate(tags[1:]):
        if t == "s":
            _, i = osc_types.get_string(dgram, i)
        elif t in "if":
            out.append((a, i, t))
            i += 4
        elif t == "d":
            out.append((a, i, t))
            i += 8
        elif t not in "TFN":
            raise AssertionError(f"unsupported OSC type tag {t!r} in a sink layout")
    return out


class _Layout:
    """Per-frame OSC datagrams of fixed structure, laid out once by python-osc.

    ``render(values)`` writes the numeric slots (in message/argument order) into the prebuilt
    datagrams and returns views of them; ``reference(values)`` builds the same bytes from scratch with
    python-osc (the ``fast=False`` path and the tests' oracle).
    """

    def __init__(self, msgs: Sequence[OscMsg], *, max_datagram: int = 1400, bundle: bool = True) -> None:
        if not 64 <= max_datagram <= MAX_UDP_PAYLOAD:
            raise ValueError(f"max_datagram must be in 64..{MAX_UDP_PAYLOAD} bytes, got {max_datagram}")
        self.msgs = tuple(msgs)
        self.bundle = bundle
        built = [_build_message(m) for m in self.msgs]
        # greedy grouping of messages into datagrams of at most max_datagram bytes
        groups: list[list[int]] = []
        size = 0
        for k, b in enumerate(built):
            need = 4 + b.size if bundle else b.size
            if bundle and (not groups or size + need > max_datagram):
                groups.append([])
                size = 16  # "#bundle\0" + time tag
            elif not bundle:
                groups.append([])
            groups[-1].append(k)
            size += need
            if (16 if bundle else 0) + need > MAX_UDP_PAYLOAD:
                raise ValueError(f"OSC message {self.msgs[k].address} is larger than a UDP datagram")
        self.groups = groups
        datagrams: list[bytes] = []
        offsets: list[tuple[int, str]] = []
        base = 0
        for g in groups:
            if bundle:
                bb = OscBundleBuilder(IMMEDIATELY)
                for k in g:
                    bb.add_content(built[k])
                d = bb.build().dgram
                pos = 16
            else:
                d = built[g[0]].dgram
                pos = 0
            for k in g:
                if bundle:
                    pos += 4  # element size
                mdg = built[k].dgram
                if d[pos : pos + len(mdg)] != mdg:
                    raise AssertionError("unexpected python-osc bundle layout")
                fixed = self.msgs[k].fixed
                offsets += [(base + pos + o, t) for a, o, t in _slot_offsets(mdg) if fixed[a] is None]
                pos += len(mdg)
            datagrams.append(d)
            base += len(d)
        self.n_slots = len(offsets)
        self._buf = bytearray(b"".join(datagrams))
        mv = memoryview(self._buf)
        self._views: list[memoryview] = []
        base = 0
        for d in datagrams:
            self._views.append(mv[base : base + len(d)])
            base += len(d)
        f4 = np.frombuffer(self._buf, dtype=">f4")
        i4 = np.frombuffer(self._buf, dtype=">i4")
        sel = {t: [k for k, (_, tt) in enumerate(offsets) if tt == t] for t in "fid"}
        self._f4, self._i4 = f4, i4
        self._f_word = np.array([offsets[k][0] // 4 for k in sel["f"]], dtype=np.intp)
        self._f_sel = np.array(sel["f"], dtype=np.intp)
        self._i_word = np.array([offsets[k][0] // 4 for k in sel["i"]], dtype=np.intp)
        self._i_sel = np.array(sel["i"], dtype=np.intp)
        self._d = [
            (np.frombuffer(self._buf, dtype=">f8", count=1, offset=offsets[k][0]), k) for k in sel["d"]
        ]

    @property
    def sizes(self) -> list[int]:
        return [len(v) for v in self._views]

    def render(self, values: np.ndarray) -> list[memoryview]:
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (self.n_slots,):
            raise AssertionError(f"layout has {self.n_slots} slots, got {v.shape}")
        v = np.clip(v, -FLOAT32_MAX, FLOAT32_MAX)  # float32 range (python-osc would overflow)
        self._f4[self._f_word] = v[self._f_sel]
        if len(self._i_sel):
            self._i4[self._i_word] = np.clip(v[self._i_sel], -(2**31), 2**31 - 1).astype(np.int64)
        for view, k in self._d:
            view[0] = v[k]
        return self._views

    def reference(self, values: np.ndarray) -> list[bytes]:
        v = np.clip(np.asarray(values, dtype=np.float64), -FLOAT32_MAX, FLOAT32_MAX)
        v_it = iter(v.tolist())
        per_msg = []
        for m in self.msgs:
            n = sum(f is None for f in m.fixed)
            per_msg.append([next(v_it) for _ in range(n)])
        out = []
        for g in self.groups:
            if self.bundle:
                bb = OscBundleBuilder(IMMEDIATELY)
                for k in g:
                    bb.add_content(_build_message(self.msgs[k], per_msg[k]))
                out.append(bb.build().dgram)
            else:
                out.append(_build_message(self.msgs[g[0]], per_msg[g[0]]).dgram)
        return out


class OscLayoutSink(UdpSink):
    """Base of the OSC sinks: a fixed :class:`_Layout` and a ``_values(state)`` slot vector."""

    def __init__(self, host: str, port: int, *, max_datagram: int, bundle: bool, fast: bool) -> None:
        super().__init__(host, port)
        try:
            self.layout = _Layout(self._messages(), max_datagram=max_datagram, bundle=bundle)
        except Exception:
            self.close()
            raise
        self._v = np.zeros(self.layout.n_slots)
        self.fast = bool(fast)

    def _messages(self) -> list[OscMsg]:  # pragma: no cover - interface
        raise NotImplementedError

    def _values(self, state: FaceState) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def _datagrams(self, state: FaceState) -> Sequence:
        v = self._values(state)
        return self.layout.render(v) if self.fast else self.layout.reference(v)
