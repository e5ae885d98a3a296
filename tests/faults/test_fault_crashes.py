"""Crashes: real processes killed with SIGKILL at the worst moment; what survives must be whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import tamis
from tamis import Document, FakeEncoder
from tamis.collection import point_id

N = 400
REINDEX = textwrap.dedent(
    """
    import os, signal, sys, time
    import tamis
    from tamis import Document, FakeEncoder

    class Slow(FakeEncoder):
        def encode(self, texts, **kw):
            time.sleep(0.02)
            return super().encode(texts, **kw)

    path, n = sys.argv[1], int(sys.argv[2])
    docs = [Document(f"d{i}", f"note {i} about volcano lava") for i in range(n)]
    col = tamis.open_collection("c", path=path)

    def progress(done, total):
        print(done, flush=True)
        if done >= 150:
            os.kill(os.getpid(), signal.SIGKILL)

    col.reindex(docs, encoder=Slow(dim=32, name="other"), batch_size=50, progress=progress)
    print("finished", flush=True)
    """
)


def _docs(n: int) -> list[Document]:
    return [Document(f"d{i}", f"note {i} about volcano lava") for i in range(n)]


def _kill_reindex_half_way(data: Path) -> None:
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32), create=True) as col:
        col.index(_docs(N))
    proc = subprocess.run([sys.executable, "-c", REINDEX, str(data), str(N)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "finished" not in proc.stdout


# -- bug 2: a half-built version must never be served -----------------------------------------------
def test_bug2_killed_reindex_then_lost_aliases_serves_the_complete_version(tmp_path):
    data = tmp_path / "data"
    _kill_reindex_half_way(data)
    (data / "aliases.json").unlink()  # what the message for a corrupt aliases.json advises
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32)) as col:
        assert col.physical == "c__v1"
        assert col.manifest["ingest"]["state"] == "complete" and col.manifest["model"]["name"] == "fake"
        assert col.count() == N
        assert col.search("volcano lava", k=3)


# -- weak spot: a re-index after a crash resumes the half-built version ---------------------------
def test_reindex_after_a_crash_resumes_the_half_built_version(tmp_path):
    data = tmp_path / "data"
    _kill_reindex_half_way(data)
    with tamis.open_collection("c", path=data) as col:
        assert col.physical == "c__v1"
        half = col.store.count("c__v2")
        assert 150 <= half < N
        report = col.reindex(_docs(N), encoder=FakeEncoder(32, name="other"))
        assert report.unchanged == half and report.encoded == N - half
        assert col.physical == "c__v2" and col.count() == N
        assert col.store.list_collections() == ["c__v2"]  # nothing half-built is left behind


def test_reindex_with_another_model_after_a_crash_removes_the_half_built_version(tmp_path):
    data = tmp_path / "data"
    _kill_reindex_half_way(data)
    with tamis.open_collection("c", path=data) as col:
        report = col.reindex(_docs(N), encoder=FakeEncoder(32, name="third"))
        assert report.unchanged == 0 and report.encoded == N
        assert col.manifest["model"]["name"] == "third" and col.count() == N
        assert col.store.list_collections() == [col.physical]


# -- bug 3: stale chunks after a crash --------------------------------------------------------------
SHRINK = textwrap.dedent(
    """
    import os, signal, sys
    import tamis
    from tamis import Document, FakeEncoder

    path, text = sys.argv[1], sys.argv[2]
    col = tamis.open_collection("c", path=path, encoder=FakeEncoder(32))
    calls = []

    def wrap(fn):
        def inner(*a, **kw):
            calls.append(fn.__name__)
            if len(calls) == 2:  # the second of (upsert, delete stale chunks), whichever order
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **kw)
        inner.__name__ = fn.__name__
        return inner

    col.store.upsert = wrap(col.store.upsert)
    col.store.delete_points = wrap(col.store.delete_points)
    col.index([Document("long", text), Document("other", "short one")])
    print("finished", flush=True)
    """
)


def test_bug3_a_crash_between_upsert_and_stale_delete_leaves_no_old_chunks(tmp_path):
    data = tmp_path / "data"
    old = " ".join(f"old{i}" for i in range(1000))  # 11 chunks of the fake encoder's 126 words
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32), create=True) as col:
        col.index([Document("long", old), Document("other", "short one")])
        assert col.count() == 12
    proc = subprocess.run([sys.executable, "-c", SHRINK, str(data), "new short text"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32)) as col:
        col.index([Document("long", "new short text"), Document("other", "short one")])
        assert col.count() == 2
        ids = {r.id for r in col.store.scroll(col.physical, with_payload=False)}
        assert ids == {point_id("long", 0), point_id("other", 0)}
        hits = col.search("old5 old6 old7", k=5)
        assert all("old" not in h.text for h in hits)
        assert col.manifest["ingest"]["state"] == "complete"


def test_bug3_stale_chunks_left_by_an_older_tamis_are_found_and_removed(tmp_path):
    """The state the crash left before the fix (chunk 0 new, chunks 1..10 old): a re-run cleans it."""
    data = tmp_path / "data"
    old = " ".join(f"old{i}" for i in range(1000))
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32), create=True) as col:
        col.index([Document("long", old)])
        col.store.delete_points(col.physical, [point_id("long", 0)])
        new = Document("long", "new short text")
        col.store.upsert(col.physical, [tamis.stores.StorePoint(point_id("long", 0), FakeEncoder(32).encode(["x"])[0], {
            "doc_id": "long", "chunk": 0, "n_chunks": 1, "title": "", "text": new.text, "metadata": {},
            "hash": new.content_hash()})])
        assert col.count() == 11
        report = col.index([new])
        assert report.stale_chunks_deleted == 10 and col.count() == 1


# -- weak spot: searching a collection whose ingest did not finish --------------------------------
INTERRUPTED = textwrap.dedent(
    """
    import os, signal, sys
    import tamis
    from tamis import Document, FakeEncoder

    def progress(done, total):
        if done >= 100:
            os.kill(os.getpid(), signal.SIGKILL)

    col = tamis.open_collection("c", path=sys.argv[1], encoder=FakeEncoder(32), create=True)
    col.index([Document(f"d{i}", f"note {i} about volcano lava") for i in range(300)], batch_size=50, progress=progress)
    """
)


def test_searching_an_interrupted_ingest_warns(tmp_path, caplog):
    data = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED, str(data)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32)) as col:
        assert not col.complete and 100 <= col.count() < 300
        with caplog.at_level("WARNING", logger="tamis"):
            assert col.search("volcano lava", k=3)
        assert "in_progress" in caplog.text and "may miss documents" in caplog.text
        col.index([Document(f"d{i}", f"note {i} about volcano lava") for i in range(300)])
        assert col.complete and col.count() == 300


# -- weak spot: info says "damaged" when the store lost its files ---------------------------------
def test_info_says_damaged_when_the_shard_lost_its_files(tmp_path):
    import shutil

    from faultkit import cli

    data = tmp_path / "data"
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32), create=True) as col:
        col.index(_docs(50))
    shard = data / "collections" / "c__v1" / "shard"
    shutil.rmtree(shard / "segments")
    shutil.rmtree(shard / "wal")
    res = cli("info", "-c", "c", "--path", data)
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert shown["ingest"]["state"] == "damaged" and shown["points"] == 0
    assert "50" in shown["ingest"]["problem"] and "damaged" in res.stderr


def test_info_says_damaged_when_vectors_are_truncated(tmp_path):
    data = tmp_path / "data"
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32), create=True) as col:
        col.index(_docs(50))
    for f in (data / "collections" / "c__v1" / "shard").rglob("chunk_*.mmap"):
        os.truncate(f, 200)
    with tamis.open_collection("c", path=data, encoder=FakeEncoder(32)) as col:
        info = col.info()
        assert info["ingest"]["state"] == "damaged" and "cannot be read" in info["ingest"]["problem"]
