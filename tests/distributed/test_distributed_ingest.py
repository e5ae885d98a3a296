"""The Ray ingest against the in-process one, on a real local Ray cluster (2 CPUs).

Same point ids, payloads and vectors; the same manifest, version and alias; per-block resume;
a killed actor (SIGKILL) and a killed-and-rerun job (a real driver process killed with SIGKILL);
backpressure from a slow store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tamis
from tamis import FakeEncoder
from tamis.collection import open_store, point_id

ray = pytest.importorskip("ray")
from tamis.distributed import RayConfig, index_distributed  # noqa: E402

pytestmark = pytest.mark.slow
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the encoders below travel to the actors


def corpus(n: int, *, long_every: int = 0, pad: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        text = f"text of document {i} about topic {i % 7} " + "word " * (i % 30) + "x" * pad
        if long_every and i % long_every == 0:
            text += " ".join(f"filler{j}" for j in range(300))  # several chunks (fake: 126 words a chunk)
        out.append({"_id": f"doc-{i}", "title": f"title {i % 5}", "text": text, "lang": "en" if i % 2 else "fr"})
    return out


def write_jsonl(path, rows) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def points(path, name="docs", store=None) -> dict[str, tuple[dict, np.ndarray]]:
    kw = {"store": store, "path": path} if store else {"path": path}
    with tamis.open_collection(name, encoder=None, **kw) as col:
        recs = col.store.scroll(col.physical, with_payload=True, with_vectors=True)
        return {r.id: (r.payload, np.asarray(r.vector, dtype=np.float64)) for r in recs}


def test_ray_ingest_equals_the_in_process_one_minilm(ray_cluster, tmp_path, minilm):
    rows = corpus(40)
    rows.append({"_id": "long", "title": "a long one", "text": " ".join(f"sentence {j} of a long text." for j in range(200))})
    write_jsonl(tmp_path / "c.jsonl", rows)
    local = tamis.open_collection("docs", path=tmp_path / "a", encoder=minilm, create=True)
    with local:
        rep_a = local.index(tamis.load_jsonl(tmp_path / "c.jsonl"))
        manifest_a = local.info()
    rep_b = index_distributed(
        tmp_path / "c.jsonl", "docs", path=tmp_path / "b", backend="torch",
        config=RayConfig(num_actors=1, batch_size=16, num_cpus_per_actor=2),
    )
    assert (rep_b.documents, rep_b.chunks, rep_b.encoded, rep_b.points) == (
        rep_a.documents, rep_a.chunks, rep_a.encoded, rep_a.points,
    )
    assert rep_a.chunks > rep_a.documents  # the long document was chunked, on both sides
    a, b = points(tmp_path / "a"), points(tmp_path / "b")
    assert a.keys() == b.keys()
    for pid, (payload, vec) in a.items():
        assert b[pid][0] == payload
        cos = float(vec @ b[pid][1] / np.linalg.norm(vec) / np.linalg.norm(b[pid][1]))
        assert cos >= 0.9999, (pid, cos)
    with tamis.open_collection("docs", path=tmp_path / "b") as col:
        info = col.info()
        assert col.physical == "docs__v1" and col.store.resolve_alias("docs") == "docs__v1"
    for key in ("model", "chunking", "chunked"):
        assert info[key] == manifest_a[key]
    assert info["ingest"]["state"] == "complete"


def test_fake_encoder_chunks_resume_per_block_and_stale_chunks(ray_cluster, tmp_path):
    """Exact vectors with the fake encoder; a re-run encodes only what changed; a shrunk document loses its extra chunks."""
    rows = corpus(120, long_every=10)
    changed = [dict(r) for r in rows]
    changed[3]["text"] = "a new text"
    changed[20]["text"] = "now short"  # was several chunks
    write_jsonl(tmp_path / "half.jsonl", rows[:60])
    write_jsonl(tmp_path / "all.jsonl", changed)
    with tamis.open_collection("docs", path=tmp_path / "a", encoder=FakeEncoder(dim=32), create=True) as col:
        col.index(tamis.load_jsonl(tmp_path / "all.jsonl"))
    cfg = RayConfig(num_actors=2, batch_size=16)
    # first the original first half, then all of it, with one document changed and one shrunk
    rep = index_distributed(tmp_path / "half.jsonl", "docs", path=tmp_path / "b", model="fake:32", config=cfg)
    assert rep.encoded == rep.chunks and rep.documents == 60
    shrunk_from = _chunks_of([rows[20]], skip=set())
    assert shrunk_from > 1
    rep = index_distributed(tmp_path / "all.jsonl", "docs", path=tmp_path / "b", model="fake:32", config=cfg)
    assert rep.documents == 120 and rep.unchanged == 58
    assert rep.encoded == rep.chunks - _chunks_of(rows[:60], skip={3, 20})  # only what is missing or changed
    assert rep.stale_chunks_deleted == shrunk_from - 1
    a, b = points(tmp_path / "a"), points(tmp_path / "b")
    assert a.keys() == b.keys()
    for pid, (payload, vec) in a.items():
        assert b[pid][0] == payload and np.allclose(b[pid][1], vec, atol=1e-6)
    with tamis.open_collection("docs", path=tmp_path / "b") as col:
        assert col.info()["chunked"] is True


def _chunks_of(rows: list[dict], skip: set[int]) -> int:
    """Chunks the fake encoder's chunker makes of ``rows`` (those not in ``skip``)."""
    from tamis.data import Chunker

    ch = Chunker(None, max_tokens=126, overlap=31)
    return sum(len(ch.split(f"{r['title']} {r['text']}".strip())) for i, r in enumerate(rows) if i not in skip)


