"""Encoders: texts -> unit vectors. The `Encoder` protocol, the torch (`BiEncoder`), ONNX Runtime (`OnnxEncoder`) and `FakeEncoder` backends, and `load_encoder`."""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "BiEncoder": "._encoder",
        "Encoder": "._encoder",
        "FakeEncoder": "._encoder",
        "OnnxEncoder": "._onnx",
        "default_model_path": "._encoder",
        "load_encoder": "._encoder",
        "resolve_device": "._encoder",
        "resolve_model": "._encoder",
    },
)
