"""The ``facecap`` command line: argument parsing, formatting and signal handling, one function per command.

The library (``facecap.*``) prints nothing; everything a user reads on the terminal is written here.

- :mod:`facecap.cli.parser`: the parser of every command (built inside :func:`main`, never at import),
- :mod:`facecap.cli.capture`: commands that run the capture loop (demo, track, stream, live, play),
- :mod:`facecap.cli.files`: commands on files (rig, take, export, synth, retarget, info, devices),
- :mod:`facecap.cli.outputs`: the shared output flags, Ctrl-C/SIGTERM handling, summaries.
"""

from __future__ import annotations

import sys

from .parser import build_parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
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
