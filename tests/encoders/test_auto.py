"""backend="auto" on CPU picks what the cached probe measured (and measures when there is none)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from tamis.encoders import BiEncoder, OnnxEncoder, load_encoder  # noqa: E402
from tamis.encoders._auto import RoutedEncoder, choose, probe_file, read_probe, run_probe  # noqa: E402


@pytest.fixture
def probe_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where the probe of the packaged model lives on this machine; the auto rule switched on, and any
    probe already there put back afterwards."""
    monkeypatch.setenv("TAMIS_AUTO_PROBE", "1")
    path = probe_file(OnnxEncoder().export_dir.name)
    saved = path.read_bytes() if path.exists() else None
    yield path
    if saved is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(saved)


def _plant(path: Path, buckets: dict[int, tuple[float, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "format": 1, "buckets": {str(n): {"onnx": o, "torch": t} for n, (o, t) in buckets.items()},
    }))


def test_auto_picks_what_the_probe_measured(probe_path: Path) -> None:
    _plant(probe_path, {16: (900.0, 500.0), 64: (400.0, 300.0), 256: (60.0, 45.0)})
    assert isinstance(load_encoder(None, device="cpu"), OnnxEncoder)
    _plant(probe_path, {16: (400.0, 500.0), 64: (200.0, 300.0), 256: (40.0, 45.0)})
    assert isinstance(load_encoder(None, device="cpu"), BiEncoder)
    _plant(probe_path, {16: (900.0, 500.0), 64: (400.0, 300.0), 256: (40.0, 45.0)})
    routed = load_encoder(None, device="cpu")
    assert isinstance(routed, RoutedEncoder)
    assert routed.route(10) == routed.route(64) == "onnx" and routed.route(250) == "torch"
    routed.encode(["a short query"], kind="query")
    assert routed._torch is None  # torch is loaded only for a text that goes to it
    # within 5% is noise: onnx keeps that length
    _plant(probe_path, {16: (900.0, 500.0), 256: (44.0, 45.0)})
    assert isinstance(load_encoder(None, device="cpu"), OnnxEncoder)


def test_the_routed_encoder_sends_each_text_to_its_winner(probe_path: Path, minilm) -> None:
    onnx = OnnxEncoder()
    routed = RoutedEncoder(onnx, minilm, {16: "onnx", 256: "torch"})
    texts = ["a cat", "word " * 200, "a dog on a mat", "long " * 150]
    got = routed.encode(texts)
    assert got.shape == (4, 384) and routed.fingerprint == onnx.fingerprint
    assert np.allclose(got[[0, 2]], onnx.encode([texts[0], texts[2]]), atol=1e-6)
    assert np.allclose(got[[1, 3]], minilm.encode([texts[1], texts[3]]), atol=1e-6)


def test_no_probe_measures_once_and_caches(probe_path: Path, minilm) -> None:
    probe_path.unlink(missing_ok=True)
    onnx = OnnxEncoder()
    probe = run_probe(onnx, minilm, probe_path, rounds=1)
    assert read_probe(probe_path) == probe
    assert set(probe["buckets"]) == {"16", "64", "256"}
    assert all(b["onnx"] > 0 and b["torch"] > 0 for b in probe["buckets"].values())
    assert probe["choice"] == choose(probe)
    # what load_encoder gives is what that measurement says
    enc = load_encoder(None, device="cpu")
    expected = {"onnx": OnnxEncoder, "torch": BiEncoder}.get(probe["choice"], RoutedEncoder)  # type: ignore[arg-type]
    assert isinstance(enc, expected)


def test_the_probe_can_be_switched_off(probe_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _plant(probe_path, {16: (1.0, 500.0), 256: (1.0, 45.0)})
    monkeypatch.setenv("TAMIS_AUTO_PROBE", "0")
    assert isinstance(load_encoder(None, device="cpu"), OnnxEncoder)
