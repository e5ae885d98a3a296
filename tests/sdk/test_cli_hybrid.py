"""`tamis index --hybrid`, `search --mode/--fusion`, `calibrate` on a hybrid collection, `reindex --hybrid`, `eval`."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tamis.cli import app

runner = CliRunner()
VOCAB = [f"w{i}" for i in range(400)]
FAST = ["--candidates", "30"]
FAKE_MODEL = ["--model", "fake:256"]


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


@pytest.mark.slow
def test_hybrid_cli_end_to_end(tmp_path, beir):
    data = tmp_path / "data"
    res = runner.invoke(app, ["index", str(beir), "-c", "h", "--path", str(data), "--hybrid", *FAKE_MODEL])
    assert res.exit_code == 0, res.output
    query = json.loads((beir / "queries.jsonl").read_text().splitlines()[70])["text"]
    for mode in ("dense", "sparse", "hybrid"):
        res = runner.invoke(app, ["search", query, "-c", "h", "--path", str(data), "--mode", mode, "--json", "-k", "3"])
        assert res.exit_code == 0, res.output
        hits = json.loads(res.stdout)["hits"]
        assert hits[0]["id"] == "d70"
        assert ("sparse_score" in hits[0]) == (mode != "dense")
    res = runner.invoke(app, ["search", query, "-c", "h", "--path", str(data), "--mode", "lexical"])
    assert res.exit_code == 2 and "mode must be" in res.output
    res = runner.invoke(app, ["calibrate", "-c", "h", "--data", str(beir), "--split", "train", "--dev-split", "dev",
                              "--path", str(data), "--json", *FAST])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["hybrid"]["threshold"]["recall"] >= 0.9
    res = runner.invoke(app, ["search", query, "-c", "h", "--path", str(data), "--json"])
    hits = json.loads(res.stdout)["hits"]
    assert hits and hits[0]["id"] == "d70" and hits[0]["relevance"] >= report["hybrid"]["threshold"]["threshold"] - 1e-6
    res = runner.invoke(app, ["search", query, "-c", "h", "--path", str(data), "--fusion", "rrf", "--json"])
    assert "relevance" not in json.loads(res.stdout)["hits"][0]
    res = runner.invoke(app, ["eval", "-c", "h", "--data", str(beir), "--split", "test", "--path", str(data),
                              "--plot", str(tmp_path / "pr.png"), "--json"])
    assert res.exit_code == 0, res.output
    side = json.loads(res.stdout)["hybrid"]
    assert set(side) >= {"dense", "sparse", "rrf", "dbsf", "calibrated hybrid", "dense adapter"}
    assert all(0 <= row["nDCG@10"] <= 1 for row in side.values())
    assert "precision" in side["calibrated hybrid"] and (tmp_path / "pr.png").stat().st_size > 1000


def test_reindex_hybrid_upgrades_a_dense_collection(tmp_path, beir):
    data = tmp_path / "data"
    assert runner.invoke(app, ["index", str(beir), "-c", "d", "--path", str(data), *FAKE_MODEL]).exit_code == 0
    res = runner.invoke(app, ["search", "w1", "-c", "d", "--path", str(data), "--mode", "sparse"])
    assert res.exit_code == 2 and "--hybrid" in res.output
    res = runner.invoke(app, ["reindex", "-c", "d", "--model", "fake:256", "--path", str(data), "--hybrid"])
    assert res.exit_code == 0, res.output
    query = json.loads((beir / "queries.jsonl").read_text().splitlines()[3])["text"]
    res = runner.invoke(app, ["search", query, "-c", "d", "--path", str(data), "--mode", "sparse", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["hits"][0]["id"] == "d3"
