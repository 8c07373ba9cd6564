"""The ``facecap`` command line: argument parsing, formatting and signal handling, one function per command.

The library (``facecap.*``) prints nothing; everything a user reads on the terminal is written here.

- :mod:`facecap.cli.parser`: the parser of every command (built inside :func:`main`, never at import),
- :mod:`facecap.cli.capture`: commands that run the capture loop (demo, track, stream, live, play),
- :mod:`facecap.cli.files`: commands on files (rig, take, export, synth, retarget, info, devices),
- :mod:`facecap.cli.outputs`: the shared output flags and summaries,
- :mod:`facecap.cli.signals`: the one SIGINT/SIGTERM policy of every command.
"""

from __future__ import annotations

import os
import sys
import warnings

from .parser import build_parser
from .signals import signal_policy


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on the command line as one plain line (no source file and line of code)."""
    print(f"facecap: warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    rc, signalled = _main(argv)
    if argv is None and signalled:
        # interrupted and already finalised: leave now. Python's own teardown would reset the signal
        # handlers first, and a late Ctrl-C in that window would kill the process with a bare -2
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    return rc


def _main(argv: list[str] | None) -> tuple[int, bool]:
    """(exit code, whether a signal stopped the command)."""
    # first of all (start-up included), and as the process's own command (argv None) installed through
    # interpreter exit, so a late third signal still exits 128 + signal instead of killing the teardown
    with signal_policy(restore=argv is not None) as policy:
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            if not getattr(args, "func", None):
                parser.print_help()
                return 0, False
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning  # restored on exit: "facecap: warning: ..." lines
                rc = int(args.func(args) or 0)
            fired = policy.first is not None
            return (policy.exit_code if fired else rc), fired
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return policy.exit_code, True
        except Exception as e:
            if policy.first is not None:  # the signal surfaced as another error (e.g. inside an import)
                print("interrupted", file=sys.stderr)
                return policy.exit_code, True
            if not isinstance(e, (OSError, ImportError, ValueError, KeyError, RuntimeError)):
                raise  # a bug: keep its traceback
            print(f"facecap: error: {e}", file=sys.stderr)  # OSError: disk full, permissions...
            return 2, False


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "main"]
