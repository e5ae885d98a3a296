"""Texts of three lengths and the peer encoders the CPU benchmarks compare (not part of the package).

Texts: ``short`` = WordNet definitions (title + text); ``middle`` = consecutive WordNet definitions
joined into texts of 80-150 words (seeded); ``long`` = python-faq answers (most over 256 tokens).
Peers: bare sentence-transformers, tamis torch / onnx / onnx-int8 / auto, and fastembed on the same
weights (the tamis float32 export: ``TextEmbedding.add_custom_model`` + ``specific_model_path``,
offline).
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import OUT, dataset

Encode = Callable[[list[str]], np.ndarray]


def _docs(name: str, n: int | None = None, skip: int = 0) -> list[str]:
    out = []
    with open(dataset(name) / "corpus.jsonl", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < skip:
                continue
            doc = json.loads(line)
            out.append(f"{doc.get('title') or ''} {doc.get('text') or ''}".strip())
            if n and len(out) >= n:
                break
    return out


def texts_of(length: str, n: int | None = None) -> list[str]:
    if length == "short":
        return _docs("wordnet-reverse-dictionary", n or 8000)
    if length == "long":
        return _docs("python-faq", n)
    if length != "middle":
        raise SystemExit(f"length {length!r} is not short, middle or long")
    rng = random.Random(15)
    pool, out, cur, goal = _docs("wordnet-reverse-dictionary", skip=8000), [], [], rng.randint(80, 150)
    for text in pool:
        cur.extend(text.split())
        if len(cur) >= goal:
            out.append(" ".join(cur[:goal]))
            cur, goal = [], rng.randint(80, 150)
            if len(out) >= (n or 2000):
                break
    return out


def fastembed_folder(export_dir: Path) -> Path:
    """A folder fastembed loads as a local model: the tamis float32 export's graph and tokenizer files."""
    folder = OUT / "fastembed-minilm" / export_dir.name
    if not (folder / "model.onnx").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.onnx").symlink_to(export_dir / "model.onnx")
        for f in (export_dir / "tokenizer").iterdir():
            shutil.copy(f, folder / f.name)
    return folder


def fastembed_encoder(export_dir: Path, dim: int) -> Encode:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    name = "tamis/all-MiniLM-L6-v2-export"
    if name.lower() not in {m["model"].lower() for m in TextEmbedding.list_supported_models()}:
        TextEmbedding.add_custom_model(
            model=name, pooling=PoolingType.MEAN, normalization=True, sources=ModelSource(hf=name), dim=dim,
            model_file="model.onnx",
        )
    model = TextEmbedding(model_name=name, specific_model_path=str(fastembed_folder(export_dir)))

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(list(model.embed(texts, batch_size=64)), dtype=np.float32)

    return encode


def peers(names: list[str], sdpa_graph: str | None = None) -> tuple[dict[str, Encode], dict[str, object]]:
    """{label: encode function} for ``names`` (bare, torch, onnx, onnx-int8, auto, fastembed, onnx-sdpa),
    and facts about them (export folder, auto's choice, threads)."""
    from sentence_transformers import SentenceTransformer

    import tamis
    from tamis.encoders import OnnxEncoder, default_model_path

    out: dict[str, Encode] = {}
    facts: dict[str, object] = {}
    onnx = OnnxEncoder()
    facts["export"] = str(onnx.export_dir)
    facts["onnx_threads"] = onnx.intra_op_threads
    for name in names:
        if name == "bare":
            st = SentenceTransformer(str(default_model_path()), device="cpu")
            out["bare ST (torch, batch 64)"] = lambda t, st=st: st.encode(
                t, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        elif name in ("torch", "onnx", "onnx-int8"):
            enc = onnx if name == "onnx" else tamis.load_encoder(None, backend=name, device="cpu")
            if name == "onnx-int8":
                enc._gate_pending = False  # the gate runs on each length's texts, reported by the caller
                facts["int8"] = enc
            out[f"tamis {name}"] = lambda t, enc=enc: enc.encode(t)
        elif name == "auto":
            enc = tamis.load_encoder(None, device="cpu")
            facts["auto"] = repr(enc)
            out["tamis auto (default)"] = lambda t, enc=enc: enc.encode(t)
        elif name == "fastembed":
            out["fastembed (same export)"] = fastembed_encoder(onnx.export_dir, onnx.dim)
        elif name == "onnx-sdpa" and sdpa_graph:
            from tamis.encoders._onnx_runtime import session

            old = OnnxEncoder()
            old._session = session(Path(sdpa_graph), old.intra_op_threads)
            out["tamis onnx, SDPA graph (before)"] = lambda t, enc=old: enc.encode(t)
        else:
            raise SystemExit(f"unknown peer {name!r}")
    return out, facts
