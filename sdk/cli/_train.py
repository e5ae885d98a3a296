"""`tamis train` and `tamis train-reranker`: fine-tune a bi-encoder, or a cross-encoder to teach it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from rich.table import Table

from tamis._errors import TamisError
from tamis.cli._app import (
    DeviceOpt,
    VerboseOpt,
    _fail,
    _setup_logging,
    app,
    out,
)
from tamis.cli._ray import ActorsOpt, RayBatchOpt, RayOpt, training_workers


def _print_train_result(result: Any, json_out: bool) -> None:
    if json_out:
        out.print_json(json.dumps(result.to_dict(), default=str))
        return
    out.print(
        f"[green]saved[/] {result.kind} ({result.method}) to [bold]{result.path}[/]: {result.examples:,} examples, "
        f"{result.steps:,} steps, {result.seconds / 60:.1f} min"
        + (f", resumed from {Path(result.resumed_from).name}" if result.resumed_from else ""),
        highlight=False,
    )
    if result.teacher_pairs_computed or result.teacher_pairs_reused:
        out.print(f"teacher scores: {result.teacher_pairs_computed:,} computed, {result.teacher_pairs_reused:,} from the cache")
    for chk in getattr(result, "teacher_checks", None) or []:
        where = "dev" if chk.get("on") == "dev" else "held-out pseudo-queries"
        student = f", student {chk['student_ndcg@10']:.4f}" if "student_ndcg@10" in chk else ""
        out.print(f"teacher check ({chk.get('teacher_kind')}, {int(chk['queries'])} {where}): nDCG@10 base "
                  f"{chk['base_ndcg@10']:.4f}, teacher {chk['teacher_ndcg@10']:.4f}{student}", highlight=False)
    if result.dev_after:
        table = Table(title="dev metrics", header_style="bold", box=None)
        for col in ("metric", "before", "after"):
            table.add_column(col, justify="right" if col != "metric" else "left")
        for key, after in result.dev_after.items():
            if key == "queries":
                continue
            before = result.dev_before.get(key)
            table.add_row(key, "" if before is None else f"{before:.4f}", f"{after:.4f}")
        out.print(table)


def _stdout_for_json(json_out: bool) -> Any:
    """With --json, the trainer's own log lines go to stderr so stdout holds only the JSON."""
    import contextlib

    return contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()


