"""Token-aware chunking: `Chunker` cuts a text too long for the model into overlapping windows."""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Iterator
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

    def _spans(self, text: str) -> Iterator[tuple[int, int]]:
        """(start, end) character offsets of the tokens of ``text``, tokenized a segment at a time.

        A segment ends at whitespace, where a word-piece tokenizer splits anyway, so the tokens are
        those of the whole text; memory stays that of one segment however long the text.
        """
        if self.tokenizer is None:
            yield from (m.span() for m in re.finditer(r"\S+", text))
            return
        pos, n = 0, len(text)
        while pos < n:
            end = min(n, pos + SEGMENT_CHARS)
            if end < n:
                cut = _last_space(text, pos + SEGMENT_CHARS // 2, end)
                if cut is not None:
                    end = cut
            enc = self.tokenizer(
                text[pos:end], add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
            )
            for a, b in enc["offset_mapping"]:
                yield a + pos, b + pos
            pos = end

    def split(self, text: str) -> list[str]:
        """The chunks of ``text``: ``[text]`` when it fits, else overlapping windows (streamed: a 20 MB text
        needs the memory of its chunks, not of all its tokens at once)."""
        # a word-piece token spans at least one character: short texts cannot overflow
        if len(text) <= self.max_tokens:
            return [text]
        spans = self._spans(text)
        # the window (the first max_tokens spans) and one more, to know whether another window follows
        buf = deque(itertools.islice(spans, self.max_tokens + 1))
        if len(buf) <= self.max_tokens:
            return [text]
        stride = self.max_tokens - self.overlap
        chunks = []
        while True:
            piece = text[buf[0][0] : buf[min(len(buf), self.max_tokens) - 1][1]].strip()
            if piece:
                chunks.append(piece)
            if len(buf) <= self.max_tokens:
                return chunks
            for _ in range(stride):
                buf.popleft()
            buf.extend(itertools.islice(spans, self.max_tokens + 1 - len(buf)))


#: characters tokenized at once by `Chunker` (cut at whitespace)
SEGMENT_CHARS = 65_536


def _last_space(text: str, lo: int, hi: int) -> int | None:
    """The index of the last space or line break in ``text[lo:hi]``, or None."""
    found = max(text.rfind(c, lo, hi) for c in " \n\t")
    return found if found >= 0 else None
