"""benchmarks/_hybrid_bound.py and _hybrid_paired.py (issue 12): the oracle PR-AUC bound is the best
interleaving (checked by brute force on small cases), and the paired bootstrap is exact where it must be.
Offline; no ../shared data."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from _hybrid_bound import best_fusion_orders, max_pooled_ap, order_labels  # noqa: E402
from _hybrid_paired import paired  # noqa: E402

from tamis.evaluation import average_precision  # noqa: E402


def _brute_force(label_lists, total):
    """The best pooled AP over every interleaving that keeps each query's own order."""
    tags = [i for i, lab in enumerate(label_lists) for _ in lab]
    best = 0.0
    for perm in set(itertools.permutations(tags)):
        pos = [0] * len(label_lists)
        tp = seen = 0
        ap = 0.0
        for q in perm:
            seen += 1
            if label_lists[q][pos[q]]:
                tp += 1
                ap += tp / seen
            pos[q] += 1
        best = max(best, ap / total)
    return best


def test_the_bound_is_the_best_interleaving_with_one_relevant_per_query():
    lists = [[0, 0, 1], [1, 0], [0, 1, 0]]
    assert abs(max_pooled_ap(lists, 3) - _brute_force(lists, 3)) < 1e-12
    # the same as average precision of the best merge, as hybrid.py measures it
    merged = np.array([1, 0, 1, 0, 0, 1], dtype=bool)
    assert abs(max_pooled_ap(lists, 3) - average_precision(-np.arange(6.0), merged)) < 1e-12
    # a relevant document that was not retrieved counts against recall
    assert abs(max_pooled_ap(lists, 4) - _brute_force(lists, 4)) < 1e-12


def test_the_bound_is_an_upper_bound_with_several_relevant_per_query():
    rng = np.random.default_rng(3)
    for _ in range(20):
        lists = [list(rng.integers(0, 2, rng.integers(1, 3))) for _ in range(3)]
        total = sum(map(sum, lists)) + 1
        assert max_pooled_ap(lists, total) >= _brute_force(lists, total) - 1e-12


def test_the_best_fusion_weight_is_chosen_per_query():
    # query 0: the relevant document wins on cosine; query 1: only a BM25 weight brings it to the top
    cosine = np.array([[0.9, 0.5, 0.4], [0.8, 0.7, np.nan]])
    bm25 = np.array([[0.0, 1.0, 2.0], [0.0, 3.0, 0.0]])
    labels = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    mask = ~np.isnan(cosine)
    orders, lam = best_fusion_orders(np.nan_to_num(cosine), bm25, labels, mask, width=3)
    assert [list(o) for o in orders] == [[1, 0, 0], [1, 0]]
    assert lam[0] == 0.0 and lam[1] > 0.0
    assert [list(o) for o in order_labels(np.where(mask, cosine, np.nan), labels, 2)] == [[1, 0], [0, 1]]


def test_paired_bootstrap_of_a_method_against_itself_and_a_better_one():
    ids = [f"q{i}" for i in range(30)]
    qrels = {q: {f"{q}-d1": 1} for q in ids}
    docs = [[f"{q}-d0", f"{q}-d1"] for q in ids]
    worse = (np.tile([0.9, 0.1], (30, 1)), np.tile([0.0, 1.0], (30, 1)), docs)
    same = paired(ids, qrels, worse, worse, resamples=50)
    assert same["ndcg@10 diff"] == 0.0 and same["ndcg@10 diff ci95"] == [0.0, 0.0]
    assert same["pr_auc ratio"] == 1.0
    better = (np.tile([0.1, 0.9], (30, 1)), worse[1], docs)
    res = paired(ids, qrels, better, worse, resamples=50)
    assert res["queries a better / worse"] == [30, 0]
    assert res["ndcg@10 diff ci95"][0] > 0.3 and res["pr_auc diff"] > 0.4
