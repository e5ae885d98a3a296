"""The Cosine Adapter: model, training, threshold, persistence, and calibrated search through the SDK."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tamis
from tamis import (
    AdapterConfig,
    CalibrationData,
    CalibrationError,
    ConfigError,
    CosineAdapter,
    Document,
    FakeEncoder,
    ModelMismatchError,
)
from tamis.calibration import platt, score_features

VOCAB = [f"w{i}" for i in range(400)]
OFF_TOPIC = "What is the boiling point of ethanol?"
FAST = {"epochs": 8, "hidden": 8, "batch_queries": 32}


def synthetic(n=80, seed=0):
    """Documents of 7 random words; query i shares 3 words with document i (its one relevant document)."""
    rng = np.random.default_rng(seed)
    docs, queries, qrels = [], {}, {}
    for i in range(n):
        words = list(rng.choice(VOCAB, 7, replace=False))
        docs.append(Document(f"d{i}", " ".join(words), metadata={"n": i}))
        queries[f"q{i}"] = " ".join(words[:3] + list(rng.choice(VOCAB, 1)))
        qrels[f"q{i}"] = {f"d{i}": 1}
    return docs, queries, qrels


def split(queries, at):
    items = list(queries.items())
    return dict(items[:at]), dict(items[at:])


def random_adapter(seed=0, *, g="linear", dim=16, use_embedding=True, use_score_features=True, threshold=0.5):
    """An adapter with random weights (any weights must give a monotone, invertible map)."""
    rng = np.random.default_rng(seed)
    cfg = AdapterConfig(g=g, use_embedding=use_embedding, use_score_features=use_score_features, hidden=5, window=4)
    f = cfg.input_dim(dim)
    w = {
        "mu": rng.normal(size=f) * 0.1, "sd": rng.uniform(0.5, 2, size=f), "w1": rng.normal(size=(5, f)),
        "b1": rng.normal(size=5), "w2": rng.normal(size=(2, 5)) * 2, "b2": rng.normal(size=2) * 3,
        "log_gamma": rng.normal(size=1) * 0.5,
    }
    return CosineAdapter(cfg, w, fingerprint="fp", dim=dim, threshold=threshold)


@pytest.fixture(scope="module")
def trained():
    """(adapter, dev data) trained on synthetic candidates, no store needed."""
    rng = np.random.default_rng(1)
    n, k, dim = 120, 20, 16
    qv = rng.normal(size=(n, dim)).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    scores = np.sort(rng.uniform(-0.2, 0.6, size=(n, k)), axis=1)[:, ::-1].copy()
    labels = np.zeros((n, k))
    hit = rng.random(n) < 0.8
    scores[hit, 0] += 0.3  # the relevant document stands out
    labels[hit, 0] = 1
    data = CalibrationData([f"q{i}" for i in range(n)], qv, scores, labels)
    train, dev = data.subset(range(80)), data.subset(range(80, n))
    adapter = CosineAdapter.fit(train, dev, fingerprint="fp", candidates=k, **FAST)
    adapter.fit_threshold(dev, target_recall=0.9)
    return adapter, dev


# -- the model ---------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    g=st.sampled_from(["linear", "sqrt", "square", "power"]),
    cosines=st.lists(st.floats(-1, 1, allow_nan=False), min_size=2, max_size=30),
    tau=st.floats(0.01, 0.99),
)
def test_relevance_never_decreases_in_cosine_and_inverts(seed, g, cosines, tau):
    adapter = random_adapter(seed, g=g, threshold=tau)
    rng = np.random.default_rng(seed)
    qv = rng.normal(size=(1, 16))
    window = np.sort(rng.uniform(-1, 1, size=(1, 4)))[:, ::-1]
    c = np.sort(np.asarray(cosines, dtype=np.float32))[None, :]
    r = adapter.relevance(c, qv, window)[0]
    assert np.all(np.diff(r) >= -1e-12), (c, r)
    assert np.all((r >= 0) & (r <= 1))
    cut = float(adapter.cutoffs(qv, window)[0])
    far = np.abs(c[0] - cut) > 1e-5
    assert np.array_equal((r >= tau)[far], (c[0] >= cut)[far])


def test_score_features_handle_short_lists():
    f = score_features(np.array([[0.9, 0.7, np.nan], [np.nan, np.nan, np.nan], [0.5, 0.5, 0.5]]))
    assert f.shape == (3, 6) and np.all(np.isfinite(f))
    assert f[0, 0] == pytest.approx(0.9) and f[0, 1] == pytest.approx(0.2) and f[0, 2] == pytest.approx(0.8)
    assert np.all(f[1] == 0)


def test_platt_recovers_a_known_logistic_map():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(6 * x - 2)))).astype(float)
    a, b = platt(x, y)
    assert a == pytest.approx(6, rel=0.1) and b == pytest.approx(-2, rel=0.1)


def test_config_is_typed_and_strict():
    assert "g" in AdapterConfig.model_fields and AdapterConfig.model_fields["window"].description
    with pytest.raises(ConfigError, match="g"):
        CosineAdapter.fit(CalibrationData(["q"], np.ones((1, 2)), [[0.5]], [[1.0]]), fingerprint="x", g="cubic")
    with pytest.raises(ConfigError, match="nope"):
        CosineAdapter.fit(CalibrationData(["q"], np.ones((1, 2)), [[0.5]], [[1.0]]), fingerprint="x", nope=1)
    with pytest.raises(ConfigError, match="at least one input"):
        CosineAdapter.fit(
            CalibrationData(["q"], np.ones((1, 2)), [[0.5]], [[1.0]]), fingerprint="x",
            use_embedding=False, use_score_features=False,
        )


# -- training and threshold ------------------------------------------------------------------------------
def test_training_beats_cosine_and_is_deterministic(trained):
    adapter, dev = trained
    from tamis.evaluation import average_precision

    m = dev.mask
    assert average_precision(adapter.predict(dev)[m], dev.labels[m]) >= average_precision(dev.scores[m], dev.labels[m]) - 0.02
    rep = adapter.extra["training"]
    assert rep["queries"] == 80 and rep["epochs"] >= 1
    train = CalibrationData(dev.query_ids, dev.query_vectors, dev.scores, dev.labels)
    a1 = CosineAdapter.fit(train, fingerprint="fp", **FAST)
    a2 = CosineAdapter.fit(train, fingerprint="fp", **FAST)
    for k in a1.weights:
        assert np.array_equal(a1.weights[k], a2.weights[k])
    a3 = CosineAdapter.fit(train, fingerprint="fp", seed=1, **FAST)
    assert not np.array_equal(a1.weights["w1"], a3.weights["w1"])


def test_full_score_list_features(trained):
    _, dev = trained
    adapter = CosineAdapter.fit(dev, fingerprint="fp", score_list="full", window=5, **FAST)
    assert adapter.weights["w1"].shape == (8, 6 + 5 + 3)
    adapter.fit_threshold(dev, target_recall=0.9)
    assert np.all(np.diff(adapter.relevance(np.sort(dev.scores, axis=1), None, dev.window(5)), axis=1) >= -1e-12)
    # a short score list (fewer candidates than the window) is padded, not an error
    assert adapter.cutoffs(None, dev.window(5)[:, :2]).shape == (len(dev),)


def test_fit_threshold_targets(trained):
    adapter, dev = trained
    adapter = CosineAdapter.from_dict(adapter.to_dict())
    rep = adapter.fit_threshold(dev, target_recall=0.75)
    assert rep.recall >= 0.75 and adapter.threshold == rep.threshold and 0 < rep.threshold < 1
    rep = adapter.fit_threshold(dev, target_precision=0.6)
    assert rep.precision >= 0.6
    rep = adapter.fit_threshold(dev, target_recall=0.8, method="conformal")
    assert rep.method == "conformal" and rep.recall >= 0.75
    with pytest.raises(ConfigError, match="exactly one"):
        adapter.fit_threshold(dev, target_recall=0.9, target_precision=0.9)
    with pytest.raises(ConfigError, match="exactly one"):
        adapter.fit_threshold(dev)
    with pytest.raises(CalibrationError, match="calibration queries"):
        adapter.fit_threshold(dev.subset(range(3)), target_recall=0.99, method="conformal")


def test_no_positive_is_a_calibration_error():
    data = CalibrationData(["a", "b"], np.ones((2, 3)), [[0.5, 0.4], [0.3, 0.2]], np.zeros((2, 2)))
    with pytest.raises(CalibrationError, match="no relevant document"):
        CosineAdapter.fit(data, fingerprint="x")


# -- persistence ----------------------------------------------------------------------------------------
def test_save_load_round_trip(trained, tmp_path):
    adapter, dev = trained
    adapter.save(tmp_path / "ad")
    assert sorted(p.name for p in (tmp_path / "ad").iterdir()) == ["adapter.json", "adapter.safetensors"]
    back = CosineAdapter.load(tmp_path / "ad", fingerprint="fp")
    assert back.threshold == adapter.threshold and back.config == adapter.config
    assert np.array_equal(back.predict(dev), adapter.predict(dev))
    w = dev.window(10)
    assert np.array_equal(back.cutoffs(dev.query_vectors, w), adapter.cutoffs(dev.query_vectors, w))
    again = CosineAdapter.from_dict(json.loads(json.dumps(adapter.to_dict())), fingerprint="fp")
    assert np.array_equal(again.predict(dev), adapter.predict(dev))


def test_other_models_adapter_is_refused(trained, tmp_path):
    adapter, _ = trained
    adapter.save(tmp_path / "ad")
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        CosineAdapter.load(tmp_path / "ad", fingerprint="another-model")
    with pytest.raises(ModelMismatchError):
        CosineAdapter.from_dict(adapter.to_dict(), fingerprint="another-model")


@pytest.mark.parametrize("damage", ["truncate", "flip", "json", "truncate-unchecked", "missing"])
def test_corrupted_or_truncated_adapter_is_a_typed_error(trained, tmp_path, damage):
    adapter, _ = trained
    folder = adapter.save(tmp_path / "ad")
    w, j = folder / "adapter.safetensors", folder / "adapter.json"
    blob = w.read_bytes()
    if damage == "truncate":
        w.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        w.write_bytes(blob[:-9] + bytes([blob[-9] ^ 0xFF]) + blob[-8:])
    elif damage == "json":
        j.write_text(j.read_text()[:40])
    elif damage == "truncate-unchecked":
        header = json.loads(j.read_text())
        del header["weights_sha256"]
        j.write_text(json.dumps(header))
        w.write_bytes(blob[:100])
    else:
        w.unlink()
    with pytest.raises(CalibrationError):
        CosineAdapter.load(folder, fingerprint="fp")


# -- calibrated search through the SDK ---------------------------------------------------------------
@pytest.fixture
def calibrated(tmp_path):
    docs, queries, qrels = synthetic()
    train_q, dev_q = split(queries, 60)
    enc = FakeEncoder(dim=256)
    col = tamis.open_collection("docs", encoder=enc, path=tmp_path / "edge", create=True)
    col.index(docs)
    col.calibrate(train_q, qrels, dev_q, qrels, target_recall=0.9, candidates=30, **FAST)
    yield col, queries
    col.close()


def test_calibrated_search_filters_and_reports_relevance(calibrated, tmp_path):
    col, queries = calibrated
    assert isinstance(col.adapter, CosineAdapter) and col.info()["calibration"]["version"] == 1
    hits = col.search(queries["q70"], k=5)
    assert hits and hits[0].id == "d70"
    assert all(h.relevance is not None and h.relevance >= col.adapter.threshold - 1e-9 for h in hits)
    assert [h.relevance for h in hits] == sorted((h.relevance for h in hits), reverse=True)
    # an off-topic question: nothing relevant, which is a correct answer, not an error
    assert col.search(OFF_TOPIC, k=5) == []
    plain = col.search(OFF_TOPIC, k=5, relevance_filter=False)
    assert len(plain) == 5 and all(h.relevance is not None and h.relevance < col.adapter.threshold for h in plain)
    strict = col.search(queries["q70"], k=5, min_relevance=hits[0].relevance * (1 - 1e-6))
    assert strict[0].id == "d70" and all(h.relevance >= hits[0].relevance * (1 - 1e-6) for h in strict)
    batch = col.search_batch([queries["q70"], OFF_TOPIC], k=5)
    assert batch[0][0].id == "d70" and batch[1] == []
    assert batch[0][0].to_dict()["relevance"] == pytest.approx(batch[0][0].relevance, abs=1e-6)
    # reopened: the calibration is stored with the collection
    col.close()
    with tamis.open_collection("docs", encoder=FakeEncoder(dim=256), path=tmp_path / "edge") as again:
        assert again.search(OFF_TOPIC, k=5) == []
        assert again.search(queries["q70"], k=5)[0].relevance == pytest.approx(hits[0].relevance)
        again.set_adapter(None)
        assert again.adapter is None and all(h.relevance is None for h in again.search(OFF_TOPIC, k=3))
        with pytest.raises(ConfigError, match="calibrated"):
            again.search(OFF_TOPIC, min_relevance=0.5)


def test_adapter_of_another_model_is_refused_by_the_collection(calibrated, tmp_path):
    col, _ = calibrated
    foreign = CosineAdapter.from_dict({**col.adapter.to_dict(), "fingerprint": "0" * 32})
    with pytest.raises(ModelMismatchError, match="fingerprint"):
        col.set_adapter(foreign)
    # a manifest that carries another model's adapter is refused at search time
    entry = next(e for e in col.manifest["stages"] if "adapter" in e["settings"])
    entry["settings"]["adapter"]["fingerprint"] = "0" * 32
    entry["version"] += 1
    with pytest.raises(ModelMismatchError):
        col.search("w1 w2", k=3)


def test_teacher_soft_labels(calibrated):
    col, queries = calibrated
    calls = []

    def teacher(qs, ds):
        calls.append(len(qs))
        return [len(set(q.split()) & set(d.split())) / 4 for q, d in zip(qs, ds, strict=True)]

    data = CalibrationData.from_collection(col, dict(list(queries.items())[:10]), None, k=8, teacher=teacher)
    assert data.labels.shape == (10, 8) and calls == [8] * 10 and data.labels.max() > 0.5
    adapter = CosineAdapter.fit(data, fingerprint=col.encoder.fingerprint, **FAST)
    assert adapter.predict(data).shape == (10, 8)
    with pytest.raises(tamis.DataError, match="teacher"):
        CalibrationData.from_collection(col, {"q": "w1"}, None, k=3, teacher=lambda q, d: [2.0] * len(q))
