"""Exporting a sentence-transformers model to ONNX, once, and the export cache `OnnxEncoder` reads.

The model's transformer is exported locally (offline) and cached under ``cache_dir()/onnx/<key>/``,
where ``<key>`` hashes the model folder's files, so a changed model is exported again. Exporting
needs torch; finding an export in the cache does not import it.

Cache layout::

    <cache>/onnx/<key>/model.onnx         the transformer: input_ids, attention_mask
                                          (+ token_type_ids) -> last_hidden_state
    <cache>/onnx/<key>/tokenizer/         the model's tokenizer as sentence-transformers set it up
    <cache>/onnx/<key>/meta.json          fingerprint, dim, pooling, prompts, versions ...
    <cache>/onnx/<key>/fingerprint-N.txt  fingerprints for a non-default max_seq_length N
    <cache>/onnx/<key>/model-int8.onnx    the per-channel int8 graph (``onnx-int8``), made on first use
    <cache>/onnx/<key>/int8-gate.json     the int8 quality gate's last reports
    <cache>/onnx/<key>/*.opt-<machine>-<ort>.onnx  graphs as ONNX Runtime optimised them on this machine
    <cache>/onnx/model-keys.json          the keys of model folders by their files' sizes and mtimes

The graph is traced with eager attention (matmul, softmax, matmul), which onnxruntime fuses; the SDPA
trace is not fused and ran 1.35x slower on long texts. onnxruntime's transformer optimizer
(``onnxruntime.transformers.optimizer``) is not applied: it measured +4% on long texts and -11% on
short ones here.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tamis._errors import ModelError
from tamis.encoders._onnx_pipeline import load_sentence_transformer, pipeline_spec
from tamis.encoders._onnx_runtime import session
from tamis.encoders._torch import fingerprint_sentence_transformer

__all__ = ["EXPORT_FORMAT", "ensure_export", "fingerprint_for_length", "read_meta"]

logger = logging.getLogger("tamis")

#: bump when the export layout or contents change: it is part of the cache key
#: (2: eager attention in the graph, the tokenizer files say the model's max length)
EXPORT_FORMAT = 2
_OPSET = 17
#: folders and files of a model that do not change what the torch pipeline computes
_SKIP_DIRS = {"onnx", "openvino", ".git", ".cache", ".huggingface"}
_SKIP_SUFFIXES = (".md", ".onnx", ".onnx_data", ".h5", ".msgpack", ".ot", ".gitattributes")


def _model_key(folder: Path, memo: Path | None = None) -> str:
    """The cache key of the model in ``folder``: a hash of the files that change what it computes.

    ``memo`` (a JSON file) remembers keys by the files' paths, sizes and mtimes, so a process start
    does not read the weights again (~0.1 s for all-MiniLM-L6-v2)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for fname in sorted(filenames):
            if fname.lower().endswith(_SKIP_SUFFIXES) or fname.startswith("."):
                continue
            full = Path(dirpath, fname)
            st = full.stat()
            files.append((full.relative_to(folder).as_posix(), str(full), st.st_size, st.st_mtime_ns))
    if memo is None:
        return _hash_files(tuple(files))
    signature = hashlib.sha256(json.dumps([EXPORT_FORMAT, files]).encode()).hexdigest()[:32]
    try:
        keys = json.loads(memo.read_text(encoding="utf-8"))
        if not isinstance(keys, dict):
            keys = {}
    except (OSError, ValueError):
        keys = {}
    if signature in keys:
        return str(keys[signature])
    key = _hash_files(tuple(files))
    keys = {**dict(list(keys.items())[-199:]), signature: key}
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{memo.name}.", dir=memo.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(keys, fh)
        os.replace(tmp, memo)
    except OSError:  # a read-only cache: hash again next time
        pass
    return key


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


