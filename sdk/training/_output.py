"""What a training run leaves behind: `TrainResult`, and the model folder itself, which appears
only when complete (the tamis marker file, a model card, an older tamis model replaced whole).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamis._errors import ConfigError
from tamis._version import __version__

__all__ = ["MARKER", "TrainResult", "check_output", "model_meta", "now", "save_model_folder"]

#: the file that makes a folder "a tamis model" (JSON: kind, method, settings, metrics)
MARKER = "tamis_model.json"


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        path: the saved model folder.
        kind: ``"bi-encoder"`` or ``"cross-encoder"``.
        method: the recipe (``contrastive``, ``distill``, ``augmented``, ``bce``, ``listwise``).
        examples: training examples (rows) built.
        steps: optimiser steps taken.
        seconds: wall time of the whole run.
        dev_before, dev_after: dev metrics of the base model and of the trained one (bi-encoders).
        teacher_pairs_computed, teacher_pairs_reused: teacher scores computed / read from the cache.
        teacher_check: dev nDCG@10 / MRR@10 of the base model's top 20 in its own order and re-ranked
            by the teacher, and the trained student's on the same queries (see
            ``TrainConfig.teacher_check_queries``); the first of ``teacher_checks``.
        teacher_checks: every check run (label-free runs with dev qrels: on dev and on held-out
            pseudo-queries; ``on`` says which).
        resumed_from: the checkpoint the run resumed from, if any.
    """

    path: Path
    kind: str
    method: str
    examples: int = 0
    steps: int = 0
    seconds: float = 0.0
    dev_before: dict[str, float] = field(default_factory=dict)
    dev_after: dict[str, float] = field(default_factory=dict)
    teacher_pairs_computed: int = 0
    teacher_pairs_reused: int = 0
    resumed_from: str | None = None
    teacher_check: dict[str, Any] | None = None
    teacher_checks: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-compatible values (``path`` as a string)."""
        d = dict(self.__dict__)
        d["path"] = str(self.path)
        return d


# -- output folders -----------------------------------------------------------------------------
def check_output(out: Path) -> None:
    """An output folder may be absent, empty, or a tamis model (replaced); anything else is refused."""
    if not out.exists():
        if not out.parent.exists():
            raise ConfigError(f"the parent folder of --out {str(out)!r} does not exist; create it first")
        return
    if not out.is_dir():
        raise ConfigError(f"output {str(out)!r} exists and is a file; pass a new folder name")
    if any(out.iterdir()) and not (out / MARKER).is_file():
        raise ConfigError(
            f"output folder {str(out)!r} exists and is not a tamis model (no {MARKER}); refusing to "
            "overwrite it: pass a new folder, or delete it yourself"
        )


def _publish(tmp: Path, out: Path) -> None:
    """Move the complete model ``tmp`` to ``out``; an older tamis model there is replaced."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.tamis-old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_model_folder(out: Path, work: Path, save: Callable[[str], Any], meta: Callable[[], dict[str, Any]]) -> None:
    """``save`` the model into a temporary folder next to ``out``, add the tamis marker and the model
    card (``meta()``, called after saving), publish it as ``out``, then drop the checkpoint folder
    ``work``. On any failure the temporary folder goes and ``out`` is untouched."""
    tmp = out.parent / f".{out.name}.tamis-tmp-{uuid.uuid4().hex[:8]}"
    try:
        save(str(tmp))
        info = meta()
        (tmp / MARKER).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
        (tmp / "README.md").write_text(_card(info), encoding="utf-8")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)


