"""onnx-int8: its own fingerprint, the quality gate (passes on MiniLM, refuses a planted bad model),
and a collection that knows which precision wrote it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import tamis  # noqa: E402
from tamis._errors import ModelMismatchError  # noqa: E402
from tamis.encoders import OnnxEncoder, QualityGateError, default_model_path, load_encoder  # noqa: E402
from tamis.encoders._onnx_quant import gate_report  # noqa: E402

TOPICS = "cats dogs birds fish trees rivers stars planets engines bridges violins recipes".split()
TEXTS = [
    f"note {i}: a short text about {TOPICS[i % 12]} and {TOPICS[(i * 5 + 3) % 12]}, number {i}"
    for i in range(48)
]


@pytest.fixture(scope="module")
def int8() -> OnnxEncoder:
    return load_encoder("onnx-int8:")  # type: ignore[return-value]


def test_int8_has_its_own_fingerprint_and_close_vectors(int8: OnnxEncoder) -> None:
    fp32 = OnnxEncoder()
    assert int8.precision == "int8" and int8.backend == "onnx-int8"
    assert int8.fingerprint != fp32.fingerprint
    assert int8.fp32_fingerprint == fp32.fingerprint
    assert (int8.export_dir / "model-int8.onnx").is_file()
    assert load_encoder(None, backend="onnx-int8").fingerprint == int8.fingerprint  # stable
    cos = (int8.encode(TEXTS[:8]) * fp32.encode(TEXTS[:8])).sum(axis=1)
    assert 0.98 < cos.min() < 0.99999  # close, yet not the float32 graph


def test_the_gate_runs_on_the_first_documents_and_passes_for_minilm(int8: OnnxEncoder) -> None:
    enc = OnnxEncoder(precision="int8")
    assert enc.gate is None
    enc.encode(TEXTS[:5])  # too few to judge: no gate yet
    assert enc.gate is None
    enc.encode(TEXTS)
    assert enc.gate is not None and enc.gate["passed"]
    assert enc.gate["recall_at_k"] >= 0.99 and enc.gate["mean_cosine"] >= 0.99
    history = json.loads((enc.export_dir / "int8-gate.json").read_text())
    assert history[-1]["texts"] == len(TEXTS)


def _planted_bad_minilm(folder: Path) -> Path:
    """MiniLM with an activation outlier planted in every feed-forward block: unit 0 of the intermediate
    layer fires at 500 and its outgoing weights are zero, so float32 barely changes, but the per-tensor
    uint8 range of the activations quantised at run time is blown and int8 loses the layer."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(default_model_path(), folder)
    weights = load_file(str(folder / "model.safetensors"))
    for key, value in list(weights.items()):
        if key.endswith("intermediate.dense.bias"):
            weights[key] = value.copy()
            weights[key][0] = 500.0
        elif key.endswith("output.dense.weight") and "attention" not in key:
            weights[key] = value.copy()
            weights[key][:, 0] = 0.0
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


@pytest.mark.slow
def test_the_gate_refuses_a_planted_bad_case(tmp_path: Path) -> None:
    folder = _planted_bad_minilm(tmp_path / "bad-minilm")
    enc = OnnxEncoder(str(folder), precision="int8")
    with pytest.raises(QualityGateError, match=r"mean cosine 0\.\d+ \(need 0\.99\)") as info:
        enc.encode(TEXTS)
    assert not info.value.report["passed"] and info.value.report["mean_cosine"] < 0.9
    # the float32 graph of the same model is fine, and int8 can still be had on request
    assert OnnxEncoder(str(folder)).encode(TEXTS).shape == (len(TEXTS), 384)
    assert OnnxEncoder(str(folder), precision="int8", int8_gate=False).encode(TEXTS).shape == (48, 384)


def test_gate_report_numbers() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 16)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    same = gate_report(a, a.copy())
    assert same["passed"] and same["recall_at_k"] == 1.0 and same["top_k_overlap"] == 1.0
    shuffled = gate_report(a, a[rng.permutation(40)])
    assert not shuffled["passed"] and shuffled["mean_cosine"] < 0.5
    assert not gate_report(a, a.copy(), min_recall=1.01)["passed"]


def test_an_int8_collection_refuses_float32_vectors_and_reopens_in_int8(tmp_path: Path) -> None:
    docs = [tamis.Document(id=str(i), text=t) for i, t in enumerate(TEXTS)]
    with tamis.open_collection("c8", path=tmp_path, backend="onnx-int8", create=True) as col:
        col.index(docs)
        assert col.manifest["model"]["backend"] == "onnx-int8"
    with tamis.open_collection("c8", path=tmp_path) as col:  # its own model: int8 again
        assert col.encoder.fingerprint == load_encoder("onnx-int8:").fingerprint
        assert col.search("fish and rivers", k=3)
    fp32 = load_encoder(None, backend="onnx")
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        with tamis.open_collection("c8", path=tmp_path, encoder=fp32) as col:
            col.search("fish and rivers", k=3)
