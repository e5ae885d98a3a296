"""The optimized ONNX graph (eager attention), its tokenizer files and the token-budget batches."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from tamis.encoders import BiEncoder, OnnxEncoder  # noqa: E402
from tamis.encoders._onnx import TOKENS_PER_ROW, token_batches  # noqa: E402

_WORDS = "the quick brown fox jumps over a lazy dog while tamis measures every backend".split()


def _text_of(tok, n_tokens: int, seed: int) -> str:
    """A text of exactly ``n_tokens`` tokens, special tokens included."""
    words = [_WORDS[(seed + i * 7) % len(_WORDS)] for i in range(n_tokens)]
    ids = tok(" ".join(words), add_special_tokens=False)["input_ids"][: n_tokens - 2]
    text = tok.decode(ids)
    assert len(tok(text)["input_ids"]) == n_tokens
    return text


@pytest.fixture(scope="module")
def enc512() -> OnnxEncoder:
    return OnnxEncoder(max_seq_length=512)


def test_the_export_is_eager_and_says_the_models_max_length() -> None:
    enc = OnnxEncoder()
    assert enc.meta["attention"] == "eager"
    folder = enc.export_dir / "tokenizer"
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == enc.max_seq_length == 256
    assert config.get("max_length", 256) == 256
    tok = json.loads((folder / "tokenizer.json").read_text())
    assert tok["truncation"]["max_length"] == 256
    assert tok["padding"] is None


@pytest.mark.slow
def test_parity_with_torch_from_5_to_512_tokens(enc512: OnnxEncoder) -> None:
    torch_enc = BiEncoder(device="cpu", max_seq_length=512)
    lengths = [5, 6, 17, 64, 129, 256, 300, 511, 512]
    texts = [_text_of(enc512.tokenizer, n, i) for i, n in enumerate(lengths)]
    got, want = enc512.encode(texts), torch_enc.encode(texts)
    cos = (got * want).sum(axis=1)
    assert cos.min() >= 0.9999, dict(zip(lengths, cos.round(7).tolist(), strict=True))
    assert enc512.fingerprint == torch_enc.fingerprint


def test_token_batches_hold_at_most_the_budget() -> None:
    rng = np.random.default_rng(0)
    lengths = np.sort(rng.integers(3, 257, size=500))[::-1]
    for budget in (1, 100, 8192):
        slices = token_batches(lengths, budget)
        assert sum(s.stop - s.start for s in slices) == len(lengths)
        assert [s.start for s in slices] == [0] + [s.stop for s in slices[:-1]]
        for s in slices:
            rows = s.stop - s.start
            assert rows == 1 or rows * lengths[s.start] <= budget
    # short texts run in wide batches, long ones in narrow ones
    short = token_batches(np.full(1000, 10), 64 * TOKENS_PER_ROW)
    long = token_batches(np.full(1000, 256), 64 * TOKENS_PER_ROW)
    assert short[0].stop == 819 and long[0].stop == 32


def test_batches_pad_no_further_than_their_longest_text(enc512: OnnxEncoder, monkeypatch) -> None:
    texts = [_text_of(enc512.tokenizer, n, n) for n in (9, 40, 200, 12, 300, 7)]
    widths: list[tuple[int, int]] = []
    real_run = enc512._session.run

    def spy(names, feed):
        mask = feed["attention_mask"]
        widths.append((mask.shape[1], int(mask.sum(axis=1).max())))
        return real_run(names, feed)

    monkeypatch.setattr(enc512._session, "run", spy, raising=False)
    one_each = enc512.encode(texts, batch_size=1)
    assert widths and all(w == longest for w, longest in widths)
    widths.clear()
    together = enc512.encode(texts, batch_size=64)
    assert len(widths) == 1
    assert np.allclose(one_each, together, atol=1e-5)
