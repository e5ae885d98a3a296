"""Query-time stages are generic: listed in the manifest, options through `SearchOptions`, third parties alike."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from typing import Any

import numpy as np
import pytest

import tamis
from tamis import AdapterConfig, ConfigError, CosineAdapter, Document, FakeEncoder
from tamis.collection import Hit, SearchOptions, SearchRequest, Stage
from tamis.registry import STAGES, register

VOCAB = [f"w{i}" for i in range(40)]
QUERIES = ["w1 w2 w3", "w10 w11", "w5 w30 w31", "w7", "w20 w33 w39"]


def corpus(n: int = 80) -> list[Document]:
    rng = np.random.default_rng(5)
    return [
        Document(f"d{i}", " ".join(rng.choice(VOCAB, 5, replace=False)), metadata={"n": i, "spam": i % 3 == 0})
        for i in range(n)
    ]


def same(a: list[Hit], b: list[Hit]) -> bool:
    """The same documents in the same order, with the same scores (to float32 precision: stores may recompute them)."""
    return [h.id for h in a] == [h.id for h in b] and np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6)


def adapter_for(enc: FakeEncoder, threshold: float = 0.5) -> CosineAdapter:
    """A small random adapter with score-list features, for ``enc``'s model."""
    rng = np.random.default_rng(11)
    cfg = AdapterConfig(g="linear", use_embedding=True, use_score_features=True, hidden=4, window=10)
    f = cfg.input_dim(enc.dim)
    w = {
        "mu": np.zeros(f), "sd": np.ones(f), "w1": rng.normal(size=(4, f)), "b1": rng.normal(size=4),
        "w2": rng.normal(size=(2, 4)), "b2": np.array([2.0, -1.0]), "log_gamma": np.array([0.3]),
    }
    adapter = CosineAdapter(cfg, w, fingerprint=enc.fingerprint, dim=enc.dim)
    adapter.threshold = threshold
    return adapter


@pytest.fixture(params=["edge", "qdrant"])
def where(request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    return {"path": tmp_path / "edge"} if request.param == "edge" else {"store": "qdrant", "path": tmp_path / "qdrant"}


@pytest.fixture
def col(where: dict[str, Any]) -> Any:
    with tamis.open_collection("c", encoder=FakeEncoder(dim=24), create=True, **where) as c:
        c.index(corpus())
        yield c


class DropFlagged:
    """A third-party stage: drops hits whose metadata flag is set, unless ``keep_flagged=True``; caps ``k``."""

    name = "drop-flagged"
    options = frozenset({"keep_flagged"})
    requirement = "the drop-flagged stage: Collection.set_stage('drop-flagged', {'flag': ...})"

    def __init__(self, flag: str, max_k: int | None) -> None:
        self.flag, self.max_k = flag, max_k

    @classmethod
    def from_manifest(cls, settings: dict[str, Any], *, fingerprint: str) -> DropFlagged:
        if not isinstance(settings.get("flag"), str):
            raise ConfigError(f"drop-flagged needs a 'flag' setting, got {settings!r}")
        return cls(settings["flag"], settings.get("max_k"))

    def __call__(self, request: SearchRequest, search: Any) -> list[list[Hit]]:
        if self.max_k is not None and request.k > self.max_k:
            request = request.replace(k=self.max_k)
        if request.options.get("keep_flagged"):
            return search(request)
        # ask for more, so that dropping still leaves k hits when there are that many
        hits = search(request.replace(k=request.k * 3))
        return [[h for h in row if not h.metadata.get(self.flag)][: request.k] for row in hits]


register(STAGES, "drop-flagged", DropFlagged)


def test_search_options_is_one_frozen_object_the_keywords_merge_into(col: Any) -> None:
    opts = SearchOptions(filter={"n": {"lt": 40}}, exact=True)
    with pytest.raises(FrozenInstanceError):
        opts.exact = False  # type: ignore[misc]
    by_object = col.search("w1 w2", 5, opts)
    assert same(by_object, col.search("w1 w2", k=5, filter={"n": {"lt": 40}}, exact=True))
    assert all(h.metadata["n"] < 40 for h in by_object)
    # keywords win over the object's fields; the four methods agree
    wide = col.search("w1 w2", 5, opts, filter=None)
    assert same(wide, col.search("w1 w2", k=5, exact=True)) and not same(wide, by_object)
    vec = col.encode_queries(["w1 w2"])
    assert same(col.search_vector(vec[0], 5, opts), by_object)
    assert same(col.search_vectors(vec, 5, opts)[0], by_object)
    assert same(col.search_batch(["w1 w2", "w3"], 5, opts)[0], by_object)
    # a per-query threshold list and one threshold for all
    thr = float(np.float32(by_object[2].score)) - 1e-6
    assert same(col.search_vectors(vec, 5, opts, score_thresholds=[thr])[0], by_object[:3])
    assert same(col.search_vectors(vec, 5, opts, score_threshold=thr)[0], by_object[:3])
    with pytest.raises(ConfigError, match="not both"):
        col.search_vectors(vec, 5, score_threshold=0.1, score_thresholds=[0.1])
    with pytest.raises(ConfigError, match="hnsw_ef"):
        col.search("w1", hnsw_ef=0)
    with pytest.raises(ConfigError, match="score_threshold"):
        SearchOptions(score_threshold="high")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="SearchOptions"):
        col.search("w1", 5, {"exact": True})
    assert dict(SearchOptions().replace(min_relevance=0.7, relevance_filter=None).stage_options) == {"min_relevance": 0.7}


