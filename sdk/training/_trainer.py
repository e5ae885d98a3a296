"""What both training functions share: sentence-transformers' trainer set up the tamis way (precision,
arguments, length-grouped batches, a time budget, checkpoints that resume), the cache folder, and
the fp32 bi-encoder that a run starts from or mines with.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tamis._errors import ConfigError
from tamis.training._checkpoints import last_checkpoint, safe_checkpoints

__all__ = ["batch_sampler", "cache_folder", "eval_mode", "fit", "load_bi_encoder"]

logger = logging.getLogger("tamis")


# -- the trainer ----------------------------------------------------------------------------------
def _precision(cfg: Any, device: str) -> tuple[bool, bool]:
    """(bf16, fp16) for the trainer."""
    if cfg.precision == "fp32" or not device.startswith("cuda"):
        if cfg.precision in ("fp16", "bf16") and not device.startswith("cuda"):
            raise ConfigError(f"precision {cfg.precision!r} needs a CUDA device; the device is {device!r}")
        return False, False
    if cfg.precision == "bf16":
        return True, False
    if cfg.precision == "fp16":
        return False, True
    import torch

    return (True, False) if torch.cuda.is_bf16_supported() else (False, True)


def batch_sampler(cfg: Any, *, no_duplicates: bool = False) -> Any:
    """The trainer's batch sampler: length-grouped batches (``cfg.group_by_length``) or sentence-transformers'
    own; ``no_duplicates``: no text twice in a batch (in-batch negatives must not be copies of the positive)."""
    from sentence_transformers.base.sampler import BatchSamplers

    from tamis.training._sampler import LengthGroupedBatchSampler

    if cfg.group_by_length:
        return functools.partial(LengthGroupedBatchSampler, no_duplicates=True) if no_duplicates else LengthGroupedBatchSampler
    return BatchSamplers.NO_DUPLICATES if no_duplicates else BatchSamplers.BATCH_SAMPLER


def _trainer_args(cfg: Any, work: Path, device: str, n_examples: int, args_cls: type, **extra: Any) -> Any:
    extra.setdefault("batch_sampler", batch_sampler(cfg))
    bf16, fp16 = _precision(cfg, device)
    steps_per_epoch = max(1, math.ceil(n_examples / cfg.batch_size))
    total = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    return args_cls(
        output_dir=str(work / "checkpoints"),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        warmup_steps=int(cfg.warmup_ratio * total),
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bf16,
        fp16=fp16,
        use_cpu=device == "cpu",
        save_strategy="steps",
        save_steps=cfg.checkpoint_steps,
        save_total_limit=1,
        logging_steps=max(1, min(50, total // 10 or 1)),
        report_to="none",
        disable_tqdm=not cfg.progress,
        dataloader_num_workers=0,
        **extra,
    )


def _time_limit_callback(minutes: float | None) -> list[Any]:
    if minutes is None:
        return []
    from transformers import TrainerCallback

    deadline = time.monotonic() + minutes * 60

    class _StopAtDeadline(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if time.monotonic() >= deadline:
                logger.warning("training stopped at step %d: the %.1f-minute budget is spent", state.global_step, minutes)
                control.should_training_stop = True
            return control

    return [_StopAtDeadline()]


def _checkpoint_clock(minutes: float | None) -> list[Any]:
    """A callback that also saves a checkpoint once ``minutes`` passed since the last one."""
    if minutes is None:
        return []
    from transformers import TrainerCallback

    class _SaveEvery(TrainerCallback):
        last = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if time.monotonic() - self.last >= minutes * 60:
                control.should_save = True
            return control

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            self.last = time.monotonic()
            return control

    return [_SaveEvery()]


def fit(
    trainer_cls: type,
    args_cls: type,
    cfg: Any,
    *,
    model: Any,
    dataset: Any,
    loss: Any,
    work: Path,
    device: str,
    n_examples: int,
    **extra: Any,
) -> tuple[Any, str | None]:
    """Train ``model`` with sentence-transformers' ``trainer_cls`` (checkpoints in JSON + safetensors,
    in ``work``), resuming from the last complete checkpoint there.

    Returns:
        (the trainer's final state, the checkpoint resumed from or None).
    """
    args = _trainer_args(cfg, work, device, n_examples, args_cls, **extra)
    trainer = safe_checkpoints(trainer_cls)(
        model=model, args=args, train_dataset=dataset, loss=loss, callbacks=_time_limit_callback(cfg.max_minutes) + _checkpoint_clock(getattr(cfg, "checkpoint_minutes", None))
    )
    resume = last_checkpoint(work)
    return trainer.train(resume_from_checkpoint=resume), resume


# -- what a run starts from -------------------------------------------------------------------------
def cache_folder(cfg: Any) -> Path:
    """Where teacher scores and corpus embeddings are cached: ``cfg.cache_dir``, else tamis's cache folder."""
    from tamis._settings import cache_dir as default_cache_dir

    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()


def load_bi_encoder(base: str | None, device: str, max_seq_length: int | None) -> Any:
    """The `BiEncoder` ``base`` in float32, to train or to mine with (None: the packaged all-MiniLM-L6-v2)."""
    from tamis.encoders import BiEncoder

    enc = BiEncoder(base, device=device, dtype="float32", max_seq_length=max_seq_length)
    enc.model._tamis_name = enc.name
    return enc


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """``model`` in eval mode (no dropout) for the block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
