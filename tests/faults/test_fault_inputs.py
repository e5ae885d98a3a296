"""Bad input that must be refused up front, with a typed error naming the document, and nothing written."""

from __future__ import annotations

import json

import pytest
from faultkit import FAKE, cli, docs_rows, state, write_jsonl

import tamis
from tamis import DataFormatError, Document, FakeEncoder
from tamis.data import load_data


# -- bug 1: a lone surrogate ------------------------------------------------------------------------
def test_bug1_lone_surrogate_is_a_typed_error_naming_the_document(tmp_path, data):
    src = write_jsonl(tmp_path / "c.jsonl", [*map(json.dumps, docs_rows(5)), '{"_id": "bad", "text": "a \\ud800 b"}'])
    res = cli("index", src, "-c", "c", "--path", data, *FAKE)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "DataFormatError" in res.stderr and "'bad'" in res.stderr and "UTF-8" in res.stderr
    assert state(data, "c")["exists"] is False  # nothing was written


def test_bug1_lone_surrogate_is_skipped_with_skip_invalid(tmp_path, data):
    src = write_jsonl(tmp_path / "c.jsonl", [*map(json.dumps, docs_rows(5)), '{"_id": "bad", "text": "a \\ud800 b"}'])
    res = cli("index", src, "-c", "c", "--path", data, "--skip-invalid", "--json", *FAKE)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["skipped"] == {"DataFormatError": 1}
    assert state(data, "c") == {"exists": True, "points": 5, "ingest": "complete", "physical": "c__v1"}


@pytest.mark.parametrize("where", ["title", "metadata value", "metadata key", "id"])
def test_bug1_surrogates_anywhere_in_a_document(data, where):
    bad = "x\udfffy"
    doc = {
        "title": Document("d", "text", title=bad),
        "metadata value": Document("d", "text", metadata={"k": [bad]}),
        "metadata key": Document("d", "text", metadata={bad: 1}),
        "id": Document(bad, "text"),
    }[where]
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32), create=True) as col:
        with pytest.raises(DataFormatError, match="UTF-8"):
            col.index([Document("ok", "fine"), doc])
        assert not col.exists


# -- bug 4: NaN / Infinity in metadata -----------------------------------------------------------
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_bug4_non_finite_metadata_is_refused_before_anything_is_written(tmp_path, data, value):
    rows = [*map(json.dumps, docs_rows(20)), f'{{"_id": "d20", "text": "the last one", "score": {value}}}']
    src = write_jsonl(tmp_path / "c.jsonl", rows)
    res = cli("index", src, "-c", "c", "--path", data, *FAKE)
    assert res.exit_code == 2, res.output
    assert "DataFormatError" in res.stderr and "'d20'" in res.stderr
    assert state(data, "c")["exists"] is False
    res = cli("index", src, "-c", "c", "--path", data, "--skip-invalid", "--json", *FAKE)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["skipped"] == {"DataFormatError": 1}
    assert state(data, "c") == {"exists": True, "points": 20, "ingest": "complete", "physical": "c__v1"}


# -- bug 6: a BEIR folder without its corpus --------------------------------------------------------
@pytest.mark.parametrize("marker", ["queries.jsonl", "qrels"])
def test_bug6_beir_folder_without_corpus_is_a_typed_error(tmp_path, data, marker):
    root = tmp_path / "beir"
    root.mkdir()
    (root / "README.md").write_text("# A BEIR dataset\n\nsee corpus.jsonl\n")
    if marker == "qrels":
        (root / "qrels").mkdir()
        (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    else:
        write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "a question"}])
    res = cli("index", root, "-c", "c", "--path", data, *FAKE)
    assert res.exit_code == 2, res.output
    assert "DataFormatError" in res.stderr and "corpus.jsonl" in res.stderr
    assert state(data, "c")["exists"] is False
    with pytest.raises(DataFormatError, match="corpus.jsonl"):
        load_data(root)


def test_a_plain_folder_of_text_files_still_loads(tmp_path):
    root = tmp_path / "notes"
    root.mkdir()
    (root / "a.md").write_text("# Alpha\n\nfirst\n")
    assert [d.id for d in load_data(root)] == ["a.md"]
