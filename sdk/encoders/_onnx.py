"""`OnnxEncoder`: a sentence-transformers bi-encoder run in ONNX Runtime on CPU.

The model's transformer is exported once to ONNX and cached (see `tamis.encoders._onnx_export`).
Pooling and normalisation run in numpy exactly as sentence-transformers does them, so the vectors
(and the fingerprint) match `tamis.BiEncoder` for the same model. A cache hit does not import torch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tamis._errors import ConfigError, DataError, ModelError
from tamis._settings import cache_dir
from tamis.encoders._onnx_export import ensure_export, fingerprint_for_length, read_meta
from tamis.encoders._onnx_pipeline import local_model_folder, precheck_modules
from tamis.encoders._onnx_quant import (
    MIN_COSINE,
    MIN_RECALL,
    QualityGateError,
    ensure_int8,
    gate_report,
    int8_fingerprint,
    record_gate,
    refuse_message,
)
from tamis.encoders._onnx_runtime import available_cores, machine_key, pool, rust_tokenizer, session
from tamis.encoders._protocol import TextKind
from tamis.encoders._resolve import display_name, resolve_device, resolve_model

__all__ = ["OnnxEncoder", "QualityGateError", "token_batches"]

#: ``encode(batch_size=B)`` runs batches of up to B x TOKENS_PER_ROW tokens (padding included)
TOKENS_PER_ROW = 128
_GATE_MIN_TEXTS, _GATE_SAMPLE = 32, 512


def token_batches(sorted_lengths: np.ndarray, budget: int) -> list[slice]:
    """Slices of ``sorted_lengths`` (token counts, longest first) into batches of at most ``budget``
    tokens once padded to each batch's first (longest) row; one row at least per batch.

    Example:
        >>> token_batches(np.array([100, 60, 50, 10, 10, 10]), 200)
        [slice(0, 2, None), slice(2, 6, None)]
    """
    out, start, n = [], 0, len(sorted_lengths)
    while start < n:
        rows = max(1, budget // max(1, int(sorted_lengths[start])))
        out.append(slice(start, min(n, start + rows)))
        start += rows
    return out


class OnnxEncoder:
    """A sentence-transformers bi-encoder run with ONNX Runtime on CPU.

    Vectors match `BiEncoder`'s for the same model (cosine > 0.9999), and so does the fingerprint,
    so collections built with either backend are interchangeable. Only pipelines of a
    ``Transformer``, a ``Pooling`` and an optional ``Normalize`` module can be exported; use
    ``backend="torch"`` for anything else (``Dense`` layers, routers, multimodal models).

    Args:
        model: a hub name, a local model folder, or None for the packaged all-MiniLM-L6-v2.
        max_seq_length: override the model's maximum input length in tokens.
        intra_op_threads: ONNX Runtime threads; default: the cores this process may run on.
        cache: the folder for exports; default ``cache_dir() / "onnx"`` (``$TAMIS_CACHE``).
        precision: ``"fp32"``, or ``"int8"``: per-channel int8 weights (ONNX Runtime dynamic
            quantisation, 2-2.5x faster on CPU), under its own fingerprint (a collection written in
            int8 refuses float32 vectors and the reverse). The ``onnx-int8`` encoder.
        int8_gate: with ``"int8"``, check the first ``encode`` of at least 32 documents against
            float32 (`check_int8`) and refuse (`QualityGateError`, with the numbers) below
            recall@10 0.99 or mean cosine 0.99; False skips the check.

    The first use of a model exports it (a few seconds, needs torch); later ones load the cached
    file. `encode` may be called from several threads; calls run one at a time.

    Example:
        >>> enc = OnnxEncoder()                                 # doctest: +SKIP
        >>> enc.encode(["a cat", "a dog"]).shape                # doctest: +SKIP
        (2, 384)
    """

    backend = "onnx"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        max_seq_length: int | None = None,
        intra_op_threads: int | None = None,
        cache: str | os.PathLike[str] | None = None,
        precision: str = "fp32",
        int8_gate: bool = True,
    ) -> None:
        if model is not None and not isinstance(model, (str, os.PathLike)):
            raise ConfigError(
                f"model must be a hub name or a model folder, got {type(model).__name__}; "
                "a loaded SentenceTransformer runs with BiEncoder (backend='torch')"
            )
        if intra_op_threads is None:
            intra_op_threads = available_cores()
        elif (
            isinstance(intra_op_threads, bool)
            or not isinstance(intra_op_threads, int)
            or intra_op_threads < 1
        ):
            raise ConfigError(f"intra_op_threads must be a positive integer, got {intra_op_threads!r}")
        if max_seq_length is not None and (
            isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int) or max_seq_length < 8
        ):
            raise ConfigError(f"max_seq_length must be an integer of at least 8, got {max_seq_length!r}")

        if precision not in ("fp32", "int8"):
            raise ConfigError(f"precision must be 'fp32' or 'int8', got {precision!r}")

        source = resolve_model(model)
        self.name = display_name(model, source)
        folder = local_model_folder(source)
        precheck_modules(folder, self.name)
        root = Path(cache).expanduser() if cache is not None else cache_dir() / "onnx"
        self.export_dir = ensure_export(folder, root, self.name)
        meta = read_meta(self.export_dir)
        if meta is None:  # pragma: no cover - only if someone deletes the cache under our feet
            raise ModelError(
                f"the ONNX export in {self.export_dir} vanished or is corrupt; delete it and retry"
            )
        self.meta = meta

        native_len = int(meta["max_seq_length"])
        if max_seq_length is None or max_seq_length == native_len:
            self.max_seq_length = native_len
            self.fingerprint = str(meta["fingerprint"])
        else:
            limit = meta.get("max_position_embeddings")
            if limit and max_seq_length > int(limit):
                raise ConfigError(
                    f"max_seq_length={max_seq_length} exceeds what model {self.name!r} can read "
                    f"({limit} positions); pass at most {limit}"
                )
            self.max_seq_length = max_seq_length
            self.fingerprint = fingerprint_for_length(self.export_dir, folder, max_seq_length)
        self.dim = int(meta["dim"])
        self.intra_op_threads = intra_op_threads
        self.precision = precision
        self.fp32_fingerprint = self.fingerprint
        self._gate_pending = precision == "int8" and bool(int8_gate)
        self.gate: dict[str, Any] | None = None  # the last int8 gate report
        if precision == "int8":
            self.backend = "onnx-int8"
            self.fingerprint = int8_fingerprint(self.fingerprint)

        self._pooling_modes: tuple[str, ...] = tuple(meta["pooling_modes"])
        self._include_prompt = bool(meta["include_prompt"])
        self._prompts: dict[str, str] = {k: v or "" for k, v in meta["prompts"].items()}
        self._pad_id = int(meta["pad_token_id"])
        self._pad_type_id = int(meta["pad_token_type_id"])
        self._left_pad = meta["padding_side"] == "left"
        self._input_names: list[str] = list(meta["inputs"])
        self._special_ids = set(meta["special_ids"])
        self._hf_tokenizer: Any = None
        self._lock = threading.Lock()

        lengths = {kind: int(meta.get(f"{kind}_length") or self.max_seq_length) for kind in ("query", "document")}
        self._tokenizers = {}
        for kind, length in lengths.items():  # one tokenizer when both kinds truncate alike
            same = next((t for k, t in self._tokenizers.items() if lengths[k] == length), None)
            self._tokenizers[kind] = same or rust_tokenizer(
                self.export_dir / "tokenizer" / "tokenizer.json", length, meta["truncation_side"]
            )
        self._prompt_lengths = {
            kind: self._prompt_length(kind) if not self._include_prompt else 0
            for kind in ("query", "document")
        }
        graph = ensure_int8(self.export_dir) if precision == "int8" else self.export_dir / "model.onnx"
        self.intra_op_spinning = True
        self._graph = graph
        self._session = session(graph, intra_op_threads, optimized=machine_key())
        self._fp32_session: Any = None

    @classmethod
    def from_spec(cls, spec: str | None, *, device: str = "auto", **options: Any) -> OnnxEncoder:
        """The ``onnx`` encoder factory (see `tamis.encoders`): ``spec`` is a hub name or a model
        folder (None: the packaged all-MiniLM-L6-v2); ``options`` go to `OnnxEncoder`.

        Raises:
            ConfigError: ``device`` is not the CPU (``"auto"`` on a machine with a GPU included).
        """
        dev = resolve_device(device)
        if dev != "cpu":
            raise ConfigError(f"the onnx backend runs on CPU; device {dev!r} needs backend='torch'")
        return cls(spec, **options)

    @classmethod
    def from_spec_int8(cls, spec: str | None, *, device: str = "auto", **options: Any) -> OnnxEncoder:
        """The ``onnx-int8`` encoder factory: `from_spec` with ``precision="int8"``."""
        return cls.from_spec(spec, device=device, **{**options, "precision": "int8"})

    # -- public ------------------------------------------------------------------------------

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face fast tokenizer (a ``PreTrainedTokenizerFast``), truncating at
        ``max_seq_length``. Loaded on first use."""
        if self._hf_tokenizer is None:
            from transformers import PreTrainedTokenizerFast

            tok = PreTrainedTokenizerFast.from_pretrained(str(self.export_dir / "tokenizer"))
            tok.model_max_length = self.max_seq_length
            tok.model_input_names = list(self._input_names)  # the generic class omits token_type_ids
            self._hf_tokenizer = tok
        return self._hf_tokenizer

    @property
    def normalizes(self) -> bool:
        """Whether the model's own pipeline ends in a Normalize module (tamis normalises anyway)."""
        return bool(self.meta["normalize"])

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "document", batch_size: int = 64
    ) -> np.ndarray:
        """Encode ``texts`` to an (n, dim) float32 array of unit-length rows.

        Texts are tokenised at once and sorted by token count (longest first); batches are sized by
        tokens, not by count: each holds up to ``batch_size`` x 128 tokens (its rows padded to its
        longest text), so short texts run in wide batches and long ones in narrow batches. Rows come
        back in the input order. ``kind`` selects the model's query or document prompt, as
        ``encode_query`` / ``encode_document`` do. An int8 encoder checks its first call of 32
        documents or more against float32 first (``int8_gate``).
        """
        if kind not in ("query", "document"):
            raise ConfigError(f"kind {kind!r} is not one of 'query', 'document'")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(texts, str):
            raise DataError("encode() takes a sequence of texts, got a single str; wrap it in a list")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DataError(f"texts[{i}] is a {type(text).__name__}, not a str")
        if self._gate_pending and kind == "document" and len(texts) >= _GATE_MIN_TEXTS:
            self.check_int8(texts[:_GATE_SAMPLE])
        return self._encode(self._session, texts, kind, batch_size * TOKENS_PER_ROW)

    def check_int8(
        self, texts: Sequence[str], *, min_recall: float = MIN_RECALL, min_cosine: float = MIN_COSINE
    ) -> dict[str, Any]:
        """The int8 quality gate on ``texts`` (a sample of yours, 32 or more): their int8 and float32
        vectors compared (`tamis.encoders._onnx_quant.gate_report`: float32's nearest neighbour in the
        int8 top 10, mean cosine). Returns the report and keeps it in the export folder
        (``int8-gate.json``); raises `QualityGateError` with the numbers when it fails.
        """
        if self.precision != "int8":
            raise ConfigError("check_int8 is for precision='int8' encoders")
        texts = list(texts)
        if self._fp32_session is None:
            self._fp32_session = session(
                self.export_dir / "model.onnx", self.intra_op_threads, optimized=machine_key(),
                spinning=self.intra_op_spinning,
            )
        budget = 64 * TOKENS_PER_ROW
        fp32 = self._encode(self._fp32_session, texts, "document", budget)
        int8 = self._encode(self._session, texts, "document", budget)
        report = gate_report(fp32, int8, min_recall=min_recall, min_cosine=min_cosine)
        self.gate = report
        record_gate(self.export_dir, report)
        if not report["passed"]:
            raise QualityGateError(refuse_message(self.name, report), report)
        self._gate_pending = False
        return report

    def set_intra_op_spinning(self, enabled: bool) -> None:
        """Whether ONNX Runtime's idle intra-op threads busy-wait for work (its default, True).

        ``tamis serve`` turns it off: between a server's model calls the cores are needed for the
        requests (HTTP, JSON, tokenizing) and by the clients on the same machine. The session is
        loaded again (from the cached optimised graph) with the new setting.
        """
        enabled = bool(enabled)
        if enabled == self.intra_op_spinning:
            return
        with self._lock:
            self._session = session(self._graph, self.intra_op_threads, optimized=machine_key(), spinning=enabled)
            self._fp32_session = None
            self.intra_op_spinning = enabled

    def _encode(self, sess: Any, texts: list[str], kind: str, budget: int) -> np.ndarray:
        prompt = self._prompts.get(kind, "")
        if prompt:
            texts = [prompt + t for t in texts]
        with self._lock:
            encodings = self._tokenizers[kind].encode_batch(texts, add_special_tokens=True)
            lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
            order = np.argsort(-lengths, kind="stable")
            out = np.empty((len(texts), self.dim), dtype=np.float32)
            for idx in token_batches(lengths[order], budget):
                rows = order[idx]
                feed, mask = self._batch([encodings[i] for i in rows], int(lengths[rows[0]]))
                hidden = sess.run(None, feed)[0]
                out[rows] = pool(hidden, mask, self._pooling_modes, self._prompt_lengths[kind])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

    def encode_tokens(self, texts: Sequence[str], *, kind: TextKind = "document") -> list[np.ndarray]:
        """Each text's token vectors (`tamis.encoders.TokenEncoder`): the graph's
        ``last_hidden_state``, one text per run (no padding rows to cut off)."""
        if kind not in ("query", "document"):
            raise ConfigError(f"kind {kind!r} is not one of 'query', 'document'")
        prompt = self._prompts.get(kind, "")
        with self._lock:
            encodings = self._tokenizers[kind].encode_batch([prompt + t for t in texts], add_special_tokens=True)
            return [
                np.ascontiguousarray(self._session.run(None, self._batch([e], len(e.ids))[0])[0][0], dtype=np.float32)
                for e in encodings
            ]

    def __repr__(self) -> str:
        extra = ", precision='int8'" if self.precision == "int8" else ""
        return f"OnnxEncoder({self.name!r}, dim={self.dim}, threads={self.intra_op_threads}{extra})"

    # -- internals ---------------------------------------------------------------------------

    def _batch(self, encodings: list[Any], width: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        n = len(encodings)
        ids = np.full((n, width), self._pad_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        types = np.full((n, width), self._pad_type_id, dtype=np.int64)
        for row, enc in enumerate(encodings):
            k = len(enc.ids)
            cols = slice(width - k, width) if self._left_pad else slice(0, k)
            ids[row, cols] = enc.ids
            mask[row, cols] = 1
            types[row, cols] = enc.type_ids
        available = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: available[name] for name in self._input_names}, mask

    def _prompt_length(self, kind: str) -> int:
        """Tokens of the prompt, without a trailing special token (as sentence-transformers counts)."""
        prompt = self._prompts.get(kind, "")
        if not prompt:
            return 0
        ids = self._tokenizers[kind].encode(prompt, add_special_tokens=True).ids
        return len(ids) - 1 if ids and ids[-1] in self._special_ids else len(ids)
