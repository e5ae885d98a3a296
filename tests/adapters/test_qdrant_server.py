"""tamis against a Qdrant REST server on 127.0.0.1 (`_fake_qdrant`): server-only settings as request
bodies checked with qdrant-client's models, strict mode, and retries on injected faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from qdrant_client import models

from tamis import Document, FakeEncoder, open_collection
from tamis._errors import StoreError
from tamis.adapters._qdrant_retry import RetryPolicy, is_transient
from tamis.adapters.qdrant_client import QdrantClientStore
from tests.adapters._fake_qdrant import FakeQdrant, serve

DOCS = [
    Document(id=f"d{i}", text=f"document {i} about {w}", metadata={"lang": "en" if i % 2 else "fr", "tenant": f"t{i % 2}"})
    for i, w in enumerate("red green blue cyan".split())
]
FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)
SETTINGS = {
    "shard_number": 2, "replication_factor": 2, "write_consistency_factor": 1, "strict_mode": True,
    "on_disk_vectors": True, "on_disk_payload": True, "hnsw_m": 32, "hnsw_ef_construct": 200, "hnsw_on_disk": True,
    "quantization": {"type": "scalar", "quantile": 0.99, "always_ram": True}, "rescore": True, "oversampling": 2.0,
    "hnsw_ef": 64, "payload_indexes": ["metadata.lang:keyword"], "tenant_field": "metadata.tenant",
    "indexing_threshold_kb": 20000,
}


@pytest.fixture
def fake() -> Iterator[FakeQdrant]:
    yield from serve()


def _open(fake: FakeQdrant, **options: Any) -> Any:
    options = {"retries": FAST, "check_compatibility": False, **options}
    return open_collection("docs", url=fake.url, encoder=FakeEncoder(dim=16), create=True, settings=SETTINGS,
                           store_options=options)


def test_server_only_settings_reach_the_server_as_valid_requests(fake: FakeQdrant) -> None:
    with _open(fake, write_ordering="strong") as col:
        col.index(DOCS)
        # strict mode is on: every filter tamis makes itself (documents count, ingest) is on an indexed key
        assert col.count(documents=True) == 4
        assert [h.id for h in col.search("document about", k=4, filter={"lang": "en"})] != []
        created = fake.bodies("PUT", "/collections/docs__v1")
        assert len(created) == 1
        req = models.CreateCollection(**created[0])  # what a server parses
        assert (req.shard_number, req.replication_factor, req.write_consistency_factor, req.on_disk_payload) == (2, 2, 1, True)
        assert req.vectors == models.VectorParams(size=16, distance=models.Distance.COSINE, on_disk=True)
        assert (req.hnsw_config.m, req.hnsw_config.ef_construct, req.hnsw_config.on_disk) == (32, 200, True)
        assert req.optimizers_config.indexing_threshold == 20000
        assert req.quantization_config == models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
        )
        assert req.strict_mode_config.enabled is True
        assert req.metadata["tamis"]["tamis"]["settings"]["shard_number"] == 2  # the manifest
        indexes = {b["field_name"]: models.CreateFieldIndex(**b).field_schema
                   for b in fake.bodies("PUT", "/collections/docs__v1/index")}
        assert indexes == {
            "doc_id": models.PayloadSchemaType.KEYWORD, "chunk": models.PayloadSchemaType.INTEGER,
            "metadata.lang": models.PayloadSchemaType.KEYWORD,
            "metadata.tenant": models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
        }
        upserts = [r for r in fake.requests if r.method == "PUT" and r.path == "/collections/docs__v1/points"]
        assert upserts and all("ordering=strong" in r.query and "wait=true" in r.query for r in upserts)
        searches = [models.QueryRequestBatch(**b) for b in fake.bodies("POST", "/collections/docs__v1/points/query/batch")]
        params = searches[-1].searches[0].params
        assert (params.hnsw_ef, params.quantization.rescore, params.quantization.oversampling) == (64, True, 2.0)
        # the strict-mode emulation does refuse an unindexed filter (so the check above can fail)
        with pytest.raises(StoreError, match="Index required"):
            col.search("document", k=2, filter={"color": "red"})


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 503, "times": 2},
        {"kind": "status", "status": 429, "retry_after": 0, "times": 2},
        {"kind": "status", "status": 502, "times": 1},
        {"kind": "reset", "times": 2},
    ],
    ids=["503", "429", "502", "reset"],
)
def test_transient_faults_are_retried(fake: FakeQdrant, fault: dict[str, Any]) -> None:
    with _open(fake) as col:
        col.index(DOCS[:2])
        fake.fail(path="PUT /collections/docs__v1/points", **fault)
        fake.fail(path="POST /collections/docs__v1/points/query/batch", **fault)
        col.index(DOCS)
        assert col.count() == 4
        assert len(col.search("document about", k=4)) == 4
        upserts = [r for r in fake.requests if r.method == "PUT" and r.path == "/collections/docs__v1/points"]
        assert len(upserts) == 2 + fault["times"]  # first ingest, then the faults and the success


def test_timeouts_are_retried_and_a_created_collection_is_recognised(fake: FakeQdrant) -> None:
    # the first creation request reaches the server but answers after the client gave up: the retry
    # meets "already exists" with tamis's own metadata, which is success
    fake.fail("stall", stall_s=1.6, path="PUT /collections/docs__v1")
    with _open(fake, timeout=1) as col:
        col.index(DOCS)
        assert len(fake.bodies("PUT", "/collections/docs__v1")) == 2
        assert col.count(documents=True) == 4


def test_memory_tiers_reach_the_server_as_valid_requests(fake: FakeQdrant) -> None:
    tiers = {"vectors": "cold", "hnsw": "cold", "quantization": "pinned", "payload": "cold",
             "payload_indexes": "cold", "id_tracker": "cold"}
    with open_collection("docs", url=fake.url, encoder=FakeEncoder(dim=16), create=True,
                         settings={**SETTINGS, "memory": tiers},
                         store_options={"retries": FAST, "check_compatibility": False}) as col:
        col.index(DOCS)
        req = models.CreateCollection(**fake.bodies("PUT", "/collections/docs__v1")[0])
        cold, pinned = models.Memory.COLD, models.Memory.PINNED
        assert (req.vectors.memory, req.hnsw_config.memory, req.payload.memory, req.id_tracker.memory) == (cold,) * 4
        assert req.quantization_config.scalar.memory == pinned
        indexes = {b["field_name"]: models.CreateFieldIndex(**b).field_schema
                   for b in fake.bodies("PUT", "/collections/docs__v1/index")}
        assert indexes["doc_id"] == models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, memory=cold)
        assert indexes["chunk"] == models.IntegerIndexParams(type=models.IntegerIndexType.INTEGER, memory=cold)
        assert indexes["metadata.tenant"] == models.KeywordIndexParams(
            type=models.KeywordIndexType.KEYWORD, is_tenant=True, memory=cold)


def test_what_is_not_retried(fake: FakeQdrant) -> None:
    with _open(fake) as col:
        col.index(DOCS)
        n = len(fake.requests)
        fake.fail("status", status=400, path="POST /collections/docs__v1/points/count")
        with pytest.raises(StoreError, match="400"):
            col.count()
        assert len(fake.requests) == n + 1  # a wrong request is not repeated
        fake.fail("status", status=503, times=10, path="POST /collections/docs__v1/points/count")
        with pytest.raises(StoreError, match="503"):
            col.count()
        assert len(fake.requests) == n + 1 + FAST.attempts  # gives up after the policy's attempts


def test_retry_policy() -> None:
    import httpx
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    assert RetryPolicy.of(3).attempts == 4 and RetryPolicy.of(None).attempts == 5
    policy = RetryPolicy(attempts=6, backoff=0.5, max_backoff=2.0)
    waits = [policy.wait(a, None) for a in (1, 2, 3, 4, 5) for _ in range(50)]
    assert all(0 <= w <= 2.0 for w in waits) and len(set(waits)) > 100  # jittered, capped
    assert policy.wait(1, 30.0) == 2.0  # Retry-After capped too
    unexpected = UnexpectedResponse(503, "Service Unavailable", b"", httpx.Headers())
    assert is_transient(unexpected)
    assert not is_transient(UnexpectedResponse(404, "Not Found", b"", httpx.Headers()))
    assert is_transient(ResponseHandlingException(httpx.ReadTimeout("timed out")))
    assert is_transient(ResponseHandlingException(httpx.ConnectError("refused")))
    assert not is_transient(ResponseHandlingException(ValueError("bad json")))
    assert is_transient(ConnectionResetError())
    with pytest.raises(Exception, match="retries"):
        QdrantClientStore(":memory:", retries=-1)


def test_cli_client_options_reach_the_store(fake: FakeQdrant, tmp_path: Any) -> None:
    import json

    from typer.testing import CliRunner

    from tamis.cli import app

    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"_id": d.id, "text": d.text}) + "\n" for d in DOCS))
    fake.fail("status", status=503, times=2, path="PUT /collections/docs__v1/points")
    runner = CliRunner()
    r = runner.invoke(app, ["--retries", "1", "index", str(data), "-c", "docs", "--url", fake.url, "--model", "fake:16"])
    assert r.exit_code == 2 and "503" in r.output  # one retry is not enough for two failures
    r = runner.invoke(app, ["--retries", "3", "--timeout", "5", "--write-ordering", "medium",
                            "index", str(data), "-c", "docs", "--url", fake.url, "--model", "fake:16"])
    assert r.exit_code == 0, r.output
    assert "ordering=medium" in [q.query for q in fake.requests if q.path == "/collections/docs__v1/points"][-1]
