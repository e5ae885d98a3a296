"""The fault suite's fixtures; its shared helpers are in faultkit.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The Edge store's data directory of one case."""
    return tmp_path / "data"
