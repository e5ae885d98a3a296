"""What tamis retrieves: `Document`, the `Chunk` pieces of one too long for the model, and
`DocumentSource`, the re-iterable stream of documents a loader returns, which counts what it skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Chunk", "Document", "DocumentSource", "OnInvalid"]

#: what a loader does with an invalid record: ``"raise"`` a `DataFormatError`, or ``"skip"`` it
#: (counted in `DocumentSource.skipped`)
OnInvalid = Literal["raise", "skip"]


@dataclass(frozen=True, slots=True)
class Document:
    """A unit of retrieval: what a search hit names.

    Attributes:
        id: unique within a collection; hits and qrels refer to it.
        text: the body.
        title: optional; embedded in front of the text (as BEIR does).
        metadata: JSON-compatible key/values stored as payload and usable in filters.
    """

    id: str
    text: str
    title: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def embed_text(self) -> str:
        """What gets embedded: ``title + " " + text``, stripped."""
        return f"{self.title} {self.text}".strip() if self.title else self.text.strip()

    def content_hash(self) -> str:
        """A hash of everything stored for this document (to skip unchanged ones on re-index)."""
        h = hashlib.sha256()
        for part in (self.id, self.title, self.text, json.dumps(dict(self.metadata), sort_keys=True, default=str)):
            h.update(part.encode("utf-8", "surrogatepass"))
            h.update(b"\x1f")
        return h.hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a document small enough for the model; ``number`` counts from 0."""

    doc_id: str
    number: int
    text: str


class DocumentSource(Iterable[Document]):
    """An iterable of documents from a loader, which counts what it skipped and why.

    Iterate it once or many times; ``skipped`` holds the counts of the last pass
    (reason -> count), filled only when the loader was asked to ``on_invalid="skip"``.
    """

    def __init__(self, factory: Callable[[Counter[str]], Iterator[Document]], description: str) -> None:
        self._factory = factory
        self.description = description
        self.skipped: Counter[str] = Counter()

    def __iter__(self) -> Iterator[Document]:
        self.skipped = Counter()
        return self._factory(self.skipped)

    def __repr__(self) -> str:
        return f"DocumentSource({self.description})"
