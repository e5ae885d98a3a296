"""`BiEncoder`: a sentence-transformers model run with torch, and the model fingerprint both
local backends share (`fingerprint_sentence_transformer`).

torch and sentence-transformers are imported only when a model is loaded or hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tamis._errors import ConfigError, ModelError
from tamis.encoders._protocol import TextKind
from tamis.encoders._resolve import display_name, resolve_device, resolve_model

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

__all__ = ["BiEncoder", "fingerprint_sentence_transformer", "quiet_transformers"]


def _pipeline_config(model: SentenceTransformer) -> dict[str, Any]:
    """The parts of a sentence-transformers pipeline that change the vectors, besides weights."""
    modules = []
    for mod in model:
        entry: dict[str, Any] = {"type": type(mod).__name__}
        get_cfg = getattr(mod, "get_config_dict", None)
        if callable(get_cfg):
            cfg = get_cfg()
            entry["config"] = {k: v for k, v in sorted(cfg.items()) if _jsonable(v)}
        modules.append(entry)
    return {
        "modules": modules,
        "max_seq_length": model.max_seq_length,
        "prompts": dict(sorted((model.prompts or {}).items())),
    }


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def fingerprint_sentence_transformer(model: SentenceTransformer) -> str:
    """sha256 over every weight tensor (name, dtype, shape, bytes) and the pipeline config.

    Two models with the same weights and settings get the same fingerprint wherever they run;
    fp16 copies on a GPU are hashed from float32 so the fingerprint does not depend on the device.
    """
    import torch

    h = hashlib.sha256()
    h.update(json.dumps(_pipeline_config(model), sort_keys=True).encode())
    state = model.state_dict()
    for key in sorted(state):
        t = state[key].detach()
        if t.is_floating_point():
            t = t.to(torch.float32)
        t = t.cpu().contiguous()
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:32]


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars (tamis shows its own progress)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass


class BiEncoder:
    """A sentence-transformers bi-encoder run with torch.

    Args:
        model: a hub name, a local folder, a loaded ``SentenceTransformer``, or None for the
            packaged all-MiniLM-L6-v2.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        dtype: ``"auto"`` (float16 on CUDA, float32 elsewhere), ``"float32"``, ``"float16"``,
            ``"bfloat16"``.
        max_seq_length: override the model's maximum input length in tokens.

    Example:
        >>> enc = BiEncoder()                                   # doctest: +SKIP
        >>> enc.encode(["a cat", "a dog"]).shape                # doctest: +SKIP
        (2, 384)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | SentenceTransformer | None = None,
        *,
        device: str = "auto",
        dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto",
        max_seq_length: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        quiet_transformers()
        self.device = resolve_device(device)
        if isinstance(model, SentenceTransformer):
            st = model.to(self.device)
            self.name = str(getattr(model, "_tamis_name", None) or model.model_card_data.base_model or "in-memory")
        else:
            from safetensors import SafetensorError

            source = resolve_model(model)
            self.name = display_name(model, source)
            try:
                st = SentenceTransformer(source, device=self.device, trust_remote_code=trust_remote_code)
            except (OSError, ValueError, SafetensorError) as exc:  # SafetensorError: a truncated weights file
                raise ModelError(
                    f"could not load sentence-transformers model {os.fspath(model or source)!r}: {exc}. "
                    "Pass a local model folder, or a hub name on a machine that reaches the hub."
                ) from exc
        if max_seq_length is not None:
            if max_seq_length < 8:
                raise ConfigError(f"max_seq_length must be at least 8, got {max_seq_length}")
            st.max_seq_length = max_seq_length
        self.model = st
        # fingerprint in float32, before any half-precision cast
        self.fingerprint = fingerprint_sentence_transformer(st)
        if dtype == "auto":
            dtype = "float16" if self.device.startswith("cuda") else "float32"
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ConfigError(f"dtype {dtype!r} is not one of 'auto', 'float32', 'float16', 'bfloat16'")
        if dtype != "float32":
            import torch

            st.to(getattr(torch, dtype))
        self.dtype = dtype
        get_dim = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ModelError(f"model {self.name!r} does not declare an embedding dimension")
        self.dim = int(dim)
        self.max_seq_length = int(st.max_seq_length or 512)
        self.backend = "torch"

    @classmethod
    def from_spec(cls, spec: str | None, *, device: str = "auto", **options: Any) -> BiEncoder:
        """The ``torch`` encoder factory (see `tamis.encoders`): ``spec`` is a hub name or a model
        folder (None: the packaged all-MiniLM-L6-v2); ``options`` go to `BiEncoder`."""
        return cls(spec, device=device, **options)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def normalizes(self) -> bool:
        return any(type(m).__name__ == "Normalize" for m in self.model)

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "document", batch_size: int = 64
    ) -> np.ndarray:
        """Encode ``texts`` (length-sorted batches, done by sentence-transformers) to unit vectors."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        fn = self.model.encode_query if kind == "query" else self.model.encode_document
        out = fn(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)

    def encode_tokens(self, texts: Sequence[str], *, kind: TextKind = "document") -> list[np.ndarray]:
        """Each text's token vectors (`tamis.encoders.TokenEncoder`), by sentence-transformers
        (``output_value="token_embeddings"``: the rows of real tokens only)."""
        texts = list(texts)
        if not texts:
            return []
        fn = self.model.encode_query if kind == "query" else self.model.encode_document
        out = fn(texts, output_value="token_embeddings", convert_to_numpy=False, show_progress_bar=False)
        return [np.ascontiguousarray(t.detach().float().cpu().numpy(), dtype=np.float32) for t in out]

    def __repr__(self) -> str:
        return f"BiEncoder({self.name!r}, device={self.device!r}, dtype={self.dtype!r}, dim={self.dim})"
