import numpy as np
import pytest

from tamis import ConfigError, FakeEncoder, ModelError, default_model_path, load_encoder
from tamis.encoders import BiEncoder, resolve_device, resolve_model


def test_default_model_resolves_offline():
    path = default_model_path()
    assert (path / "model.safetensors").is_file()
    assert resolve_model(None) == str(path)
    assert resolve_model("all-MiniLM-L6-v2") == str(path)
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == str(path)
    assert resolve_model("BAAI/bge-small-en-v1.5") == "BAAI/bge-small-en-v1.5"  # hub names pass through


def test_bad_model_paths(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nope" / "model"))
    f = tmp_path / "file.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelError, match="is a file"):
        resolve_model(f)


def test_unloadable_model_is_a_model_error(tmp_path):
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ModelError, match="could not load"):
        BiEncoder(tmp_path / "empty-model", device="cpu")


def test_device_and_backend_validation():
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="device 'gpu'"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match="backend 'tensorrt'"):
        load_encoder(None, backend="tensorrt")


def test_minilm_vectors_and_fingerprint(minilm):
    v = minilm.encode(["a cat sits on the mat", "a kitten rests on a rug", "stock market crash"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2
    assert len(minilm.fingerprint) == 32
    assert minilm.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_fingerprint_tracks_weights_and_config(minilm):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(default_model_path()), device="cpu")
    assert BiEncoder(st, device="cpu").fingerprint == minilm.fingerprint
    st.max_seq_length = 128
    assert BiEncoder(st, device="cpu").fingerprint != minilm.fingerprint
    st.max_seq_length = minilm.max_seq_length
    with __import__("torch").no_grad():
        next(st.parameters())[0, 0] += 1e-3
    assert BiEncoder(st, device="cpu").fingerprint != minilm.fingerprint


def test_fake_encoder_is_deterministic_and_similar_for_shared_words():
    enc = FakeEncoder(dim=64)
    a, b, c = enc.encode(["red apple pie", "red apple", "blue whale"])
    assert np.array_equal(enc.encode(["red apple pie"])[0], a)
    assert a @ b > a @ c
    assert FakeEncoder(dim=64, name="x").fingerprint != enc.fingerprint
    assert load_encoder(enc) is enc
