"""A real ingest process killed with SIGKILL half-way; the re-run resumes without loss or duplicates."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import tamis
from tamis import FakeEncoder
from tamis.collection import point_id

N = 3000

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import tamis
    from tamis import Document, FakeEncoder

    class SlowFake(FakeEncoder):
        def encode(self, texts, **kw):
            time.sleep(0.03)
            return super().encode(texts, **kw)

    path, store, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kw = {"path": path} if store == "edge" else {"store": "qdrant", "path": path}
    docs = [Document(f"doc-{i}", f"text of document {i} " + "word " * (i % 40)) for i in range(n)]
    col = tamis.open_collection("crash", encoder=SlowFake(dim=32), create=True, **kw)
    col.index(docs, batch_size=50, progress=lambda done, total: print(done, flush=True))
    print("finished", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("store", ["edge", "qdrant"])
def test_sigkill_mid_ingest_then_resume(tmp_path, store):
    path = tmp_path / "data"
    acknowledged = 0
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(path), store, str(N)], stdout=subprocess.PIPE, text=True,
    ) as proc:
        try:
            for line in proc.stdout:
                if line.strip() == "finished":
                    break
                acknowledged = int(line)
                if acknowledged >= 600:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
        finally:
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    assert 600 <= acknowledged < N

    kw = {"path": path} if store == "edge" else {"store": "qdrant", "path": path}
    docs = [tamis.Document(f"doc-{i}", f"text of document {i} " + "word " * (i % 40)) for i in range(N)]
    with tamis.open_collection("crash", encoder=FakeEncoder(dim=32), **kw) as col:
        survived = col.count()
        assert survived >= acknowledged  # nothing acknowledged was lost
        assert col.info()["ingest"]["state"] == "in_progress"
        report = col.index(docs)
        assert report.unchanged == survived  # nothing written twice
        assert report.encoded == N - survived
        assert col.count() == N
        ids = {rec.id for rec in col.store.scroll(col.physical, with_payload=False)}
        assert ids == {point_id(f"doc-{i}", 0) for i in range(N)}
        assert col.info()["ingest"]["state"] == "complete"


ALIAS_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import tamis
    from tamis import Document, FakeEncoder

    path, store = sys.argv[1], sys.argv[2]
    kw = {"path": path} if store == "edge" else {"store": "qdrant", "path": path}
    col = tamis.open_collection("crash", encoder=FakeEncoder(dim=32), create=True, **kw)
    col.store.set_alias = lambda alias, target: os.kill(os.getpid(), signal.SIGKILL)  # dies right before
    col.index([Document(f"doc-{i}", f"text of document {i}") for i in range(10)])
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("store", ["edge", "qdrant"])
def test_sigkill_between_new_version_and_its_alias(tmp_path, store):
    """Killed after creating `crash__v1`, before pointing the alias `crash` at it: reopening adopts it."""
    path = tmp_path / "data"
    proc = subprocess.run([sys.executable, "-c", ALIAS_SCRIPT, str(path), store], timeout=120)
    assert proc.returncode == -signal.SIGKILL

    kw = {"path": path} if store == "edge" else {"store": "qdrant", "path": path}
    docs = [tamis.Document(f"doc-{i}", f"text of document {i}") for i in range(10)]
    with tamis.open_collection("crash", encoder=FakeEncoder(dim=32), create=True, **kw) as col:
        assert col.store.resolve_alias("crash") == "crash__v1" and col.physical == "crash__v1"
        assert col.info()["ingest"]["state"] == "in_progress"
        report = col.index(docs)
        assert (report.encoded, col.count()) == (10, 10)
        assert col.store.list_collections() == ["crash__v1"]  # no duplicate
        assert col.info()["ingest"]["state"] == "complete"
