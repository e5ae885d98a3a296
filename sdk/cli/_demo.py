"""`tamis demo`: the standard library's docstrings, indexed and searched on the embedded engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tamis._errors import TamisError
from tamis.cli._app import (
    BackendOpt,
    DeviceOpt,
    PathOpt,
    VerboseOpt,
    _fail,
    _progress,
    _setup_logging,
    app,
    err,
    out,
)
from tamis.cli._stdlib import calibration_pairs, stdlib_docstrings

if TYPE_CHECKING:  # pragma: no cover
    from tamis.data import Document

__all__ = ["DEMO_QUESTIONS", "OFF_TOPIC_QUESTION", "run_demo"]

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


@app.command()
def demo(
    path: PathOpt = None,
    limit: Annotated[int, typer.Option(help="Most docstrings to index.")] = 6000,
    backend: BackendOpt = "auto",
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """Index the standard library's docstrings into the embedded engine and answer a few questions."""
    _setup_logging(verbose)
    try:
        run_demo(out, err, path=path, limit=limit, backend=backend, device=device, progress=_progress)
    except TamisError as exc:
        _fail(exc)


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
