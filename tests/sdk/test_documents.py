import json

import pytest

from tamis import DataFormatError, Document, load_beir, load_directory, load_jsonl
from tamis.data import Chunker, load_beir_queries, load_data, load_qrels


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def beir(tmp_path):
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    write_jsonl(root / "corpus.jsonl", [
        {"_id": "d1", "title": "Cat", "text": "  A small feline. "},
        {"_id": 2, "title": "", "text": "Dogs bark."},
    ])
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "what is a cat"}])
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    return root


def test_beir_loader(beir):
    docs = list(load_beir(beir))
    assert [d.id for d in docs] == ["d1", "2"]
    assert docs[0].embed_text == "Cat   A small feline."
    assert docs[1].embed_text == "Dogs bark."
    assert load_beir_queries(beir) == {"q1": "what is a cat"}
    assert load_qrels(beir, "test") == {"q1": {"d1": 1}}
    assert [d.id for d in load_data(beir)] == ["d1", "2"]


def test_beir_missing_corpus(tmp_path):
    with pytest.raises(DataFormatError, match="not a BEIR folder"):
        load_beir(tmp_path)


def test_qrels_unknown_split(beir):
    with pytest.raises(DataFormatError, match=r"no qrels for split 'dev' \(available: \['test'\]\)"):
        load_qrels(beir, "dev")


def test_jsonl_custom_fields_and_metadata(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "body": "hello", "lang": "en", "n": 3}])
    (doc,) = load_jsonl(f, id_field="id", text_field="body", title_field=None)
    assert doc == Document("a", "hello", "", {"lang": "en", "n": 3})
    (doc,) = load_jsonl(f, id_field="id", text_field="body", title_field=None, metadata_fields=["lang"])
    assert doc.metadata == {"lang": "en"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a list"]', "expected a JSON object"),
        ('{"text": "no id"}', "missing field '_id'"),
        ('{"_id": "x"}', "missing field 'text'"),
        ('{"_id": "", "text": "t"}', "document id is empty"),
        ('{"_id": "x", "text": 5}', "must be a string"),
    ],
)
def test_jsonl_bad_lines_raise_with_line_number(tmp_path, line, message):
    f = write_jsonl(tmp_path / "d.jsonl", [{"_id": "ok", "text": "fine"}, line])
    with pytest.raises(DataFormatError, match=message) as info:
        list(load_jsonl(f))
    assert info.value.line == 2
    assert "d.jsonl:2" in str(info.value)


def test_jsonl_skip_mode_counts(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [{"_id": "a", "text": "x"}, "{oops", {"_id": "b"}, {"_id": "c", "text": "y"}])
    src = load_jsonl(f, on_invalid="skip")
    assert [d.id for d in src] == ["a", "c"]
    assert sum(src.skipped.values()) == 2


def test_jsonl_not_utf8(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_bytes(b'{"_id": "a", "text": "ok"}\n{"_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(DataFormatError, match="not UTF-8") as info:
        list(load_jsonl(f))
    assert info.value.line == 2
    src = load_jsonl(f, on_invalid="skip")
    assert [d.id for d in src] == ["a"]


def test_directory_loader(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("plain text", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("intro\n# The Title\nbody", encoding="utf-8")
    (tmp_path / "ignored.bin").write_bytes(b"\x00\x01")
    docs = {d.id: d for d in load_directory(tmp_path)}
    assert set(docs) == {"a.txt", "sub/b.md"}
    assert docs["sub/b.md"].title == "The Title"
    assert docs["a.txt"].title == "a"
    assert docs["a.txt"].metadata == {"path": "a.txt", "suffix": ".txt"}


def test_directory_not_utf8(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe bad")
    (tmp_path / "good.txt").write_text("good", encoding="utf-8")
    with pytest.raises(DataFormatError, match="bad.txt: not UTF-8"):
        list(load_directory(tmp_path))
    src = load_directory(tmp_path, on_invalid="skip")
    assert [d.id for d in src] == ["good.txt"]
    assert src.skipped == {"not UTF-8": 1}


def test_chunker_words_fallback():
    ch = Chunker(None, max_tokens=10, overlap=2)
    text = " ".join(f"w{i}" for i in range(25))
    chunks = ch.split(text)
    assert chunks[0].split() == [f"w{i}" for i in range(10)]
    assert chunks[1].split()[0] == "w8"  # 2 words of overlap
    assert chunks[-1].endswith("w24")
    assert ch.split("short text") == ["short text"]


def test_chunker_with_real_tokenizer(minilm):
    tok = minilm.tokenizer
    ch = Chunker(tok, max_tokens=254, overlap=32)
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(200))
    chunks = ch.split(text)
    assert len(chunks) > 1
    for c in chunks:
        assert c in text  # exact substrings of the original
        assert len(tok(c, add_special_tokens=False)["input_ids"]) <= 254
    assert chunks[0][:40] == text[:40]
    assert text.rstrip().endswith(chunks[-1][-40:])


def test_chunker_rejects_bad_settings():
    from tamis import ConfigError

    with pytest.raises(ConfigError, match="overlap"):
        Chunker(None, max_tokens=10, overlap=9)
