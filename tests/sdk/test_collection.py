"""The Collection API, run against both stores (Qdrant Edge and qdrant-client local mode)."""

import pytest

import tamis
from tamis import (
    CollectionNotFoundError,
    ConfigError,
    DataFormatError,
    DimensionMismatchError,
    Document,
    DocumentTooLargeError,
    DuplicateIdError,
    EmptyTextError,
    FakeEncoder,
    ModelMismatchError,
    StoreError,
)
from tamis.collection import point_id

FRUITS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "peach", "pear", "plum"]


def corpus(n=60):
    return [
        Document(
            f"d{i}", f"{FRUITS[i % 10]} pie recipe number {i}", title=f"{FRUITS[i % 10].title()} {i}",
            metadata={"fruit": FRUITS[i % 10], "n": i, "lang": "en" if i % 2 else "fr"},
        )
        for i in range(n)
    ]


@pytest.fixture(params=["edge", "qdrant-local"])
def where(request, tmp_path):
    if request.param == "edge":
        return {"path": tmp_path / "edge"}
    return {"store": "qdrant", "path": tmp_path / "qdrant"}


@pytest.fixture
def enc():
    return FakeEncoder(dim=48)


def open_(where, enc, name="docs", **kw):
    return tamis.open_collection(name, encoder=enc, **where, **kw)


def test_index_search_count_info(where, enc):
    with open_(where, enc, create=True) as col:
        report = col.index(corpus())
        assert (report.documents, report.encoded, report.points, report.unchanged) == (60, 60, 60, 0)
        hits = col.search("mango pie", k=5)
        assert len(hits) == 5
        assert all(h.metadata["fruit"] == "mango" for h in hits)
        assert hits == sorted(hits, key=lambda h: -h.score)
        h = hits[0]
        assert h.text.startswith("mango pie recipe") and h.title.startswith("Mango")
        assert col.count() == 60 and col.count(documents=True) == 60
        info = col.info()
        assert info["model"]["fingerprint"] == enc.fingerprint
        assert info["dim"] == 48 and info["ingest"]["state"] == "complete"
        assert info["tamis_version"] == tamis.__version__
    # reopened: the collection remembers its model and its contents
    with open_(where, enc) as col:
        assert col.count() == 60
        assert col.search("mango pie", k=1)[0].metadata["fruit"] == "mango"


def test_filters(where, enc):
    with open_(where, enc, create=True) as col:
        col.index(corpus())
        assert {h.metadata["lang"] for h in col.search("pie", k=20, filter={"lang": "fr"})} == {"fr"}
        hits = col.search("pie", k=60, filter={"fruit": ["apple", "plum"]})
        assert {h.metadata["fruit"] for h in hits} == {"apple", "plum"} and len(hits) == 12
        hits = col.search("pie", k=60, filter={"n": {"gte": 10, "lt": 20}})
        assert sorted(h.metadata["n"] for h in hits) == list(range(10, 20))
        assert [h.id for h in col.search("pie", k=5, filter={"id": "d7"})] == ["d7"]
        assert col.count(filter={"lang": "en"}) == 30
        with pytest.raises(ConfigError, match="a dict condition takes only"):
            col.search("pie", filter={"n": {"between": 3}})


def test_score_threshold_is_applied(where, enc):
    with open_(where, enc, create=True) as col:
        col.index(corpus())
        all_hits = col.search("cherry pie", k=60)
        cut = (all_hits[4].score + all_hits[5].score) / 2
        hits = col.search("cherry pie", k=60, score_threshold=cut)
        assert [h.id for h in hits] == [h.id for h in all_hits[:5]]
        assert col.search("cherry pie", k=10, score_threshold=1.01) == []


