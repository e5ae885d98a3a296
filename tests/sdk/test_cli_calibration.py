"""`tamis calibrate`, `tamis eval`, and calibrated `tamis search` (single, --no-filter, batch JSON)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tamis.cli import app

runner = CliRunner()
VOCAB = [f"w{i}" for i in range(400)]
OFF_TOPIC = "What is the boiling point of ethanol?"
FAST = ["--candidates", "30"]


@pytest.fixture
def beir(tmp_path):
    """A BEIR folder: 80 documents, one query each (3 shared words), train/dev/test qrels."""
    rng = np.random.default_rng(0)
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    docs, queries = [], []
    for i in range(80):
        words = list(rng.choice(VOCAB, 7, replace=False))
        docs.append({"_id": f"d{i}", "title": "", "text": " ".join(words)})
        queries.append({"_id": f"q{i}", "text": " ".join(words[:3] + list(rng.choice(VOCAB, 1)))})
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    for name, rows in (("train", range(0, 50)), ("dev", range(50, 65)), ("test", range(65, 80))):
        (root / "qrels" / f"{name}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in rows)
        )
    return root


#: the deterministic, model-free encoder (`tamis.FakeEncoder`), 256-d, through the real CLI; the
#: collection records it and re-opens with it
FAKE_MODEL = ["--model", "fake:256"]


@pytest.fixture
def calibrated(tmp_path, beir):
    data = tmp_path / "data"
    res = runner.invoke(app, ["index", str(beir), "-c", "c", "--path", str(data), *FAKE_MODEL])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["calibrate", "-c", "c", "--data", str(beir), "--split", "train", "--dev-split", "dev",
                              "--target-recall", "0.9", "--path", str(data), "--save", str(tmp_path / "ad"), "--json", *FAST])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["threshold"]["recall"] >= 0.9 and report["training"]["queries"] == 50
    assert (tmp_path / "ad" / "adapter.safetensors").is_file()
    return data


def test_search_filters_by_default_and_empty_is_an_answer(calibrated, beir):
    data = calibrated
    q5 = json.loads((beir / "queries.jsonl").read_text().splitlines()[70])["text"]
    res = runner.invoke(app, ["search", q5, "-c", "c", "--path", str(data), "--json"])
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)["hits"]
    assert hits[0]["id"] == "d70" and 0 < hits[0]["relevance"] <= 1
    res = runner.invoke(app, ["search", OFF_TOPIC, "-c", "c", "--path", str(data), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["hits"] == []
    res = runner.invoke(app, ["search", OFF_TOPIC, "-c", "c", "--path", str(data)])
    assert res.exit_code == 0 and "nothing relevant" in res.stdout
    res = runner.invoke(app, ["search", OFF_TOPIC, "-c", "c", "--path", str(data), "--no-filter", "-k", "4", "--json"])
    hits = json.loads(res.stdout)["hits"]
    assert len(hits) == 4 and all("relevance" in h for h in hits)
    res = runner.invoke(app, ["search", OFF_TOPIC, "-c", "c", "--path", str(data), "--no-filter", "-k", "4"])
    assert res.exit_code == 0 and "relevance" in res.stdout


def test_batch_json_has_relevance_and_empty_lists(calibrated, beir, tmp_path):
    data = calibrated
    qfile = tmp_path / "q.jsonl"
    on_topic = json.loads((beir / "queries.jsonl").read_text().splitlines()[70])
    qfile.write_text(json.dumps(on_topic) + "\n" + json.dumps({"_id": "off", "text": OFF_TOPIC}) + "\n")
    out = tmp_path / "run.jsonl"
    res = runner.invoke(app, ["search", "--queries", str(qfile), "-c", "c", "--path", str(data), "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["query_id"] == "q70" and lines[0]["hits"][0]["id"] == "d70" and "relevance" in lines[0]["hits"][0]
    assert lines[1] == {"query_id": "off", "hits": []}


def test_eval_reports_ranking_filtering_and_a_plot(calibrated, beir, tmp_path):
    data = calibrated
    png = tmp_path / "pr.png"
    res = runner.invoke(app, ["eval", "-c", "c", "--data", str(beir), "--split", "test", "--path", str(data),
                              "--plot", str(png), "-k", "30", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert set(r["ranking"]) >= {"nDCG@10", "Recall@10", "Recall@100", "MRR@10"} and r["queries"] == 15
    assert set(r["filtering"]) == {"adapter", "cosine", "platt", "zscore"}
    assert {"pr_auc", "p_at_r50", "precision", "recall", "f1", "empty_share"} <= set(r["filtering"]["adapter"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, ["eval", "-c", "c", "--data", str(beir), "--path", str(data), "--plot", str(png), "-k", "30"])
    assert res.exit_code == 0 and "PR-AUC" in res.stdout and "nDCG@10" in res.stdout


def test_calibrate_errors_are_typed(tmp_path, beir):
    data = tmp_path / "data"
    runner.invoke(app, ["index", str(beir), "-c", "c", "--path", str(data), *FAKE_MODEL])
    res = runner.invoke(app, ["calibrate", "-c", "c", "--data", str(beir), "--split", "nope", "--path", str(data)])
    assert res.exit_code == 2 and "DataFormatError" in res.stderr and "train" in res.stderr
    res = runner.invoke(app, ["calibrate", "-c", "c", "--data", str(beir), "--features", "all", "--path", str(data)])
    assert res.exit_code == 2 and "--features" in res.stderr
    res = runner.invoke(app, ["search", "w1", "-c", "c", "--path", str(data), "--min-relevance", "0.5"])
    assert res.exit_code == 2 and "calibrat" in res.stderr
    res = runner.invoke(app, ["eval", "-c", "c", "--data", str(beir), "--path", str(data), "-k", "20"])
    assert res.exit_code == 0 and "not calibrated" in res.stdout
    res = runner.invoke(app, ["calibrate", "-c", "c", "--data", str(beir), "--path", str(data), "--candidates", "20",
                              "--g", "sqrt", "--target-precision", "0.05"])
    assert res.exit_code == 0, res.output
    assert "calibrated" in res.stdout and "g='sqrt'" in res.stdout and "kept per query" in res.stdout


def test_info_shows_the_calibration_without_its_weights(calibrated):
    res = runner.invoke(app, ["info", "-c", "c", "--path", str(calibrated)])
    assert res.exit_code == 0, res.output
    cal = json.loads(res.stdout)["calibration"]
    assert cal["version"] == 1 and cal["stage"] == "relevance"
    assert cal["adapter"]["weights"].endswith("bytes>") and cal["adapter"]["threshold"] > 0
