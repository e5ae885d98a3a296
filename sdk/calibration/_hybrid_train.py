"""Training the hybrid adapter's network (torch): BCE over both sides' candidates, a global logistic start.

`train_hybrid` is what `HybridAdapter.fit` runs: the MLP's three outputs are a = softplus(o0) > 0 (the
cosine's slope), w = softplus(o1) >= 0 (the BM25 term's weight) and b = o2; it starts at one global
logistic fit of r = sigmoid(a·c + w·ln(1 + s) + b) (its last layer zero, its bias those three) and
stops early on the dev queries. Seeded and deterministic on CPU.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from tamis._errors import CalibrationError
from tamis.calibration._features import softplus_inv
from tamis.calibration._hybrid_config import HybridConfig, hybrid_features
from tamis.calibration._hybrid_data import HybridCalibrationData
from tamis.calibration._train import early_stopping_fit

__all__ = ["train_hybrid"]


def _split(data: HybridCalibrationData, share: float, seed: int) -> tuple[HybridCalibrationData, HybridCalibrationData]:
    if share <= 0 or len(data) < 10:
        return data, data
    perm = np.random.default_rng(seed).permutation(len(data))
    n_dev = max(1, int(round(len(data) * share)))
    return data.subset(np.sort(perm[n_dev:])), data.subset(np.sort(perm[:n_dev]))


def train_hybrid(
    train: HybridCalibrationData, dev: HybridCalibrationData | None, cfg: HybridConfig, dense_default: float
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The weights (``mu``, ``sd``, ``w1``, ``b1``, ``w2``, ``b2``) and a report of the training."""
    import torch

    if len(train) == 0 or not np.any(train.labels[train.mask] > 0):
        raise CalibrationError(
            "no relevant document among the hybrid training candidates: check that the qrels' document ids "
            "are the collection's, or raise the number of candidates"
        )
    t0 = time.perf_counter()
    if dev is None or len(dev) == 0:
        train, dev = _split(train, cfg.holdout, cfg.seed)
    x_tr = hybrid_features(train.dense_window, train.sparse_window)
    mu, sd = x_tr.mean(axis=0), x_tr.std(axis=0)
    sd = np.where(sd > 1e-8, sd, 1.0)

    def tensors(data: HybridCalibrationData) -> tuple[Any, ...]:
        x = (hybrid_features(data.dense_window, data.sparse_window) - mu) / sd
        floor = np.where(np.isnan(data.dense_floor), dense_default, data.dense_floor)
        c = np.where(np.isnan(data.dense), floor[:, None], data.dense)
        sfloor = np.zeros(len(data)) if data.sparse_floor is None or cfg.sparse_default == "zero" else data.sparse_floor
        s = np.log1p(np.maximum(np.where(np.isnan(data.sparse), np.nan_to_num(sfloor, nan=0.0)[:, None], data.sparse), 0.0))
        return tuple(torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))
                     for v in (x, c, s, data.labels, data.mask.astype(np.float64)))

    tr, dv = tensors(train), tensors(dev)
    gen = torch.Generator().manual_seed(cfg.seed)

    # the global start: one (a, w, b) for every query
    g = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        g[0], g[1] = softplus_inv(5.0), softplus_inv(0.5)
    opt_g = torch.optim.LBFGS([g], max_iter=200, line_search_fn="strong_wolfe")

    def global_loss() -> Any:
        z = torch.nn.functional.softplus(g[0]) * tr[1] + torch.nn.functional.softplus(g[1]) * tr[2] + g[2]
        return torch.nn.functional.binary_cross_entropy_with_logits(z, tr[3], weight=tr[4], reduction="sum") / tr[4].sum()

    def closure() -> Any:
        opt_g.zero_grad()
        loss = global_loss()
        loss.backward()
        return loss

    opt_g.step(closure)
    start = g.detach().clone()

    f_in = x_tr.shape[1]
    bound = 1.0 / math.sqrt(f_in)
    p = {
        "w1": torch.nn.Parameter((torch.rand(cfg.hidden, f_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound),
        "b1": torch.nn.Parameter((torch.rand(cfg.hidden, generator=gen, dtype=torch.float64) * 2 - 1) * bound),
        "w2": torch.nn.Parameter(torch.zeros(3, cfg.hidden, dtype=torch.float64)),
        "b2": torch.nn.Parameter(start.clone()),
    }
    opt = torch.optim.Adam(list(p.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def loss_of(x: Any, c: Any, s: Any, y: Any, mk: Any) -> Any:
        out = torch.tanh(x @ p["w1"].T + p["b1"]) @ p["w2"].T + p["b2"]
        a = torch.nn.functional.softplus(out[:, 0:1])
        w = torch.nn.functional.softplus(out[:, 1:2])
        z = a * c + w * s + out[:, 2:3]
        return torch.nn.functional.binary_cross_entropy_with_logits(z, y, weight=mk, reduction="sum") / mk.sum().clamp(min=1.0)

    best_state, best, best_epoch, epoch, _ = early_stopping_fit(
        p, opt, loss_of, tr, dv, n=len(train), epochs=cfg.epochs, batch_queries=cfg.batch_queries,
        patience=cfg.patience, gen=gen,
    )
    weights = {k: v.numpy().astype(np.float64) for k, v in best_state.items()}
    weights.update(mu=mu, sd=sd)
    sp = torch.nn.functional.softplus
    report = {
        "epochs": epoch, "best_epoch": best_epoch, "dev_loss": best, "queries": len(train),
        "pairs": int(train.mask.sum()), "seconds": time.perf_counter() - t0,
        "global": {"a": float(sp(start[0])), "w": float(sp(start[1])), "b": float(start[2])},
    }
    return weights, report