def test_reindex_is_idempotent_and_updates_changes(where, enc):
    docs = corpus(20)
    with open_(where, enc, create=True) as col:
        col.index(docs)
        again = col.index(docs)
        assert (again.encoded, again.unchanged, again.points) == (0, 20, 20)
        docs[3] = Document("d3", "completely new text about kiwi", metadata={"fruit": "kiwi"})
        third = col.index(docs)
        assert (third.encoded, third.unchanged, third.points) == (1, 19, 20)
        assert col.search("kiwi", k=1)[0].id == "d3"


def test_chunking_and_stale_chunks(where):
    enc = FakeEncoder(dim=32, max_seq_length=12)  # 10 words per chunk
    long_text = " ".join(f"word{i}" for i in range(45))
    with open_(where, enc, create=True) as col:
        r = col.index([Document("long", long_text), Document("short", "tiny text")], chunk_overlap=2)
        assert r.chunks == 1 + 6 and col.count() == 7
        assert col.info()["chunked"] is True
        hits = col.search("word30 word31 word32", k=5)
        assert [h.id for h in hits].count("long") == 1  # one hit per document
        assert hits[0].id == "long" and "word31" in hits[0].text and hits[0].chunk > 0
        # the document shrinks: its old extra chunks go away
        r = col.index([Document("long", "now only a few words"), Document("short", "tiny text")])
        assert r.stale_chunks_deleted == 5 and col.count() == 2
        assert col.store.retrieve(col.physical, [point_id("long", 3)]) == []


def test_model_mismatch(where, enc):
    with open_(where, enc, create=True) as col:
        col.index(corpus(5))
    other = FakeEncoder(dim=48, name="other-model")
    with pytest.raises(ModelMismatchError) as info:
        open_(where, other)
    assert "'fake'" in str(info.value) and "'other-model'" in str(info.value)


def test_unknown_collection(where, enc):
    with open_(where, enc, name="present", create=True) as col:
        col.index(corpus(3))
    with pytest.raises(CollectionNotFoundError, match=r"no collection 'absent'.*present"):
        open_(where, enc, name="absent")


def test_query_vector_dimension(where, enc):
    import numpy as np

    with open_(where, enc, create=True) as col:
        col.index(corpus(3))
        with pytest.raises(DimensionMismatchError, match="48-d"):
            col.search_vector(np.ones(7, dtype=np.float32))


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (Document("x", "   "), EmptyTextError, "empty or whitespace"),
        (Document("d1", "same id as another"), DuplicateIdError, "appears twice"),
        (Document("big", "x" * 10_000_001), DocumentTooLargeError, "10,000,001 bytes"),
        (Document("m", "text", metadata={"bad": object()}), DataFormatError, "not JSON-serialisable"),
        ("not a document", DataFormatError, "not a tamis.Document"),
    ],
)
def test_bad_input_leaves_nothing(where, enc, bad, error, message):
    docs = [*corpus(5), bad]
    with open_(where, enc, create=True) as col:
        with pytest.raises(error, match=message):
            col.index(docs)
        assert not col.store.collection_exists("docs")
        report = col.index(docs, on_invalid="skip")
        assert report.documents == 5 and sum(report.skipped.values()) == 1
        assert col.count() == 5


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [(b'{"_id": "c"}', "missing field 'text'"), (b'{"_id": "c", "text": "caf\xe9"}', "not UTF-8")],
)
def test_bad_jsonl_records_leave_nothing(where, enc, tmp_path, bad_line, message):
    f = tmp_path / "c.jsonl"
    f.write_bytes(b'{"_id": "a", "text": "fine"}\n' + bad_line + b'\n{"_id": "b", "text": "fine too"}\n')
    with open_(where, enc, create=True) as col:
        with pytest.raises(DataFormatError, match=message):
            col.index(tamis.load_jsonl(f))
        assert not col.store.collection_exists("docs")
        report = col.index(tamis.load_jsonl(f, on_invalid="skip"), on_invalid="skip")
        assert report.documents == 2 and sum(report.skipped.values()) == 1


