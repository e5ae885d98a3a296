"""Steps 4 and 5 of ``gpu_check.py``: training on the GPU.

4. A contrastive run with bf16 autocast, killed (SIGKILL, in a child process) after its first checkpoint and
   resumed; its weights must equal those of the same run never interrupted (the CUDA RNG state included in
   the checkpoint). Deterministic algorithms are on in every run, so "equal" means bit for bit; should they
   still differ, a second uninterrupted run measures the GPU's own noise floor.
5. A real teacher: a contrastive student on every WordNet train query, a cross-encoder teacher (mining with
   that student) for most of the time left, a check that the teacher re-ranks the student's top 20 better
   than the student ranks them, distillation into the student, and test nDCG@10 of base / contrastive /
   distilled. The teacher goes back in ``$OUT`` as fp16 parts under 16 MiB (``gpu_restore.py teacher``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from gpu_common import Ctx, StepIO, ranking_metrics, read_jsonl, read_qrels, write_subset
from gpu_restore import export_model

log = logging.getLogger("gpu_check")
CHILD = Path(__file__).resolve().with_name("gpu_train_child.py")


@contextlib.contextmanager
def _deterministic(notes: list[str]) -> Iterator[None]:
    """Deterministic torch algorithms for the block; the ops that have none are noted (warn_only)."""
    import torch

    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        notes.extend(sorted({str(w.message)[:300] for w in caught if "deterministic" in str(w.message)}))
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(next(folder.rglob("model.safetensors"))))


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = _weights(a), _weights(b)
    if wa.keys() != wb.keys():
        return float("inf")
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def _checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints of the run writing ``out`` (``.<out>.tamis-work/``, trainer_state.json written last)."""
    folder = out.parent / f".{out.name}.tamis-work" / "checkpoints"
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name.rsplit("-", 1)[-1]))


def _run_and_kill(ctx: Ctx, spec: Path, out: Path, timeout: float) -> tuple[Path | None, float]:
    """Start the child run; SIGKILL it as soon as a checkpoint is complete. (the checkpoint, seconds)."""
    with open(ctx.work / "train-child.log", "wb") as log_file:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, str(CHILD), str(spec)], stdout=log_file, stderr=subprocess.STDOUT)
        while proc.poll() is None and time.monotonic() - t0 < timeout:
            if _checkpoints(out):
                proc.kill()
                break
            time.sleep(0.005)
        else:
            proc.kill()
        proc.wait()
    done = _checkpoints(out)
    return (done[-1] if done else None), time.monotonic() - t0


def step_resume(ctx: Ctx, io: StepIO) -> None:
    """Step 4: checkpoint, SIGKILL, resume on the device; the same weights as the run never interrupted."""
    from safetensors import safe_open

    import tamis

    p = ctx.plan
    runs = ctx.work / "resume"
    data = write_subset(ctx.data, runs / "data", train_queries=p.resume_queries, documents=p.resume_documents, seed=ctx.seed)
    cfg = dict(base=ctx.model, method="contrastive", max_steps=p.resume_steps, checkpoint_steps=p.resume_checkpoint,
               batch_size=p.resume_batch, learning_rate=5e-5, precision=ctx.precision, device=ctx.device, seed=ctx.seed,
               dev_queries=0, progress=False, cache_dir=str(ctx.work / "cache"))
    io.detail("config", cfg)
    notes: list[str] = []
    t0 = time.monotonic()
    with _deterministic(notes):
        ref = tamis.train_bi_encoder(data, runs / "reference", tamis.TrainConfig(**cfg))
    io.detail("reference", {"steps": ref.steps, "seconds": round(time.monotonic() - t0, 1), "precision": ctx.precision})

    out = runs / "interrupted"
    spec = runs / "spec.json"
    spec.write_text(json.dumps({"data": str(data), "out": str(out), "config": cfg}), encoding="utf-8")
    ckpt, secs = _run_and_kill(ctx, spec, out, timeout=max(30.0, io.left() - 20))
    io.detail("killed", {"checkpoint": ckpt.name if ckpt else None, "child_seconds": round(secs, 1)})
    if ckpt is None:
        io.detail("child_log_tail", (ctx.work / "train-child.log").read_text(errors="replace")[-3000:])
    if not io.check("killed_after_a_checkpoint", ckpt.name if ckpt else None, ckpt is not None and not out.exists(),
                    "SIGKILL after a complete checkpoint, before the end"):
        return
    with safe_open(str(ckpt / "rng_state.safetensors"), framework="pt") as fh:
        rng_keys = sorted(fh.keys())
    io.detail("checkpoint_rng_states", rng_keys)
    if ctx.cuda:
        io.check("cuda_rng_state_saved", rng_keys, "cuda" in rng_keys, "the checkpoint holds the CUDA generator")
    t0 = time.monotonic()
    with _deterministic(notes):
        res = tamis.train_bi_encoder(data, out, tamis.TrainConfig(**cfg))
    io.detail("resumed", {"resumed_from": res.resumed_from, "steps": res.steps, "seconds": round(time.monotonic() - t0, 1)})
    io.check("resumed_from_the_checkpoint", Path(res.resumed_from or "").name, Path(res.resumed_from or "").name == ckpt.name,
             f"resumes from {ckpt.name}")
    diff = _max_diff(runs / "reference", out)
    io.detail("nondeterministic_ops", notes)
    if diff == 0.0:
        io.check("same_weights_as_uninterrupted", 0.0, True, "max |delta| = 0 (bit for bit)")
        return
    floor = None
    if io.left() > (ref.seconds or 30) + 5:
        with _deterministic(notes):
            tamis.train_bi_encoder(data, runs / "reference-2", tamis.TrainConfig(**cfg))
        floor = _max_diff(runs / "reference", runs / "reference-2")
    io.detail("noise_floor_max_abs_diff", floor)
    io.check("same_weights_as_uninterrupted", diff, floor is not None and 0 < floor and diff <= 2 * floor,
             "bit for bit, or within 2x the difference between two uninterrupted runs")