def test_stage_options_without_their_stage(col: Any) -> None:
    # relevance_filter only turns the relevance stage off: fine on a collection without one
    assert same(col.search("w1 w2", k=3, relevance_filter=False), col.search("w1 w2", k=3))
    assert same(col.search("w1 w2", k=3, relevance_filter=True, min_relevance=None), col.search("w1 w2", k=3))
    with pytest.raises(ConfigError, match="min_relevance=0.5 needs a calibrated collection.*tamis calibrate"):
        col.search("w1 w2", min_relevance=0.5)
    with pytest.raises(ConfigError, match="keep_flagged=True needs the drop-flagged stage"):
        col.search("w1 w2", keep_flagged=True)
    with pytest.raises(ConfigError, match="unknown search option 'min_relevence'.*filter, fusion, hnsw_ef, mode, rrf_k, score_threshold"):
        col.search("w1 w2", min_relevence=0.5)


def test_a_third_party_stage_gets_the_same_powers(col: Any) -> None:
    plain = col.search("w1 w2", k=10)
    assert any(h.metadata["spam"] for h in plain)
    with pytest.raises(ConfigError, match="flag"):
        col.set_stage("drop-flagged", {})  # built once when added: bad settings fail now
    with pytest.raises(ConfigError, match="JSON"):
        col.set_stage("drop-flagged", {"flag": "spam", "when": object()})
    with pytest.raises(ConfigError, match="no stage named 'nope'"):
        col.set_stage("nope", {})
    col.set_stage("drop-flagged", {"flag": "spam"})
    assert [s.name for s in col.stages] == ["drop-flagged"] and isinstance(col.stages[0], Stage)
    hits = col.search("w1 w2", k=10)
    assert len(hits) == 10 and not any(h.metadata["spam"] for h in hits)
    assert same(hits, [h for h in col.search("w1 w2", k=80, keep_flagged=True) if not h.metadata["spam"]][:10])
    assert same(col.search("w1 w2", k=10, keep_flagged=True), plain)  # its own option, through SearchOptions
    # new settings, same place, a new version; the manifest is what a reopened handle builds from
    col.set_stage("drop-flagged", {"flag": "spam", "max_k": 4})
    assert [(e["name"], e["version"]) for e in col.manifest["stages"]] == [("drop-flagged", 2)]
    with tamis.open_collection("c", store=col.store, encoder=FakeEncoder(dim=24)) as again:
        assert same(again.search("w1 w2", k=10), hits[:4])
        assert again.info()["stages"][0]["settings"] == {"flag": "spam", "max_k": 4}
        assert again.info()["calibration"] is None
    col.remove_stage("drop-flagged")
    assert col.stages == () and same(col.search("w1 w2", k=10), plain)


def test_a_stage_that_is_not_a_stage_is_refused(col: Any) -> None:
    class NoOptions:
        name = "no-options"

        @classmethod
        def from_manifest(cls, settings: Any, *, fingerprint: str) -> Any:
            return cls()

        def __call__(self, request: SearchRequest, search: Any) -> list[list[Hit]]:
            return search(request)

    register(STAGES, "no-options", NoOptions)
    with pytest.raises(ConfigError, match="does not implement tamis.collection.Stage"):
        col.set_stage("no-options")


def test_relevance_and_a_third_party_stage_together(col: Any) -> None:
    enc = col.encoder
    adapter = adapter_for(enc)
    col.set_adapter(adapter)
    assert [e["name"] for e in col.manifest["stages"]] == ["relevance"] and "calibration" not in col.manifest
    calibrated = col.search_batch(QUERIES, k=20)
    col.set_stage("drop-flagged", {"flag": "spam"})  # last: it runs inside relevance, around the store query
    both = col.search_batch(QUERIES, k=20)
    assert all(h.relevance is not None and not h.metadata["spam"] for hits in both for h in hits)
    assert all(map(same, col.search_batch(QUERIES, k=20, keep_flagged=True), calibrated))
    plain = col.search_batch(QUERIES, k=20, keep_flagged=True, relevance_filter=False)
    assert all(len(hits) == 20 for hits in plain)
    col.set_adapter(None)  # removes the adapter's stage, and only that one
    assert [s.name for s in col.stages] == ["drop-flagged"] and col.adapter is None


