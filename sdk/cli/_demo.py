"""`tamis demo`: the standard library's docstrings, indexed and searched on the embedded engine."""

from __future__ import annotations

import ast
import logging
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tamis.data import Document

__all__ = ["DEMO_QUESTIONS", "OFF_TOPIC_QUESTION", "calibration_pairs", "stdlib_docstrings", "run_demo"]

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
#: a question the standard library has nothing to say about: a calibrated search answers it with nothing
OFF_TOPIC_QUESTION = "What is the boiling point of ethanol?"

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
    encoder: Any = None,
    calibrate: bool = True,
    target_recall: float = 0.8,
    calibration_queries: int = 3000,
) -> dict[str, Any]:
    """Index stdlib docstrings, calibrate a Cosine Adapter on self-supervised pairs, answer questions.

    The calibration pairs are the docstrings' own summary lines (queries) and bodies (documents);
    a held-out fifth of them sets the threshold. Answers come with their probability of relevance,
    and the off-topic question comes back empty.
    """
    from tamis.collection import open_collection

    docs = stdlib_docstrings(limit)
    out.print(f"[bold]tamis demo[/]: {len(docs):,} docstrings from the Python standard library")
    opts: dict[str, Any] = {"encoder": encoder} if encoder is not None else {"backend": backend, "device": device}
    with open_collection(DEMO_COLLECTION, path=path, create=True, **opts) as col:
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
        adapter = None
        if calibrate:
            adapter = _calibrate(col, docs, out, err, target_recall=target_recall, most=calibration_queries,
                                 fresh=report.encoded > 0)
        answers: dict[str, list[Any]] = {}
        for q in [*(questions or DEMO_QUESTIONS), *([OFF_TOPIC_QUESTION] if adapter is not None else [])]:
            hits = col.search(q, k=3)
            answers[q] = hits
            out.print(f"[bold cyan]? {q}[/]")
            if not hits:
                out.print("   [yellow]nothing relevant[/] (no document reaches the relevance threshold)")
            for rank, h in enumerate(hits, 1):
                first = " ".join((h.metadata.get("summary") or h.text).split())[:90]
                rel = "" if h.relevance is None else f"  p={h.relevance:.2f}"
                out.print(f"   {rank}. [green]{h.score:.3f}{rel}[/]  [bold]{h.id}[/]  {first}", highlight=False)
            out.print()
    return {"report": report, "answers": answers, "adapter": adapter}


def _calibrate(col: Any, docs: list[Document], out: Any, err: Any, *, target_recall: float, most: int, fresh: bool) -> Any:
    """Calibrate on summary-line pairs (reusing the stored adapter when the corpus did not change)."""
    import hashlib

    existing = col.adapter
    if existing is not None and not fresh and existing.extra.get("demo_target_recall") == target_recall:
        out.print(f"calibration: reusing the stored Cosine Adapter (τ={existing.threshold:.3f})\n")
        return existing
    queries, qrels = calibration_pairs(docs)
    # a deterministic sample, four fifths to train, one fifth to set the threshold
    ids = sorted(queries, key=lambda q: hashlib.sha1(q.encode()).hexdigest())[:most]
    n_dev = max(1, len(ids) // 5)
    dev = {q: queries[q] for q in ids[:n_dev]}
    train = {q: queries[q] for q in ids[n_dev:]}
    if len(train) < 10:
        out.print("[yellow]too few docstrings with a summary line to calibrate; answers are not filtered[/]\n")
        return None
    with err.status(f"calibrating on {len(train):,} self-supervised pairs (summary line -> docstring) ..."):
        adapter = col.calibrate(train, qrels, dev, qrels, target_recall=target_recall, save=False)
        adapter.extra["demo_target_recall"] = target_recall
        col.set_adapter(adapter)
    t, tr = adapter.threshold_report, adapter.extra["training"]
    out.print(
        f"calibrated a Cosine Adapter on {tr['queries']:,} pairs in {tr['seconds']:.1f}s: threshold "
        f"p >= {t['threshold']:.3f} keeps {t['recall']:.0%} of the held-out answers, "
        f"{t['kept_per_query']:.1f} documents per question on average ({t['empty_share']:.0%} answered empty)\n"
    )
    return adapter
