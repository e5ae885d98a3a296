"""ONNX Runtime pieces of `OnnxEncoder`: the inference session, the Rust tokenizer, and
sentence-transformers' pooling in numpy. Imports neither torch nor transformers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tamis._errors import ModelError

__all__ = ["POOLING_MODES", "available_cores", "pool", "rust_tokenizer", "session"]

#: the pooling modes `pool` implements (sentence-transformers' names)
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


def available_cores() -> int:
    """The CPU cores this process may run on (the default number of ONNX Runtime threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def rust_tokenizer(path: Path, max_length: int, side: str) -> Any:
    """The ``tokenizers`` tokenizer in ``path`` (a tokenizer.json), unpadded, truncating at ``max_length``."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length=int(max_length), direction=side or "right")
    return tok


def session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session for the model file ``path`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(
            f"ONNX Runtime cannot load {path}: {exc}. Delete {path.parent} to export the model again."
        ) from exc


def pool(hidden: np.ndarray, mask: np.ndarray, modes: Sequence[str], prompt_length: int = 0) -> np.ndarray:
    """sentence-transformers' ``Pooling._forward_padded`` in numpy.

    Args:
        hidden: (batch, seq, hidden) token embeddings.
        mask: (batch, seq) attention mask, 1 for real tokens (left or right padding).
        modes: pooling modes, concatenated in this order.
        prompt_length: prompt tokens to leave out (a Pooling with ``include_prompt=False``).
    """
    original_mask = mask
    if prompt_length:
        mask = _exclude_prompt(mask, prompt_length)
    hidden = hidden.astype(np.float32, copy=False)
    parts = []
    for mode in modes:
        if mode == "cls":
            first = mask.argmax(axis=1)
            parts.append(hidden[np.arange(len(hidden)), first])
        elif mode == "max":
            parts.append(np.where(mask[..., None] > 0, hidden, -np.inf).max(axis=1).astype(np.float32))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            m = mask[..., None].astype(np.float32)
            total = (hidden * m).sum(axis=1)
            count = np.maximum(m.sum(axis=1), 1e-9)
            parts.append(total / (count if mode == "mean" else np.sqrt(count)))
        elif mode == "weightedmean":
            m = mask[..., None].astype(np.float32)
            weights = np.arange(1, hidden.shape[1] + 1, dtype=np.float32)[None, :, None]
            weights = weights - original_mask.argmax(axis=1).astype(np.float32)[:, None, None]
            wm = m * weights
            parts.append((hidden * wm).sum(axis=1) / np.maximum(wm.sum(axis=1), 1e-9))
        elif mode == "lasttoken":
            seq_len = hidden.shape[1]
            flipped = mask[:, ::-1]
            values, indices = flipped.max(axis=1), flipped.argmax(axis=1)
            indices = np.where(values == 0, seq_len - 1, indices)
            masked = hidden * mask[..., None].astype(np.float32)
            parts.append(masked[np.arange(len(hidden)), seq_len - indices - 1])
        else:  # pragma: no cover - refused at export
            raise ModelError(f"pooling mode {mode!r} is not supported by the onnx backend")
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _exclude_prompt(mask: np.ndarray, prompt_length: int) -> np.ndarray:
    """Zero the prompt's tokens in ``mask`` (after any left padding), as sentence-transformers does."""
    mask = mask.copy()
    pad_lengths = mask.argmax(axis=1)
    positions = np.arange(mask.shape[1])[None, :]
    mask[positions < (pad_lengths + prompt_length)[:, None]] = 0
    return mask
