"""Shared fixtures. Tests run offline: no model hub, no ../shared data."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# backend="auto" on CPU would time onnx against torch once per session (tests/encoders/test_auto.py
# tests the probe on purpose); elsewhere auto means onnx, deterministically
os.environ.setdefault("TAMIS_AUTO_PROBE", "0")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own TAMIS_HOME; the ONNX export cache is shared by the session."""
    monkeypatch.setenv("TAMIS_HOME", str(tmp_path_factory.mktemp("home")))
    cache = os.environ.get("TAMIS_TEST_CACHE") or str(tmp_path_factory.getbasetemp() / "shared-cache")
    monkeypatch.setenv("TAMIS_CACHE", cache)


@pytest.fixture(scope="session")
def minilm():
    """The real packaged all-MiniLM-L6-v2 on CPU with torch (loaded once per session)."""
    from tamis import BiEncoder

    return BiEncoder(device="cpu")
