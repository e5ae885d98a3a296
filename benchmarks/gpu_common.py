"""Plumbing of ``gpu_check.py``: the JSON report, the time budget, the step runner, and small data helpers.

Nothing here imports tamis or torch, so it works before ``gpu_restore`` has put the packed wheels on the
path. A step is a function ``fn(ctx, io)``; `run_steps` gives each its share of the global deadline, skips
it (with the reason) when too little time is left, records pass / fail / error, and rewrites the report
after every step, so a run killed half-way still leaves its results.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("gpu_check")


def setup_logging(out: Path) -> None:
    """Log to ``out/gpu_check.log`` (everything, tamis' warnings included) and to stderr."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(out / "gpu_check.log", encoding="utf-8"), logging.StreamHandler()):
        handler.setFormatter(fmt)
        root.addHandler(handler)


class Report:
    """The JSON report at ``out/gpu_check.json``, rewritten atomically on every `save`."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.path = out / "gpu_check.json"
        self.t0 = time.monotonic()
        self.data: dict[str, Any] = {**meta, "elapsed_s": 0.0, "steps": {}}

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        steps = self.data["steps"].values()
        self.data["summary"] = {s: [k for k, v in self.data["steps"].items() if v["status"] == s]
                                for s in ("pass", "fail", "error", "skipped", "running") if any(v["status"] == s for v in steps)}
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


@dataclass
class StepIO:
    """What a step writes into: its checks (pass/fail each), its details, and its deadline."""

    record: dict[str, Any]
    deadline: float
    report: Report

    def check(self, name: str, value: Any, ok: bool, target: str) -> bool:
        """Record a pass/fail check: ``value`` against ``target`` (a human-readable criterion)."""
        self.record["checks"][name] = {"value": value, "target": target, "pass": bool(ok)}
        log.info("check %s = %s (%s): %s", name, value, target, "PASS" if ok else "FAIL")
        return bool(ok)

    def detail(self, name: str, value: Any) -> None:
        """Record a measurement; saved at once, so a kill later in the step keeps it."""
        self.record["details"][name] = value
        self.report.save()

    def left(self) -> float:
        """Seconds until this step's deadline (negative when over)."""
        return self.deadline - time.monotonic()


@dataclass
class Step:
    """One step of the check: ``plan_s`` seconds of the budget (None: all that is left), skipped below ``min_s``."""

    key: str
    title: str
    fn: Callable[[Any, StepIO], None]
    plan_s: float | None
    min_s: float


def run_steps(steps: list[Step], ctx: Any, report: Report, deadline: float, reserve_s: float = 5.0) -> None:
    """Run ``steps`` in order within ``deadline`` (a ``time.monotonic()`` value), saving the report after each."""
    for i, step in enumerate(steps):
        now = time.monotonic()
        later = sum(s.min_s for s in steps[i + 1:])
        left = deadline - now - reserve_s
        record: dict[str, Any] = {"title": step.title, "status": "running", "checks": {}, "details": {}}
        report.data["steps"][step.key] = record
        if left < step.min_s:
            record.update(status="skipped", reason=f"out of time: {left:.0f}s left, the step needs {step.min_s:.0f}s")
            log.warning("step %s skipped: %s", step.key, record["reason"])
            report.save()
            continue
        share = left - later if step.plan_s is None else min(step.plan_s, max(step.min_s, left - later))
        io = StepIO(record, now + share, report)
        record["budget_s"] = round(share, 1)
        report.save()
        log.info("== step %s: %s (budget %.0fs)", step.key, step.title, share)
        try:
            step.fn(ctx, io)
        except Exception as exc:  # a step's failure is a result, the next steps still run
            log.error("step %s failed with an error:\n%s", step.key, traceback.format_exc())
            record.update(status="error", error=f"{type(exc).__name__}: {exc}"[:2000])
        else:
            checks = record["checks"].values()
            record["status"] = "pass" if checks and all(c["pass"] for c in checks) else "fail"
        record["seconds"] = round(time.monotonic() - now, 1)
        log.info("== step %s: %s in %.1fs", step.key, record["status"].upper(), record["seconds"])
        report.save()


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of ``fn()``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_qrels(folder: Path, split: str) -> dict[str, dict[str, int]]:
    """query id -> {document id: grade} of ``qrels/<split>.tsv``."""
    qrels: dict[str, dict[str, int]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            parts = line.rstrip("\n").split("\t")
            if i == 0 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def write_subset(src: Path, dst: Path, *, train_queries: int, documents: int, seed: int) -> Path:
    """A BEIR folder with a seeded sample of ``train_queries`` train queries (train qrels only) and their
    documents plus random others, ``documents`` in all."""
    qrels = read_qrels(src, "train")
    qids = sorted(qrels)
    rng = random.Random(seed)
    rng.shuffle(qids)
    keep = {q: qrels[q] for q in sorted(qids[:train_queries])}
    corpus = read_jsonl(src / "corpus.jsonl")
    judged = {d for docs in keep.values() for d in docs}
    others = [d["_id"] for d in corpus if d["_id"] not in judged]
    rng.shuffle(others)
    chosen = judged | set(others[: max(0, documents - len(judged))])
    (dst / "qrels").mkdir(parents=True, exist_ok=True)
    with open(dst / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in corpus if d["_id"] in chosen)
    with open(dst / "queries.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(q) + "\n" for q in read_jsonl(src / "queries.jsonl") if q["_id"] in keep)
    with open(dst / "qrels" / "train.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        fh.writelines(f"{q}\t{d}\t{g}\n" for q, docs in keep.items() for d, g in docs.items())
    return dst


def write_sample(src: Path, dst: Path, *, documents: int, seed: int) -> Path:
    """A BEIR folder with a seeded sample of ``documents`` documents and every split's qrels and queries that
    judge only kept documents (for a quick rehearsal on CPU with the real data)."""
    corpus = read_jsonl(src / "corpus.jsonl")
    random.Random(seed).shuffle(corpus)
    keep = {d["_id"] for d in corpus[:documents]}
    (dst / "qrels").mkdir(parents=True, exist_ok=True)
    with open(dst / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d) + "\n" for d in corpus[:documents])
    judged: set[str] = set()
    for tsv in sorted((src / "qrels").glob("*.tsv")):
        qrels = {q: docs for q, docs in read_qrels(src, tsv.stem).items() if set(docs) <= keep}
        judged.update(qrels)
        with open(dst / "qrels" / tsv.name, "w", encoding="utf-8") as fh:
            fh.write("query-id\tcorpus-id\tscore\n")
            fh.writelines(f"{q}\t{d}\t{g}\n" for q, docs in qrels.items() for d, g in docs.items())
    with open(dst / "queries.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(q) + "\n" for q in read_jsonl(src / "queries.jsonl") if q["_id"] in judged)
    return dst


def ranking_metrics(run: dict[str, list[str]], qrels: dict[str, dict[str, int]], k: int = 10) -> dict[str, float]:
    """Mean nDCG@k (linear gain, as trec_eval) and MRR@k of ranked lists ``run`` over the queries of ``qrels``."""
    ndcg = mrr = 0.0
    for q, rels in qrels.items():
        ranked = run.get(q, [])[:k]
        dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked))
        ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        ndcg += dcg / idcg if idcg else 0.0
        mrr += next((1.0 / (i + 1) for i, d in enumerate(ranked) if rels.get(d, 0) > 0), 0.0)
    n = max(len(qrels), 1)
    return {f"nDCG@{k}": ndcg / n, f"MRR@{k}": mrr / n, "queries": len(qrels)}


@dataclass
class Plan:
    """Sizes of every step: the full H200 run, or tiny for ``--cpu-dry-run``."""

    parity_docs: int = 2000
    speed_short: int = 20_000
    speed_long: int = 2000
    speed_rounds: int = 3
    encode_batch: int = 128
    serve_texts: int = 4096
    serve_clients: tuple[int, ...] = (16, 64)
    serve_batch: int = 128
    serve_rounds: int = 3
    retriever_queries: int = 100
    resume_queries: int = 4000
    resume_documents: int = 8000
    resume_steps: int = 120
    resume_checkpoint: int = 40
    resume_batch: int = 64
    student_batch: int = 128
    teacher_batch: int = 64
    distill_batch: int = 64
    distill_queries: int = 20_000
    candidates: int = 8
    dev_queries: int = 200
    rerank_queries: int = 1000
    teacher_minutes: float = 4.0
    steps_cap: int | None = None  # dry run: stop every training run after this many steps
    shares: dict[str, float] = field(default_factory=lambda: {"encode": 35, "ingest": 50, "serve": 45, "resume": 75})

    @classmethod
    def dry(cls) -> Plan:
        return cls(parity_docs=32, speed_short=64, speed_long=8, speed_rounds=1, encode_batch=16, serve_texts=32,
                   serve_batch=16, serve_rounds=1, retriever_queries=12, resume_queries=40, resume_documents=49, resume_steps=6,
                   resume_checkpoint=2, resume_batch=8, student_batch=8, teacher_batch=8, distill_batch=8,
                   distill_queries=40, candidates=4, dev_queries=6, rerank_queries=12, teacher_minutes=0.2,
                   steps_cap=3, shares={"encode": 30, "ingest": 30, "serve": 45, "resume": 60})


@dataclass
class Ctx:
    """What every step shares: sizes, device, model (None: the packaged MiniLM), data, folders, cached objects."""

    plan: Plan
    device: str
    model: str | None
    data: Path
    work: Path
    out: Path
    seed: int = 12
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def precision(self) -> str:
        """Training precision: bf16 autocast on the GPU (the point of the check), fp32 on CPU."""
        return "bf16" if self.cuda else "fp32"

    @property
    def model_path(self) -> str:
        import tamis

        return self.model or str(tamis.default_model_path())

    def model_args(self) -> list[str]:
        return ["--model", self.model] if self.model else []

    def docs(self) -> list[Any]:
        """The corpus as tamis Documents (loaded once)."""
        if "docs" not in self.state:
            import tamis

            self.state["docs"] = list(tamis.load_beir(self.data))
        return self.state["docs"]

    def encoder(self) -> Any:
        """tamis' encoder on the device with its defaults (float16 on CUDA), loaded once."""
        if "encoder" not in self.state:
            import tamis

            self.state["encoder"] = tamis.load_encoder(self.model, backend="torch", device=self.device)
        return self.state["encoder"]

    def bare(self) -> Any:
        """A bare ``SentenceTransformer`` of the same model and dtype, loaded once."""
        if "bare" not in self.state:
            from sentence_transformers import SentenceTransformer

            st = SentenceTransformer(self.model_path, device=self.device)
            self.state["bare"] = st.half() if self.cuda else st
        return self.state["bare"]
