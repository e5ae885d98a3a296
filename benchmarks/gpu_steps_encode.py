"""Steps 1 and 2 of ``gpu_check.py``: encoding parity and speed on the GPU, and ``tamis index`` on the GPU.

1. fp32 CPU vectors against fp16 and bf16 ones on the device (min cosine >= 0.999), and docs/s of bare
   ``SentenceTransformer.encode`` against tamis' encoder, same model, dtype and batch (ratio >= 0.95),
   on WordNet documents (short) and on texts that fill the model's 256 tokens (long).
2. ``tamis index`` of the WordNet corpus into Qdrant Edge (the CLI, in this process), against bare encoding
   of the same texts, and the same ingest with the vectors looked up instead of computed (the store alone):
   the slower of the two stages is the bottleneck.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from gpu_common import Ctx, StepIO, timed

log = logging.getLogger("gpu_check")


def _long_texts(docs: list[Any], n: int, min_chars: int = 1500) -> list[str]:
    """``n`` texts of consecutive documents joined until each is longer than the model reads."""
    out, parts, size, i = [], [], 0, 0
    while len(out) < n and docs:
        text = docs[i % len(docs)].embed_text
        parts.append(text)
        size += len(text) + 1
        i += 1
        if size >= min_chars:
            out.append(" ".join(parts))
            parts, size = [], 0
    return out


def _race(ctx: Ctx, texts: list[str], io: StepIO) -> dict[str, Any]:
    """Best docs/s of bare sentence-transformers and of tamis over interleaved rounds (same texts, batch)."""
    bare, ours, bs = ctx.bare(), ctx.encoder(), ctx.plan.encode_batch
    runs = {
        "bare": lambda: bare.encode(texts, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False),
        "tamis": lambda: ours.encode(texts, batch_size=bs),
    }
    for fn in runs.values():  # warm-up: CUDA kernels, tokenizer caches
        timed(fn)
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(ctx.plan.speed_rounds):
        t_round = 0.0
        for key, fn in runs.items():
            sec = timed(fn)
            t_round += sec
            rates[key].append(len(texts) / sec)
        if io.left() < 2 * t_round:
            log.warning("speed race stopped after %d rounds: the step's time is spent", r + 1)
            break
    return {"texts": len(texts), "batch_size": bs, "rounds": len(rates["bare"]),
            "bare_docs_per_s": round(max(rates["bare"]), 1), "tamis_docs_per_s": round(max(rates["tamis"]), 1),
            "all": {k: [round(x, 1) for x in v] for k, v in rates.items()}}


def step_encode(ctx: Ctx, io: StepIO) -> None:
    """Step 1: parity of fp16/bf16 on the device with fp32 on CPU, and tamis' overhead over bare encode."""
    import tamis

    docs = ctx.docs()
    texts = [d.embed_text for d in docs[: ctx.plan.parity_docs]]
    ref = tamis.load_encoder(ctx.model, backend="torch", device="cpu", dtype="float32").encode(texts, batch_size=64)
    for dtype in ("float16", "bfloat16"):
        enc = tamis.load_encoder(ctx.model, backend="torch", device=ctx.device, dtype=dtype)
        cos = (enc.encode(texts, batch_size=ctx.plan.encode_batch) * ref).sum(axis=1)
        io.detail(f"parity_{dtype}", {"encoder": repr(enc), "docs": len(texts), "min_cosine": float(cos.min()),
                                      "mean_cosine": float(cos.mean())})
        io.check(f"parity_{dtype}_min_cosine", round(float(cos.min()), 6), float(cos.min()) >= 0.999,
                 ">= 0.999 against float32 on CPU")
        del enc
    io.detail("encoder", repr(ctx.encoder()))
    for kind, sample in (("short", [d.embed_text for d in docs[: ctx.plan.speed_short]]),
                         ("long", _long_texts(docs, ctx.plan.speed_long))):
        race = _race(ctx, sample, io)
        ratio = race["tamis_docs_per_s"] / race["bare_docs_per_s"]
        io.detail(f"speed_{kind}", race)
        io.check(f"speed_{kind}_tamis_vs_bare", round(ratio, 3), ratio >= 0.95, ">= 0.95 (docs/s ratio)")


