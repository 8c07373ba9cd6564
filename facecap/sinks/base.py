"""The sink interface (one FaceState per frame) and the fan-out to several sinks."""

from __future__ import annotations

from collections.abc import Iterable

from ..state import FaceState


class Sink:
    """Something that takes one :class:`~facecap.state.FaceState` per frame.

    Subclasses implement :meth:`send`; all sinks are context managers (``close`` on exit).
    """

    url: str = ""

    def send(self, state: FaceState) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release the socket; idempotent."""

    @property
    def stats(self) -> dict:
        """Counters: frames sent, datagrams sent/failed, errors by kind."""
        return {}

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class MultiSink(Sink):
    """Send every frame to several sinks (one failing receiver does not affect the others)."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks: list[Sink] = list(sinks)
        for s in self.sinks:
            if not isinstance(s, Sink):
                raise TypeError(f"MultiSink takes Sink objects, got {type(s).__name__}")
        self.url = ",".join(s.url for s in self.sinks)

    def send(self, state: FaceState) -> None:
        err: BaseException | None = None
        for s in self.sinks:
            try:
                s.send(state)
            except Exception as e:  # deliver to the others, then raise the first programming error
                err = err or e
        if err is not None:
            raise err

    def close(self) -> None:
        for s in self.sinks:
            s.close()

    @property
    def stats(self) -> dict:
        return {"sinks": [s.stats for s in self.sinks]}


class Collector(Sink):
    """Keeps every state in memory (``states``), for scoring a run or inspecting it in a notebook."""

    url = "memory://"

    def __init__(self) -> None:
        self.states: list[FaceState] = []

    def send(self, state: FaceState) -> None:
        if not isinstance(state, FaceState):
            raise TypeError(f"send() takes a facecap.state.FaceState, got {type(state).__name__}")
        self.states.append(state)

    @property
    def stats(self) -> dict:
        return {"url": self.url, "frames": len(self.states)}
