"""Encoders: texts -> unit vectors. The `Encoder` protocol, the torch (`BiEncoder`), ONNX Runtime
(`OnnxEncoder`) and `FakeEncoder` backends, and `load_encoder`.

`load_encoder` finds every encoder by name in the ``tamis.encoders`` registry (`tamis.registry`):
``torch`` (`BiEncoder`), ``onnx`` (`OnnxEncoder`), ``onnx-int8`` (`OnnxEncoder` with per-channel int8
weights, its own fingerprint), ``fake`` (`FakeEncoder`) and ``http``
(`tamis.adapters.remote.RemoteEncoder`, an inference server). ``load_encoder("NAME:spec")`` or
``load_encoder(spec, backend="NAME")`` calls the factory registered as ``NAME``; a URL goes to
``http``; a plain model name or folder to ``torch`` or ``onnx`` (``backend="auto"``).

The factory contract, for your own encoders too::

    def factory(spec: str | None, *, device: str = "auto", **options) -> Encoder: ...

* ``spec``: the text after ``"NAME:"`` (None when empty), or the model argument given with
  ``backend="NAME"`` (None: the factory's default model);
* ``device``: `load_encoder`'s ``device``; a factory that runs nothing locally ignores it;
* ``options``: `load_encoder`'s other keyword arguments, unchanged;
* ``"NAME:spec"`` loads the same encoder (the same fingerprint) again: a collection indexed with
  ``model="NAME:spec"`` records it and re-opens its encoder from it.

Register it under the ``tamis.encoders`` entry point, or at run time::

    from tamis import load_encoder, registry

    registry.register(registry.ENCODERS, "myenc", MyEncoder.from_spec)
    load_encoder("myenc:xyz")                      # MyEncoder.from_spec("xyz", device="auto")

Example:
    >>> from tamis.encoders import load_encoder
    >>> load_encoder("fake:32")
    FakeEncoder(dim=32, name='fake')
"""

from tamis._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "DEFAULT_MODEL": "._resolve",
        "BiEncoder": "._torch",
        "Encoder": "._protocol",
        "FakeEncoder": "._fake",
        "OnnxEncoder": "._onnx",
        "QualityGateError": "._onnx_quant",
        "TextKind": "._protocol",
        "TokenEncoder": "._protocol",
        "default_model_path": "._resolve",
        "fingerprint_sentence_transformer": "._torch",
        "load_encoder": "._load",
        "model_source": "._load",
        "resolve_device": "._resolve",
        "resolve_model": "._resolve",
    },
)
