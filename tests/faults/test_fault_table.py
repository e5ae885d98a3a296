"""The audit's cases that were handled well, kept so they stay so: one bad input each, through the CLI.

Every case runs against a store that already holds the complete collection ``c`` (5 documents),
and checks the typed error (exit status 2, the error's name, no traceback) *and* that nothing was
half-written: ``c`` keeps its 5 points and its ``complete`` state, and no other collection appeared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faultkit import FAKE, cli, docs_rows, state, write_jsonl

import tamis

BAD_LINES = {
    "empty_text": ['{"_id": "x", "text": "   "}'],
    "duplicate_id": ['{"_id": "x", "text": "a"}', '{"_id": "x", "text": "b"}'],
    "missing_id": ['{"text": "a"}'],
    "missing_text": ['{"_id": "x", "body": "a"}'],
    "not_json": ['{"_id": "x", "text": "a"'],
    "not_an_object": ['["x", "a"]'],
    "id_is_a_list": ['{"_id": ["x"], "text": "a"}'],
    "id_is_a_bool": ['{"_id": true, "text": "a"}'],
    "id_is_blank": ['{"_id": "  ", "text": "a"}'],
    "text_is_a_number": ['{"_id": "x", "text": 5}'],
    "title_is_an_object": ['{"_id": "x", "text": "a", "title": {"t": 1}}'],
    "lone_low_surrogate": ['{"_id": "x", "text": "\\udc00"}'],
    "nan_metadata": ['{"_id": "x", "text": "a", "m": [1, NaN]}'],
    "infinity_metadata": ['{"_id": "x", "text": "a", "m": {"v": -Infinity}}'],
    "deep_metadata": ['{"_id": "x", "text": "a", "m": ' + "{\"k\": " * 100 + "1" + "}" * 100 + "}"],
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("template")
    res = cli("index", write_jsonl(root / "c.jsonl", docs_rows(5)), "-c", "c", "--path", root / "data", *FAKE)
    assert res.exit_code == 0, res.output
    return root / "data"


@pytest.fixture
def store(tmp_path: Path, template: Path) -> Path:
    """A copy of a store holding the complete collection ``c`` (5 documents)."""
    shutil.copytree(template, tmp_path / "data")
    return tmp_path / "data"


def _unchanged(data: Path, *, new: str = "new") -> None:
    assert state(data, "c") == {"exists": True, "points": 5, "ingest": "complete", "physical": "c__v1"}
    assert state(data, new)["exists"] is False
    with tamis.open_collection("c", path=data) as col:
        assert col.search("volcano lava", k=3)


def _typed(res, error: str) -> None:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, res.output
    assert error in res.stderr, res.stderr


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_record_into_a_new_collection(tmp_path, store, case):
    src = write_jsonl(tmp_path / "bad.jsonl", [*map(json.dumps, docs_rows(3, prefix="n")), *BAD_LINES[case]])
    _typed(cli("index", src, "-c", "new", "--path", store, *FAKE), "Error")
    _unchanged(store)
    res = cli("index", src, "-c", "new", "--path", store, "--skip-invalid", "--json", *FAKE)
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert sum(report["skipped"].values()) >= 1 and report["documents"] == (4 if case == "duplicate_id" else 3)


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_record_into_an_existing_collection(tmp_path, store, case):
    src = write_jsonl(tmp_path / "bad.jsonl", [*map(json.dumps, docs_rows(5)), *BAD_LINES[case]])
    _typed(cli("index", src, "-c", "c", "--path", store), "Error")
    _unchanged(store)


def _not_utf8(tmp_path: Path) -> Path:
    p = tmp_path / "latin1.jsonl"
    p.write_bytes(b'{"_id": "x", "text": "caf\xe9"}\n')
    return p


def _empty_file(tmp_path: Path) -> Path:
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    return p


def _empty_folder(tmp_path: Path) -> Path:
    p = tmp_path / "nothing"
    p.mkdir()
    return p


def _too_large(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "big.jsonl", [{"_id": "x", "text": "word " * 400}])


COMMANDS = {
    # name: (make the input, arguments after the input, the error)
    "not_utf8": (_not_utf8, [], "DataFormatError"),
    "empty_file": (_empty_file, [], "DataError"),
    "empty_folder": (_empty_folder, [], "DataError"),
    "no_such_path": (lambda t: t / "missing.jsonl", [], "DataFormatError"),
    "too_large": (_too_large, ["--max-document-bytes", "1000"], "DocumentTooLargeError"),
    "unknown_format": (lambda t: write_jsonl(t / "a.jsonl", docs_rows(2)), ["--format", "csv"], "ConfigError"),
    "unknown_encoder": (lambda t: write_jsonl(t / "a.jsonl", docs_rows(2)), ["--model", "nosuch:3"], "Error"),
    "fake_without_dim": (lambda t: write_jsonl(t / "a.jsonl", docs_rows(2)), ["--model", "fake:abc"], "ConfigError"),
    "bad_batch_size": (lambda t: write_jsonl(t / "a.jsonl", docs_rows(2)), ["--batch-size", "0"], "ConfigError"),
    "timeout_without_url": (lambda t: write_jsonl(t / "a.jsonl", docs_rows(2)), ["--timeout", "3"], "ConfigError"),
    "unreachable_encoder": (lambda t: write_jsonl(t / "a.jsonl", docs_rows(2)),
                            ["--encoder-url", "http://127.0.0.1:9", "--retries", "0"], "RemoteInferenceError"),
    "bad_name": (lambda t: write_jsonl(t / "a.jsonl", docs_rows(2)), ["-c", "../escape"], "ConfigError"),
}


@pytest.mark.parametrize("case", sorted(COMMANDS))
def test_bad_index_command(tmp_path, store, case):
    make, extra, error = COMMANDS[case]
    args = ["index", make(tmp_path), "--path", store, *(["-c", "new"] if "-c" not in extra else []), *extra]
    if "--model" not in extra and "--encoder-url" not in extra:
        args += FAKE
    _typed(cli(*args), error)
    _unchanged(store)


SEARCHES = {
    "no_such_collection": (["nothing", "-c", "missing"], "CollectionNotFoundError"),
    "blank_query": (["  ", "-c", "c"], "ConfigError"),
    "k_zero": (["lava", "-c", "c", "-k", "0"], "ConfigError"),
    "k_negative": (["lava", "-c", "c", "-k", "-3"], "ConfigError"),
    "filter_not_json": (["lava", "-c", "c", "--filter", "{lang: en}"], "ConfigError"),
    "filter_bad_operator": (["lava", "-c", "c", "--filter", '{"lang": {"$regex": "e"}}'], "ConfigError"),
    "query_and_queries": (["lava", "-c", "c", "--queries", "q.jsonl"], "ConfigError"),
    "other_model": (["lava", "-c", "c", "--model", "fake:16"], "ModelMismatchError"),
    "min_relevance_uncalibrated": (["lava", "-c", "c", "--min-relevance", "0.5"], "ConfigError"),
}


@pytest.mark.parametrize("case", sorted(SEARCHES))
def test_bad_search(store, case):
    args, error = SEARCHES[case]
    _typed(cli("search", *args, "--path", store), error)
    _unchanged(store)


OTHERS = {
    "info_missing": (["info", "-c", "missing"], "CollectionNotFoundError"),
    "delete_missing": (["delete", "-c", "missing", "--yes"], "CollectionNotFoundError"),
    "reindex_missing": (["reindex", "-c", "missing", "--model", "fake:16"], "CollectionNotFoundError"),
    "calibrate_without_data": (["calibrate", "-c", "c"], "ConfigError"),
    "calibrate_no_qrels": (["calibrate", "-c", "c", "--data", "."], "DataFormatError"),
    "eval_without_target": (["eval", "--data", "."], "ConfigError"),
}


@pytest.mark.parametrize("case", sorted(OTHERS))
def test_bad_other_command(store, case):
    args, error = OTHERS[case]
    _typed(cli(*args, "--path", store) if args[0] != "eval" else cli(*args), error)
    _unchanged(store)


def test_a_corrupt_aliases_file_is_a_store_error_and_keeps_the_collection(store):
    (store / "aliases.json").write_text("{not json")
    _typed(cli("search", "lava", "-c", "c", "--path", store), "StoreError")
    (store / "aliases.json").unlink()  # what its message advises: the collection is adopted again
    _unchanged(store)