def test_a_manifest_written_before_stages_were_listed_filters_as_before(where: dict[str, Any]) -> None:
    """Format 1 with a top-level ``calibration`` record: opened, searched and shown exactly as then."""
    enc = FakeEncoder(dim=24)
    with tamis.open_collection("c", encoder=enc, create=True, **where) as col:
        col.index(corpus())
        adapter = adapter_for(enc)
        qv = col.encode_queries(QUERIES)
        col.set_adapter(adapter)
    with tamis.open_collection("c", **where) as col:
        want = col.search_vectors(qv, 30)
        want_plain = col.search_vectors(qv, 30, relevance_filter=False)
        assert 0 < sum(map(len, want)) < 30 * len(QUERIES)  # the adapter filters
        # the manifest as tamis wrote it before stages were listed
        old = {k: v for k, v in col.manifest.items() if k != "stages"}
        old["calibration"] = {
            "version": 3, "stage": "relevance", "created": "2024-01-01T00:00:00+00:00", "adapter": adapter.to_dict(),
        }
        assert old["format"] == 1
        meta = dict(col.store.get_metadata(col.physical))
        meta["tamis"] = old
        col.store.set_metadata(col.physical, meta)
    with tamis.open_collection("c", **where) as col:
        assert col.search_vectors(qv, 30) == want
        assert col.search_vectors(qv, 30, relevance_filter=False) == want_plain
        assert [e["name"] for e in col.manifest["stages"]] == ["relevance"] and "calibration" not in col.manifest
        assert col.adapter.to_dict() == adapter.to_dict()
        i = max(range(len(want)), key=lambda j: len(want[j]))
        tau = sorted(h.relevance for h in want[i])[len(want[i]) // 2]
        strict = col.search_vectors(qv[i : i + 1], 30, min_relevance=tau)[0]
        assert 0 < len(strict) < len(want[i]) and all(h.relevance >= tau for h in strict)
        cal = col.info()["calibration"]
        assert (cal["version"], cal["stage"], cal["created"]) == (3, "relevance", "2024-01-01T00:00:00+00:00")
        assert cal["adapter"]["weights"].endswith("bytes>") and cal["adapter"]["threshold"] == 0.5
        # the next change writes the stage list; the version keeps counting
        col.set_adapter(replace_threshold(adapter, 0.6))
        assert "calibration" not in col.store.get_metadata(col.physical)["tamis"]
        assert [(e["name"], e["version"]) for e in col.manifest["stages"]] == [("relevance", 4)]


def replace_threshold(adapter: CosineAdapter, threshold: float) -> CosineAdapter:
    out = CosineAdapter.from_dict(adapter.to_dict())
    out.threshold = threshold
    return out


def test_the_stages_see_one_validated_request(col: Any) -> None:
    seen: list[SearchRequest] = []

    class Spy:
        name = "spy"
        options = frozenset({"note"})

        @classmethod
        def from_manifest(cls, settings: Any, *, fingerprint: str) -> Any:
            return cls()

        def __call__(self, request: SearchRequest, search: Any) -> list[list[Hit]]:
            seen.append(request)
            return search(request)

    register(STAGES, "spy", Spy)
    col.set_stage("spy")
    col.search("w1", 3, SearchOptions(filter={"lang": "x"}, score_threshold=0.25, hnsw_ef=64), note="hi")
    (req,) = seen
    assert replace(req, vectors=None) == SearchRequest(
        vectors=None, k=3, filter={"metadata.lang": "x"}, score_thresholds=[0.25], hnsw_ef=64, options={"note": "hi"},
        texts=["w1"],
    )
    assert req.vectors.dtype == np.float32 and req.vectors.shape == (1, 24)


def test_refused_stage_settings_leave_the_collection_as_it_was(col: Any) -> None:
    """Settings the store cannot hold (NaN is not JSON) are refused before anything changes."""
    col.set_stage("drop-flagged", {"flag": "spam"})
    stored = col.store.get_metadata(col.physical)["tamis"]["stages"]
    with pytest.raises(ConfigError, match="JSON"):
        col.set_stage("drop-flagged", {"flag": "spam", "x": float("nan")})
    assert col.manifest["stages"] == stored == col.store.get_metadata(col.physical)["tamis"]["stages"]
    assert [(e["name"], e["version"]) for e in stored] == [("drop-flagged", 1)]
    col.remove_stage("nope")  # nothing to remove: nothing written
    assert col.store.get_metadata(col.physical)["tamis"]["stages"] == stored


def test_a_replaced_adapter_is_the_one_searches_use(col: Any) -> None:
    """set_adapter(a), set_adapter(None), set_adapter(b) with no search between: b filters (not a stale a)."""
    enc = col.encoder
    col.set_adapter(adapter_for(enc, threshold=0.01))
    assert col.search("w1 w2", k=5)
    col.set_adapter(None)
    col.set_adapter(adapter_for(enc, threshold=0.999999))
    assert col.stages[0].threshold == pytest.approx(0.999999)
    assert col.search("w1 w2", k=5) == [] or all(h.relevance >= 0.999999 for h in col.search("w1 w2", k=5))
