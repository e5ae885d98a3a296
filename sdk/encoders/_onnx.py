"""`OnnxEncoder`: a sentence-transformers bi-encoder run in ONNX Runtime on CPU.

The model's transformer is exported once to ONNX (locally, offline) and cached under
``cache_dir()/onnx/<key>/``, where ``<key>`` hashes the model folder's files, so a changed model is
exported again. Pooling and normalisation run in numpy exactly as sentence-transformers does them,
so the vectors (and the fingerprint) match `tamis.BiEncoder` for the same model. A cache hit does
not import torch.

Cache layout::

    <cache>/onnx/<key>/model.onnx         the transformer: input_ids, attention_mask
                                          (+ token_type_ids) -> last_hidden_state
    <cache>/onnx/<key>/tokenizer/         the model's tokenizer as sentence-transformers set it up
    <cache>/onnx/<key>/meta.json          fingerprint, dim, pooling, prompts, versions ...
    <cache>/onnx/<key>/fingerprint-N.txt  fingerprints for a non-default max_seq_length N
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tamis._errors import ConfigError, DataError, ModelError
from tamis._settings import cache_dir
from tamis.encoders._encoder import (
    DEFAULT_MODEL,
    TextKind,
    _quiet_transformers,
    default_model_path,
    fingerprint_sentence_transformer,
    resolve_model,
)

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

__all__ = ["OnnxEncoder"]

logger = logging.getLogger("tamis")

#: bump when the export layout or contents change: it is part of the cache key
EXPORT_FORMAT = 1
_OPSET = 17
_POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
#: folders and files of a model that do not change what the torch pipeline computes
_SKIP_DIRS = {"onnx", "openvino", ".git", ".cache", ".huggingface"}
_SKIP_SUFFIXES = (".md", ".onnx", ".onnx_data", ".h5", ".msgpack", ".ot", ".gitattributes")


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
    ) -> None:
        if model is not None and not isinstance(model, (str, os.PathLike)):
            raise ConfigError(
                f"model must be a hub name or a model folder, got {type(model).__name__}; "
                "a loaded SentenceTransformer runs with BiEncoder (backend='torch')"
            )
        if intra_op_threads is None:
            intra_op_threads = _available_cores()
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

        source = resolve_model(model)
        self.name = DEFAULT_MODEL if source == str(default_model_path()) else os.fspath(model or source)
        folder = _local_model_folder(source)
        _precheck_modules(folder, self.name)
        root = Path(cache).expanduser() if cache is not None else cache_dir() / "onnx"
        self.export_dir = _ensure_export(folder, root, self.name)
        meta = _read_meta(self.export_dir)
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
            self.fingerprint = _fingerprint_for_length(self.export_dir, folder, max_seq_length)
        self.dim = int(meta["dim"])
        self.intra_op_threads = intra_op_threads

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

        self._tokenizers = {
            kind: _rust_tokenizer(
                self.export_dir / "tokenizer" / "tokenizer.json",
                meta.get(f"{kind}_length") or self.max_seq_length,
                meta["truncation_side"],
            )
            for kind in ("query", "document")
        }
        self._prompt_lengths = {
            kind: self._prompt_length(kind) if not self._include_prompt else 0
            for kind in ("query", "document")
        }
        self._session = _session(self.export_dir / "model.onnx", intra_op_threads)

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

        Texts are tokenised at once, sorted by token count and run in batches of ``batch_size``
        padded to each batch's longest text; rows come back in the input order. ``kind`` selects
        the model's query or document prompt, as ``encode_query`` / ``encode_document`` do.
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
        prompt = self._prompts.get(kind, "")
        if prompt:
            texts = [prompt + t for t in texts]

        with self._lock:
            encodings = self._tokenizers[kind].encode_batch(texts, add_special_tokens=True)
            lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
            order = np.argsort(-lengths, kind="stable")
            out = np.empty((len(texts), self.dim), dtype=np.float32)
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                feed, mask = self._batch([encodings[i] for i in idx], int(lengths[idx].max()))
                hidden = self._session.run(None, feed)[0]
                out[idx] = _pool(hidden, mask, self._pooling_modes, self._prompt_lengths[kind])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

    def __repr__(self) -> str:
        return f"OnnxEncoder({self.name!r}, dim={self.dim}, threads={self.intra_op_threads})"

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


# -- export ------------------------------------------------------------------------------------


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def _local_model_folder(source: str) -> Path:
    """The folder holding the model's files: ``source`` itself, or its hub snapshot (downloaded
    by sentence-transformers if it is not cached yet)."""
    path = Path(source)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download  # a dependency of sentence-transformers

    cache_folder = os.getenv("SENTENCE_TRANSFORMERS_HOME")
    try:
        return Path(snapshot_download(source, cache_dir=cache_folder, local_files_only=True))
    except Exception:  # not cached yet (or not a valid repo id): let sentence-transformers fetch it
        pass
    _quiet_transformers()
    from sentence_transformers import SentenceTransformer

    try:
        SentenceTransformer(source, device="cpu", cache_folder=cache_folder)
        return Path(snapshot_download(source, cache_dir=cache_folder, local_files_only=True))
    except Exception as exc:  # pragma: no cover - needs a hub
        raise ModelError(
            f"could not load sentence-transformers model {source!r}: {exc}. "
            "Pass a local model folder, or a hub name on a machine that reaches the hub."
        ) from exc


def _precheck_modules(folder: Path, name: str) -> None:
    """Refuse pipelines the onnx backend cannot run, from ``modules.json``, before loading torch."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return  # a plain transformers model: sentence-transformers adds mean pooling
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        types = [str(m["type"]).rsplit(".", 1)[-1] for m in modules]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"model {name!r}: cannot read {modules_file}: {exc}") from exc
    _check_module_types(types, name)


