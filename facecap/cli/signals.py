"""One signal policy for every command: SIGINT and SIGTERM stop the work cleanly, a third signal forces out.

- The first SIGINT (Ctrl-C) or SIGTERM (``kill``) raises :class:`KeyboardInterrupt` in the main thread:
  the capture loop stops, the take is finalised, temporary files are removed, and the command exits
  130 (SIGINT) or 143 (SIGTERM).
- A second signal while that happens is ignored (with a note): finalising is never cut short by a
  nervous double Ctrl-C, and no exception is raised inside cleanup code.
- A third forces an immediate exit (``os._exit``, same code). Every record already written stays
  readable: takes recover record by record (:mod:`facecap.take.recover`).
"""

from __future__ import annotations

import contextlib
import os
import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalPolicy:
    """Counts SIGINT/SIGTERM and acts as the module docstring says; ``exit_code`` is ``128 + signal``."""

    def __init__(self) -> None:
        self.count = 0
        self.first: int | None = None

    def __call__(self, signum, frame) -> None:
        self.count += 1
        if self.count == 1:
            self.first = signum
            raise KeyboardInterrupt
        if self.count >= 3:
            os.write(2, b"facecap: forced exit\n")
            os._exit(self.exit_code)
        os.write(2, b"facecap: finishing up (saving the take); signal once more to force an exit\n")

    @property
    def exit_code(self) -> int:
        return 128 + int(self.first or signal.SIGINT)


@contextlib.contextmanager
def signal_policy(restore: bool = True):
    """Install :class:`SignalPolicy` for SIGINT and SIGTERM within the block (main thread only); with
    ``restore=False`` it stays installed after the block (a command run as its own process)."""
    policy = SignalPolicy()
    old = {}
    try:
        for s in SIGNALS:
            old[s] = signal.signal(s, policy)
    except ValueError:  # not the main thread: leave the defaults
        pass
    try:
        yield policy
    finally:
        for s, h in old.items() if restore else ():
            signal.signal(s, h)


__all__ = ["SIGNALS", "SignalPolicy", "signal_policy"]