class _Replay:
    """An encoder that looks vectors up instead of computing them (the store's share of an ingest)."""

    backend = "replay"

    def __init__(self, inner: Any, vectors: dict[str, np.ndarray]) -> None:
        self.inner, self.vectors, self.misses = inner, vectors, 0
        self.name, self.dim, self.fingerprint = inner.name, inner.dim, inner.fingerprint
        self.max_seq_length = inner.max_seq_length

    @property
    def tokenizer(self) -> Any:
        return self.inner.tokenizer

    def encode(self, texts: Sequence[str], *, kind: str = "document", batch_size: int = 64) -> np.ndarray:
        missing = [t for t in texts if t not in self.vectors]
        if missing:  # a chunk of a long document: encode it for real
            self.misses += len(missing)
            self.vectors.update(zip(missing, self.inner.encode(missing, kind=kind, batch_size=batch_size), strict=True))
        return np.stack([self.vectors[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


def _cli(argv: list[str]) -> str:
    """Run the ``tamis`` CLI in this process; its stdout (its stderr too, in the error, when it fails)."""
    from tamis.cli import app

    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = app(argv, standalone_mode=False)
    if code or "{" not in out.getvalue():
        raise RuntimeError(f"`tamis {' '.join(argv)}` failed (exit {code}): {(out.getvalue() + err.getvalue())[-3000:]}")
    return out.getvalue()


def step_ingest(ctx: Ctx, io: StepIO) -> None:
    """Step 2: ``tamis index`` of the corpus into Qdrant Edge on the device, against bare encode and the store alone."""
    import tamis

    docs = ctx.docs()
    n = len(docs)
    home = ctx.work / "edge"
    argv = ["index", str(ctx.data), "--collection", "wordnet", "--path", str(home), "--backend", "torch",
            "--device", ctx.device, "--json", *ctx.model_args()]
    stdout: list[str] = []
    wall = timed(lambda: stdout.append(_cli(argv)))
    text = stdout[0]
    report = json.loads(text[text.index("{"): text.rindex("}") + 1])
    rate = report["encoded"] / report["seconds"]
    io.detail("tamis_index", {"command": "tamis " + " ".join(argv), "report": report, "docs_per_s": round(rate, 1),
                              "wall_s_with_model_load": round(wall, 1)})
    io.check("index_complete", report["points"], report["documents"] == n and report["points"] == n,
             f"all {n} documents indexed, one point each")
    ctx.state["collection_home"] = home

    texts = [d.embed_text for d in docs]
    bare = ctx.bare()
    vectors: list[np.ndarray] = []
    sec = timed(lambda: vectors.append(bare.encode(texts, batch_size=64, normalize_embeddings=True,
                                                   convert_to_numpy=True, show_progress_bar=False)))
    bare_rate = n / sec  # batch 64: what `tamis index` encodes with
    io.detail("bare_encode", {"docs": n, "batch_size": 64, "docs_per_s": round(bare_rate, 1)})

    replay = _Replay(ctx.encoder(), dict(zip(texts, vectors[0].astype(np.float32), strict=True)))
    with tamis.open_collection("store_only", path=home, encoder=replay, create=True) as col:
        store = col.index(docs)
    store_rate = n / store.seconds
    io.detail("store_only", {"report": store.to_dict(), "docs_per_s": round(store_rate, 1), "encoded_for_real": replay.misses})
    io.check("store_only_complete", store.points, store.points == n, f"all {n} documents written")
    bottleneck = "the store (Qdrant Edge writes + HNSW build)" if store_rate < bare_rate else "the GPU (encoding)"
    io.detail("verdict", {
        "index_vs_bare_encode": round(rate / bare_rate, 3), "store_vs_bare_encode": round(store_rate / bare_rate, 3),
        "bottleneck": bottleneck,
        "text": f"tamis index {rate:,.0f} docs/s = {rate / bare_rate:.2f}x bare encode ({bare_rate:,.0f}/s); the store "
                f"alone ingests {store_rate:,.0f}/s, so {bottleneck} bounds the ingest",
    })
