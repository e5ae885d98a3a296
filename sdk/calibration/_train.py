"""Training a Cosine Adapter's network (torch): binary cross-entropy, Platt start, early stopping.

`train_weights` turns calibration data into the adapter's weights and a `TrainingReport`; it is
what `CosineAdapter.fit` runs. Training is seeded and deterministic on CPU.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tamis._errors import CalibrationError
from tamis.calibration._config import AdapterConfig
from tamis.calibration._data import CalibrationData, holdout_split
from tamis.calibration._features import g_forward, mlp_inputs, softplus_inv
from tamis.calibration._platt import platt

__all__ = ["TrainingReport", "train_weights"]

logger = logging.getLogger("tamis")


@dataclass
class TrainingReport:
    """What `CosineAdapter.fit` did."""

    epochs: int
    best_epoch: int
    train_loss: float
    dev_loss: float
    platt: tuple[float, float]
    seconds: float
    queries: int
    pairs: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form: the fields."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def train_weights(
    train: CalibrationData, dev: CalibrationData | None, cfg: AdapterConfig
) -> tuple[dict[str, np.ndarray], TrainingReport]:
    """The weights of an adapter configured by ``cfg``, trained on ``train`` and early-stopped on ``dev``.

    Args:
        train: candidates and labels of the training queries.
        dev: candidates of other queries for early stopping; None or empty: ``cfg.holdout`` of train
            (all of train when it is too small to split).
        cfg: the adapter's configuration (already validated).

    Returns:
        the weights (``mu``, ``sd``, ``w1``, ``b1``, ``w2``, ``b2``, ``log_gamma``, float64) and the report.

    Raises:
        CalibrationError: no training queries, or no relevant document among their candidates.
    """
    import torch

    if len(train) == 0:
        raise CalibrationError("no training queries")
    if not np.any(train.labels[train.mask] > 0):
        raise CalibrationError(
            "no relevant document among the training candidates: nothing to learn from. Check that "
            "the qrels' document ids are the collection's, or raise the number of candidates"
        )
    t0 = time.perf_counter()
    if dev is None or len(dev) == 0:
        train, dev = holdout_split(train, cfg.holdout, cfg.seed)
        dev = train if dev is None else dev
    dim = train.query_vectors.shape[1]
    x_tr = mlp_inputs(cfg, dim, train.query_vectors, train.window(cfg.window))
    x_dev = mlp_inputs(cfg, dim, dev.query_vectors, dev.window(cfg.window))
    mu = x_tr.mean(axis=0)
    sd = x_tr.std(axis=0)
    sd = np.where(sd > 1e-8, sd, 1.0)

    # a global Platt fit on g(c) (γ = 1) is where training starts
    m = train.mask
    a0, b0 = platt(g_forward(cfg.g, train.scores[m], 1.0), train.labels[m])

    gen = torch.Generator().manual_seed(cfg.seed)
    f_in = x_tr.shape[1]
    bound = 1.0 / math.sqrt(f_in)
    p = {
        "w1": torch.nn.Parameter((torch.rand(cfg.hidden, f_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound),
        "b1": torch.nn.Parameter((torch.rand(cfg.hidden, generator=gen, dtype=torch.float64) * 2 - 1) * bound),
        "w2": torch.nn.Parameter(torch.zeros(2, cfg.hidden, dtype=torch.float64)),
        "b2": torch.nn.Parameter(torch.tensor([softplus_inv(max(a0, 1e-3)), b0], dtype=torch.float64)),
        "log_gamma": torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)),
    }
    trainable = [p["w1"], p["b1"], p["w2"], p["b2"]] + ([p["log_gamma"]] if cfg.g == "power" else [])
    opt = torch.optim.Adam(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def tensors(data: CalibrationData, x: np.ndarray) -> tuple[Any, ...]:
        mask = data.mask
        return (
            torch.from_numpy((x - mu) / sd),
            torch.from_numpy(np.nan_to_num(data.scores.astype(np.float64), nan=0.0)),
            torch.from_numpy(data.labels.astype(np.float64)),
            torch.from_numpy(mask.astype(np.float64)),
        )

    def loss_of(x: Any, s: Any, y: Any, mk: Any) -> Any:
        h = torch.tanh(x @ p["w1"].T + p["b1"])
        out = h @ p["w2"].T + p["b2"]
        a = torch.nn.functional.softplus(out[:, 0:1])
        if cfg.g == "linear":
            g = s
        else:
            u = ((s + 1) / 2).clamp(0.0, 1.0)
            g = {"sqrt": lambda: torch.sqrt(u + 1e-12), "square": lambda: u * u,
                 "power": lambda: (u + 1e-12) ** torch.exp(p["log_gamma"])}[cfg.g]()
        z = a * g + out[:, 1:2]
        bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y, weight=mk, reduction="sum")
        return bce / mk.sum().clamp(min=1.0)

    tr = tensors(train, x_tr)
    dv = tensors(dev, x_dev)
    best_state, best, best_epoch, epoch, train_loss = early_stopping_fit(
        p, opt, loss_of, tr, dv, n=len(train), epochs=cfg.epochs, batch_queries=cfg.batch_queries,
        patience=cfg.patience, gen=gen,
    )
    weights = {k: v.numpy().astype(np.float64) for k, v in best_state.items()}
    weights.update(mu=mu, sd=sd)
    report = TrainingReport(
        epochs=epoch, best_epoch=best_epoch, train_loss=train_loss, dev_loss=best, platt=(a0, b0),
        seconds=time.perf_counter() - t0, queries=len(train), pairs=int(train.mask.sum()),
    )
    logger.info("Cosine Adapter trained: %s", report.to_dict())
    return weights, report


def early_stopping_fit(
    p: dict[str, Any], opt: Any, loss_of: Any, tr: tuple[Any, ...], dv: tuple[Any, ...], *, n: int, epochs: int,
    batch_queries: int, patience: int, gen: Any,
) -> tuple[dict[str, Any], float, int, int, float]:
    """Mini-batches of queries (shuffled by ``gen``), early stopping on the dev loss; the Cosine Adapter's and the
    hybrid adapter's training loop. Returns (best parameters, best dev loss, best epoch, epochs run, last train loss)."""
    import torch

    best_state = {k: v.detach().clone() for k, v in p.items()}
    with torch.no_grad():
        best = float(loss_of(*dv))
    best_epoch, bad, epoch, train_loss = 0, 0, 0, float("nan")
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=gen)
        total, seen = 0.0, 0
        for start in range(0, n, batch_queries):
            idx = order[start : start + batch_queries]
            opt.zero_grad()
            loss = loss_of(*(t[idx] for t in tr))
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        train_loss = total / max(seen, 1)
        with torch.no_grad():
            dev_loss = float(loss_of(*dv))
        if dev_loss < best - 1e-7:
            best, best_epoch, bad = dev_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in p.items()}
        else:
            bad += 1
            if bad >= patience:
                break
    return best_state, best, best_epoch, epoch, train_loss
