"""Loaders: documents from a JSON Lines file, a BEIR folder or a folder of text files (`load_data` picks
one), and a BEIR folder's queries and relevance judgements (qrels).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from tamis._errors import ConfigError, DataFormatError
from tamis.data._documents import Document, DocumentSource, OnInvalid

__all__ = ["load_beir", "load_beir_queries", "load_data", "load_directory", "load_jsonl", "load_qrels"]

logger = logging.getLogger("tamis")


def _check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in ("raise", "skip"):
        raise ConfigError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")


def _as_id(value: Any, *, source: str, line: int | None) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataFormatError(f"document id must be a string or an integer, got {value!r}", source=source, line=line)
    text = str(value).strip()
    if not text:
        raise DataFormatError("document id is empty", source=source, line=line)
    return text


def _as_text(value: Any, field_name: str, *, source: str, line: int | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataFormatError(f"field {field_name!r} must be a string, got {type(value).__name__}", source=source, line=line)
    return value


def _iter_jsonl(path: Path, *, after_line: int = 0) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) for each non-blank line after ``after_line``; DataFormatError on bad lines."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise DataFormatError(f"cannot read file: {exc.strerror}", source=str(path)) from exc
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno <= after_line:
                continue
            try:
                # a byte-order mark at the start of the file is accepted (and dropped)
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    f"not UTF-8 (byte {exc.start}); re-encode the file as UTF-8", source=str(path), line=lineno
                ) from exc
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"not valid JSON: {exc.msg} (column {exc.colno})", source=str(path), line=lineno) from exc
            except RecursionError:
                raise DataFormatError(
                    "JSON nested too deeply to read (thousands of levels); flatten the record", source=str(path),
                    line=lineno,
                ) from None
            yield lineno, obj


def load_jsonl(
    path: str | os.PathLike[str],
    *,
    id_field: str = "_id",
    text_field: str = "text",
    title_field: str | None = "title",
    metadata_fields: Iterable[str] | None = None,
    on_invalid: OnInvalid = "raise",
) -> DocumentSource:
    """Documents from a JSON Lines file, one object per line.

    Args:
        id_field, text_field, title_field: the keys to read (``title_field=None``: no title).
        metadata_fields: keys copied to ``metadata``; default: every key besides id/text/title.
        on_invalid: ``"raise"`` a `DataFormatError` at the first bad line (not JSON, not an object,
            missing id or text, not UTF-8), or ``"skip"`` it and count it in ``.skipped``.

    Example:
        >>> docs = load_jsonl("corpus.jsonl", id_field="id", text_field="body")  # doctest: +SKIP
    """
    _check_on_invalid(on_invalid)
    p = Path(path)
    if p.is_dir():
        raise DataFormatError(
            f"{str(p)!r} is a folder, not a JSON Lines file; pass the .jsonl file itself, or use format "
            "'beir' (a folder with corpus.jsonl), 'dir' (a folder of .txt/.md files) or 'auto'", source=str(p),
        )
    if not p.is_file():
        raise DataFormatError(f"no such file: {str(p)!r}", source=str(p))
    keep = None if metadata_fields is None else list(metadata_fields)

    def records(skipped: Counter[str]) -> Iterator[Document]:
        it = _iter_jsonl(p)
        while True:
            try:
                lineno, obj = next(it)
            except StopIteration:
                return
            except DataFormatError as exc:
                if on_invalid == "raise" or exc.line is None:
                    raise
                skipped["bad line (not UTF-8 / not JSON)"] += 1
                logger.warning("skipped %s", exc)
                # the generator is finished after raising; restart past the bad line
                it = _iter_jsonl(p, after_line=exc.line)
                continue
            try:
                doc = document_from_record(
                    obj, id_field=id_field, text_field=text_field, title_field=title_field, metadata_fields=keep,
                    source=str(p), line=lineno,
                )
            except DataFormatError as exc:
                if on_invalid == "raise":
                    raise
                skipped["missing or invalid field"] += 1
                logger.warning("skipped %s", exc)
                continue
            yield doc

    return DocumentSource(records, f"jsonl {str(p)!r}")


def document_from_record(
    obj: Any,
    *,
    id_field: str = "_id",
    text_field: str = "text",
    title_field: str | None = "title",
    metadata_fields: list[str] | None = None,
    source: str = "",
    line: int | None = None,
) -> Document:
    """The `Document` of one JSON record (a line of a JSONL file, a row of a table), as `load_jsonl` reads it.

    Raises:
        DataFormatError: not an object, a missing id or text, a field of the wrong type.
    """
    if not isinstance(obj, dict):
        raise DataFormatError(f"expected a JSON object, got {type(obj).__name__}", source=source, line=line)
    for required in (id_field, text_field):
        if required not in obj:
            raise DataFormatError(
                f"missing field {required!r} (fields present: {sorted(obj)[:10]}); set "
                f"{'id_field' if required == id_field else 'text_field'}= to the right key",
                source=source, line=line,
            )
    doc_id = _as_id(obj[id_field], source=source, line=line)
    text = _as_text(obj[text_field], text_field, source=source, line=line)
    title = _as_text(obj.get(title_field), title_field, source=source, line=line) if title_field else ""
    used = {id_field, text_field, title_field}
    if metadata_fields is None:
        meta = {k: v for k, v in obj.items() if k not in used}
    else:
        meta = {k: obj[k] for k in metadata_fields if k in obj}
    return Document(doc_id, text, title, meta)


def load_beir(path: str | os.PathLike[str], *, on_invalid: OnInvalid = "raise") -> DocumentSource:
    """Documents from a BEIR dataset folder (its ``corpus.jsonl``: ``_id``, ``title``, ``text``).

    The text embedded is ``title + " " + text``, stripped, as BEIR's evaluation does.
    """
    folder = Path(path)
    corpus = folder / "corpus.jsonl" if folder.is_dir() else folder
    if not corpus.is_file():
        has = [n for n in ("queries.jsonl", "qrels/") if (folder / n.rstrip("/")).exists()]
        raise DataFormatError(
            f"{str(folder)!r} is not a BEIR folder: no corpus.jsonl in it"
            + (f" (it has {' and '.join(has)}: a BEIR dataset without its corpus?)" if has else "")
            + "; put the corpus there as corpus.jsonl, or pass the .jsonl file itself", source=str(folder)
        )
    return load_jsonl(corpus, id_field="_id", text_field="text", title_field="title", on_invalid=on_invalid)


def load_beir_queries(path: str | os.PathLike[str]) -> dict[str, str]:
    """Queries of a BEIR folder (``queries.jsonl``) or a queries file: ``{query_id: text}``."""
    p = Path(path)
    qfile = p / "queries.jsonl" if p.is_dir() else p
    if not qfile.is_file():
        raise DataFormatError(f"no queries file at {str(qfile)!r}", source=str(qfile))
    out: dict[str, str] = {}
    for lineno, obj in _iter_jsonl(qfile):
        if not isinstance(obj, dict) or "_id" not in obj or "text" not in obj:
            raise DataFormatError("a query line needs '_id' and 'text'", source=str(qfile), line=lineno)
        qid = _as_id(obj["_id"], source=str(qfile), line=lineno)
        if qid in out:
            raise DataFormatError(f"query id {qid!r} appears twice", source=str(qfile), line=lineno)
        out[qid] = _as_text(obj["text"], "text", source=str(qfile), line=lineno)
    return out


def load_qrels(path: str | os.PathLike[str], split: str = "test") -> dict[str, dict[str, int]]:
    """Relevance judgements ``{query_id: {doc_id: grade}}`` from ``qrels/<split>.tsv`` of a BEIR folder."""
    p = Path(path)
    qfile = p / "qrels" / f"{split}.tsv" if p.is_dir() else p
    if not qfile.is_file():
        avail = sorted(f.stem for f in (p / "qrels").glob("*.tsv")) if p.is_dir() else []
        raise DataFormatError(f"no qrels for split {split!r} (available: {avail})", source=str(qfile))
    qrels: dict[str, dict[str, int]] = {}
    with open(qfile, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    f"not UTF-8 (byte {exc.start}); re-encode the file as UTF-8", source=str(qfile), line=lineno
                ) from exc
            parts = line.rstrip("\r\n").split("\t")
            if lineno == 1 and parts and parts[0] in ("query-id", "query_id", "qid"):
                continue
            if not line.strip():
                continue
            if len(parts) < 3:
                raise DataFormatError("a qrels line needs query-id, corpus-id, score (tab separated)", source=str(qfile), line=lineno)
            try:
                grade = int(float(parts[2]))
            except ValueError as exc:
                raise DataFormatError(f"score {parts[2]!r} is not a number", source=str(qfile), line=lineno) from exc
            qrels.setdefault(parts[0], {})[parts[1]] = grade
    return qrels


def load_directory(
    path: str | os.PathLike[str],
    *,
    patterns: Iterable[str] = ("*.txt", "*.md"),
    on_invalid: OnInvalid = "raise",
) -> DocumentSource:
    """One document per ``.txt`` / ``.md`` file under ``path`` (recursively).

    The id is the path relative to ``path`` (``/``-separated); the title is the first Markdown
    heading, or the file name; ``metadata`` holds ``path`` and ``suffix``.
    Files that are not UTF-8 raise `DataFormatError` (or are skipped and counted).
    """
    _check_on_invalid(on_invalid)
    root = Path(path)
    if not root.is_dir():
        raise DataFormatError(f"{str(root)!r} is not a directory", source=str(root))
    pats = list(patterns)

    def records(skipped: Counter[str]) -> Iterator[Document]:
        files = sorted({f for pat in pats for f in root.rglob(pat) if f.is_file()})
        for f in files:
            rel = f.relative_to(root).as_posix()
            try:
                raw = f.read_bytes()
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                err = DataFormatError(f"not UTF-8 (byte {exc.start}); re-encode it as UTF-8", source=str(f))
                if on_invalid == "raise":
                    raise err from exc
                skipped["not UTF-8"] += 1
                logger.warning("skipped %s", err)
                continue
            except OSError as exc:
                raise DataFormatError(f"cannot read file: {exc.strerror}", source=str(f)) from exc
            yield document_from_file(rel, text)

    return DocumentSource(records, f"directory {str(root)!r}")


def _looks_like_beir(folder: Path) -> bool:
    """A folder with a BEIR dataset's queries or qrels (its corpus missing or misnamed)."""
    return (folder / "queries.jsonl").is_file() or (folder / "qrels").is_dir()
