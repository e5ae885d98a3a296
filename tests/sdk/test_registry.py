import pytest

import tamis
from tamis import ConfigError, registry


def test_builtin_stores_are_entry_points():
    assert {"edge", "qdrant"} <= set(registry.available(registry.STORES))
    from tamis.adapters.qdrant_edge import EdgeStore

    assert registry.load(registry.STORES, "edge") is EdgeStore


def test_unknown_names_list_what_exists():
    with pytest.raises(ConfigError, match=r"no store named 'nope'; available: .*edge"):
        registry.load(registry.STORES, "nope")
    with pytest.raises(ConfigError, match=r"no encoder named 'nope'; available: .*fake"):
        registry.load(registry.ENCODERS, "nope")
    with pytest.raises(ConfigError, match="unknown registry group"):
        registry.available("tamis.things")


def test_a_third_party_store_plugs_in(tmp_path):
    """A store registered by name is used by open_collection(store=NAME) like the built-ins."""
    from tamis.adapters.qdrant_edge import EdgeStore

    made = []

    class MyStore(EdgeStore):
        kind = "mine"

        def __init__(self, path):
            made.append(path)
            super().__init__(path)

    registry.register(registry.STORES, "mine", MyStore)
    with tamis.open_collection("x", store="mine", path=tmp_path, encoder=tamis.FakeEncoder(8), create=True) as col:
        col.index([tamis.Document("a", "hello")])
        assert col.store.kind == "mine" and col.count() == 1
    assert made == [tmp_path]
