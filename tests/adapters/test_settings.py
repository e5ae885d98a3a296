"""`CollectionSettings`: parsed and checked, applied by Qdrant Edge, stored in the manifest, carried by reindex."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tamis import Document, FakeEncoder, open_collection
from tamis._errors import ConfigError
from tamis.adapters.qdrant_edge import EdgeStore
from tamis.stores import CollectionSettings, SearchParams, StorePoint

DOCS = [
    Document(id=f"d{i}", text=f"document {i} about {w}", metadata={"lang": "en" if i % 2 else "fr", "tenant": f"t{i % 3}"})
    for i, w in enumerate("red green blue cyan magenta yellow".split())
]


def test_settings_parse_from_strings_files_and_reject_mistakes(tmp_path: Path) -> None:
    s = CollectionSettings.from_strings(
        ["quantization.type=scalar", "quantization.quantile=0.99", "rescore=true", "oversampling=2", "shard_number=3"]
    )
    assert (s.quantization.type, s.quantization.quantile, s.rescore, s.oversampling, s.shard_number) == (
        "scalar", 0.99, True, 2.0, 3,
    )
    assert s.server_only() == ["shard_number"]
    assert CollectionSettings.of(s.to_dict()) == s  # the manifest form round-trips
    (tmp_path / "s.toml").write_text('hnsw_m = 32\ntenant_field = "metadata.tenant"\n'
                                    'payload_indexes = ["metadata.lang:keyword", "metadata.year:integer"]\n')
    t = CollectionSettings.from_file(tmp_path / "s.toml")
    assert [(i.key, i.type, i.is_tenant) for i in t.indexes()] == [
        ("doc_id", "keyword", False), ("chunk", "integer", False), ("metadata.lang", "keyword", False),
        ("metadata.year", "integer", False), ("metadata.tenant", "keyword", True),
    ]
    (tmp_path / "s.json").write_text(json.dumps({"quantization": {"type": "product", "compression": "x16"}}))
    assert CollectionSettings.from_file(tmp_path / "s.json").quantization.compression == "x16"
    for bad, what in [
        ({"quantization": {"type": "binary", "quantile": 0.9}}, "quantile"),
        ({"quantization": "product"}, "compression"),
        ({"shard_number": 0}, "shard_number"),
        ({"hnsw_size": 3}, "hnsw_size"),
        ({"payload_indexes": ["metadata.lang:vector"]}, "payload_indexes"),
    ]:
        with pytest.raises(ConfigError, match=what):
            CollectionSettings.of(bad)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        CollectionSettings.from_strings(["shard_number"])


QUANTIZATIONS: list[tuple[Any, str]] = [
    ("none", ""),
    ({"type": "scalar", "quantile": 0.99, "always_ram": True}, "scalar"),
    ({"type": "binary", "encoding": "two_bits"}, "binary"),
    ({"type": "product", "compression": "x8"}, "product"),
    ({"type": "turbo", "bits": "4"}, "turbo"),
]


@pytest.mark.parametrize(("quantization", "key"), QUANTIZATIONS)
def test_edge_applies_settings_and_payload_indexes(tmp_path: Path, quantization: Any, key: str) -> None:
    settings = CollectionSettings(
        quantization=quantization, on_disk_vectors=True, on_disk_payload=True, hnsw_m=8, hnsw_ef_construct=64,
        hnsw_on_disk=True, payload_indexes=["metadata.lang", "metadata.year:integer"],
        tenant_field="metadata.tenant", indexing_threshold_kb=10, shard_number=2,  # kept for a server, not applied
    )
    with EdgeStore(tmp_path) as store:
        store.create_collection("c", dim=16, metadata={}, settings=settings)
        config = json.loads((tmp_path / "collections" / "c" / "shard" / "edge_config.json").read_text())
        assert config["vectors"][""]["on_disk"] is True
        assert (config["hnsw_config"]["m"], config["hnsw_config"]["ef_construct"], config["hnsw_config"]["on_disk"]) == (
            8, 64, True,
        )
        assert (next(iter(config["quantization_config"])) if config.get("quantization_config") else "") == key
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(1500, 16)).astype(np.float32)
        store.upsert("c", [
            StorePoint(str(uuid.uuid4()), v, {"doc_id": f"d{i}", "chunk": 0, "metadata": {
                "lang": "en" if i % 2 else "fr", "year": 2000 + i % 20, "tenant": f"t{i % 3}"}})
            for i, v in enumerate(vectors)
        ])
        store.optimize("c")
        info = store.collection_info("c")
        assert info["indexed_vectors"] == 1500  # HNSW (on the quantized vectors) built
        assert info["payload_schema"] == {
            "doc_id": "keyword", "chunk": "integer", "metadata.lang": "keyword", "metadata.year": "integer",
            "metadata.tenant": "keyword",
        }
        query = vectors[7] + 0.01
        hits = store.search("c", query, k=5, filter={"metadata.lang": "en"}, params=SearchParams(rescore=True, oversampling=3.0))
        assert len(hits) == 5 and hits[0].payload["doc_id"] == "d7"
        assert store.count("c", filter={"chunk": 0}) == 1500


@pytest.fixture(params=["edge", "qdrant"])
def where(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {} if request.param == "edge" else {"location": ":memory:"}


def test_settings_stored_in_manifest_and_carried_across_reindex(where: dict[str, Any]) -> None:
    settings = {"quantization": {"type": "scalar", "quantile": 0.99}, "rescore": True, "oversampling": 2.0,
                "hnsw_ef": 64, "payload_indexes": ["metadata.lang:keyword"], "tenant_field": "metadata.tenant",
                "replication_factor": 2}
    col = open_collection("docs", encoder=FakeEncoder(dim=16, name="old"), create=True, settings=settings, **where)
    try:
        col.index(DOCS)
        assert col.manifest["settings"] == CollectionSettings.of(settings).to_dict()
        assert col.manifest["payload"] == {"format": 2}
        assert {h.id for h in col.search("document about", k=6, filter={"lang": "en"})} == {"d1", "d3", "d5"}
        col.reindex(encoder=FakeEncoder(dim=24, name="new"))  # documents re-read, settings carried
        assert col.physical == "docs__v2"
        assert col.manifest["settings"] == CollectionSettings.of(settings).to_dict()
        col.reindex(encoder=FakeEncoder(dim=8, name="newer"), settings={"hnsw_ef": 32, "quantization": "binary"})
        carried = CollectionSettings.of(col.manifest["settings"])
        assert (carried.hnsw_ef, carried.quantization.type, carried.tenant_field, carried.replication_factor) == (
            32, "binary", "metadata.tenant", 2,
        )
        if not where:  # Edge applied them to the new version
            config = json.loads((col.store.path / "collections" / "docs__v3" / "shard" / "edge_config.json").read_text())
            assert "binary" in config["quantization_config"]
            assert col.store.collection_info("docs__v3")["payload_schema"]["metadata.tenant"] == "keyword"
        # asking an existing collection for other settings is an error that says what to do
        with pytest.raises(ConfigError, match="reindex"):
            open_collection("docs", store=col.store, settings={"hnsw_ef": 16})
        assert open_collection("docs", store=col.store, settings=carried).manifest["settings"] == carried.to_dict()
    finally:
        col.close()


TIERS = {"vectors": "cold", "hnsw": "cold", "quantization": "pinned", "payload": "cold",
         "payload_indexes": "cold", "id_tracker": "cold"}


def test_memory_tiers_reach_every_structure_on_edge(tmp_path: Path) -> None:
    """A memory-bound int8 collection: quantized vectors pinned, everything else cold (mmap, read on access)."""
    import qdrant_edge as qe

    settings = CollectionSettings.from_strings(
        [f"memory.{k}={v}" for k, v in TIERS.items()] + ["quantization.type=scalar", "indexing_threshold_kb=10"]
    )
    assert settings.memory.hnsw == "cold" and settings.to_dict()["memory"] == TIERS  # kept in the manifest as given
    settings = settings.merged({"payload_indexes": ["metadata.lang", "metadata.year:integer"], "tenant_field": "metadata.tenant"})
    with EdgeStore(tmp_path) as store:
        store.create_collection("c", dim=16, metadata={}, settings=settings)
        config = json.loads((tmp_path / "collections" / "c" / "shard" / "edge_config.json").read_text())
        assert (config["vectors"][""]["memory"], config["hnsw_config"]["memory"], config["payload_memory"],
                config["id_tracker_memory"], config["quantization_config"]["scalar"]["memory"]) == (
            "cold", "cold", "cold", "cold", "pinned")
        vectors = np.random.default_rng(1).normal(size=(1500, 16)).astype(np.float32)
        store.upsert("c", [
            StorePoint(str(uuid.uuid4()), v, {"doc_id": f"d{i}", "chunk": 0,
                                              "metadata": {"lang": "en" if i % 2 else "fr", "year": 2000 + i % 20, "tenant": f"t{i % 3}"}})
            for i, v in enumerate(vectors)
        ])
        store.optimize("c")
        hits = store.search("c", vectors[7] + 0.01, k=5, filter={"metadata.lang": "en"}, params=SearchParams(rescore=True))
        assert hits[0].payload["doc_id"] == "d7"
    shard = qe.EdgeShard.load(str(tmp_path / "collections" / "c" / "shard"))
    try:
        schema = shard.info().payload_schema
        assert set(schema) == {"doc_id", "chunk", "metadata.lang", "metadata.year", "metadata.tenant"}
        assert {k: v.params.memory for k, v in schema.items()} == dict.fromkeys(schema, qe.Memory.Cold)
        assert schema["metadata.tenant"].params.is_tenant is True
    finally:
        shard.close()


def test_memory_tiers_refuse_what_qdrant_cannot_do() -> None:
    for name in ("vectors", "payload"):
        with pytest.raises(ConfigError, match=f"memory.{name} cannot be 'pinned'"):
            CollectionSettings.of({"memory": {name: "pinned"}})
    with pytest.raises(ConfigError, match="memory.hnsw"):
        CollectionSettings.from_strings(["memory.hnsw=warm"])
