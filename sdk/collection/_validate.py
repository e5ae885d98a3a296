"""Validating an ingest's documents up front: ids, text, size, and that everything stored is valid
Unicode and strict JSON (a lone surrogate or a NaN must fail here, naming the document, not at write
time after part of the input is written)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tamis._errors import DataError, DataFormatError, DocumentTooLargeError, DuplicateIdError, EmptyTextError
from tamis.data import Document, DocumentSource

if TYPE_CHECKING:  # pragma: no cover
    from tamis.data import OnInvalid

__all__: list[str] = []

logger = logging.getLogger("tamis")


def validate(
    documents: Iterable[Document], *, on_invalid: OnInvalid, max_document_bytes: int
) -> tuple[list[Document], Counter[str]]:
    """(valid documents, skipped by reason); the first invalid one raises with ``on_invalid="raise"``."""
    skipped: Counter[str] = Counter()
    seen: set[str] = set()
    docs: list[Document] = []
    for i, doc in enumerate(documents):
        try:
            if not isinstance(doc, Document):
                raise DataFormatError(f"item {i} is a {type(doc).__name__}, not a tamis.Document")
            if not isinstance(doc.id, str) or not doc.id.strip():
                raise DataFormatError(f"item {i} has an empty or non-string id: {doc.id!r}")
            if not isinstance(doc.text, str) or not isinstance(doc.title, str):
                raise DataFormatError("text and title must be strings", doc_id=doc.id)
            if doc.id in seen:
                raise DuplicateIdError(
                    "this id appears twice in the input; ids must be unique (a re-run of the same "
                    "input is fine: it updates in place)", doc_id=doc.id,
                )
            if not doc.embed_text:
                raise EmptyTextError("text and title are empty or whitespace", doc_id=doc.id)
            if not isinstance(doc.metadata, Mapping):
                raise DataFormatError(f"metadata must be a mapping, got {type(doc.metadata).__name__}", doc_id=doc.id)
            check_storable(doc)
            size = len(doc.text.encode("utf-8"))
            if size > max_document_bytes:
                raise DocumentTooLargeError(
                    f"{size:,} bytes, over the limit of {max_document_bytes:,}; split it, or raise "
                    "max_document_bytes (--max-document-bytes)", doc_id=doc.id,
                )
        except DataError as exc:
            if on_invalid == "raise":
                raise
            skipped[type(exc).__name__] += 1
            logger.warning("skipped %s", exc)
            continue
        seen.add(doc.id)
        docs.append(doc)
    if isinstance(documents, DocumentSource):
        skipped.update(documents.skipped)
    return docs, skipped


def check_storable(doc: Document) -> None:
    """`DataFormatError` unless every field of ``doc`` is valid Unicode (UTF-8-encodable) and its
    metadata is strict JSON (no NaN / Infinity, not nested past what a JSON parser takes)."""
    for name, value in (("id", doc.id), ("title", doc.title), ("text", doc.text)):
        _check_utf8(value, f"the {name}", doc.id)
    if _depth(doc.metadata) > MAX_METADATA_DEPTH:
        raise DataFormatError(
            f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep; flatten it", doc_id=doc.id
        )
    try:
        encoded = json.dumps(dict(doc.metadata), allow_nan=False, ensure_ascii=False)
    except RecursionError:
        raise DataFormatError(
            "metadata is nested too deeply to store as JSON; flatten it", doc_id=doc.id
        ) from None
    except (TypeError, ValueError) as exc:
        if "compliant" not in str(exc):
            raise DataFormatError(f"metadata is not JSON-serialisable: {exc}", doc_id=doc.id) from exc
        raise DataFormatError(
            "metadata is not strict JSON: it holds NaN or Infinity, which JSON does not allow; use null or "
            "a string for such values", doc_id=doc.id,
        ) from exc
    _check_utf8(encoded, "the metadata", doc.id)


#: deeper metadata than this is refused (stores and JSON parsers give up long before 5 000 levels)
MAX_METADATA_DEPTH = 64


def _depth(value: Any) -> int:
    """How deep ``value`` nests lists and mappings (iteratively: no recursion limit)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, Mapping):
            todo.extend((x, d + 1) for x in v.values())
        elif isinstance(v, (list, tuple)):
            todo.extend((x, d + 1) for x in v)
        else:
            continue
        deepest = max(deepest, d)
        if deepest > MAX_METADATA_DEPTH:
            break
    return deepest


def _check_utf8(text: str, what: str, doc_id: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise DataFormatError(
            f"{what} holds {bad!r} at character {exc.start}, a lone surrogate that cannot be encoded as UTF-8 "
            "(often a JSON \\uD800-\\uDFFF escape without its pair); fix the input, or pass --skip-invalid",
            doc_id=doc_id,
        ) from None
