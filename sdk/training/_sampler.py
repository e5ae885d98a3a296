"""Length-grouped batches for training: most of the compute saved is padding.

sentence-transformers pads every text column of a batch to its longest text. With short, uneven
texts (definitions, questions, titles) a random batch of 64 pads to about three times the mean
length, and the CPU or GPU spends most of each step on padding (WordNet pairs: 14 tokens on average,
~43 per column after padding; ~25 with these batches). `LengthGroupedBatchSampler`
draws a random pool of ``pool_batches`` batches, sorts the pool by length, cuts it into batches and
shuffles the batch order: batches stay random samples of the data (in-batch negatives come from
a random pool of thousands of examples), but texts in a batch have similar lengths.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from sentence_transformers.base.sampler import DefaultBatchSampler

__all__ = ["LengthGroupedBatchSampler", "row_lengths"]


def row_lengths(dataset: Any, exclude: list[str] | None = None) -> np.ndarray:
    """Characters per row: the sum over text columns; a column holding lists counts its longest item
    (a listwise row is scored as (query, item) pairs, each padded to the longest pair)."""
    skip = set(exclude or ())
    total = np.zeros(len(dataset), dtype=np.int64)
    for col in dataset.column_names:
        if col in skip:
            continue
        values = dataset[col]
        if not values:
            continue
        first = values[0]
        if isinstance(first, str):
            total += np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
        elif isinstance(first, (list, tuple)) and first and isinstance(first[0], str):
            total += np.fromiter((max((len(x) for x in v), default=0) for v in values), dtype=np.int64,
                                 count=len(values))
    return total


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Batches of similar-length rows, drawn from random pools; deterministic per (seed, epoch).

    Pass the class as ``batch_sampler`` to sentence-transformers' training arguments. Every row
    comes exactly once per epoch; only the last batch of an epoch can be short (dropped with
    ``drop_last``). The order depends only on ``seed`` and the epoch, so a resumed run skips
    exactly the batches it has done.

    Args:
        dataset, batch_size, drop_last, valid_label_columns, generator, seed: as for
            sentence-transformers' ``DefaultBatchSampler`` (label columns are not texts).
        pool_batches: batches per sorted pool (larger: less padding, less random batches).
        no_duplicates: no text twice in a batch (an in-batch "negative" equal to the positive
            would be a false negative for MultipleNegativesRankingLoss).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: Any = None,
        seed: int = 0,
        pool_batches: int = 50,
        no_duplicates: bool = False,
    ) -> None:
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                         valid_label_columns=valid_label_columns, generator=generator, seed=seed)
        self.lengths = row_lengths(dataset, exclude=valid_label_columns)
        self.pool = batch_size * max(1, pool_batches)
        self.texts: list[frozenset[str]] | None = None
        if no_duplicates:
            skip = set(valid_label_columns or ())
            cols = [dataset[c] for c in dataset.column_names if c not in skip]
            cols = [c for c in cols if c and isinstance(c[0], str)]
            self.texts = [frozenset(row) for row in zip(*cols, strict=True)] if cols else None

    def _ordered(self, rng: np.random.Generator) -> list[int]:
        """Rows in random pools, each pool sorted by length."""
        order = rng.permutation(len(self.lengths))
        out: list[int] = []
        for start in range(0, len(order), self.pool):
            pool = order[start : start + self.pool]
            out.extend(pool[np.argsort(self.lengths[pool], kind="stable")].tolist())
        return out

    def _batches(self, rows: list[int]) -> list[list[int]]:
        """Consecutive batches; with ``no_duplicates`` a row sharing a text with the batch being
        filled waits for a later one (at the very end, it is traded into an earlier batch)."""
        if self.texts is None:
            return [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        batches: list[list[int]] = []
        waiting: list[int] = []
        batch: list[int] = []
        seen: set[str] = set()
        stream = iter(rows)
        while True:
            placed = False
            for i, r in enumerate(waiting):  # rows that clashed earlier go first
                if not (self.texts[r] & seen):
                    del waiting[i]
                    placed = True
                    break
            else:
                r = next(stream, -1)
                if r < 0:
                    break
                if self.texts[r] & seen:
                    waiting.append(r)
                    continue
                placed = True
            if placed:
                batch.append(r)
                seen |= self.texts[r]
                if len(batch) == self.batch_size:
                    batches.append(batch)
                    batch, seen = [], set()
        for r in waiting:  # each clashes with the batch being filled: trade it into an earlier batch
            if self.texts[r] & seen:
                r = self._swap(r, seen, batches)
            batch.append(r)
            seen |= self.texts[r]
            if len(batch) == self.batch_size:
                batches.append(batch)
                batch, seen = [], set()
        if batch:
            batches.append(batch)
        return batches

    def _swap(self, r: int, seen: set[str], batches: list[list[int]]) -> int:
        """Put ``r`` into an earlier batch it does not clash with, in exchange for a row of that
        batch that does not clash with ``seen``; the row to place instead (``r`` if none)."""
        assert self.texts is not None
        for b in reversed(batches):
            texts = set().union(*(self.texts[x] for x in b))
            if self.texts[r] & texts:
                continue
            for j, x in enumerate(b):
                if not (self.texts[x] & seen):
                    b[j] = r
                    return x
        return r  # unavoidable (one text in more rows than there are batches)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = self._batches(self._ordered(rng))
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]  # at most one: the tail
        for i in rng.permutation(len(full)):
            yield full[i]
        if short and not self.drop_last:
            yield short[0]

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
