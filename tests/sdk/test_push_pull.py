"""Embedded -> server and back: `copy_collection` / `tamis push` / `tamis pull` (qdrant-client local mode as the
server: no Qdrant server exists here), resumable; the CLI's settings and client options; ``path=`` unambiguous."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tamis import Document, FakeEncoder, open_collection
from tamis._errors import ConfigError
from tamis.adapters.qdrant_client import QdrantClientStore
from tamis.adapters.qdrant_edge import EdgeStore
from tamis.cli import app
from tamis.collection import copy_collection

runner = CliRunner()
WORDS = "red green blue cyan magenta yellow".split()
DOCS = [Document(id=f"d{i}", title=w, text=f"document {i} about {w}", metadata={"lang": "en" if i % 2 else "fr"})
        for i, w in enumerate(WORDS)]
SETTINGS = {"quantization": {"type": "scalar"}, "rescore": True, "hnsw_ef": 64, "shard_number": 2,
            "payload_indexes": ["metadata.lang"]}


def _embedded(path: Path, *, calibrate: bool = True) -> Any:
    col = open_collection("docs", path=path, encoder=FakeEncoder(dim=16), create=True, settings=SETTINGS)
    col.index(DOCS)
    if calibrate:
        col.calibrate({f"q{i}": f"about {w}" for i, w in enumerate(WORDS)}, {f"q{i}": {f"d{i}": 1} for i in range(6)},
                      candidates=6, holdout=0)
    return col


def _answers(col: Any) -> list[list[tuple[str, float]]]:
    return [[(h.id, round(h.score, 4)) for h in col.search(f"about {w}", k=3, relevance_filter=False)] for w in WORDS]


def test_push_then_pull_round_trip(tmp_path: Path) -> None:
    col = _embedded(tmp_path / "edge")
    expected, manifest = _answers(col), col.manifest
    server = QdrantClientStore(path=tmp_path / "server")
    report = copy_collection("docs", col.store, server)
    assert (report.target, report.points, report.copied, report.resumed) == ("docs__v1", 6, 6, False)
    pushed = open_collection("docs", store=server, encoder=FakeEncoder(dim=16))
    assert _answers(pushed) == expected
    for key in ("model", "settings", "stages", "dim", "chunking"):
        assert pushed.manifest[key] == manifest[key], key
    assert pushed.manifest["transfer"]["state"] == "complete" and pushed.adapter is not None
    # a second push is a new version behind the alias; the previous one is kept
    assert copy_collection("docs", col.store, server).target == "docs__v2"
    assert server.resolve_alias("docs") == "docs__v2" and "docs__v1" in server.list_collections()
    col.close()
    back = EdgeStore(tmp_path / "edge2")
    assert copy_collection("docs", server, back).target == "docs__v1"
    pulled = open_collection("docs", store=back, encoder=FakeEncoder(dim=16))
    assert _answers(pulled) == expected and pulled.adapter is not None
    assert pulled.manifest["settings"] == manifest["settings"]
    assert back.collection_info("docs__v1")["payload_schema"]["metadata.lang"] == "keyword"  # settings applied
    server.close()
    back.close()


def test_an_interrupted_push_resumes_without_duplicates(tmp_path: Path) -> None:
    col = _embedded(tmp_path / "edge", calibrate=False)
    server = QdrantClientStore(path=tmp_path / "server")

    def crash(done: int, total: int) -> None:
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copy_collection("docs", col.store, server, batch_size=2, progress=crash)
    assert server.resolve_alias("docs") is None  # not served before it is complete
    with pytest.raises(Exception, match="no collection"):
        open_collection("docs", store=server)
    report = copy_collection("docs", col.store, server, batch_size=2)
    assert (report.target, report.resumed, report.already_there, report.copied) == ("docs__v1", True, 2, 4)
    assert server.count("docs") == 6 and server.resolve_alias("docs") == "docs__v1"
    col.close()
    server.close()


def test_cli_settings_push_pull_migrate(tmp_path: Path) -> None:
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"_id": d.id, "title": d.title, "text": d.text, "lang": "en"}) + "\n" for d in DOCS))
    (tmp_path / "settings.json").write_text(json.dumps({"quantization": {"type": "scalar"}, "hnsw_ef": 48}))
    edge, server, edge2 = tmp_path / "edge", tmp_path / "server", tmp_path / "edge2"
    r = runner.invoke(app, ["index", str(data), "-c", "docs", "--path", str(edge), "--model", "fake:32",
                            "--config", str(tmp_path / "settings.json"), "--set", "shard_number=2",
                            "--index-field", "metadata.lang:keyword", "--tenant-field", "metadata.tenant"])
    assert r.exit_code == 0, r.output
    info = json.loads(runner.invoke(app, ["info", "-c", "docs", "--path", str(edge)]).output)
    assert info["settings"] == {"shard_number": 2, "hnsw_ef": 48, "quantization": {"type": "scalar"},
                                "payload_indexes": [{"key": "metadata.lang"}], "tenant_field": "metadata.tenant"}
    r = runner.invoke(app, ["reindex", "-c", "docs", "--path", str(edge), "--model", "fake:16", "--set", "hnsw_ef=24"])
    assert r.exit_code == 0, r.output
    info = json.loads(runner.invoke(app, ["info", "-c", "docs", "--path", str(edge)]).output)
    assert (info["physical"], info["settings"]["hnsw_ef"], info["settings"]["shard_number"]) == ("docs__v2", 24, 2)
    r = runner.invoke(app, ["--retries", "2", "push", "-c", "docs", "--path", str(edge), "--to-store", "qdrant",
                            "--to-path", str(server)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output[r.output.index("{"):])["copied"] == 6
    r = runner.invoke(app, ["pull", "-c", "docs", "--from-store", "qdrant", "--from-path", str(server), "--path", str(edge2)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["migrate", "-c", "docs", "--path", str(edge2)])
    assert r.exit_code == 0 and json.loads(r.output) == {"migrated": 0, "current": 6, "foreign": 0}, r.output
    r = runner.invoke(app, ["search", "about blue", "-c", "docs", "--path", str(edge2), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["hits"][0]["id"] == "d2", r.output
    # path= names Edge's folder for tamis, local mode's for qdrant-client: each refuses the other's
    r = runner.invoke(app, ["list", "--path", str(server)])
    assert r.exit_code == 2 and "store='qdrant'" in r.output, r.output
    with pytest.raises(ConfigError, match="store='edge'"):
        open_collection("docs", store="qdrant", path=edge)


def test_cli_adopt(tmp_path: Path) -> None:
    from langchain_qdrant import QdrantVectorStore

    from tamis.adapters.langchain import TamisEmbeddings

    lc = QdrantVectorStore.from_texts([f"text about {w}" for w in WORDS], TamisEmbeddings(model="fake:32", backend="fake"),
                                      path=str(tmp_path / "lc"), collection_name="lc")
    lc.client.close()
    r = runner.invoke(app, ["adopt", "lc", "--model", "fake:32", "--store", "qdrant", "--path", str(tmp_path / "lc")])
    assert r.exit_code == 0 and "adopted" in r.output, r.output
    r = runner.invoke(app, ["search", "about blue", "-c", "lc", "--store", "qdrant", "--path", str(tmp_path / "lc"), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["hits"][0]["text"] == "text about blue", r.output