def read_meta(export_dir: Path) -> dict[str, Any] | None:
    """The export's meta.json, or None when the export is missing or incomplete."""
    try:
        meta = json.loads((export_dir / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("format") != EXPORT_FORMAT or not (export_dir / "model.onnx").is_file():
        return None
    return meta


def ensure_export(folder: Path, root: Path, name: str) -> Path:
    """``root/<key>``, exported now if it is not there yet. Safe against concurrent exporters."""
    target = root / _model_key(folder, memo=root / "model-keys.json")
    if read_meta(target) is not None:
        logger.debug("ONNX export of %s found in %s", name, target)
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=root))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the cache is readable like any other
    try:
        t0 = time.perf_counter()
        logger.info("exporting %s to ONNX in %s (once per model) ...", name, target)
        _export(folder, tmp, name)
        if target.exists() and read_meta(target) is None:
            shutil.rmtree(target, ignore_errors=True)  # a broken leftover, not a concurrent export
        try:
            os.rename(tmp, target)
        except OSError:
            if read_meta(target) is None:
                raise
            logger.debug("another process exported %s first; using theirs", name)
        else:
            logger.info("exported %s to ONNX in %.1f s", name, time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _export(folder: Path, out: Path, name: str) -> None:
    """Export ``folder``'s model into the empty folder ``out`` (model.onnx, tokenizer/, meta.json)."""
    import torch

    st = load_sentence_transformer(folder, name)
    spec = pipeline_spec(st, name)
    fingerprint = fingerprint_sentence_transformer(st)
    tok = st.tokenizer
    tok.save_pretrained(str(out / "tokenizer"))
    if not (out / "tokenizer" / "tokenizer.json").is_file():
        raise ModelError(f"model {name!r}: its tokenizer did not save a tokenizer.json; use backend='torch'")
    write_max_length(out / "tokenizer", int(st.max_seq_length))

    model = st[0].auto_model.eval()
    _use_eager_attention(model)
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
            got = session(path, 1).run(None, {k: a.numpy() for k, a in zip(inputs, args, strict=True)})[0]
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
        "attention": getattr(model.config, "_attn_implementation", None),
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


def write_max_length(folder: Path, max_length: int) -> None:
    """Make the saved tokenizer files say ``max_length`` (the model's ``max_seq_length``), not a
    leftover of the tokenizer's last truncation (128 for all-MiniLM-L6-v2), so that other tools
    reading the export (fastembed, transformers) truncate where sentence-transformers does."""
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["model_max_length"] = max_length
    if "max_length" in config:
        config["max_length"] = max_length
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    tok_file = folder / "tokenizer.json"
    tok = json.loads(tok_file.read_text(encoding="utf-8"))
    if isinstance(tok.get("truncation"), dict):
        tok["truncation"]["max_length"] = max_length
    tok["padding"] = None  # padding is the runtime's business (tamis pads to each batch's longest)
    tok_file.write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")


def _use_eager_attention(model: Any) -> None:
    """Trace the model with transformers' eager attention (matmul, softmax, matmul): the SDPA path is
    exported decomposed, with masking ops onnxruntime does not fuse, and runs ~1.35x slower on long
    texts. Same weights, same vectors (cosine >= 0.9999998 measured); a model without it keeps its own."""
    setter = getattr(model, "set_attn_implementation", None)
    try:
        if callable(setter):
            setter("eager")
        else:  # pragma: no cover - transformers < 4.48
            model.config._attn_implementation = "eager"
    except Exception as exc:  # pragma: no cover - a model without an eager path
        logger.debug("eager attention unavailable for this model (%s); exporting its default", exc)


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


def fingerprint_for_length(export_dir: Path, folder: Path, max_seq_length: int) -> str:
    """BiEncoder's fingerprint with ``max_seq_length`` overridden; computed with torch once, cached."""
    path = export_dir / f"fingerprint-{max_seq_length}.txt"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        pass
    st = load_sentence_transformer(folder, str(folder))
    st.max_seq_length = max_seq_length
    fingerprint = fingerprint_sentence_transformer(st)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=export_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(fingerprint)
    os.replace(tmp, path)
    return fingerprint