def model_meta(
    kind: str, method: str, cfg: Any, td: Any, result: TrainResult, *, data: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The marker file's content of a trained model folder: what was trained, from what data and base,
    with which settings, and the result (``data``: more about the data; ``extra``: more top-level keys)."""
    return {
        "kind": kind, "method": method, "tamis_version": __version__, "created": now(),
        "data": {
            "path": str(td.root), "split": td.split, "queries": len(td.positives()), "fingerprint": td.fingerprint(),
            **(data or {}),
        },
        "base": cfg.base or "all-MiniLM-L6-v2", **extra, "settings": cfg.to_dict(), "result": result.to_dict(),
    }


def _check_queries(on: str) -> str:
    return "dev queries" if on == "dev" else "held-out pseudo-queries"


def _teacher_name(teacher: Any) -> str:
    if isinstance(teacher, dict):
        return f"**{teacher.get('name')}** ({teacher.get('kind')})"
    return f"**{teacher}**"


def now() -> str:
    """The time now in UTC, ISO 8601 to the second (a model's ``created``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# -- model card -----------------------------------------------------------------------------------
def _card(meta: dict[str, Any]) -> str:
    res = meta["result"]
    lines = [
        "---",
        "library_name: sentence-transformers",
        f"tags: [tamis, {meta['kind']}, {meta['method']}]",
        "---",
        "",
        f"# {meta['kind']} trained with tamis ({meta['method']})",
        "",
        f"Made by tamis {meta['tamis_version']} on {meta['created']} from **{meta['base']}**"
        + (f", teacher {_teacher_name(meta['teacher'])}" if meta.get("teacher") else "") + ".",
        "",
        "## Data",
        "",
        f"- BEIR folder `{meta['data']['path']}`, split `{meta['data']['split']}`: "
        + (f"{meta['data']['train_queries']:,} pseudo-queries ({meta['data']['pseudo_queries']}, no labels), "
           if "pseudo_queries" in meta["data"] else f"{meta['data']['queries']:,} judged queries, ")
        + f"{res['examples']:,} training examples (data fingerprint `{meta['data']['fingerprint']}`).",
    ]
    dev = meta["data"].get("dev")
    if dev:
        lines.append(f"- dev metrics: {dev['queries']:,} dev queries, exact search over {dev['documents']:,} documents "
                     "(the judged ones plus a seeded sample; a sample scores higher than the full corpus).")
    lines += ["", "## Training", "", f"- loss: `{meta.get('loss', meta['method'])}`",
              f"- steps: {res['steps']:,}, wall time {res['seconds'] / 60:.1f} min"
              + (f", resumed from `{Path(res['resumed_from']).name}`" if res.get("resumed_from") else "")]
    if res.get("teacher_pairs_computed") or res.get("teacher_pairs_reused"):
        lines.append(f"- teacher scores: {res['teacher_pairs_computed']:,} computed, {res['teacher_pairs_reused']:,} from the cache")
    for chk in res.get("teacher_checks") or ([res["teacher_check"]] if res.get("teacher_check") else []):
        verdict = "better" if chk["teacher_ndcg@10"] >= chk["base_ndcg@10"] else "WORSE: distilling will likely hurt"
        line = (
            f"- teacher check ({int(chk['queries'])} {_check_queries(chk.get('on', 'dev'))}, the base model's top 20, teacher "
            f"kind {chk.get('teacher_kind', 'cross-encoder')}): nDCG@10 {chk['base_ndcg@10']:.4f} in the base order, "
            f"{chk['teacher_ndcg@10']:.4f} re-ranked by the teacher ({verdict})"
        )
        if "student_ndcg@10" in chk:
            line += f"; the trained student {chk['student_ndcg@10']:.4f}"
            if "kept_of_teacher_gain" in chk:
                line += f" ({100 * chk['kept_of_teacher_gain']:.0f}% of the teacher's gain)"
        lines.append(line)
    lines += ["", "Settings:", "", "```json", json.dumps(meta["settings"], indent=2, default=str), "```"]
    if res.get("dev_before") or res.get("dev_after"):
        lines += ["", "## Dev metrics", "", "| metric | before | after |", "|---|---|---|"]
        for k in res.get("dev_after") or res.get("dev_before"):
            if k == "queries":
                continue
            b = res.get("dev_before", {}).get(k)
            a = res.get("dev_after", {}).get(k)
            lines.append(f"| {k} | {'' if b is None else f'{b:.4f}'} | {'' if a is None else f'{a:.4f}'} |")
    lines += ["", "## Use", "", "```python"]
    if meta["kind"] == "bi-encoder":
        lines += ["from sentence_transformers import SentenceTransformer", "model = SentenceTransformer(\"path/to/this/folder\")"]
    else:
        lines += ["from sentence_transformers import CrossEncoder", "model = CrossEncoder(\"path/to/this/folder\")"]
    lines += ["```", ""]
    return "\n".join(lines)
