"""ONNX Runtime pieces of `OnnxEncoder`: the inference session, the Rust tokenizer, and
sentence-transformers' pooling in numpy. Imports neither torch nor transformers."""

from __future__ import annotations

import hashlib
import os
import platform
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tamis._errors import ModelError

__all__ = ["POOLING_MODES", "available_cores", "machine_key", "pool", "rust_tokenizer", "session"]

#: the pooling modes `pool` implements (sentence-transformers' names)
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


def available_cores() -> int:
    """The CPU cores this process may run on (the default number of ONNX Runtime threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def machine_key() -> str:
    """A short hash of this machine as ONNX Runtime and the auto probe see it: the CPU model, the cores
    this process may use, the onnxruntime and torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:  # pragma: no cover - not Linux
        pass
    versions = []
    for pkg in ("onnxruntime", "torch"):
        try:
            versions.append(f"{pkg}={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:  # pragma: no cover
            versions.append(f"{pkg}=none")
    text = f"{cpu}|{platform.machine()}|cores={available_cores()}|{'|'.join(versions)}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def rust_tokenizer(path: Path, max_length: int, side: str) -> Any:
    """The ``tokenizers`` tokenizer in ``path`` (a tokenizer.json), unpadded, truncating at ``max_length``."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length=int(max_length), direction=side or "right")
    return tok


def session(path: Path, threads: int, *, optimized: str | None = None, spinning: bool = True) -> Any:
    """An ONNX Runtime CPU session for the model file ``path`` with ``threads`` intra-op threads.

    ``spinning``: ONNX Runtime's ``session.intra_op.allow_spinning`` (its default, True: idle
    intra-op threads busy-wait for the next piece of work, which helps one long encode and burns
    the cores a server needs for everything else between its model calls).

    With ``optimized`` (a key of this machine), the graph ONNX Runtime optimises at load is saved once
    next to ``path`` (``<stem>.opt-<key>-<onnxruntime version>.onnx``, atomically) and later loaded
    from there without optimising it again: about 0.15 s less per process start.
    """
    import onnxruntime as ort

    if optimized is None:
        return _session(path, threads, optimize=True, spinning=spinning)
    saved = path.with_name(f"{path.stem}.opt-{optimized}-{ort.__version__}.onnx")
    if saved.is_file():
        try:
            return _session(saved, threads, optimize=False, spinning=spinning)
        except ModelError:  # a damaged saved graph: make it again from the export
            saved.unlink(missing_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{saved.name}.", suffix=".onnx", dir=path.parent)
    except OSError:  # a read-only cache: optimise at every load
        return _session(path, threads, optimize=True, spinning=spinning)
    os.close(fd)
    try:
        sess = _session(path, threads, optimize=True, save_to=tmp, spinning=spinning)
        os.chmod(tmp, 0o644)
        os.replace(tmp, saved)
        return sess
    finally:
        Path(tmp).unlink(missing_ok=True)


def _session(path: Path, threads: int, *, optimize: bool, save_to: str | None = None, spinning: bool = True) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if save_to is not None:
        options.optimized_model_filepath = save_to
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
