"""One signal policy for every command: SIGINT and SIGTERM stop the work cleanly, a third signal forces out.

- The first SIGINT (Ctrl-C) or SIGTERM (``kill``) raises :class:`KeyboardInterrupt` in the main thread:
  the capture loop stops, the take is finalised, temporary files are removed, and the command exits
  130 (SIGINT) or 143 (SIGTERM).
- A second signal while that happens is ignored (with a note): finalising is never cut short by a
  nervous double Ctrl-C, and no exception is raised inside cleanup code.
- A third forces an immediate exit (``os._exit``, same code). Every record already written stays
  readable: takes recover record by record (:mod:`facecap.take.recover`).

A signal that arrives while Python runs a callback from C code (Numba's compiler writing its cache,
ctypes) raises the KeyboardInterrupt where it cannot propagate: Python would print it as "Exception
ignored" and go on as if nothing happened. The policy's ``sys.unraisablehook`` takes such an interrupt
instead and delivers the signal again once the callback has returned. Once a signal has stopped the
command, errors that destructors raise (objects the interrupt left half-built, such as an llvmlite pass
builder cut off inside its constructor) are dropped: they are the interrupt's wreckage, not news, and
"interrupted" is the one line the user sees. Before any signal they are printed as usual.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

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

    def unraisable(self, info, fallback=sys.__unraisablehook__) -> None:
        """``sys.unraisablehook``: our KeyboardInterrupt swallowed by a callback from C is delivered
        again (20 ms later, from a timer thread); after a signal, other errors are dropped; before
        one, they go to ``fallback``."""
        if isinstance(info.exc_value, KeyboardInterrupt) and self.count == 1 and self.first is not None:
            self.count = 0  # the signal counts once, when it reaches Python code that can stop
            threading.Timer(0.02, os.kill, (os.getpid(), self.first)).start()
            return
        if self.first is not None:
            return
        fallback(info)

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
    old_hook = sys.unraisablehook
    if old:
        sys.unraisablehook = lambda info: policy.unraisable(info, old_hook)
    try:
        yield policy
    finally:
        for s, h in old.items() if restore else ():
            signal.signal(s, h)
        if old and restore:
            sys.unraisablehook = old_hook


__all__ = ["SIGNALS", "SignalPolicy", "signal_policy"]
