"""`FakeEncoder`: deterministic, model-free vectors for tests (yours too); ``"fake:DIM"`` through
`load_encoder` and the CLI's ``--model``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from tamis._errors import ConfigError
from tamis.encoders._protocol import TextKind

__all__ = ["FakeEncoder"]


class FakeEncoder:
    """A deterministic, model-free encoder for tests: bag of hashed words -> unit vector.

    Texts sharing words get similar vectors, so search results are meaningful enough for tests
    of plumbing, and the same text always maps to the same vector on every machine.

    Example:
        >>> enc = FakeEncoder(dim=32)
        >>> v = enc.encode(["red apple", "red apple"])
        >>> bool((v[0] == v[1]).all())
        True
    """

    backend = "fake"

    def __init__(self, dim: int = 64, *, name: str = "fake", max_seq_length: int = 128) -> None:
        if dim < 2:
            raise ConfigError(f"dim must be at least 2, got {dim}")
        self.dim = dim
        self.name = name
        self.max_seq_length = max_seq_length
        self.fingerprint = hashlib.sha256(f"fake:{name}:{dim}".encode()).hexdigest()[:32]

    @classmethod
    def from_spec(cls, spec: str | None, *, device: str = "auto", **options: Any) -> FakeEncoder:
        """The ``fake`` encoder factory (see `tamis.encoders`): ``spec`` is the dimension
        (``load_encoder("fake:32")``); None or ``""``: 64. ``device`` does not apply; ``options``
        (``name=``, ``max_seq_length=``) go to `FakeEncoder`."""
        if spec is None or not spec.strip():
            return cls(**options)
        if not spec.strip().isdigit():
            raise ConfigError(f"the fake encoder takes a dimension, as in 'fake:32'; got {spec!r}")
        return cls(int(spec), **options)

    @property
    def tokenizer(self) -> None:
        return None

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float64)
        for word in re.findall(r"\w+", text.lower()) or [""]:
            seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            v += np.random.default_rng(seed).standard_normal(self.dim)
        n = np.linalg.norm(v)
        return (v / n if n > 0 else v).astype(np.float32)

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "document", batch_size: int = 64
    ) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def __repr__(self) -> str:
        return f"FakeEncoder(dim={self.dim}, name={self.name!r})"
