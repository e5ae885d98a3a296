"""Length-grouped training batches: every row once per epoch, similar lengths, reproducible."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasets import Dataset

from tamis.training._sampler import LengthGroupedBatchSampler, row_lengths


def _dataset(n: int, seed: int = 0) -> Dataset:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    return Dataset.from_dict({
        "anchor": [" ".join(rng.choices(words, k=rng.randint(1, 40))) for _ in range(n)],
        "positive": [" ".join(rng.choices(words, k=rng.randint(1, 10))) for _ in range(n)],
        "label": [float(i % 2) for i in range(n)],
    })


def _padded(batches: list[list[int]], lengths: np.ndarray) -> int:
    return sum(int(lengths[b].max()) * len(b) for b in batches)


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_row_once_per_epoch(drop_last: bool) -> None:
    ds = _dataset(1000)
    s = LengthGroupedBatchSampler(ds, batch_size=32, drop_last=drop_last, valid_label_columns=["label"], seed=3)
    batches = list(s)
    assert len(batches) == len(s)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))
    if drop_last:
        assert all(len(b) == 32 for b in batches) and len(flat) == 1000 - 1000 % 32
    else:
        assert sorted(flat) == list(range(1000))


def test_batches_pad_far_less_than_random_batches() -> None:
    ds = _dataset(3200)
    lengths = row_lengths(ds, exclude=["label"])
    grouped = list(LengthGroupedBatchSampler(ds, batch_size=64, drop_last=False, seed=1))
    perm = np.random.default_rng(1).permutation(len(ds))
    random_batches = [perm[i : i + 64] for i in range(0, len(perm), 64)]
    assert _padded(grouped, lengths) < 0.7 * _padded(random_batches, lengths)
    # and the batches still come in a random order, not sorted by length
    means = [lengths[b].mean() for b in grouped]
    assert means != sorted(means) and means != sorted(means, reverse=True)


def test_the_order_depends_only_on_seed_and_epoch() -> None:
    ds = _dataset(500)
    a = LengthGroupedBatchSampler(ds, batch_size=16, drop_last=False, seed=7)
    b = LengthGroupedBatchSampler(ds, batch_size=16, drop_last=False, seed=7)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(LengthGroupedBatchSampler(ds, batch_size=16, drop_last=False, seed=8)) != list(b)


def test_row_lengths_skip_labels_and_count_list_columns_by_longest_item() -> None:
    ds = Dataset.from_dict({"query": ["ab", "abcd"], "docs": [["x", "xyz"], ["xy"]], "labels": [[1.0, 0.0], [1.0]]})
    assert row_lengths(ds, exclude=["labels"]).tolist() == [2 + 3, 4 + 2]


def test_no_duplicates_keeps_equal_texts_in_different_batches() -> None:
    # 20 rows (fewer than the 25 batches) share one positive text: no batch holds two of them
    n = 400
    ds = Dataset.from_dict({
        "anchor": [f"query {i} " + "x" * (i % 37) for i in range(n)],
        "positive": ["the same answer" if i % 20 == 0 else f"answer {i}" for i in range(n)],
    })
    s = LengthGroupedBatchSampler(ds, batch_size=16, drop_last=False, seed=0, no_duplicates=True)
    batches = list(s)
    assert len(batches) == len(s)
    assert sorted(i for b in batches for i in b) == list(range(n))
    for b in batches:
        texts = [ds[i]["positive"] for i in b]
        assert len(texts) == len(set(texts))
