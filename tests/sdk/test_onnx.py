"""OnnxEncoder: the packaged MiniLM exported to ONNX must give BiEncoder's vectors and fingerprint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from tamis._errors import ConfigError, DataError, ModelError  # noqa: E402
from tamis.encoders import OnnxEncoder, default_model_path, load_encoder  # noqa: E402
from tamis.encoders._onnx_export import ensure_export  # noqa: E402
from tamis.encoders._onnx_runtime import POOLING_MODES, pool  # noqa: E402

LONG = " ".join(f"token{i} and some filler words" for i in range(200))  # well over 256 tokens

TEXTS = [
    "",
    " ",
    "x",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "password reset instructions for the admin console",
    "Ünïcödé, accents: café, naïve, façade; 東京 タワー; Москва; 🙂🚀",
    "numbers 3.14159 2,718 1e-9 and symbols #@$%^&*()[]{}",
    "a" * 300,
    "tabs\tand\nnewlines\r\nmixed   spaces",
    "<html><body><p>some markup</p></body></html>",
    "def encode(texts): return model(texts)  # code",
    "SHOUTING IN CAPITAL LETTERS",
    LONG,
    LONG[: len(LONG) // 2],
] + [
    f"sentence number {i} about {w}" for i, w in enumerate(("cats dogs birds fish trees rivers " * 6).split())
]


SHORT = [t for t in TEXTS if len(t) < 100]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<TAMIS_CACHE>/onnx`` of a cache private to this module (so the export happens here)."""
    return tmp_path_factory.mktemp("tamis-cache") / "onnx"


@pytest.fixture(scope="module")
def enc(onnx_cache: Path) -> OnnxEncoder:
    """The packaged MiniLM, exported once for this module."""
    return OnnxEncoder(cache=onnx_cache)


def test_attributes_and_fingerprint_match_biencoder(enc: OnnxEncoder, minilm) -> None:
    assert enc.backend == "onnx"
    assert enc.name == minilm.name == "all-MiniLM-L6-v2"
    assert (enc.dim, enc.max_seq_length) == (minilm.dim, minilm.max_seq_length) == (384, 256)
    assert enc.fingerprint == minilm.fingerprint
    meta = json.loads((enc.export_dir / "meta.json").read_text())
    assert meta["fingerprint"] == minilm.fingerprint
    assert meta["pooling_modes"] == ["mean"] and meta["normalize"] is True
    assert meta["exporter"] in ("torchscript", "dynamo") and meta["opset"] >= 17


@pytest.mark.parametrize("kind", ["document", "query"])
def test_vectors_match_biencoder(enc: OnnxEncoder, minilm, kind: str) -> None:
    assert len(enc.tokenizer(LONG)["input_ids"]) > 300  # the long text really is truncated
    got = enc.encode(TEXTS, kind=kind, batch_size=8)  # small batches: little padding, quick
    want = minilm.encode(TEXTS, kind=kind, batch_size=8)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert cosines(got, want).min() >= 0.9999


def test_batching_does_not_change_vectors_or_order(enc: OnnxEncoder) -> None:
    base = enc.encode(SHORT)  # one batch of 64
    np.testing.assert_allclose(enc.encode(SHORT, batch_size=1), base, atol=2e-5)
    np.testing.assert_allclose(enc.encode(SHORT, batch_size=7), base, atol=2e-5)
    np.testing.assert_allclose(enc.encode(SHORT[::-1], batch_size=5), base[::-1], atol=2e-5)
    np.testing.assert_allclose(enc.encode(tuple(SHORT[3:5])), base[3:5], atol=2e-5)


def test_truncates_at_max_seq_length(enc: OnnxEncoder) -> None:
    ids = enc.tokenizer(LONG, add_special_tokens=False)["input_ids"]
    cut = enc.tokenizer.decode(ids[:200])  # 200 + 2 special tokens < 256: same as LONG cut at 254
    a, b, c = enc.encode([LONG, LONG + " more words at the very end", cut])
    np.testing.assert_allclose(a, b, atol=1e-6)  # both cut at 256 tokens
    assert float(a @ c) < 0.99999  # ... and not earlier


def test_empty_input(enc: OnnxEncoder) -> None:
    for kind in ("document", "query"):
        out = enc.encode([], kind=kind)
        assert out.shape == (0, 384) and out.dtype == np.float32