def document_from_file(rel: str, text: str) -> Document:
    """The `Document` of a text file at ``rel`` (its ``/``-separated path under the folder), as `load_directory` makes it."""
    suffix = PurePosixPath(rel).suffix.lower()
    title = PurePosixPath(rel).stem
    if suffix == ".md":
        m = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
        if m:
            title = m.group(1).strip()
    return Document(rel, text, title, {"path": rel, "suffix": suffix})


def load_data(
    path: str | os.PathLike[str],
    *,
    format: Literal["auto", "beir", "jsonl", "dir"] = "auto",
    on_invalid: OnInvalid = "raise",
    **jsonl_options: Any,
) -> DocumentSource:
    """Pick a loader for ``path``: a BEIR folder (has corpus.jsonl), a ``.jsonl`` file, or a folder of text."""
    p = Path(path)
    if format == "auto":
        if p.is_dir():
            format = "beir" if (p / "corpus.jsonl").is_file() or _looks_like_beir(p) else "dir"
        elif p.is_file():
            format = "jsonl"
        else:
            raise DataFormatError(f"no such file or folder: {str(p)!r}", source=str(p))
    if format == "beir":
        return load_beir(p, on_invalid=on_invalid)
    if format == "jsonl":
        return load_jsonl(p, on_invalid=on_invalid, **jsonl_options)
    if format == "dir":
        return load_directory(p, on_invalid=on_invalid)
    raise ConfigError(f"format {format!r} is not one of 'auto', 'beir', 'jsonl', 'dir'")
