"""`tamis.calibration.calibrate`, the hold-out split it shares with `CosineAdapter.fit`, and `CosineAdapter.tau`."""

import numpy as np
import pytest

import tamis
from tamis import CalibrationData, CalibrationError, ConfigError, CosineAdapter, Document, FakeEncoder
from tamis.calibration import calibrate
from tamis.calibration._data import holdout_split

FAST = {"epochs": 8, "hidden": 8, "batch_queries": 32}
VOCAB = [f"w{i}" for i in range(300)]


def data(n):
    rng = np.random.default_rng(n)
    scores = np.sort(rng.uniform(-0.2, 0.9, size=(n, 6)), axis=1)[:, ::-1].copy()
    labels = np.zeros((n, 6))
    labels[:, 0] = 1
    return CalibrationData([f"q{i}" for i in range(n)], rng.normal(size=(n, 4)), scores, labels)


def test_holdout_split_is_seeded_disjoint_and_in_row_order():
    d = data(40)
    train, dev = holdout_split(d, 0.25, seed=3)
    assert len(dev) == 10 and len(train) == 30
    assert sorted(train.query_ids + dev.query_ids, key=lambda q: int(q[1:])) == d.query_ids
    assert dev.query_ids == sorted(dev.query_ids, key=lambda q: int(q[1:]))
    again_train, again_dev = holdout_split(d, 0.25, seed=3)
    assert again_dev.query_ids == dev.query_ids and again_train.query_ids == train.query_ids
    assert holdout_split(d, 0.25, seed=4)[1].query_ids != dev.query_ids
    # too few queries, or no share: nothing is held out
    for small, share in ((data(9), 0.5), (d, 0.0)):
        kept, none = holdout_split(small, share, seed=0)
        assert none is None and kept is small
    # at least one query is held out
    assert len(holdout_split(data(10), 0.01, seed=0)[1]) == 1


def test_tau_is_the_given_threshold_or_the_adapters_own():
    d = data(30)
    adapter = CosineAdapter.fit(d, fingerprint="fp", window=4, **FAST)
    with pytest.raises(CalibrationError, match="no threshold"):
        adapter.tau()
    assert adapter.tau(0.25) == 0.25
    adapter.fit_threshold(d, target_recall=0.9)
    assert adapter.tau() == adapter.threshold and adapter.tau(None) == adapter.threshold
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="strictly between 0 and 1"):
            adapter.tau(bad)


@pytest.fixture
def collection(tmp_path):
    rng = np.random.default_rng(0)
    docs, queries, qrels = [], {}, {}
    for i in range(50):
        words = list(rng.choice(VOCAB, 7, replace=False))
        docs.append(Document(f"d{i}", " ".join(words)))
        queries[f"q{i}"] = " ".join(words[:3] + list(rng.choice(VOCAB, 1)))
        qrels[f"q{i}"] = {f"d{i}": 1}
    with tamis.open_collection("docs", encoder=FakeEncoder(dim=64), path=tmp_path / "edge", create=True) as col:
        col.index(docs)
        yield col, queries, qrels


def test_calibrate_is_the_steps_it_names_and_stores_the_adapter(collection):
    col, queries, qrels = collection
    adapter = calibrate(col, queries, qrels, candidates=20, save=False, **FAST)
    assert col.adapter is None
    # the same, step by step: candidates, the seeded hold-out split, training, threshold
    train, dev = holdout_split(CalibrationData.from_collection(col, queries, qrels, k=20), 0.1, seed=0)
    by_hand = CosineAdapter.fit(train, dev, fingerprint=col.encoder.fingerprint, candidates=20, **FAST)
    by_hand.fit_threshold(dev, target_recall=0.9)
    assert adapter.threshold == by_hand.threshold and adapter.threshold_report["target_recall"] == 0.9
    for k in adapter.weights:
        assert np.array_equal(adapter.weights[k], by_hand.weights[k])
    assert adapter.extra["training"]["queries"] == len(train) == 45
    assert set(adapter.extra["baselines"]) == {"platt", "cosine", "zscore"}

    stored = calibrate(col, queries, qrels, candidates=20, target_precision=0.5, **FAST)
    assert isinstance(col.adapter, CosineAdapter) and col.adapter.threshold == stored.threshold
    assert stored.threshold_report["target_precision"] == 0.5


def test_calibrate_with_dev_queries_does_not_split(collection):
    col, queries, qrels = collection
    items = list(queries.items())
    train_q, dev_q = dict(items[:35]), dict(items[35:])
    adapter = calibrate(col, train_q, qrels, dev_q, qrels, candidates=20, save=False, **FAST)
    assert adapter.extra["training"]["queries"] == 35 and adapter.threshold_report["queries"] == 15
    with pytest.raises(ConfigError, match="nope"):
        calibrate(col, train_q, qrels, nope=1)