# -- step 5 -------------------------------------------------------------------------------------------------
def _summary(result: Any, seconds: float) -> dict[str, Any]:
    d = result.to_dict()
    return {k: d.get(k) for k in ("path", "method", "examples", "steps", "dev_before", "dev_after", "teacher_check",
                                  "teacher_pairs_computed")} | {"seconds": round(seconds, 1)}


def _rerank_check(ctx: Ctx, io: StepIO, student: Path, teacher: Path) -> None:
    """nDCG@10 / MRR@10 of the student's top 20 on test queries, in its order and re-ranked by the teacher."""
    from sentence_transformers import CrossEncoder

    import tamis

    qrels = {q: r for q, r in sorted(read_qrels(ctx.data, "test").items())[: ctx.plan.rerank_queries]}
    queries = {q["_id"]: q["text"] for q in read_jsonl(ctx.data / "queries.jsonl") if q["_id"] in qrels}
    docs = ctx.docs()
    enc = tamis.load_encoder(str(student), backend="torch", device=ctx.device)
    dv = enc.encode([d.embed_text for d in docs], batch_size=256)
    qids = sorted(queries)
    qv = enc.encode([queries[q] for q in qids], kind="query", batch_size=256)
    top = np.argsort(-(qv @ dv.T), axis=1)[:, :20]
    run = {q: [docs[j].id for j in row] for q, row in zip(qids, top, strict=True)}
    ce = CrossEncoder(str(teacher), device=ctx.device)
    pairs = [(queries[q], docs[j].embed_text) for q, row in zip(qids, top, strict=True) for j in row]
    scores = np.asarray(ce.predict(pairs, batch_size=256, show_progress_bar=False)).reshape(len(qids), -1)
    rerun = {q: [run[q][i] for i in np.argsort(-s, kind="stable")] for q, s in zip(qids, scores, strict=True)}
    before, after = ranking_metrics(run, qrels), ranking_metrics(rerun, qrels)
    io.detail("rerank_top20", {"queries": len(qids), "student": before, "teacher": after})
    io.check("teacher_beats_student_top20", round(after["nDCG@10"] - before["nDCG@10"], 4),
             after["nDCG@10"] > before["nDCG@10"], "nDCG@10 re-ranked by the teacher > the student's own order")


def _evaluate(ctx: Ctx, io: StepIO, name: str, model: str | None) -> None:
    import tamis

    t0 = time.monotonic()
    m = tamis.evaluate_model(model, ctx.data, split="test", device=ctx.device, batch_size=256)
    io.record["details"].setdefault("test", {})[name] = {k: round(v, 4) for k, v in m.items()} | {
        "seconds": round(time.monotonic() - t0, 1)}
    io.detail("test", io.record["details"]["test"])


def step_teacher(ctx: Ctx, io: StepIO) -> None:
    """Step 5: contrastive student, cross-encoder teacher, re-rank check, distillation, test nDCG@10."""
    import tamis

    p, models = ctx.plan, ctx.work / "models"
    models.mkdir(parents=True, exist_ok=True)
    common = dict(device=ctx.device, precision=ctx.precision, progress=False, cache_dir=str(ctx.work / "cache"),
                  seed=ctx.seed, dev_queries=p.dev_queries, dev_documents=10_000, max_steps=p.steps_cap,
                  encode_batch_size=256 if ctx.cuda else 32)

    def minutes(share: float, reserve: float, cap: float = 1e9) -> float:
        """A training loop's cap: ``share`` of the step's time left after ``reserve`` seconds (GPU only) for the rest."""
        return max(0.1, min(cap, share * (io.left() - (reserve if ctx.cuda else 0.0))) / 60)

    student = models / "contrastive"
    t0 = time.monotonic()
    res = tamis.train_bi_encoder(ctx.data, student, tamis.TrainConfig(
        base=ctx.model, method="contrastive", batch_size=p.student_batch, learning_rate=5e-5,
        max_minutes=minutes(0.12, 80.0, cap=60.0), **common))
    io.detail("contrastive", _summary(res, time.monotonic() - t0))

    teacher = models / "teacher"
    t0 = time.monotonic()
    res = tamis.train_reranker(ctx.data, teacher, tamis.RerankerConfig(
        base=ctx.model, miner=str(student), batch_size=p.teacher_batch, learning_rate=5e-5, num_negatives=5,
        random_negatives=2, max_minutes=minutes(0.7, 80.0, cap=p.teacher_minutes * 60), **common))
    io.detail("teacher", _summary(res, time.monotonic() - t0))
    io.detail("teacher_export", export_model(teacher, ctx.out, "teacher"))

    _rerank_check(ctx, io, student, teacher)
    _evaluate(ctx, io, "base", ctx.model)
    _evaluate(ctx, io, "contrastive", str(student))

    distilled = models / "distilled"
    t0 = time.monotonic()
    res = tamis.train_bi_encoder(ctx.data, distilled, tamis.TrainConfig(
        base=str(student), method="distill", teacher=str(teacher), candidates=p.candidates, mining_depth=30,
        batch_size=p.distill_batch, learning_rate=2e-5, max_train_queries=p.distill_queries,
        max_minutes=minutes(1.0, 60.0), **common))
    io.detail("distilled", _summary(res, time.monotonic() - t0))
    _evaluate(ctx, io, "distilled", str(distilled))
    test = io.record["details"]["test"]
    io.detail("ndcg@10", {k: v["nDCG@10"] for k, v in test.items()})