def test_invalid_input_raises_before_writing_or_is_skipped(ray_cluster, tmp_path):
    rows = corpus(20) + [{"_id": "doc-3", "text": "again"}]
    write_jsonl(tmp_path / "dup.jsonl", rows)
    with pytest.raises(tamis.DuplicateIdError, match="doc-3"):
        index_distributed(tmp_path / "dup.jsonl", "docs", path=tmp_path / "s", model="fake:32")
    with open(tmp_path / "bad.jsonl", "w") as fh:
        fh.write("\n".join(json.dumps(r) for r in corpus(20)) + '\n{"_id": "e", "text": "  "}\nnot json\n{"text": "no id"}\n')
    with pytest.raises(tamis.EmptyTextError):
        index_distributed(tmp_path / "bad.jsonl", "docs", path=tmp_path / "s", model="fake:32")
    with open_store(path=tmp_path / "s")[0] as st:
        assert st.list_collections() == []  # nothing written
    rep = index_distributed(tmp_path / "bad.jsonl", "docs", path=tmp_path / "s", model="fake:32", on_invalid="skip")
    assert rep.points == 20
    assert rep.skipped == {"EmptyTextError": 1, "bad line (not UTF-8 / not JSON)": 1, "missing or invalid field": 1}


class PidFake(FakeEncoder):
    """The fake encoder, slowed down, telling the test which process it runs in."""

    def __init__(self, *args, folder: str = "", delay: float = 0.0, **kw):
        super().__init__(*args, **kw)
        self.folder, self.delay = folder, delay

    def encode(self, texts, **kw):
        with open(os.path.join(self.folder, str(os.getpid())), "a") as fh:
            fh.write(f"{len(texts)}\n")
        time.sleep(self.delay)
        return super().encode(texts, **kw)


def test_a_killed_actor_loses_nothing_and_duplicates_nothing(ray_cluster, tmp_path):
    n = 400
    write_jsonl(tmp_path / "c.jsonl", corpus(n))
    pids = tmp_path / "pids"
    pids.mkdir()
    killed: list[int] = []

    def progress(done: int, total: int) -> None:
        if done > 0 and not killed:
            victim = int(sorted(os.listdir(pids))[0])
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    rep = index_distributed(
        tmp_path / "c.jsonl", "docs", path=tmp_path / "s", encoder=PidFake(dim=32, folder=str(pids), delay=0.2),
        config=RayConfig(num_actors=2, batch_size=20), progress=progress,
    )
    assert killed, "no actor was killed"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # it died mid-run; its block was retried (by a restarted or the other actor)
    assert (rep.encoded, rep.points) == (n, n)
    ids = set(points(tmp_path / "s"))
    assert ids == {point_id(f"doc-{i}", 0) for i in range(n)}


SCRIPT = textwrap.dedent(
    """
    import sys, time, ray
    from tamis import FakeEncoder
    from tamis.distributed import RayConfig, index_distributed

    class SlowFake(FakeEncoder):
        def encode(self, texts, **kw):
            time.sleep(0.2)
            return super().encode(texts, **kw)

    data, path, address = sys.argv[1:4]
    index_distributed(
        data, "docs", path=path, encoder=SlowFake(dim=32),
        config=RayConfig(address=address, num_actors=2, batch_size=25),
        progress=lambda done, total: print(done, flush=True),
    )
    print("finished", flush=True)
    """
)


