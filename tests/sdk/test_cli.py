"""The CLI, through typer's runner and as a real subprocess."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tamis.cli import app

runner = CliRunner()


TOPICS = [
    "a cat sleeping on the sofa",
    "stock prices fell on the market",
    "the volcano erupted with lava",
    "the football team won the match",
    "baking bread with yeast and flour",
]


@pytest.fixture
def beir(tmp_path):
    root = tmp_path / "beir"
    root.mkdir()
    rows = [{"_id": f"d{i}", "title": f"Note {i}", "text": f"{TOPICS[i % 5]}, note {i}"} for i in range(40)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(TOPICS)), encoding="utf-8"
    )
    return root


#: the deterministic, model-free encoder (`tamis.FakeEncoder`) through the real CLI: a collection
#: indexed with it records "fake:32" and re-opens with it, so later commands need no --model
FAKE_MODEL = ["--model", "fake:32"]


def test_index_then_search(tmp_path, beir):
    data = tmp_path / "data"
    res = runner.invoke(app, ["index", str(beir), "--collection", "c", "--path", str(data), "--json", *FAKE_MODEL])
    assert res.exit_code == 0, res.output
    assert '"documents": 40' in res.output
    res = runner.invoke(app, ["search", "the volcano erupted", "-c", "c", "--path", str(data), "-k", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["hits"]) == 3 and {"id", "score", "text"} <= set(out["hits"][0])
    res = runner.invoke(app, ["search", "the volcano erupted", "-c", "c", "--path", str(data), "-k", "3"])
    assert res.exit_code == 0 and "volcano" in res.stdout
    res = runner.invoke(app, ["list", "--path", str(data)])
    assert res.stdout.split() == ["c"]


def test_list_info_delete_use_the_name_not_the_versions(tmp_path, beir):
    from tamis.adapters.qdrant_edge import EdgeStore

    def physical():
        with EdgeStore(data) as st:
            return st.list_collections(), st.resolve_alias("c")

    data = tmp_path / "data"
    assert runner.invoke(app, ["index", str(beir), "-c", "c", "--path", str(data), *FAKE_MODEL]).exit_code == 0
    assert physical() == (["c__v1"], "c__v1")
    assert runner.invoke(app, ["list", "--path", str(data)]).stdout.split() == ["c"]
    res = runner.invoke(app, ["list", "--path", str(data), "--long"])
    assert res.exit_code == 0 and "c__v1" in res.stdout
    info = json.loads(runner.invoke(app, ["info", "-c", "c", "--path", str(data)]).stdout)
    assert (info["name"], info["physical"]) == ("c", "c__v1")

    res = runner.invoke(app, ["reindex", "-c", "c", "--model", "fake:16", "--keep-old", "--path", str(data)])
    assert res.exit_code == 0, res.output
    assert physical() == (["c__v1", "c__v2"], "c__v2")
    assert runner.invoke(app, ["list", "--path", str(data)]).stdout.split() == ["c"]
    res = runner.invoke(app, ["list", "--path", str(data), "-l"])
    assert "c__v2" in res.stdout and "c__v1" not in res.stdout

    res = runner.invoke(app, ["delete", "-c", "c", "--path", str(data), "--yes"])
    assert res.exit_code == 0, res.output
    assert physical() == ([], None)  # the alias and both versions
    assert runner.invoke(app, ["list", "--path", str(data)]).stdout.split() == []
    res = runner.invoke(app, ["search", "x", "-c", "c", "--path", str(data)])
    assert res.exit_code == 2 and "CollectionNotFoundError" in res.stderr


def test_batch_search_json_lines(tmp_path, beir):
    data = tmp_path / "data"
    assert runner.invoke(app, ["index", str(beir), "-c", "c", "--path", str(data), *FAKE_MODEL]).exit_code == 0
    outfile = tmp_path / "run.jsonl"
    res = runner.invoke(
        app, ["search", "--queries", str(beir / "queries.jsonl"), "-c", "c", "--path", str(data), "-k", "7", "--json", "--out", str(outfile)]
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in outfile.read_text().splitlines()]
    assert [line["query_id"] for line in lines] == [f"q{i}" for i in range(5)]
    for line in lines:
        assert len(line["hits"]) == 7
        scores = [h["score"] for h in line["hits"]]
        assert scores == sorted(scores, reverse=True)
        assert set(line["hits"][0]) == {"id", "score", "chunk"}


def test_errors_are_typed_and_short(tmp_path, beir):
    data = tmp_path / "data"
    res = runner.invoke(app, ["search", "x", "-c", "missing", "--path", str(data)])
    assert res.exit_code == 2
    assert "CollectionNotFoundError" in res.stderr and "Traceback" not in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "ok"}\n{"_id": "a", "text": "dup"}\n', encoding="utf-8")
    res = runner.invoke(app, ["index", str(bad), "-c", "c", "--path", str(data), *FAKE_MODEL])
    assert res.exit_code == 2 and "DuplicateIdError" in res.stderr
    res = runner.invoke(app, ["index", str(bad), "-c", "c", "--path", str(data), "--skip-invalid", "--json", *FAKE_MODEL])
    assert res.exit_code == 0 and '"DuplicateIdError": 1' in res.stdout
    res = runner.invoke(app, ["search", "-c", "c", "--path", str(data)])
    assert res.exit_code == 2 and "either a QUERY" in res.stderr
    res = runner.invoke(app, ["search", "x", "-c", "c", "--path", str(data), "--filter", "{bad"])
    assert res.exit_code == 2 and "--filter is not valid JSON" in res.stderr


def test_jsonl_field_options(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text('{"id": 1, "body": "alpha beta", "lang": "en"}\n{"id": 2, "body": "gamma", "lang": "de"}\n', encoding="utf-8")
    data = tmp_path / "data"
    res = runner.invoke(app, ["index", str(f), "-c", "j", "--path", str(data), "--id-field", "id", "--text-field", "body", *FAKE_MODEL])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["search", "gamma", "-c", "j", "--path", str(data), "--filter", '{"lang": "de"}', "--json"])
    assert [h["id"] for h in json.loads(res.stdout)["hits"]] == ["2"]


@pytest.mark.slow
def test_real_cli_with_packaged_model(tmp_path, beir):
    """`tamis index` and `tamis search` as real processes, with the real default model (torch)."""
    env = {**os.environ, "TAMIS_HOME": str(tmp_path / "home")}
    tamis_bin = [sys.executable, "-m", "tamis.cli"]
    subprocess.run([*tamis_bin, "index", str(beir), "-c", "real", "--backend", "torch"], env=env, check=True, capture_output=True)
    res = subprocess.run(
        [*tamis_bin, "search", "a lava eruption", "-c", "real", "-k", "5", "--json", "--backend", "torch"],
        env=env, check=True, capture_output=True, text=True,
    )
    hits = json.loads(res.stdout)["hits"]
    assert len(hits) == 5 and all(0 < h["score"] <= 1 for h in hits)
    assert sum("volcano" in h["text"] for h in hits) == 5
