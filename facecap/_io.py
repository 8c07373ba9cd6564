"""Atomic file writes: write a temporary file beside the target, rename it over the target on success."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

_SERIAL = itertools.count()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder to write the whole file to; when the block ends without
    an exception ``os.replace`` moves it onto ``path``, otherwise it is deleted. Readers therefore see the
    old file or the complete new one, never half a file, and a failure leaves nothing behind.

    The temporary name keeps the suffix (``.face.<pid>.<n>.tmp.glb``) for writers that pick the format
    from it (USD).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{next(_SERIAL)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
