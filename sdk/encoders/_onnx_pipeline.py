"""What the onnx backend can run, read from a sentence-transformers model: the model's local folder,
the pipelines it accepts (Transformer -> Pooling [-> Normalize]), and the spec the numpy side mirrors
(pooling, prompts, padding, special tokens)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tamis._errors import ModelError
from tamis.encoders._onnx_runtime import POOLING_MODES
from tamis.encoders._torch import quiet_transformers

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

__all__ = ["load_sentence_transformer", "local_model_folder", "pipeline_spec", "precheck_modules"]


def local_model_folder(source: str) -> Path:
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
    quiet_transformers()
    from sentence_transformers import SentenceTransformer

    try:
        SentenceTransformer(source, device="cpu", cache_folder=cache_folder)
        return Path(snapshot_download(source, cache_dir=cache_folder, local_files_only=True))
    except Exception as exc:  # pragma: no cover - needs a hub
        raise ModelError(
            f"could not load sentence-transformers model {source!r}: {exc}. "
            "Pass a local model folder, or a hub name on a machine that reaches the hub."
        ) from exc


def precheck_modules(folder: Path, name: str) -> None:
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


def load_sentence_transformer(folder: Path, name: str) -> SentenceTransformer:
    """The model in ``folder`` on CPU, in float32 (what is exported and hashed); ModelError if it does not load."""
    quiet_transformers()
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


def pipeline_spec(st: SentenceTransformer, name: str) -> dict[str, Any]:
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
    unsupported = [m for m in modes if m not in POOLING_MODES]
    if unsupported:
        raise ModelError(
            f"model {name!r} uses pooling mode {unsupported[0]!r}, which the onnx backend does not "
            f"implement (it has {', '.join(POOLING_MODES)}); use backend='torch' (BiEncoder)"
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
