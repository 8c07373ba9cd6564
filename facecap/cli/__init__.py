"""The ``facecap`` command line: argument parsing, formatting and signal handling, one function per command.

The library (``facecap.*``) prints nothing; everything a user reads on the terminal is written here.

- :mod:`facecap.cli.parser`: the parser of every command (built inside :func:`main`, never at import),
- :mod:`facecap.cli.capture`: commands that run the capture loop (demo, track, stream, live, play),
- :mod:`facecap.cli.files`: commands on files (rig, take, export, synth, retarget, info, devices),
- :mod:`facecap.cli.outputs`: the shared output flags, Ctrl-C/SIGTERM handling, summaries.
"""

from __future__ import annotations

import sys
import warnings

from .parser import build_parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings on the command line as one plain line (no source file and line of code)."""
    print(f"facecap: warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # restored on exit: "facecap: warning: ..." lines
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, ImportError, ValueError, KeyError, RuntimeError) as e:  # OSError: disk full, permissions
        print(f"facecap: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["build_parser", "main"]
