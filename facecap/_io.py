"""Atomic file writes (a temporary file beside the target, renamed over it on success); reproducible .npz."""

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


def savez_reproducible(f, arrays: dict) -> None:
    """``np.savez_compressed(f, **arrays)`` with every member stamped 1980-01-01 00:00, so the same arrays
    give the same bytes (numpy stamps the current time); ``np.load`` reads it like any ``.npz``."""
    import zipfile

    import numpy as np

    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, a in arrays.items():
            info = zipfile.ZipInfo(f"{k}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            with zf.open(info, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asanyarray(a), allow_pickle=False)
