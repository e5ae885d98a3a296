"""The exception tree of tamis.

    TamisError                      base of everything tamis raises on purpose
    ├── ConfigError                 invalid or conflicting arguments / settings (also a ValueError)
    ├── DataError                   bad input data (also a ValueError)
    │   ├── EmptyTextError          a document whose text is empty or whitespace
    │   ├── DuplicateIdError        the same document id twice in one input
    │   ├── DocumentTooLargeError   a document over the size limit
    │   └── DataFormatError         not UTF-8, not JSON, missing fields, unreadable folder
    ├── ModelError                  a model cannot be loaded / is not what was asked for
    │   └── ModelMismatchError      a collection or adapter made with another model
    ├── StoreError                  the vector store failed or refused
    │   ├── CollectionNotFoundError
    │   ├── CollectionExistsError
    │   └── DimensionMismatchError
    ├── CalibrationError            a Cosine Adapter cannot be fitted / loaded
    └── RemoteInferenceError        a remote inference server gave up on us

Every message says what was wrong, with the offending value, and what to do instead.
"""

from __future__ import annotations

__all__ = [
    "CalibrationError",
    "CollectionExistsError",
    "CollectionNotFoundError",
    "ConfigError",
    "DataError",
    "DataFormatError",
    "DimensionMismatchError",
    "DocumentTooLargeError",
    "DuplicateIdError",
    "EmptyTextError",
    "ModelError",
    "ModelMismatchError",
    "RemoteInferenceError",
    "StoreError",
    "TamisError",
]


class TamisError(Exception):
    """Base class of every error tamis raises on purpose."""


class ConfigError(TamisError, ValueError):
    """Invalid, unknown or conflicting arguments or settings."""


class DataError(TamisError, ValueError):
    """Input data that tamis cannot use.

    Attributes:
        source: the file (or other source) the bad record came from, if known.
        line: the 1-based line number in ``source``, if known.
        doc_id: the document id concerned, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        doc_id: str | None = None,
    ) -> None:
        where = []
        if source is not None:
            where.append(str(source) + (f":{line}" if line is not None else ""))
        if doc_id is not None:
            where.append(f"document {doc_id!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.source = source
        self.line = line
        self.doc_id = doc_id


class EmptyTextError(DataError):
    """A document whose text (title + text) is empty or only whitespace."""


class DuplicateIdError(DataError):
    """The same document id appears twice in one input."""


class DocumentTooLargeError(DataError):
    """A document larger than the configured limit (``max_document_bytes``)."""


class DataFormatError(DataError):
    """A file that is not UTF-8, a JSONL line that is not JSON or lacks a field, an unreadable path."""


class ModelError(TamisError):
    """A model that cannot be loaded, or is not the kind of model that was asked for."""


class ModelMismatchError(ModelError):
    """Vectors or a calibration made with one model, used with another."""


class StoreError(TamisError):
    """The vector store failed or refused an operation."""


class CollectionNotFoundError(StoreError, KeyError):
    """No collection of that name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CollectionExistsError(StoreError):
    """A collection of that name exists already."""


class DimensionMismatchError(StoreError):
    """Vectors whose dimension is not the collection's."""


class CalibrationError(TamisError):
    """A Cosine Adapter that cannot be fitted, saved or loaded."""


class RemoteInferenceError(TamisError):
    """A remote inference server failed and tamis gave up (after retries where they apply).

    Attributes:
        status: the HTTP status of the last response, or None for a transport error.
        body: the first 500 characters of the last response body.
        url: the URL that was called.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str = "", url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:500]
        self.url = url
