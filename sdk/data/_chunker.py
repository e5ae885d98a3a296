"""Token-aware chunking: `Chunker` cuts a text too long for the model into overlapping windows."""

from __future__ import annotations

import re
from typing import Any

from tamis._errors import ConfigError

__all__ = ["Chunker"]


class Chunker:
    """Token-aware splitting of long texts into overlapping windows that fit the model.

    Args:
        tokenizer: a Hugging Face fast tokenizer (offsets are used to cut the original text,
            so chunks are exact substrings). None: whitespace words stand in for tokens.
        max_tokens: window size in tokens, without special tokens (model max length - 2).
        overlap: tokens shared by consecutive windows.
    """

    def __init__(self, tokenizer: Any | None, max_tokens: int, overlap: int = 32) -> None:
        if max_tokens < 8:
            raise ConfigError(f"max_tokens must be at least 8, got {max_tokens}")
        if not 0 <= overlap < max_tokens // 2:
            raise ConfigError(f"overlap must be in [0, {max_tokens // 2}), got {overlap}")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    def _offsets(self, text: str) -> list[tuple[int, int]]:
        if self.tokenizer is None:
            return [m.span() for m in re.finditer(r"\S+", text)]
        enc = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )
        return [tuple(o) for o in enc["offset_mapping"]]

    def split(self, text: str) -> list[str]:
        """The chunks of ``text``: ``[text]`` when it fits, else overlapping windows."""
        # a word-piece token spans at least one character: short texts cannot overflow
        if len(text) <= self.max_tokens:
            return [text]
        offsets = self._offsets(text)
        if len(offsets) <= self.max_tokens:
            return [text]
        stride = self.max_tokens - self.overlap
        chunks = []
        for start in range(0, len(offsets), stride):
            window = offsets[start : start + self.max_tokens]
            piece = text[window[0][0] : window[-1][1]].strip()
            if piece:
                chunks.append(piece)
            if start + self.max_tokens >= len(offsets):
                break
        return chunks
