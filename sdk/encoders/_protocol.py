"""The `Encoder` protocol: what tamis needs from anything that turns texts into vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = ["Encoder", "TextKind", "TokenEncoder"]

#: what a text is for: some models encode queries and documents differently (prompts)
TextKind = Literal["query", "document"]


@runtime_checkable
class Encoder(Protocol):
    """What tamis needs from an encoder.

    Attributes:
        name: the model name or path, for humans.
        dim: vector dimension.
        fingerprint: a hash of the weights and configuration that produced the vectors;
            a collection remembers it and refuses vectors from any other.
        max_seq_length: the longest input in tokens the model reads (longer input is truncated).
    """

    name: str
    dim: int
    fingerprint: str
    max_seq_length: int

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "document", batch_size: int = 64
    ) -> np.ndarray:
        """Encode texts to an (n, dim) float32 array of unit-length rows."""
        ...

    @property
    def tokenizer(self) -> Any | None:
        """A Hugging Face fast tokenizer for token-aware chunking, or None if unknown."""
        ...


@runtime_checkable
class TokenEncoder(Protocol):
    """An encoder that also gives each token's vector (TEI's ``/embed_all``); optional.

    `BiEncoder` and `OnnxEncoder` have it; ``tamis serve`` answers ``/embed_all`` with it.
    """

    def encode_tokens(self, texts: Sequence[str], *, kind: TextKind = "document") -> list[np.ndarray]:
        """One (tokens, hidden) float32 array per text: the transformer's last hidden state for every
        token of the text (its prompt and special tokens included, truncated at ``max_seq_length``),
        before pooling and normalisation."""
        ...
