"""The corpus as a Ray Dataset, and its rows as `Document` objects, read in the tasks.

JSONL and BEIR (``corpus.jsonl``) are read as lines and parsed by the same function as
`tamis.load_jsonl`; a text folder as files, made into documents as `tamis.load_directory` does;
Parquet, CSV and anything else Ray reads (or a `ray.data.Dataset` given as is) as table rows,
with the same field options.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tamis._errors import ConfigError, DataError, DataFormatError
from tamis.data import Document
from tamis.data._loaders import document_from_file, document_from_record

__all__ = ["ReadSpec", "read_dataset"]

Kind = Literal["lines", "files", "table"]


@dataclass(frozen=True, slots=True)
class ReadSpec:
    """How the tasks turn a block of the dataset into documents (sent to every task)."""

    kind: Kind
    root: str = ""
    id_field: str = "_id"
    text_field: str = "text"
    title_field: str | None = "title"
    metadata_fields: tuple[str, ...] | None = None

    def documents(self, block: Any) -> list[Document | DataError]:
        """The block's rows (a pyarrow Table) as documents, or the error that makes a row invalid."""
        out: list[Document | DataError] = []
        if self.kind == "files":
            for path, raw in zip(block.column("path").to_pylist(), block.column("bytes").to_pylist(), strict=True):
                rel = Path(path).resolve().relative_to(Path(self.root).resolve()).as_posix()
                try:
                    out.append(document_from_file(rel, raw.decode("utf-8")))
                except UnicodeDecodeError as exc:
                    out.append(DataFormatError(f"not UTF-8 (byte {exc.start}); re-encode it as UTF-8", source=path))
            return out
        rows: list[Any] = block.column("text").to_pylist() if self.kind == "lines" else block.to_pylist()
        keep = None if self.metadata_fields is None else list(self.metadata_fields)
        for row in rows:
            if self.kind == "lines":
                if not row.strip():
                    continue
                try:
                    row = json.loads(row)
                except json.JSONDecodeError as exc:
                    out.append(DataFormatError(f"not valid JSON: {exc.msg} (column {exc.colno})", source=self.root))
                    continue
            try:
                out.append(document_from_record(
                    row, id_field=self.id_field, text_field=self.text_field, title_field=self.title_field,
                    metadata_fields=keep, source=self.root,
                ))
            except DataFormatError as exc:
                out.append(exc)
        return out


def read_dataset(
    data: Any,
    *,
    format: str = "auto",
    id_field: str = "_id",
    text_field: str = "text",
    title_field: str | None = "title",
    metadata_fields: tuple[str, ...] | None = None,
    read_cpus: float = 0.0,
) -> tuple[Any, ReadSpec]:
    """(Ray Dataset, how its rows become documents) for ``data``.

    Args:
        data: a BEIR folder, a ``.jsonl`` file, a folder of ``.txt``/``.md`` files, a ``.parquet``
            / ``.csv`` file or folder, or a `ray.data.Dataset` (rows with the id/text/title fields).
        format: ``auto`` | ``beir`` | ``jsonl`` | ``dir`` | ``parquet`` | ``csv`` | ``json``
            (``json``: any JSON Ray reads, as table rows).
    """
    import ray.data

    if isinstance(data, ray.data.Dataset):
        return data, ReadSpec("table", "dataset", id_field, text_field, title_field, metadata_fields)
    args = {"num_cpus": read_cpus}
    fields = (id_field, text_field, title_field, metadata_fields)
    if isinstance(data, str) and "://" in data:  # s3://, gs://, hdfs://...: Ray reads it, the format is named
        if format == "jsonl":
            return ray.data.read_text(data, **args), ReadSpec("lines", data, *fields)
        readers_ = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv, "json": ray.data.read_json}
        if format not in readers_:
            raise ConfigError(f"for a URL ({data!r}) name the format: jsonl, parquet, csv or json (got {format!r})")
        return readers_[format](data, **args), ReadSpec("table", data, *fields)
    p = Path(os.fspath(data))
    if format == "auto":
        if p.is_dir():
            if (p / "corpus.jsonl").is_file():
                format = "beir"
            elif any(p.rglob("*.parquet")):
                format = "parquet"
            else:
                format = "dir"
        elif p.is_file():
            format = {".parquet": "parquet", ".csv": "csv"}.get(p.suffix.lower(), "jsonl")
        else:
            raise DataFormatError(f"no such file or folder: {str(p)!r}", source=str(p))
    if not p.exists():
        raise DataFormatError(f"no such file or folder: {str(p)!r}", source=str(p))
    if format == "beir":
        corpus = p / "corpus.jsonl" if p.is_dir() else p
        if not corpus.is_file():
            raise DataFormatError(f"{str(p)!r} is not a BEIR folder: no corpus.jsonl in it", source=str(p))
        return ray.data.read_text(str(corpus), **args), ReadSpec("lines", str(corpus), "_id", "text", "title", None)
    if format == "jsonl":
        return ray.data.read_text(str(p), **args), ReadSpec("lines", str(p), *fields)
    if format == "dir":
        ds = ray.data.read_binary_files(str(p), include_paths=True, file_extensions=["txt", "md"], **args)
        return ds, ReadSpec("files", str(p))
    readers = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv, "json": ray.data.read_json}
    if format in readers:
        return readers[format](str(p), **args), ReadSpec("table", str(p), *fields)
    raise ConfigError(f"format {format!r} is not one of auto, beir, jsonl, dir, parquet, csv, json")