def test_a_job_killed_and_rerun_resumes_exactly(ray_cluster, tmp_path):
    n = 600
    write_jsonl(tmp_path / "c.jsonl", corpus(n))
    acknowledged = 0
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "c.jsonl"), str(tmp_path / "s"), ray_cluster],
        stdout=subprocess.PIPE, text=True,
    ) as proc:
        try:
            for line in proc.stdout:
                if line.strip() == "finished":
                    break
                acknowledged = int(line)
                if acknowledged >= 150:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
        finally:
            proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, "the job finished before it could be killed"
    with tamis.open_collection("docs", path=tmp_path / "s") as col:
        survived = col.count()
        assert survived >= acknowledged and col.info()["ingest"]["state"] == "in_progress"
    rep = index_distributed(tmp_path / "c.jsonl", "docs", path=tmp_path / "s", model="fake:32",
                            config=RayConfig(num_actors=2, batch_size=100))
    assert rep.unchanged == survived  # nothing written twice
    assert rep.encoded == n - survived  # the rerun encodes only what is missing
    assert rep.points == n
    assert set(points(tmp_path / "s")) == {point_id(f"doc-{i}", 0) for i in range(n)}


def test_a_slow_store_holds_the_actors_back(ray_cluster, tmp_path):
    """Backpressure: with a store slower than the actors, they stay a bounded number of blocks ahead."""
    n, block = 1000, 20
    write_jsonl(tmp_path / "c.jsonl", corpus(n, pad=20_000))  # ~20 kB a document (one chunk): 12 MB in all
    encoded_dir = tmp_path / "enc"
    encoded_dir.mkdir()
    st, _ = open_store(path=tmp_path / "s")
    upsert, ahead, written = st.upsert, [], [0]

    def encoded() -> int:
        return sum(int(x) for f in os.listdir(encoded_dir) for x in (encoded_dir / f).read_text().split())

    def slow_upsert(name, pts):
        ahead.append(encoded() - written[0])
        time.sleep(0.1)
        upsert(name, pts)
        written[0] += len(pts)

    st.upsert = slow_upsert
    try:
        rep = index_distributed(
            tmp_path / "c.jsonl", "docs", store=st, encoder=PidFake(dim=32, folder=str(encoded_dir)),
            config=RayConfig(num_actors=2, batch_size=block, max_buffered_bytes=2**20, max_tasks_in_flight_per_actor=1),
        )
    finally:
        st.close()
    assert rep.points == n
    # Ray Data's streaming executor keeps a few blocks per operator: ~11 blocks here, whatever n
    # (measured: 216 documents ahead at n=600, 212 at n=1000), not a share of the corpus
    print("documents ahead of the store, at most:", max(ahead))
    assert max(ahead) <= 15 * block, f"the actors ran {max(ahead)} documents ahead of the store (of {n})"