TrainOut = Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (new, empty, or an older tamis model).")]
EpochsOpt = Annotated[float | None, typer.Option("--epochs", help="Passes over the training data.")]
BatchOpt = Annotated[int | None, typer.Option("--batch-size", help="Examples per optimiser step.")]
LrOpt = Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Random seed.")]
MaxQueriesOpt = Annotated[int | None, typer.Option("--max-train-queries", help="Use a seeded sample of this many train queries.")]
MaxMinutesOpt = Annotated[float | None, typer.Option("--max-minutes", help="Stop training after this many minutes (the model is saved).")]
MaxStepsOpt = Annotated[int | None, typer.Option("--max-steps", help="Stop after this many optimiser steps.")]
PrecisionOpt = Annotated[str | None, typer.Option("--precision", help="auto | fp32 | fp16 | bf16 (auto: bf16/fp16 on CUDA).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
CheckpointStepsOpt = Annotated[
    int | None, typer.Option("--checkpoint-steps", help="Save a resumable checkpoint every this many steps (default 500).")
]
CheckpointMinutesOpt = Annotated[
    float | None, typer.Option("--checkpoint-minutes", help="Also save one whenever this many minutes passed since the last (default 5).")
]
GroupOpt = Annotated[bool, typer.Option(
    "--group-by-length/--random-batches",
    help="Batch examples of similar length (less padding, faster) or plain random batches.",
)]


@app.command("train-reranker")
def train_reranker_cmd(
    data: Annotated[Path, typer.Argument(help="A BEIR folder with qrels/train.tsv.")],
    out_dir: TrainOut,
    base: Annotated[str | None, typer.Option("--base", help="Encoder checkpoint to start from (default: all-MiniLM-L6-v2 + a fresh head).")] = None,
    loss: Annotated[str | None, typer.Option("--loss", help="bce | listwise.")] = None,
    miner: Annotated[str | None, typer.Option("--miner", help="Bi-encoder that mines hard negatives (default: all-MiniLM-L6-v2).")] = None,
    num_negatives: Annotated[int | None, typer.Option("--num-negatives", help="Hard negatives per query.")] = None,
    random_negatives: Annotated[int | None, typer.Option("--random-negatives", help="Random negatives per query.")] = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    seed: SeedOpt = None,
    max_train_queries: MaxQueriesOpt = None,
    max_minutes: MaxMinutesOpt = None,
    max_steps: MaxStepsOpt = None,
    precision: PrecisionOpt = None,
    checkpoint_steps: CheckpointStepsOpt = None,
    checkpoint_minutes: CheckpointMinutesOpt = None,
    group_by_length: GroupOpt = True,
    device: DeviceOpt = "auto",
    ray: RayOpt = None,
    actors: ActorsOpt = 1,
    ray_batch_size: RayBatchOpt = 1024,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Train a cross-encoder (a teacher for `tamis train --method distill|augmented`) on DATA's train qrels."""
    _setup_logging(verbose)
    from tamis.training import RerankerConfig, config_from, train_reranker

    try:
        cfg = config_from(
            RerankerConfig, base=base, loss=loss, miner=miner, num_negatives=num_negatives,
            random_negatives=random_negatives, epochs=epochs,
            batch_size=batch_size, learning_rate=lr, seed=seed, max_train_queries=max_train_queries,
            max_minutes=max_minutes, max_steps=max_steps, precision=precision, checkpoint_steps=checkpoint_steps, checkpoint_minutes=checkpoint_minutes, device=device,
            group_by_length=group_by_length,
        )
        with _stdout_for_json(json_out):
            workers = training_workers(ray, actors=actors, batch_size=ray_batch_size)
            result = train_reranker(data, out_dir, cfg, workers=workers)
    except TamisError as exc:
        _fail(exc)
        return
    _print_train_result(result, json_out)


@app.command("train")
def train_cmd(
    data: Annotated[Path, typer.Argument(help="A BEIR folder with qrels/train.tsv (and dev.tsv for the model card).")],
    out_dir: TrainOut,
    method: Annotated[str, typer.Option("--method", help="contrastive | distill | contrastive+distill | augmented.")] = "contrastive",
    teacher: Annotated[str | None, typer.Option("--teacher", help=(
        "The teacher (needed by distill, contrastive+distill, augmented): a cross-encoder folder or hub name, "
        "bi-encoder:FOLDER_OR_NAME (a sentence-transformers folder is recognised), an http(s):// /rerank server "
        "(key from $TAMIS_TEACHER_API_KEY), or an ensemble '0.7*A,0.3*B'."))] = None,
    no_labels: Annotated[bool, typer.Option("--no-labels", help=(
        "Label-free domain adaptation (with --method distill): ignore the qrels, learn the teacher's scores on "
        "pseudo-queries made from the corpus."))] = False,
    pseudo_queries: Annotated[str | None, typer.Option("--pseudo-queries", help=(
        "--no-labels: auto | first-sentence | title | body | doc2query | queries (unjudged queries.jsonl)."))] = None,
    doc2query_model: Annotated[str | None, typer.Option(
        "--doc2query-model", help="--pseudo-queries doc2query: a seq2seq query generator (folder or hub name).")] = None,
    teacher_mining: Annotated[bool, typer.Option("--teacher-mining", help=(
        "--no-labels, bi-encoder teacher: also mine candidates with the teacher (its nearest documents)."))] = False,
    distill_weight: Annotated[float | None, typer.Option(
        "--distill-weight", help="contrastive+distill: weight of the KL term next to the contrastive loss.")] = None,
    teacher_cosine_temperature: Annotated[float | None, typer.Option(
        "--teacher-cosine-temperature", help="A bi-encoder teacher's score is cosine / this (default 1).")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Bi-encoder to start from (default: all-MiniLM-L6-v2).")] = None,
    distill_loss: Annotated[str | None, typer.Option("--distill-loss", help="listwise (CADET KL) | margin_mse.")] = None,
    candidates: Annotated[int | None, typer.Option("--candidates", help="distill: documents per candidate list.")] = None,
    infonce_weight: Annotated[float | None, typer.Option(
        "--infonce-weight", help="distill (listwise): weight of the InfoNCE term on the gold pairs (CADET: 0.1).")] = None,
    teacher_scores: Annotated[str | None, typer.Option(
        "--teacher-scores", help="listwise: minmax (CADET, per-list 0..1) | raw (a bi-encoder teacher's cosines).")] = None,
    teacher_temperature: Annotated[float | None, typer.Option(
        "--teacher-temperature", help="listwise: temperature of the teacher softmax (0.3; with raw: 0.05).")] = None,
    num_negatives: Annotated[int | None, typer.Option("--num-negatives", help="contrastive: hard negatives per query.")] = None,
    mini_batch_size: Annotated[int | None, typer.Option("--mini-batch-size", help="Use CachedMNRL with this mini-batch.")] = None,
    directions: Annotated[str | None, typer.Option(
        "--directions", help="Contrastive softmax directions, comma-separated from query_to_doc, doc_to_query, "
        "query_to_query, doc_to_doc; 'all' for the four (GTE's improved contrastive loss).")] = None,
    skip_top: Annotated[int | None, typer.Option("--skip-top", help="False-negative guard without a teacher: skip these top ranks.")] = None,
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters (merged into the saved model).")] = False,
    matryoshka: Annotated[str | None, typer.Option("--matryoshka", help="Matryoshka dimensions, e.g. 384,256,128,64.")] = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    seed: SeedOpt = None,
    max_train_queries: MaxQueriesOpt = None,
    max_minutes: MaxMinutesOpt = None,
    max_steps: MaxStepsOpt = None,
    precision: PrecisionOpt = None,
    checkpoint_steps: CheckpointStepsOpt = None,
    checkpoint_minutes: CheckpointMinutesOpt = None,
    group_by_length: GroupOpt = True,
    device: DeviceOpt = "auto",
    ray: RayOpt = None,
    actors: ActorsOpt = 1,
    ray_batch_size: RayBatchOpt = 1024,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Fine-tune a bi-encoder on DATA: contrastive, distill (from a teacher of any kind; label-free with
    --no-labels), contrastive+distill, or augmented (Augmented SBERT)."""
    _setup_logging(verbose)
    from tamis._errors import ConfigError
    from tamis.training import Direction, TrainConfig, config_from, train_bi_encoder

    try:
        dims = None
        if matryoshka:
            try:
                dims = tuple(int(x) for x in matryoshka.split(",") if x.strip())
            except ValueError as exc:
                raise ConfigError(f"--matryoshka takes comma-separated integers, got {matryoshka!r}") from exc
        dirs = None
        if directions:
            dirs = (get_args(Direction) if directions.strip() == "all"
                    else tuple(x.strip() for x in directions.split(",") if x.strip()))
        cfg = config_from(
            TrainConfig, method=method, teacher=teacher, base=base, distill_loss=distill_loss, candidates=candidates,
            infonce_weight=infonce_weight, labels=False if no_labels else None, pseudo_queries=pseudo_queries,
            doc2query_model=doc2query_model, distill_weight=distill_weight, teacher_mining=teacher_mining or None,
            teacher_cosine_temperature=teacher_cosine_temperature, teacher_scores=teacher_scores,
            teacher_temperature=teacher_temperature, num_negatives=num_negatives, mini_batch_size=mini_batch_size, skip_top=skip_top, lora=lora,
            matryoshka_dims=dims, directions=dirs, epochs=epochs, batch_size=batch_size, learning_rate=lr, seed=seed,
            max_train_queries=max_train_queries, max_minutes=max_minutes, max_steps=max_steps,
            precision=precision, checkpoint_steps=checkpoint_steps, checkpoint_minutes=checkpoint_minutes, device=device, group_by_length=group_by_length,
        )
        with _stdout_for_json(json_out):
            workers = training_workers(ray, actors=actors, batch_size=ray_batch_size)
            result = train_bi_encoder(data, out_dir, cfg, workers=workers)
    except TamisError as exc:
        _fail(exc)
        return
    _print_train_result(result, json_out)
