"""Atomic file writes: write a temporary file beside the target, rename it over the target on success."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

_SERIAL = itertools.count()


def temp_name(path: Path) -> Path:
    """A temporary name beside ``path``, unique in this process: ``.<stem>.<pid>.<n>.tmp<suffix>``."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{next(_SERIAL)}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder to write the whole file to; when the block ends without
    an exception ``os.replace`` moves it onto ``path``, otherwise it is deleted. Readers therefore see the
    old file or the complete new one, never half a file, and a failure leaves nothing behind.

    The temporary name keeps the suffix (``.face.<pid>.<n>.tmp.glb``) for writers that pick the format
    from it (USD).
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


OWNER_FILE = "facecap-owner.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # someone else's process: alive as far as we can tell
        return True
    return True


@contextlib.contextmanager
def owned_temp_dir(prefix: str) -> Iterator[Path]:
    """A temporary folder marked with this process's pid, removed when the block ends; first, folders
    with the same prefix left by processes that died (SIGKILL, power cut) are removed, and unmarked
    ones (older facecap versions) when they are more than a day old."""
    import shutil
    import tempfile
    import time

    root = Path(tempfile.gettempdir())
    for d in root.glob(prefix + "*"):
        try:
            owner = d / OWNER_FILE
            if owner.is_file():
                stale = not _alive(int(owner.read_text().strip() or 0))
            else:
                stale = d.is_dir() and time.time() - d.stat().st_mtime > 86400
            if stale:
                shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            continue
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    try:
        (Path(tmp.name) / OWNER_FILE).write_text(str(os.getpid()))
        yield Path(tmp.name)
    finally:
        tmp.cleanup()