def test_bad_jsonl_leaves_nothing(where, enc, tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "fine too"}\nnot json\n', encoding="utf-8")
    with open_(where, enc, create=True) as col:
        with pytest.raises(DataFormatError, match="c.jsonl:3"):
            col.index(tamis.load_jsonl(f))
        assert not col.store.collection_exists("docs")
        report = col.index(tamis.load_jsonl(f, on_invalid="skip"), on_invalid="skip")
        assert report.documents == 2 and report.skipped == {"bad line (not UTF-8 / not JSON)": 1}


def test_no_valid_documents(where, enc):
    with open_(where, enc, create=True) as col:
        with pytest.raises(tamis.DataError, match="no valid documents"):
            col.index([Document("a", " ")], on_invalid="skip")
        assert not col.store.collection_exists("docs")


def test_bad_search_arguments(where, enc):
    with open_(where, enc, create=True) as col:
        with pytest.raises(CollectionNotFoundError, match="does not exist yet"):
            col.search("x")
        col.index(corpus(3))
        with pytest.raises(ConfigError, match="k must be a positive integer"):
            col.search("x", k=0)
        with pytest.raises(ConfigError, match="non-empty string"):
            col.search("  ")


def test_search_batch_equals_single(where, enc):
    with open_(where, enc, create=True) as col:
        col.index(corpus())
        qs = ["apple pie", "plum", "recipe number 7"]
        batch = col.search_batch(qs, k=4)
        single = [col.search(q, k=4) for q in qs]
        assert [[h.id for h in hs] for hs in batch] == [[h.id for h in hs] for hs in single]
        for hs, ss in zip(batch, single, strict=True):
            assert [h.score for h in hs] == pytest.approx([h.score for h in ss], abs=1e-5)


def test_not_a_tamis_collection(tmp_path, enc):
    from tamis.adapters.qdrant_edge import EdgeStore

    store = EdgeStore(tmp_path)
    store.create_collection("foreign", dim=4, metadata={"owner": "someone else"})
    store.close()
    with pytest.raises(StoreError, match="not created by tamis"):
        tamis.open_collection("foreign", path=tmp_path)


def test_unwritable_data_directory(tmp_path, enc):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError) as info:
        col = tamis.open_collection("docs", path=blocker / "data", encoder=enc, create=True)
        col.index(corpus(2))
    assert "a-file" in str(info.value)


def test_conflicting_arguments(tmp_path, enc):
    with pytest.raises(ConfigError, match="model= or encoder="):
        tamis.open_collection("x", model="m", encoder=enc)
    with pytest.raises(ConfigError, match="url= or location="):
        tamis.open_collection("x", url="http://127.0.0.1:1", location=":memory:")
    with pytest.raises(ConfigError, match="no store named 'nope'"):
        tamis.open_collection("x", store="nope")


def test_in_memory_qdrant(enc):
    with tamis.open_collection("mem", location=":memory:", encoder=enc, create=True) as col:
        col.index(corpus(10))
        assert col.store.kind == "qdrant" and col.count() == 10


def test_a_failing_store_write_stops_the_ingest_with_its_error(where, enc):
    with open_(where, enc, create=True) as col:
        col.index(corpus(3))
        real_upsert, calls = col.store.upsert, []

        def flaky(name, points):
            calls.append(len(points))
            if len(calls) == 2:
                raise StoreError("disk full (injected)")
            return real_upsert(name, points)

        col.store.upsert = flaky
        docs = [Document(f"n{i}", f"new text {i}") for i in range(100)]
        with pytest.raises(StoreError, match="disk full"):
            col.index(docs, batch_size=10)
        assert len(calls) == 2  # the encoder stopped feeding a dead writer
        col.store.upsert = real_upsert
        report = col.index(docs, batch_size=10)  # the re-run writes only what is missing
        assert report.unchanged == 10 and report.encoded == 90 and col.count() == 103
