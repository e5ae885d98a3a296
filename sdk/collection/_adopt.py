"""`adopt_collection`: bind a collection another tool made (langchain-qdrant, LlamaIndex, plain
qdrant-client) to a model, after checking that the model made its vectors, so that calibration,
search and the retriever work on it.

The check: the collection's dimension is the model's, and a sample of stored vectors is re-encoded
from their own texts with the model: every one must have cosine >= ``min_cosine`` (0.99) with its
stored vector, or nothing is written and the error names the worst point. The manifest then records
how the points read (``payload``: ``{"format": "foreign", "text_key", "metadata_key", "id_key",
"title_key"}``); the points themselves are not touched, and tamis writes its own points (``index``)
in the interoperable layout next to them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from tamis._errors import ConfigError, DimensionMismatchError, ModelMismatchError
from tamis.collection._manifest import new_manifest, now
from tamis.collection._open import open_store
from tamis.collection._versions import manifest_of
from tamis.data import Chunker
from tamis.encoders import Encoder, load_encoder, model_source
from tamis.stores import VectorStore, read_payload

__all__ = ["adopt_collection"]

logger = logging.getLogger("tamis")


def adopt_collection(
    name: str,
    *,
    model: str | os.PathLike[str] | None = None,
    encoder: Encoder | None = None,
    text_key: str = "page_content",
    metadata_key: str | None = "metadata",
    id_key: str | None = None,
    title_key: str | None = None,
    sample: int = 32,
    min_cosine: float = 0.99,
    store: VectorStore | str | None = None,
    path: str | os.PathLike[str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
    location: str | None = None,
    store_options: dict[str, Any] | None = None,
) -> Any:
    """Adopt the collection (or alias) ``name`` made by another tool; returns the opened `Collection`.

    Args:
        name: the collection or alias.
        model, encoder: the model that made its vectors (default: the packaged all-MiniLM-L6-v2).
        text_key: the payload key of the text (langchain-qdrant: ``page_content``; LlamaIndex: ``text``).
        metadata_key: the payload key of the metadata (langchain: ``metadata``); None: the whole payload
            but the text (LlamaIndex).
        id_key: a dotted payload key holding the document id (e.g. ``metadata.doc_id``); None: the point id.
        title_key: a dotted payload key holding a title, or None.
        sample: how many stored vectors to re-encode and compare.
        min_cosine: the smallest cosine accepted between a stored vector and its re-encoded text.
        store, path, url, api_key, location, store_options: where it is (see `open_collection`).

    Raises:
        ConfigError: already a tamis collection, no points, or no text under ``text_key``.
        DimensionMismatchError: the model's dimension is not the collection's.
        ModelMismatchError: a re-encoded text is below ``min_cosine`` (another model made the vectors).

    Example:
        >>> col = adopt_collection("lc_docs", url="http://localhost:6333", text_key="page_content")  # doctest: +SKIP
        >>> col.calibrate(queries, qrels)                                                            # doctest: +SKIP
    """
    from tamis.collection._open import open_collection

    st, owned = open_store(store, path=path, url=url, api_key=api_key, location=location, options=store_options)
    try:
        physical = st.resolve_alias(name) or name
        if not st.collection_exists(physical):
            raise ConfigError(f"no collection or alias {name!r} in the {st.kind} store to adopt")
        if manifest_of(st, physical) is not None:
            raise ConfigError(f"collection {name!r} is a tamis collection already; open it with open_collection")
        enc = encoder if encoder is not None else load_encoder(model)  # type: ignore[arg-type]
        dim = st.collection_dim(physical)
        if dim != enc.dim:
            raise DimensionMismatchError(
                f"collection {name!r} holds {dim}-d vectors; model {enc.name!r} makes {enc.dim}-d ones: "
                "adopt it with the model that made it (--model)"
            )
        layout = {"format": "foreign", "text_key": text_key, "metadata_key": metadata_key, "id_key": id_key,
                  "title_key": title_key}
        checked = _check_sample(st, physical, enc, layout, sample=sample, min_cosine=min_cosine, name=name)
        max_tokens = max(8, enc.max_seq_length - 2)
        manifest = new_manifest(enc, Chunker(enc.tokenizer, max_tokens=max_tokens, overlap=min(32, max_tokens // 4)),
                                model_source(model, "auto") if encoder is None else None)
        points = st.count(physical)
        manifest.update(
            payload=layout, settings={},
            ingest={"state": "complete", "finished": now(), "documents": points, "points": points},
            adopted={"at": now(), "checked": checked, "min_cosine": min_cosine},
        )
        meta = dict(st.get_metadata(physical))
        meta["tamis"] = manifest
        st.set_metadata(physical, meta)
        logger.info("adopted %r (%d points; %d sampled vectors match %s)", name, points, checked, enc.name)
        col = open_collection(name, store=st, encoder=enc)
        col._owns_store = owned
        return col
    except BaseException:
        if owned:
            st.close()
        raise


def _check_sample(
    st: VectorStore, physical: str, enc: Encoder, layout: dict[str, Any], *, sample: int, min_cosine: float, name: str
) -> int:
    """Re-encode up to ``sample`` stored texts and compare with their stored vectors; how many were checked."""
    rows: list[tuple[str, str, np.ndarray]] = []
    keys: set[str] = set()
    for rec in st.scroll(physical, with_payload=True, with_vectors=True, batch_size=max(1, sample)):
        keys.update(rec.payload)
        content = read_payload(rec.payload, rec.id, layout)
        if content is not None and content.text.strip() and rec.vector is not None:
            rows.append((rec.id, content.text, rec.vector))
        if len(rows) >= sample:
            break
    if not rows:
        raise ConfigError(
            f"collection {name!r} has no point with a text under {layout['text_key']!r} (payload keys seen: "
            f"{sorted(keys) or 'none'}); pass text_key= (--text-key) naming the text field"
        )
    stored = np.stack([v for _, _, v in rows]).astype(np.float32)
    fresh = enc.encode([t for _, t, _ in rows], kind="document")
    stored /= np.linalg.norm(stored, axis=1, keepdims=True)
    fresh = fresh / np.linalg.norm(fresh, axis=1, keepdims=True)
    cos = np.sum(stored * fresh, axis=1)
    worst = int(np.argmin(cos))
    if cos[worst] < min_cosine:
        raise ModelMismatchError(
            f"collection {name!r} was not made by model {enc.name!r}: re-encoding the text of point "
            f"{rows[worst][0]} gives cosine {cos[worst]:.3f} with its stored vector (< {min_cosine}; "
            f"{int((cos < min_cosine).sum())} of {len(rows)} sampled points below); adopt it with the model "
            "that made it (--model), or check --text-key"
        )
    return len(rows)