def _check_module_types(types: list[str], name: str) -> None:
    ok = (
        len(types) in (2, 3)
        and types[0] == "Transformer"
        and types[1] == "Pooling"
        and (len(types) == 2 or types[2] == "Normalize")
    )
    if not ok:
        raise ModelError(
            f"model {name!r} has modules {types}; the onnx backend runs only Transformer -> Pooling "
            "[-> Normalize] pipelines. Use backend='torch' (BiEncoder) for this model."
        )


def _model_key(folder: Path) -> str:
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for fname in sorted(filenames):
            if fname.lower().endswith(_SKIP_SUFFIXES) or fname.startswith("."):
                continue
            full = Path(dirpath, fname)
            st = full.stat()
            files.append((full.relative_to(folder).as_posix(), str(full), st.st_size, st.st_mtime_ns))
    return _hash_files(tuple(files))


@lru_cache(maxsize=64)
def _hash_files(files: tuple[tuple[str, str, int, int], ...]) -> str:
    """sha256 over (relative path, bytes) of ``files``; memoised on their sizes and mtimes."""
    h = hashlib.sha256(f"tamis-onnx-export:{EXPORT_FORMAT}".encode())
    for rel, full, size, _mtime in files:
        h.update(f"\0{rel}\0{size}\0".encode())
        with open(full, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:32]