def test_bad_arguments(enc: OnnxEncoder) -> None:
    with pytest.raises(ConfigError, match="kind"):
        enc.encode(["a"], kind="passage")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="batch_size"):
        enc.encode(["a"], batch_size=0)
    with pytest.raises(DataError, match="single str"):
        enc.encode("a text")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"texts\[1\]"):
        enc.encode(["a", 3])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="intra_op_threads"):
        OnnxEncoder(intra_op_threads=0)
    with pytest.raises(ConfigError, match="max_seq_length"):
        OnnxEncoder(max_seq_length=4)


def test_tokenizer_is_hf_fast_and_matches_the_session_input(enc: OnnxEncoder) -> None:
    from transformers import PreTrainedTokenizerFast

    tok = enc.tokenizer
    assert isinstance(tok, PreTrainedTokenizerFast)
    assert tok.model_max_length == enc.max_seq_length
    out = tok("Hello there, world", add_special_tokens=False, return_offsets_mapping=True)
    assert out["offset_mapping"][0] == (0, 5)
    hf = tok(TEXTS, truncation=True)["input_ids"]
    rust = [e.ids for e in enc._tokenizers["document"].encode_batch(TEXTS, add_special_tokens=True)]
    assert hf == rust


def test_threads_share_one_encoder(enc: OnnxEncoder) -> None:
    want = enc.encode(SHORT)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: enc.encode(SHORT, batch_size=8), range(6)))
    for got in results:
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_load_encoder_onnx_backend(enc: OnnxEncoder, onnx_cache: Path) -> None:
    other = load_encoder(backend="onnx", device="cpu", cache=onnx_cache, intra_op_threads=1)
    assert isinstance(other, OnnxEncoder) and other.intra_op_threads == 1
    assert other.export_dir == enc.export_dir and other.fingerprint == enc.fingerprint


def test_cache_hit_reuses_the_file_and_does_not_import_torch(enc: OnnxEncoder, onnx_cache: Path) -> None:
    onnx_file = enc.export_dir / "model.onnx"
    before = onnx_file.stat().st_mtime_ns
    code = (
        "import json, sys\n"
        "from tamis.encoders import OnnxEncoder\n"
        "enc = OnnxEncoder()\n"  # the cache comes from $TAMIS_CACHE
        "v = enc.encode(['a cat', 'a dog'], kind='query')\n"
        "tok = enc.tokenizer('a cat')\n"
        "print(json.dumps({'torch': 'torch' in sys.modules, 'dir': str(enc.export_dir),\n"
        "                  'fp': enc.fingerprint, 'shape': list(v.shape)}))\n"
    )
    env = {**os.environ, "TAMIS_CACHE": str(onnx_cache.parent), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"torch": False, "dir": str(enc.export_dir), "fp": enc.fingerprint, "shape": [2, 384]}
    assert onnx_file.stat().st_mtime_ns == before
    # no temp leftovers: the export and the memo of model keys
    assert sorted(p.name for p in onnx_cache.iterdir()) == sorted([enc.export_dir.name, "model-keys.json"])


