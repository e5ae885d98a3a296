"""Resumable training checkpoints in JSON + safetensors only: tamis never unpickles them.

The Hugging Face Trainer (under sentence-transformers' trainers) saves the optimizer, LR scheduler,
gradient scaler, RNG states and training arguments with ``torch.save`` (pickle) and reads them back
with ``torch.load``. `SafeCheckpoints` replaces the few Trainer methods that do so; a
``checkpoint-<step>/`` folder then holds:

    model.safetensors, *.json, tokenizer     the model, as ``model.save_pretrained`` writes it
    trainer_state.json                       the Trainer's step counter and log (written last)
    optimizer.safetensors + optimizer.json   tensors keyed ``state.<param index>.<name>``;
                                             param groups and non-tensor state entries in JSON
    scheduler.json                           the LR scheduler's ``state_dict()``
    rng_state.safetensors + rng_state.json   torch ``cpu`` / ``cuda`` generators; python
                                             ``random`` and numpy states in JSON
    scaler.json                              the fp16 gradient scaler, when there is one

and no ``training_args.bin``. tamis trains in one process on one device (no DeepSpeed, FSDP or
XLA), which is the only Trainer branch these methods replace.

The checkpoints live in a work folder next to the model folder (`work_dir`), kept across interrupted
runs with the same settings; `last_checkpoint` is where a run resumes.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

from tamis._errors import ModelError

__all__ = ["PICKLE_SUFFIXES", "SafeCheckpoints", "last_checkpoint", "pickle_files", "safe_checkpoints", "work_dir"]

logger = logging.getLogger("tamis")

#: what ``torch.save`` / pickle files end with; a checkpoint holding one is never resumed from
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})

OPTIMIZER_JSON, OPTIMIZER_TENSORS = "optimizer.json", "optimizer.safetensors"
SCHEDULER_JSON = "scheduler.json"
RNG_JSON, RNG_TENSORS = "rng_state.json", "rng_state.safetensors"
SCALER_JSON = "scaler.json"


def pickle_files(folder: str | os.PathLike[str]) -> list[str]:
    """Files under ``folder`` that pickle may have written (relative paths, sorted)."""
    root = Path(folder)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in PICKLE_SUFFIXES and p.is_file())


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj), encoding="utf-8")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class SafeCheckpoints:
    """Mixin for sentence-transformers' trainers: checkpoints are written and read as JSON +
    safetensors only (see the module docstring for the files); ``torch.load`` is never called."""

    # set by transformers.Trainer
    args: Any
    model: Any
    processing_class: Any
    optimizer: Any
    lr_scheduler: Any
    accelerator: Any

    # -- saving -------------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        # sentence-transformers' `_save`, less the pickled `training_args.bin`
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        self.model.save_pretrained(output_dir, safe_serialization=True)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if not self.args.should_save:
            return
        import torch
        from safetensors.torch import save_file

        out = Path(output_dir)
        sd = self.optimizer.state_dict()
        tensors: dict[str, Any] = {}
        plain: dict[str, dict[str, Any]] = {}
        for idx, entries in sd["state"].items():
            for name, value in entries.items():
                if torch.is_tensor(value):
                    tensors[f"state.{idx}.{name}"] = value.detach().cpu().contiguous()
                else:
                    plain.setdefault(str(idx), {})[name] = value
        save_file(tensors, str(out / OPTIMIZER_TENSORS))
        _write_json(out / OPTIMIZER_JSON, {"state": plain, "param_groups": sd["param_groups"]})
        _write_json(out / SCHEDULER_JSON, self.lr_scheduler.state_dict())

    def _save_scaler(self, output_dir: str) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and self.args.should_save:
            _write_json(Path(output_dir) / SCALER_JSON, scaler.state_dict())

    def _save_rng_state(self, output_dir: str) -> None:
        import numpy as np
        import torch
        from safetensors.torch import save_file

        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        version, internal, gauss = random.getstate()
        name, keys, pos, has_gauss, cached = np.random.get_state()
        tensors = {"cpu": torch.random.get_rng_state()}
        if torch.cuda.is_available():
            tensors["cuda"] = torch.cuda.random.get_rng_state()
        save_file(tensors, str(out / RNG_TENSORS))
        _write_json(out / RNG_JSON, {
            "python": [version, list(internal), gauss],
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        })

    # -- resuming -----------------------------------------------------------------------------------
    def _load_from_checkpoint(self, resume_from_checkpoint: str, *args: Any, **kwargs: Any) -> None:
        # the model itself loads from model.safetensors; refuse a folder where a .bin could be chosen
        found = pickle_files(resume_from_checkpoint)
        if found:
            raise ModelError(
                f"checkpoint {resume_from_checkpoint!r} holds pickle files ({', '.join(found)}); tamis resumes "
                "only from JSON + safetensors checkpoints: delete the folder to start fresh"
            )
        super()._load_from_checkpoint(resume_from_checkpoint, *args, **kwargs)  # type: ignore[misc]

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        from safetensors.torch import load_file

        folder = Path(checkpoint)
        missing = [n for n in (OPTIMIZER_JSON, OPTIMIZER_TENSORS, SCHEDULER_JSON) if not (folder / n).is_file()]
        if missing:
            raise ModelError(
                f"checkpoint {checkpoint!r} lacks {', '.join(missing)}; it cannot be resumed: delete it to start fresh"
            )
        meta = _read_json(folder / OPTIMIZER_JSON)
        state: dict[int, dict[str, Any]] = {int(idx): dict(entries) for idx, entries in meta["state"].items()}
        for key, tensor in load_file(str(folder / OPTIMIZER_TENSORS), device="cpu").items():
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = tensor
        groups = meta["param_groups"]
        # JSON turns tuples (Adam's betas) into lists; give back the types the optimizer uses
        for saved, live in zip(groups, self.optimizer.param_groups, strict=False):
            for k, v in saved.items():
                if isinstance(v, list) and isinstance(live.get(k), tuple):
                    saved[k] = tuple(v)
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.lr_scheduler.load_state_dict(_read_json(folder / SCHEDULER_JSON))

    def _load_scaler(self, checkpoint: str | None) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if checkpoint is None or scaler is None or not (Path(checkpoint) / SCALER_JSON).is_file():
            return
        scaler.load_state_dict(_read_json(Path(checkpoint) / SCALER_JSON))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        folder = Path(checkpoint)
        if not (folder / RNG_JSON).is_file() or not (folder / RNG_TENSORS).is_file():
            logger.info("checkpoint %s has no RNG state; the resumed run is not bit-for-bit reproducible", checkpoint)
            return
        import numpy as np
        import torch
        from safetensors.torch import load_file

        meta = _read_json(folder / RNG_JSON)
        tensors = load_file(str(folder / RNG_TENSORS), device="cpu")
        version, internal, gauss = meta["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = meta["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.random.set_rng_state(tensors["cpu"])
        if "cuda" in tensors and torch.cuda.is_available():
            torch.cuda.random.set_rng_state(tensors["cuda"])


@functools.cache
def safe_checkpoints(trainer_cls: type) -> type:
    """``trainer_cls`` (a sentence-transformers trainer) with `SafeCheckpoints` mixed in."""
    return type(f"Safe{trainer_cls.__name__}", (SafeCheckpoints, trainer_cls), {"__module__": __name__})


def work_dir(out: Path, key: dict[str, Any]) -> Path:
    """The checkpoint folder next to ``out``, kept across interrupted runs with the same settings.

    The Trainer writes ``checkpoints/checkpoint-<step>/`` in it as JSON + safetensors only
    (`SafeCheckpoints`); it is removed when the model is published.
    """
    work = out.parent / f".{out.name}.tamis-work"
    key_file = work / "run.json"
    if work.exists():
        try:
            same = json.loads(key_file.read_text(encoding="utf-8")) == key
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    if not key_file.exists():
        key_file.write_text(json.dumps(key, sort_keys=True), encoding="utf-8")
    return work


def last_checkpoint(work: Path) -> str | None:
    """The newest complete checkpoint in ``work`` (its ``trainer_state.json`` is written last), or None.

    Checkpoints are JSON + safetensors (`SafeCheckpoints`). One holding pickle files (an older
    tamis wrote ``optimizer.pt`` and the like) is never loaded: the checkpoints are removed with a
    warning and the run starts fresh.
    """
    folder = work / "checkpoints"
    ckpts = sorted(
        (p for p in folder.glob("checkpoint-*")
         if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    if not ckpts:
        return None
    found = pickle_files(ckpts[-1])
    if found:
        logger.warning(
            "checkpoint %s holds pickle files (%s), from an older tamis; tamis does not load pickles, so "
            "training starts fresh", ckpts[-1], ", ".join(found),
        )
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return str(ckpts[-1])