def test_cli_index_with_ray(ray_cluster, tmp_path, monkeypatch, capsys):
    """``tamis index DATA -c NAME --ray`` (joins the running cluster) and ``--ray ADDRESS``: the in-process points."""
    from typer.testing import CliRunner

    from tamis.cli import app, main

    write_jsonl(tmp_path / "c.jsonl", corpus(30))
    base = ["index", str(tmp_path / "c.jsonl"), "-c", "docs", "--model", "fake:32", "--json", "--actors", "2"]
    monkeypatch.setattr(sys, "argv", ["tamis", *base, "--path", str(tmp_path / "a"), "--index-field", "metadata.lang:keyword",
                                      "--set", "hnsw_m=8", "--ray"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["documents"], report["encoded"], report["points"]) == (30, 30, 30)
    with tamis.open_collection("docs", path=tmp_path / "a") as col:  # the settings options, as in process
        kept = col.manifest["settings"]
        assert kept["hnsw_m"] == 8 and [i["key"] for i in kept["payload_indexes"]] == ["metadata.lang"]
    runner = CliRunner()
    res = runner.invoke(app, [*base, "--path", str(tmp_path / "a"), "--ray", "local", "--timeout", "5"])
    assert res.exit_code != 0 and "--encoder-url" in res.output and "tamis --timeout" in res.output
    res = runner.invoke(app, [*base, "--path", str(tmp_path / "a"), "--ray", ray_cluster])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["unchanged"] == 30  # (Ray may log a line before it)
    res = runner.invoke(app, ["index", str(tmp_path / "c.jsonl"), "-c", "docs", "--path", str(tmp_path / "b"),
                              "--model", "fake:32", "--json"])
    assert res.exit_code == 0, res.output
    assert points(tmp_path / "a").keys() == points(tmp_path / "b").keys()


def test_actors_write_to_a_qdrant_server_directly(ray_cluster, tmp_path):
    """The server path: the actors upsert over HTTP themselves (tests/distributed/_fake_qdrant.py speaks
    Qdrant's REST calls, bodies parsed with qdrant-client's models, into a local-mode collection)."""
    sys.path.insert(0, os.path.dirname(__file__))
    from _fake_qdrant import FakeQdrant

    rows = corpus(80, long_every=20)
    write_jsonl(tmp_path / "c.jsonl", rows)
    server = FakeQdrant()
    try:
        rep = index_distributed(tmp_path / "c.jsonl", "docs", url=server.url, model="fake:32",
                                config=RayConfig(num_actors=2, batch_size=10))
        assert server.errors == []
        writers = set(server.upserts_by_pid)
        assert os.getpid() not in writers and len(writers) >= 1  # the actors wrote, not the driver
        with tamis.open_collection("docs", url=server.url) as col:
            assert col.physical == "docs__v1" and col.info()["ingest"]["state"] == "complete"
            got = {r.id: (r.payload, np.asarray(r.vector)) for r in col.store.scroll(col.physical, with_payload=True, with_vectors=True)}
    finally:
        server.close()
    with tamis.open_collection("docs", path=tmp_path / "a", encoder=FakeEncoder(dim=32), create=True) as col:
        col.index(tamis.load_jsonl(tmp_path / "c.jsonl"))
    want = points(tmp_path / "a")
    assert rep.points == len(want) and got.keys() == want.keys()
    for pid, (payload, vec) in want.items():
        assert got[pid][0] == payload and np.allclose(got[pid][1], vec, atol=1e-6)


def test_hybrid_on_ray_equals_the_in_process_hybrid_ingest(ray_cluster, tmp_path):
    """``hybrid=True``: the actors compute each chunk's BM25 vector with the collection's `Bm25Encoder`;
    the sparse (and hybrid) searches rank and score as on the in-process hybrid collection."""
    write_jsonl(tmp_path / "c.jsonl", corpus(40, long_every=20))
    rep = index_distributed(tmp_path / "c.jsonl", "docs", path=tmp_path / "r", model="fake:32", hybrid=True,
                            config=RayConfig(num_actors=1, batch_size=10))
    with tamis.open_collection("docs", path=tmp_path / "a", encoder=FakeEncoder(dim=32), create=True, hybrid=True) as col:
        col.index(tamis.load_jsonl(tmp_path / "c.jsonl"))
    assert rep.points == len(points(tmp_path / "a")) and points(tmp_path / "r").keys() == points(tmp_path / "a").keys()
    # BM25 ties make the order (and, in hybrid mode, each tied document's rank in the sparse prefetch,
    # hence its RRF score) depend on the engine's point order, which differs between the two ingests.
    # So: sparse mode compares every score and the hits strictly above the last one; hybrid mode
    # compares, for the documents both return, their cosine and BM25 scores (the data per point).
    queries = ("topic 3 word", "filler7 filler8", "document 11")
    found: dict[str, dict] = {}
    for where in ("r", "a"):
        with tamis.open_collection("docs", path=tmp_path / where, encoder=FakeEncoder(dim=32)) as col:
            assert col.hybrid
            found[where] = {(q, mode): col.search(q, k=8, mode=mode) for q in queries for mode in ("sparse", "hybrid")}
    compared = 0
    for key, hits_a in found["a"].items():
        hits_r = found["r"][key]
        if key[1] == "sparse":
            scores_r, scores_a = ([h.sparse_score for h in hits] for hits in (hits_r, hits_a))
            assert np.allclose(sorted(scores_r), sorted(scores_a), atol=1e-5)
            above = [{(h.id, h.chunk) for h in hits if h.sparse_score > min(scores) + 1e-5}
                     for hits, scores in ((hits_r, scores_r), (hits_a, scores_a))]
            assert above[0] == above[1]
            compared += len(above[0])
        else:
            by_id = {(h.id, h.chunk): h for h in hits_r}
            common = [h for h in hits_a if (h.id, h.chunk) in by_id]
            assert len(common) >= 6
            for h in common:
                other = by_id[(h.id, h.chunk)]
                pair = [[np.nan if v is None else v for v in (x.score, x.sparse_score)] for x in (other, h)]
                assert np.allclose(*pair, atol=1e-5, equal_nan=True)
            compared += len(common)
    assert compared >= 30


def test_collection_settings_and_client_options_reach_the_server_and_the_actors(ray_cluster, tmp_path):
    """``settings=`` (shards, replication, payload indexes, tenant field) are applied when the driver creates
    the collection, as the in-process ingest does; the actors' own client has the driver's options
    (``write_ordering`` is on every upsert they send)."""
    sys.path.insert(0, os.path.dirname(__file__))
    from _fake_qdrant import FakeQdrant

    from tamis.stores import CollectionSettings

    write_jsonl(tmp_path / "c.jsonl", corpus(30))
    settings = CollectionSettings(shard_number=2, replication_factor=2, write_consistency_factor=1,
                                  payload_indexes=["metadata.lang:keyword"], tenant_field="metadata.tenant")
    server = FakeQdrant()
    try:
        rep = index_distributed(tmp_path / "c.jsonl", "docs", url=server.url, model="fake:32", settings=settings,
                                store_options={"write_ordering": "strong", "timeout": 7, "retries": 2},
                                config=RayConfig(num_actors=1, batch_size=10))
        assert server.errors == [] and rep.points == 30
        created = [b for m, p, b, _ in server.requests if m == "PUT" and p.split("?")[0] == "/collections/docs__v1"]
        assert len(created) == 1
        assert (created[0]["shard_number"], created[0]["replication_factor"], created[0]["write_consistency_factor"]) == (2, 2, 1)
        indexed = {b["field_name"]: b["field_schema"] for m, p, b, _ in server.requests if p.startswith("/collections/docs__v1/index")}
        assert {"metadata.lang", "metadata.tenant"} <= set(indexed)
        assert indexed["metadata.tenant"]["is_tenant"] is True
        upserts = [(p, pid) for m, p, _, pid in server.requests if m == "PUT" and p.startswith("/collections/docs__v1/points")]
        assert upserts and all("ordering=strong" in p and pid != os.getpid() for p, pid in upserts)
        with tamis.open_collection("docs", url=server.url) as col:
            assert col.manifest["settings"]["shard_number"] == 2  # kept in the manifest, as in process
    finally:
        server.close()


class StampFake(FakeEncoder):
    """The fake encoder, writing when it first encoded (wall clock) into ``folder``."""

    def __init__(self, *args, folder: str = "", **kw):
        super().__init__(*args, **kw)
        self.folder = folder

    def encode(self, texts, **kw):
        with open(os.path.join(self.folder, f"{os.getpid()}-{time.time():.6f}"), "w"):
            pass
        return super().encode(texts, **kw)


def test_a_new_collections_actors_encode_while_validation_runs(ray_cluster, tmp_path, monkeypatch):
    """A new collection: the actors start and encode during the validation pass; nothing is written before it ends."""
    from tamis.collection._ingest import Indexing
    from tamis.distributed import _ingest

    write_jsonl(tmp_path / "c.jsonl", corpus(200))
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    survey, begin, marks = _ingest._survey, Indexing._begin_ingest, {}

    def slow_survey(*args, **kw):
        out = survey(*args, **kw)
        time.sleep(4)  # a long validation pass
        marks["validated"] = time.time()
        return out

    def marked_begin(self, *args, **kw):
        marks["begin"] = time.time()
        return begin(self, *args, **kw)

    monkeypatch.setattr(_ingest, "_survey", slow_survey)
    monkeypatch.setattr(Indexing, "_begin_ingest", marked_begin)
    rep = index_distributed(tmp_path / "c.jsonl", "docs", path=tmp_path / "s", encoder=StampFake(dim=32, folder=str(stamps)),
                            config=RayConfig(num_actors=1, batch_size=50))
    assert rep.points == 200 and rep.encoded == 200
    first = min(float(f.split("-", 1)[1]) for f in os.listdir(stamps))
    assert first < marks["validated"] <= marks["begin"]  # encoding began before validation ended, writing after
    assert sorted(points(tmp_path / "s")) == sorted(point_id(f"doc-{i}", 0) for i in range(200))
