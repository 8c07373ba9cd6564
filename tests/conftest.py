"""Shared fixtures. Real test data lives in ../shared/data (never copied into this repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Path inside ../shared/data; skips the test if missing, or fails it when CI is set."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        msg = f"shared test data missing: {p}"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture
def shared_data() -> Path:
    return shared_path()
