"""Progress reporting: the one status line every long command shows, passed in so the library prints nothing.

A reporter is anything with the :class:`Progress` methods. Library functions take ``progress=None``
(silent), a reporter, or ``True`` for a :class:`StatusLine` (tqdm on stderr), which the command line uses::

    from facecap.progress import StatusLine
    run(frames, tracker, outputs, progress=StatusLine(total=300, label="tracking"))
"""

from __future__ import annotations

import sys
import time
from collections import deque


class Progress:
    """Silent reporter and the interface: ``update`` once per item, ``note`` for one-off messages."""

    def update(self, n: int = 1, postfix: str = "") -> None:
        """``n`` more items done; ``postfix`` a short status text (fps, tracked %...)."""

    def note(self, message: str) -> None:
        """A message for the user that must not break the status line."""

    def close(self) -> None:
        """The work ended (idempotent)."""


class StatusLine(Progress):
    """A tqdm status line on stderr.

    Parameters
    ----------
    total : int, optional
        Expected number of items (bar length); None for an open-ended stream (a live camera).
    label : str
        What is being done ("tracking", "recording").
    unit : str
        Item name shown in the rate.
    """

    def __init__(self, total: int | None = None, label: str = "", unit: str = "frame") -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, unit=unit, file=sys.stderr, dynamic_ncols=True,
                        mininterval=0.25, smoothing=0.1)  # fmt: skip

    def update(self, n: int = 1, postfix: str = "") -> None:
        if postfix:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(n)

    def note(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


class Rate:
    """Frames per second over the last ``window`` ticks."""

    def __init__(self, window: int = 30) -> None:
        self._t: deque[float] = deque(maxlen=window + 1)

    def tick(self) -> float:
        self._t.append(time.perf_counter())
        span = self._t[-1] - self._t[0]
        return (len(self._t) - 1) / span if span > 0 else 0.0


def as_progress(progress, total: int | None = None, label: str = "") -> Progress:
    """``None``/``False`` -> silent, ``True`` -> a :class:`StatusLine`; a reporter is returned as it is."""
    if progress is None or progress is False:
        return Progress()
    if progress is True:
        return StatusLine(total, label)
    if not all(hasattr(progress, k) for k in ("update", "note", "close")):
        kind = type(progress).__name__
        raise TypeError(f"progress must be None, True or a facecap.progress.Progress, got {kind}")
    return progress


__all__ = ["Progress", "Rate", "StatusLine", "as_progress"]
