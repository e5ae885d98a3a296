"""Encoders through the ``tamis.encoders`` registry: ``"NAME:spec"``, ``backend="NAME"``, and a
collection that records its encoder's spec and re-opens with it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import tamis
from tamis import ConfigError, FakeEncoder, load_encoder, registry


class Recorder:
    """A third-party encoder factory: a FakeEncoder per spec, remembering what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str, dict[str, Any]]] = []

    def __call__(self, spec: str | None, *, device: str = "auto", **options: Any) -> FakeEncoder:
        self.calls.append((spec, device, options))
        return FakeEncoder(8, name=f"rec-{spec}")


def test_the_builtin_encoders_are_entry_points():
    assert {"torch", "onnx", "http", "fake"} <= set(registry.available(registry.ENCODERS))
    assert registry.load(registry.ENCODERS, "fake") == FakeEncoder.from_spec


def test_fake_by_name():
    enc = load_encoder("fake:32")
    assert isinstance(enc, FakeEncoder) and enc.dim == 32
    assert enc.fingerprint == FakeEncoder(dim=32).fingerprint
    assert load_encoder("fake:").dim == 64 and load_encoder(None, backend="fake").dim == 64
    assert load_encoder("16", backend="fake").dim == 16
    assert load_encoder("fake:8", name="other").fingerprint == FakeEncoder(8, name="other").fingerprint
    with pytest.raises(ConfigError, match="takes a dimension"):
        load_encoder("fake:big")


def test_unknown_names_list_what_is_available():
    with pytest.raises(ConfigError, match=r"no encoder named 'nope'; available: .*fake, http, onnx, onnx-int8, torch"):
        load_encoder("nope:xyz")
    with pytest.raises(ConfigError, match=r"backend 'tensorrt'.*no encoder named 'tensorrt'; available: .*fake"):
        load_encoder("some/model", backend="tensorrt")
    with pytest.raises(ConfigError, match="URL"):
        load_encoder("http:")


def test_a_third_party_encoder_by_name_and_as_backend():
    rec = Recorder()
    registry.register(registry.ENCODERS, "recorder", rec)
    assert load_encoder("recorder:abc", device="cpu", batch=3).name == "rec-abc"
    assert load_encoder("xyz", backend="recorder").name == "rec-xyz"
    assert load_encoder(backend="recorder").name == "rec-None"
    assert rec.calls == [("abc", "cpu", {"batch": 3}), ("xyz", "auto", {}), (None, "auto", {})]


def test_an_existing_folder_is_a_model_not_a_name(tmp_path, monkeypatch):
    rec = Recorder()
    registry.register(registry.ENCODERS, "folder-rec", rec)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder-rec:v2").mkdir()
    load_encoder("folder-rec:v2", backend="folder-rec")
    load_encoder("folder-rec:v3")
    assert [spec for spec, _, _ in rec.calls] == ["folder-rec:v2", "v3"]


def test_a_collection_indexed_with_fake_reopens_with_it(tmp_path):
    docs = [tamis.Document(f"d{i}", f"note {i} about {w}") for i, w in enumerate(["cats", "lava", "bread"])]
    with tamis.open_collection("notes", path=tmp_path, model="fake:32", create=True) as col:
        col.index(docs)
        fingerprint = col.encoder.fingerprint
        assert col.manifest is not None and col.manifest["model"]["source"] == "fake:32"
    with tamis.open_collection("notes", path=tmp_path) as col:
        assert isinstance(col.encoder, FakeEncoder) and col.encoder.dim == 32
        assert col.encoder.fingerprint == fingerprint
        assert col.search("about lava", k=1)[0].id == "d1"
    with pytest.raises(tamis.ModelMismatchError):
        tamis.open_collection("notes", path=tmp_path, model="fake:16")


def test_a_third_party_encoder_through_open_collection(tmp_path):
    rec = Recorder()
    registry.register(registry.ENCODERS, "mine", rec)
    with tamis.open_collection("x", path=tmp_path, model="mine:v1", create=True) as col:
        col.index([tamis.Document("a", "hello world")])
    with tamis.open_collection("x", path=tmp_path) as col:
        assert col.encoder.name == "rec-v1" and col.count() == 1
        assert [h.id for h in col.search("hello", k=1)] == ["a"]
    assert [spec for spec, _, _ in rec.calls] == ["v1", "v1"]


def test_a_collection_made_with_backend_name_reopens_with_it(tmp_path):
    """``model=spec, backend=NAME`` is recorded as ``NAME:spec``: reopening needs no backend= (same fingerprint)."""
    rec = Recorder()
    registry.register(registry.ENCODERS, "mine", rec)
    with tamis.open_collection("y", path=tmp_path, model="v2", backend="mine", create=True) as col:
        col.index([tamis.Document("a", "hello world")])
        assert col.manifest["model"]["source"] == "mine:v2"
    with tamis.open_collection("y", path=tmp_path) as col:
        assert col.encoder.name == "rec-v2" and [h.id for h in col.search("hello", k=1)] == ["a"]


def test_load_encoder_by_name_imports_no_adapter_and_no_torch():
    code = (
        "import sys, tamis\n"
        "enc = tamis.load_encoder('fake:8')\n"
        "print(enc.dim, 'tamis.adapters.remote' in sys.modules, 'torch' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["8", "False", "False"]
