"""Calibration against qrels that do not fit the collection, a broken stored adapter, removing one."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from faultkit import cli

import tamis

VOCAB = [f"w{i}" for i in range(400)]
FAKE = ["--model", "fake:256"]
FAST = ["--candidates", "30"]


@pytest.fixture
def beir(tmp_path):
    return _beir(tmp_path / "beir")


def _beir(root):
    """80 documents, one query each (3 shared words), train/dev qrels."""
    rng = np.random.default_rng(0)
    (root / "qrels").mkdir(parents=True)
    docs, queries = [], []
    for i in range(80):
        words = list(rng.choice(VOCAB, 7, replace=False))
        docs.append({"_id": f"d{i}", "title": "", "text": " ".join(words)})
        queries.append({"_id": f"q{i}", "text": " ".join(words[:3] + list(rng.choice(VOCAB, 1)))})
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    _qrels(root, "train", {f"q{i}": f"d{i}" for i in range(0, 50)})
    _qrels(root, "dev", {f"q{i}": f"d{i}" for i in range(50, 65)})
    return root


def _qrels(root, split, pairs):
    (root / "qrels" / f"{split}.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in pairs.items())
    )


def _variant(tmp_path, beir, name, train_pairs):
    other = tmp_path / name
    shutil.copytree(beir, other)
    _qrels(other, "train", train_pairs)
    return other


@pytest.fixture(scope="module")
def calibrated_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibrated")
    beir = _beir(root / "beir")
    data = root / "data"
    assert cli("index", beir, "-c", "c", "--path", data, *FAKE).exit_code == 0
    res = cli("calibrate", "-c", "c", "--data", beir, "--split", "train", "--dev-split", "dev", "--path", data, *FAST)
    assert res.exit_code == 0, res.output
    return data


@pytest.fixture
def calibrated(tmp_path, calibrated_template):
    """A copy of a store holding collection ``c``, calibrated on the good qrels."""
    shutil.copytree(calibrated_template, tmp_path / "data")
    return tmp_path / "data"


def _stored(data):
    with tamis.open_collection("c", path=data) as col:
        entry = col.manifest["stages"]
        return json.dumps(entry, sort_keys=True)


# -- bug 10: qrels that do not match the collection ------------------------------------------------
def test_bug10_qrels_judging_documents_the_collection_lacks_are_refused(tmp_path, beir, calibrated):
    before = _stored(calibrated)
    half_missing = {f"q{i}": (f"d{i}" if i % 2 else f"other-{i}") for i in range(0, 50)}
    other = _variant(tmp_path, beir, "mismatch", half_missing)
    res = cli("calibrate", "-c", "c", "--data", other, "--split", "train", "--dev-split", "dev",
              "--path", calibrated, *FAST)
    assert res.exit_code == 2, res.output
    assert "not in collection" in res.stderr and "25 of 65" in res.stderr
    assert _stored(calibrated) == before  # the good adapter stays


def test_bug10_a_worse_adapter_never_replaces_a_better_one_without_force(tmp_path, beir, calibrated):
    before = _stored(calibrated)
    rng = np.random.default_rng(1)
    shuffled = {f"q{i}": f"d{int(j)}" for i, j in zip(range(50), rng.permutation(50), strict=True)}  # wrong pairs
    other = _variant(tmp_path, beir, "shuffled", shuffled)
    args = ["calibrate", "-c", "c", "--data", other, "--split", "train", "--dev-split", "dev", "--path", calibrated, *FAST]
    res = cli(*args)
    assert res.exit_code == 2, res.output
    assert "worse" in res.stderr and "--force" in res.stderr
    assert _stored(calibrated) == before
    res = cli(*args, "--force")
    assert res.exit_code == 0, res.output
    assert _stored(calibrated) != before


def test_a_small_share_of_missing_judged_documents_is_a_warning(tmp_path, beir, calibrated):
    few_missing = {f"q{i}": (f"gone-{i}" if i == 0 else f"d{i}") for i in range(0, 50)}
    other = _variant(tmp_path, beir, "few", few_missing)
    res = cli("calibrate", "-c", "c", "--data", other, "--split", "train", "--dev-split", "dev",
              "--path", calibrated, "--force", *FAST)
    assert res.exit_code == 0, res.output
    assert "1 of 65" in res.stderr and "warning" in res.stderr.lower()


# -- weak spots: --remove, and --no-filter without a working adapter ---------------------------------
def test_calibrate_remove_takes_the_adapter_away(calibrated):
    res = cli("calibrate", "-c", "c", "--remove", "--path", calibrated)
    assert res.exit_code == 0, res.output
    with tamis.open_collection("c", path=calibrated) as col:
        assert col.adapter is None and col.manifest["stages"] == []
        assert len(col.search("w1 w2 w3", k=5)) == 5  # unfiltered again
    res = cli("calibrate", "-c", "c", "--remove", "--path", calibrated)
    assert res.exit_code == 0 and "not calibrated" in res.stdout


def test_a_broken_stored_adapter_does_not_block_no_filter_searches(calibrated):
    from tamis.adapters.qdrant_edge import EdgeStore

    store = EdgeStore(calibrated)
    meta = store.get_metadata("c__v1")
    meta["tamis"]["stages"][0]["settings"]["adapter"]["weights"] = "bm90IHNhZmV0ZW5zb3Jz"  # not safetensors
    store.set_metadata("c__v1", meta)
    store.close()
    res = cli("search", "w1 w2 w3", "-c", "c", "--path", calibrated, "--json")
    assert res.exit_code == 2 and "CalibrationError" in res.stderr and "--no-filter" in res.stderr, res.output
    res = cli("search", "w1 w2 w3", "-c", "c", "--path", calibrated, "--no-filter", "--json", "-k", "4")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)["hits"]) == 4
    res = cli("calibrate", "-c", "c", "--remove", "--path", calibrated)  # and it can be removed
    assert res.exit_code == 0, res.output
    assert cli("search", "w1 w2 w3", "-c", "c", "--path", calibrated).exit_code == 0
