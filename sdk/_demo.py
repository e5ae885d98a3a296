"""`tamis demo`: the standard library's docstrings, indexed and searched on the embedded engine."""

from __future__ import annotations

import ast
import logging
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tamis._documents import Document

__all__ = ["DEMO_QUESTIONS", "stdlib_docstrings", "run_demo"]

logger = logging.getLogger("tamis")

DEMO_COLLECTION = "tamis-demo-stdlib"

DEMO_QUESTIONS = [
    "How do I parse command line arguments?",
    "compute the SHA-256 digest of some bytes",
    "run a shell command and capture its output",
    "serialize a Python object to a JSON string",
    "send an email over SMTP",
    "match text against a regular expression pattern",
]

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
    doc = ast.get_docstring(node, clean=True)  # type: ignore[arg-type]
    if doc and len(doc) >= min_chars:
        yield Document(qualname, doc, qualname, {"module": module, "kind": kind})
    for child in getattr(node, "body", []):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not child.name.startswith("_"):
            child_kind = "class" if isinstance(child, ast.ClassDef) else ("method" if kind == "class" else "function")
            yield from _docs_of(child, f"{qualname}.{child.name}", module, child_kind, min_chars)


def run_demo(
    out: Any,
    err: Any,
    *,
    path: str | Path | None = None,
    limit: int = 6000,
    backend: str = "auto",
    device: str = "auto",
    progress: Callable[[], Any] | None = None,
    questions: list[str] | None = None,
) -> dict[str, Any]:
    """Index stdlib docstrings and print answers to the demo questions; returns what it did."""
    from tamis._collection import open_collection

    docs = stdlib_docstrings(limit)
    out.print(f"[bold]tamis demo[/]: {len(docs):,} docstrings from the Python standard library")
    with open_collection(DEMO_COLLECTION, path=path, backend=backend, device=device, create=True) as col:
        if progress is not None:
            with progress() as bar:
                task = bar.add_task("indexing", total=None)
                report = col.index(docs, progress=lambda d, t: bar.update(task, completed=d, total=t))
        else:
            report = col.index(docs)
        enc = col.encoder
        out.print(
            f"indexed into collection [bold]{DEMO_COLLECTION}[/] (Qdrant {col.store.kind}) with "
            f"{enc.name} on {getattr(enc, 'backend', '?')}: {report.encoded:,} encoded, "
            f"{report.unchanged:,} unchanged, {report.seconds:.1f}s\n"
        )
        answers: dict[str, list[Any]] = {}
        for q in questions or DEMO_QUESTIONS:
            hits = col.search(q, k=3)
            answers[q] = hits
            out.print(f"[bold cyan]? {q}[/]")
            if not hits:
                out.print("   [yellow]nothing relevant[/]")
            for rank, h in enumerate(hits, 1):
                first = " ".join(h.text.split())[:90]
                out.print(f"   {rank}. [green]{h.score:.3f}[/]  [bold]{h.id}[/]  {first}", highlight=False)
            out.print()
    return {"report": report, "answers": answers}
