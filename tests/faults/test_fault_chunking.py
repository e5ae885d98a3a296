"""A very long document is chunked as a stream: the same chunks as tokenizing it whole, in bounded memory."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from tamis.data import Chunker, _chunker


def _text(n_chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    parts, size = [], 0
    while size < n_chars:
        w = rng.choice(words) + rng.choice(["", "", ",", "."])
        parts.append(w)
        size += len(w) + 1
    return " ".join(parts)


def _whole(chunker: Chunker, text: str) -> list[str]:
    """The windows of the text tokenized in one piece (what the chunker did before it streamed)."""
    enc = chunker.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    offsets = enc["offset_mapping"]
    stride, out = chunker.max_tokens - chunker.overlap, []
    for start in range(0, len(offsets), stride):
        w = offsets[start : start + chunker.max_tokens]
        out.append(text[w[0][0] : w[-1][1]].strip())
        if start + chunker.max_tokens >= len(offsets):
            break
    return out


def test_streamed_chunks_equal_the_whole_text_chunks(monkeypatch):
    from transformers import AutoTokenizer

    from tamis import default_model_path

    monkeypatch.setattr(_chunker, "SEGMENT_CHARS", 4096)  # many segments in a small text
    chunker = Chunker(AutoTokenizer.from_pretrained(str(default_model_path())), max_tokens=126, overlap=31)
    text = _text(60_000)
    assert chunker.split(text) == _whole(chunker, text)


@pytest.mark.parametrize("n_chars", [130, 126 * 4])
def test_short_texts_stay_whole(n_chars):
    text = " ".join(["w"] * (n_chars // 2))
    assert Chunker(None, max_tokens=126 * 4, overlap=31).split(text) == [text]


def test_a_long_document_is_chunked_in_bounded_memory():
    text = _text(5_000_000)
    tracemalloc.start()
    try:
        chunks = Chunker(None, max_tokens=126, overlap=31).split(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(chunks) > 5000
    # the chunks themselves are ~1.3x the text; all the token offsets at once were ~20x
    assert peak < 3 * len(text), f"peak {peak / 1e6:.0f} MB for a {len(text) / 1e6:.0f} MB text"
