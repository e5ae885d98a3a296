"""The demo corpus: the installed standard library's docstrings, and self-supervised calibration pairs from them."""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from tamis.data import Document

__all__ = ["calibration_pairs", "stdlib_docstrings"]

# big, private or side-effect-heavy corners of the stdlib that make poor demo documents
_SKIP_DIRS = {
    "test", "tests", "idlelib", "lib2to3", "ensurepip", "turtledemo", "site-packages", "dist-packages",
    "__pycache__", "pydoc_data", "tkinter", "distutils", "venv", "msilib", "config-3", "encodings",
}


def _walk(stdlib: Path) -> Iterator[Path]:
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if any(part in _SKIP_DIRS or part.startswith(("config-", "_")) and part != "__init__.py" for part in rel.parts):
            continue
        yield path


def _module_name(stdlib: Path, path: Path) -> str:
    parts = list(path.relative_to(stdlib).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def stdlib_docstrings(limit: int | None = None, *, min_chars: int = 60) -> list[Document]:
    """Documents from the docstrings of the installed standard library (parsed, never imported).

    One document per public module, class, function and method with a docstring of at least
    ``min_chars`` characters. Title: the qualified name; text: the docstring; ``metadata``:
    ``module`` and ``kind``. Sorted by module so ``limit`` keeps whole modules.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs: list[Document] = []
    for path in _walk(stdlib):
        module = _module_name(stdlib, path)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        docs.extend(_docs_of(tree, module, module, "module", min_chars))
        if limit is not None and len(docs) >= limit:
            return docs[:limit]
    return docs


def _docs_of(node: ast.AST, qualname: str, module: str, kind: str, min_chars: int) -> Iterator[Document]:
    from tamis.data import Document

    doc = ast.get_docstring(node, clean=True)  # type: ignore[arg-type]
    if doc and len(doc) >= min_chars:
        summary, body = _split_summary(doc)
        if summary and len(body) >= 40:
            # the summary line is kept apart: it is this document's self-supervised calibration query
            yield Document(qualname, body, qualname, {"module": module, "kind": kind, "summary": summary})
        else:
            yield Document(qualname, doc, qualname, {"module": module, "kind": kind})
    for child in getattr(node, "body", []):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not child.name.startswith("_"):
            child_kind = "class" if isinstance(child, ast.ClassDef) else ("method" if kind == "class" else "function")
            yield from _docs_of(child, f"{qualname}.{child.name}", module, child_kind, min_chars)


def _split_summary(doc: str) -> tuple[str, str]:
    """(summary line, rest) of a docstring; the summary is its first paragraph when that is one short line."""
    head, _, rest = doc.partition("\n\n")
    head = " ".join(head.split())
    if not (12 <= len(head) <= 160):
        return "", doc
    return head, rest.strip()


def calibration_pairs(docs: list[Document]) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Self-supervised pairs: a docstring's summary line is a query whose one relevant document is the rest."""
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    seen: set[str] = set()
    for d in docs:
        summary = d.metadata.get("summary")
        if not summary or summary.lower() in seen:  # repeated summaries ("Return a copy.") are ambiguous
            continue
        seen.add(summary.lower())
        queries[f"q:{d.id}"] = summary
        qrels[f"q:{d.id}"] = {d.id: 1}
    return queries, qrels