def test_unsupported_pipeline_is_refused_before_loading_torch(tmp_path: Path) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelError, match=r"Dense.*backend='torch'"):
        OnnxEncoder(tmp_path, cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_concurrent_exporter_wins_and_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If another process renames its export into place while we export, we keep theirs."""
    import tamis.encoders._onnx_export as export_mod

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    root = tmp_path / "cache"
    target = root / export_mod._model_key(model)

    def fake_export(folder: Path, out: Path, name: str) -> None:
        for where, who in ((target, "them"), (out, "us")):  # they finish first
            where.mkdir(parents=True, exist_ok=True)
            (where / "model.onnx").write_text(who)
            (where / "meta.json").write_text(json.dumps({"format": export_mod.EXPORT_FORMAT, "who": who}))

    monkeypatch.setattr(export_mod, "_export", fake_export)
    assert ensure_export(model, root, "m") == target
    assert json.loads((target / "meta.json").read_text())["who"] == "them"
    assert sorted(p.name for p in root.iterdir()) == sorted([target.name, "model-keys.json"])


@pytest.mark.parametrize("mode", POOLING_MODES)
@pytest.mark.parametrize("prompt_length", [0, 2])
@pytest.mark.parametrize("side", ["right", "left"])
def test_numpy_pooling_matches_sentence_transformers(mode: str, prompt_length: int, side: str) -> None:
    import torch
    from sentence_transformers.sentence_transformer.modules import Pooling

    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((4, 9, 6)).astype(np.float32)
    lengths = [9, 5, 3, 7]
    mask = np.zeros((4, 9), dtype=np.int64)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
        if side == "left":
            mask[row] = mask[row, ::-1]
    pooling = Pooling(6, pooling_mode=mode, include_prompt=prompt_length == 0)
    features = {"token_embeddings": torch.from_numpy(hidden), "attention_mask": torch.from_numpy(mask)}
    if prompt_length:
        features["prompt_length"] = prompt_length
    want = pooling(features)["sentence_embedding"].numpy()
    np.testing.assert_allclose(pool(hidden, mask, (mode,), prompt_length), want, rtol=1e-5, atol=1e-6)


def test_several_pooling_modes_concatenate() -> None:
    hidden = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    mask = np.array([[1, 1, 1], [1, 1, 0]])
    out = pool(hidden, mask, ("cls", "mean"))
    np.testing.assert_allclose(out, [[0, 1, 2, 3], [6, 7, 7, 8]])


def _model_variant(tmp_path: Path, *, prompts: dict[str, str], include_prompt: bool) -> Path:
    """The packaged MiniLM with other prompts and pooling settings (weights symlinked)."""
    src = default_model_path()
    dst = tmp_path / "variant"
    (dst / "1_Pooling").mkdir(parents=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ("config_sentence_transformers.json",):
            (dst / f.name).symlink_to(f)
    (dst / "2_Normalize").mkdir()
    (dst / "config_sentence_transformers.json").write_text(json.dumps({"prompts": prompts}))
    pooling = json.loads((src / "1_Pooling" / "config.json").read_text())
    pooling["include_prompt"] = include_prompt
    (dst / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return dst


@pytest.mark.slow
def test_prompts_and_prompt_exclusion_match_biencoder(tmp_path: Path) -> None:
    from tamis import BiEncoder

    folder = _model_variant(
        tmp_path, prompts={"query": "query: ", "document": "passage: "}, include_prompt=False
    )
    enc = OnnxEncoder(folder, cache=tmp_path / "cache", intra_op_threads=1)
    ref = BiEncoder(folder, device="cpu")
    assert enc.fingerprint == ref.fingerprint
    assert enc.meta["prompts"] == {"query": "query: ", "document": "passage: "}
    texts = SHORT[:20]
    for kind in ("query", "document"):
        assert cosines(enc.encode(texts, kind=kind), ref.encode(texts, kind=kind)).min() >= 0.9999
    q, d = enc.encode(["a cat on a mat"], kind="query"), enc.encode(["a cat on a mat"])
    assert float((q * d).sum()) < 0.9999  # the prompts make a difference


@pytest.mark.slow
def test_max_seq_length_override_matches_biencoder(enc: OnnxEncoder, onnx_cache: Path) -> None:
    from tamis import BiEncoder

    short = OnnxEncoder(max_seq_length=16, cache=onnx_cache)
    ref = BiEncoder(device="cpu", max_seq_length=16)
    assert short.max_seq_length == 16
    assert short.fingerprint == ref.fingerprint != enc.fingerprint
    assert (enc.export_dir / "fingerprint-16.txt").is_file()  # computed once, then cached
    texts = [LONG, TEXTS[4], TEXTS[7]]
    assert cosines(short.encode(texts), ref.encode(texts)).min() >= 0.9999
    with pytest.raises(ConfigError, match="exceeds"):
        OnnxEncoder(max_seq_length=100_000, cache=onnx_cache)


def test_intra_op_spinning_is_off_under_serving_and_vectors_stay(enc: OnnxEncoder) -> None:
    pytest.importorskip("starlette")
    from tamis.serving import create_app

    def spinning() -> str:
        return enc._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    ref = enc.encode(["a cat sat on the mat", "dogs"])
    assert enc.intra_op_spinning and spinning() == "1"  # ONNX Runtime's default for a plain encoder
    try:
        create_app(enc)
        assert not enc.intra_op_spinning and spinning() == "0"
        np.testing.assert_allclose(enc.encode(["a cat sat on the mat", "dogs"]), ref, atol=1e-6)
    finally:
        enc.set_intra_op_spinning(True)
    assert spinning() == "1"


def test_encode_tokens_matches_torch_and_pools_to_encode(enc: OnnxEncoder, minilm) -> None:
    from tamis.encoders import TokenEncoder

    texts = ["a cat sat on the mat", "Qdrant is a vector database written in Rust."]
    assert isinstance(enc, TokenEncoder) and isinstance(minilm, TokenEncoder)
    ours, theirs = enc.encode_tokens(texts), minilm.encode_tokens(texts)
    for a, b, v in zip(ours, theirs, enc.encode(texts), strict=True):
        assert a.shape == b.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-4)
        mean = a.mean(axis=0)
        assert float(np.dot(mean / np.linalg.norm(mean), v)) > 0.9999