def _read_meta(export_dir: Path) -> dict[str, Any] | None:
    """The export's meta.json, or None when the export is missing or incomplete."""
    try:
        meta = json.loads((export_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("format") != EXPORT_FORMAT or not (export_dir / "model.onnx").is_file():
        return None
    return meta


def _ensure_export(folder: Path, root: Path, name: str) -> Path:
    """``root/<key>``, exported now if it is not there yet. Safe against concurrent exporters."""
    target = root / _model_key(folder)
    if _read_meta(target) is not None:
        logger.debug("ONNX export of %s found in %s", name, target)
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is readable like any other
    try:
        t0 = time.perf_counter()
        logger.info("exporting %s to ONNX in %s (once per model) ...", name, target)
        _export(folder, tmp, name)
        if target.exists() and _read_meta(target) is None:
            shutil.rmtree(target, ignore_errors=True)  # a broken leftover, not a concurrent export
        try:
            os.rename(tmp, target)
        except OSError:
            if _read_meta(target) is None:
                raise
            logger.debug("another process exported %s first; using theirs", name)
        else:
            logger.info("exported %s to ONNX in %.1f s", name, time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _load_sentence_transformer(folder: Path, name: str) -> SentenceTransformer:
    _quiet_transformers()
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(folder), device="cpu")
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load sentence-transformers model {name!r} from {folder}: {exc}") from exc


def _resolve_prompt(st: SentenceTransformer, kind: str) -> str:
    """The prompt ``encode_query`` / ``encode_document`` would prepend, "" for none."""
    prompts = st.prompts or {}
    candidates = ["query"] if kind == "query" else ["document", "passage", "corpus"]
    prompt_name = next((c for c in candidates if c in prompts), None)
    if prompt_name is not None:
        return prompts[prompt_name] or ""
    default = getattr(st, "default_prompt_name", None)
    return (prompts.get(default) or "") if default is not None else ""


def _pipeline_spec(st: SentenceTransformer, name: str) -> dict[str, Any]:
    """What the numpy side needs from the torch pipeline; ModelError if it cannot be mirrored."""
    _check_module_types([type(m).__name__ for m in st], name)
    transformer, pooling = st[0], st[1]
    modality = getattr(transformer, "modality_config", None) or {"text": {"method": "forward"}}
    text_cfg = modality.get("text") or {}
    output = text_cfg.get("method_output_name", "last_hidden_state")
    if (
        set(modality) != {"text"}
        or text_cfg.get("method", "forward") != "forward"
        or output not in ("last_hidden_state", ("last_hidden_state",), ["last_hidden_state"])
        or getattr(transformer, "module_output_name", "token_embeddings") != "token_embeddings"
        or getattr(transformer, "query_expansion", None) is not None
    ):
        raise ModelError(
            f"model {name!r} is not a plain text transformer (modalities {sorted(modality)}, output "
            f"{output!r}); use backend='torch' (BiEncoder) for it"
        )
    modes = pooling.pooling_mode
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unsupported = [m for m in modes if m not in _POOLING_MODES]
    if unsupported:
        raise ModelError(
            f"model {name!r} uses pooling mode {unsupported[0]!r}, which the onnx backend does not "
            f"implement (it has {', '.join(_POOLING_MODES)}); use backend='torch' (BiEncoder)"
        )
    if len(st) == 3 and getattr(st[2], "module_input_name", "sentence_embedding") != "sentence_embedding":
        raise ModelError(
            f"model {name!r} normalises {st[2].module_input_name!r}, not the sentence embedding; "
            "use backend='torch' (BiEncoder) for it"
        )
    if getattr(st, "truncate_dim", None):
        raise ModelError(f"model {name!r} truncates its embeddings; use backend='torch' (BiEncoder)")
    tok = st.tokenizer
    if tok is None or not hasattr(tok, "backend_tokenizer"):
        raise ModelError(f"model {name!r} has no fast tokenizer; use backend='torch' (BiEncoder)")
    dim = st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension") else None
    dim = dim or st.get_sentence_embedding_dimension()
    config = transformer.auto_model.config
    return {
        "dim": int(dim),
        "max_seq_length": int(st.max_seq_length),
        "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        "query_length": getattr(transformer, "query_length", None),
        "document_length": getattr(transformer, "document_length", None),
        "pooling_modes": list(modes),
        "include_prompt": bool(getattr(pooling, "include_prompt", True)),
        "normalize": len(st) == 3,
        "prompts": {"query": _resolve_prompt(st, "query"), "document": _resolve_prompt(st, "document")},
        "model_prompts": dict(st.prompts or {}),
        "default_prompt_name": getattr(st, "default_prompt_name", None),
        "pad_token_id": int(tok.pad_token_id if tok.pad_token_id is not None else 0),
        "pad_token_type_id": int(getattr(tok, "pad_token_type_id", 0) or 0),
        "padding_side": tok.padding_side,
        "truncation_side": getattr(tok, "truncation_side", "right"),
        "special_ids": sorted(int(i) for i in tok.all_special_ids),
    }


def _export(folder: Path, out: Path, name: str) -> None:
    """Export ``folder``'s model into the empty folder ``out`` (model.onnx, tokenizer/, meta.json)."""
    import torch

    st = _load_sentence_transformer(folder, name)
    spec = _pipeline_spec(st, name)
    fingerprint = fingerprint_sentence_transformer(st)
    tok = st.tokenizer
    tok.save_pretrained(str(out / "tokenizer"))
    if not (out / "tokenizer" / "tokenizer.json").is_file():
        raise ModelError(f"model {name!r}: its tokenizer did not save a tokenizer.json; use backend='torch'")

    model = st[0].auto_model.eval()
    params = inspect.signature(model.forward).parameters
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if "token_type_ids" in params else [])
    probe = tok(
        ["tamis exports this model to ONNX once.", "a"], padding=True, truncation=True, return_tensors="pt"
    )
    args = tuple(probe[k] if k in probe else torch.zeros_like(probe["input_ids"]) for k in inputs)
    with torch.no_grad():
        expected = _wrap(model, inputs)(*args).numpy()

    path = out / "model.onnx"
    errors = []
    for exporter in ("torchscript", "dynamo"):
        try:
            _run_exporter(exporter, _wrap(model, inputs), args, inputs, path)
            got = _session(path, 1).run(None, {k: a.numpy() for k, a in zip(inputs, args, strict=True)})[0]
            diff = float(np.abs(got - expected).max())
            if diff > 1e-3:
                raise ModelError(f"ONNX output differs from torch by up to {diff:.2g}")
            break
        except Exception as exc:  # try the next exporter
            logger.debug("ONNX export of %s with the %s exporter failed: %s", name, exporter, exc)
            errors.append(f"{exporter}: {type(exc).__name__}: {exc}")
            path.unlink(missing_ok=True)
            (out / "model.onnx.data").unlink(missing_ok=True)
    else:
        raise ModelError(
            f"could not export model {name!r} to ONNX ({'; '.join(errors)}); use backend='torch' (BiEncoder)"
        )

    import onnx
    import onnxruntime
    import sentence_transformers
    import transformers

    opset = next(
        (
            o.version
            for o in onnx.load(str(path), load_external_data=False).opset_import
            if o.domain in ("", "ai.onnx")
        ),
        None,
    )
    meta = {
        "format": EXPORT_FORMAT,
        "model": name,
        "fingerprint": fingerprint,
        **spec,
        "inputs": inputs,
        "exporter": exporter,
        "opset": opset,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


def _wrap(model: Any, inputs: list[str]) -> Any:
    """A torch module taking ``inputs`` positionally and returning ``last_hidden_state``."""
    import torch

    class Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            out = self.model(**dict(zip(inputs, args, strict=True)), return_dict=True)
            return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    return Wrapper().eval()


def _run_exporter(exporter: str, module: Any, args: tuple[Any, ...], inputs: list[str], path: Path) -> None:
    """Export ``module`` to ``path`` with dynamic batch and sequence axes, quietly.

    ``"torchscript"`` is the legacy tracer (deprecated in torch >= 2.9, still the faster and more
    reliable one here); ``"dynamo"`` is torch.export + onnxscript, the fallback.
    """
    import torch

    onnx_logger = logging.getLogger("torch.onnx")  # "torchvision is not installed ..." notes
    level = onnx_logger.level
    onnx_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # deprecation and tracer notes from torch and transformers
            if exporter == "torchscript":
                axes = {name: {0: "batch", 1: "sequence"} for name in [*inputs, "last_hidden_state"]}
                torch.onnx.export(
                    module,
                    args,
                    str(path),
                    input_names=inputs,
                    output_names=["last_hidden_state"],
                    dynamic_axes=axes,
                    opset_version=_OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
            else:
                batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
                torch.onnx.export(
                    module,
                    args,
                    str(path),
                    input_names=inputs,
                    output_names=["last_hidden_state"],
                    dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in inputs),),  # one entry: *args
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
    finally:
        onnx_logger.setLevel(level)


def _fingerprint_for_length(export_dir: Path, folder: Path, max_seq_length: int) -> str:
    """BiEncoder's fingerprint with ``max_seq_length`` overridden; computed with torch once, cached."""
    path = export_dir / f"fingerprint-{max_seq_length}.txt"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        pass
    st = _load_sentence_transformer(folder, str(folder))
    st.max_seq_length = max_seq_length
    fingerprint = fingerprint_sentence_transformer(st)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=export_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(fingerprint)
    os.replace(tmp, path)
    return fingerprint


# -- runtime -----------------------------------------------------------------------------------


def _rust_tokenizer(path: Path, max_length: int, side: str) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.enable_truncation(max_length=int(max_length), direction=side or "right")
    return tok


def _session(path: Path, threads: int) -> Any:
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


def _pool(hidden: np.ndarray, mask: np.ndarray, modes: Sequence[str], prompt_length: int = 0) -> np.ndarray:
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
