"""`load_encoder`: an encoder from a model name, a folder, a URL or ``"NAME:spec"``, found by name in
the ``tamis.encoders`` registry (`tamis.registry`), so no backend is imported before it is asked for."""

from __future__ import annotations

import os
import re
from typing import Any

from tamis import registry
from tamis._errors import ConfigError
from tamis.encoders._protocol import Encoder
from tamis.encoders._resolve import resolve_device

__all__ = ["load_encoder", "model_source"]

#: ``NAME:spec`` names a registered encoder; two characters at least, so a Windows drive is not one
_NAMED = re.compile(r"([A-Za-z][\w.-]+):(.*)", re.DOTALL)


def load_encoder(
    model: str | os.PathLike[str] | Encoder | None = None,
    *,
    backend: str = "auto",
    device: str = "auto",
    **kwargs: Any,
) -> Encoder:
    """An encoder for ``model``.

    Args:
        model: hub name, local folder, None (packaged all-MiniLM-L6-v2), an encoder (returned as is),
            the ``http://`` / ``https://`` URL of an inference server (TEI, OpenAI-compatible,
            ``tamis serve``): a `tamis.adapters.remote.RemoteEncoder` (the ``http`` encoder), or
            ``"NAME:spec"``: the encoder registered as ``NAME`` with ``spec``, e.g. ``"fake:32"`` (a
            32-d `FakeEncoder`) or ``"onnx:./my-model"``. For a URL and ``"NAME:spec"`` the model
            names its encoder and ``backend`` does not apply.
        backend: the encoder for a model name or folder: ``"torch"``; ``"onnx"`` (ONNX Runtime on CPU,
            exported once and cached); ``"onnx-int8"`` (the same with per-channel int8 weights, its
            own fingerprint, a quality gate on the first documents); ``"auto"``: torch on a GPU, and
            on CPU the faster of ONNX Runtime and torch as measured once per model and machine
            (`tamis.encoders._auto`: ONNX Runtime for all-MiniLM-L6-v2 here); or the name of any
            other registered encoder, which gets ``model`` as its spec.
        device: see `resolve_device`.
        kwargs: passed to the encoder (``api_key=``, ``timeout=`` ... for a URL).

    Raises:
        ConfigError: ``model`` is of another type, or names (or ``backend`` is) no registered
            encoder; the message lists the registered ones.

    Example:
        >>> load_encoder("fake:32").dim
        32
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        if isinstance(model, Encoder):
            return model
        raise ConfigError(f"model must be a name, a path or an Encoder, got {type(model).__name__}")
    if isinstance(model, str):
        if model.startswith(("http://", "https://")):
            return _factory("http")(model, device=device, **kwargs)
        named = _NAMED.fullmatch(model)
        if named is not None and not os.path.exists(model):
            return _factory(named.group(1))(named.group(2) or None, device=device, **kwargs)
    if not isinstance(backend, str):
        raise ConfigError(f"backend must be a name such as 'auto', 'torch' or 'onnx', got {backend!r}")
    spec = None if model is None else os.fspath(model)
    if backend == "auto":
        device = resolve_device(device)
        if device == "cpu" and _onnx_available():
            from tamis.encoders._auto import auto_cpu_encoder

            return auto_cpu_encoder(spec, **kwargs)
        backend = "torch"
    try:
        factory = _factory(backend)
    except ConfigError as exc:
        raise ConfigError(f"backend {backend!r} is not 'auto' or a registered encoder: {exc}") from exc
    return factory(spec, device=device, **kwargs)


def model_source(model: str | os.PathLike[str] | None, backend: str = "auto") -> str | None:
    """What `load_encoder` needs, alone, to load again the encoder of ``load_encoder(model, backend=backend)``.

    ``model`` itself for the built-in choices (``auto``, ``torch``, ``onnx``: the same weights, the same
    fingerprint), a URL or a ``"NAME:spec"``; ``"NAME:model"`` when ``backend`` names another registered
    encoder (``"NAME:"`` for its default model, e.g. ``"onnx-int8:"``: int8 vectors need the int8
    encoder again); None for no model (the packaged default) or an encoder object.

    Example:
        >>> model_source("16", backend="fake"), model_source("./my-model", backend="onnx")
        ('fake:16', './my-model')
    """
    if not isinstance(model, (str, os.PathLike)):
        return f"{backend}:" if model is None and backend not in ("auto", "torch", "onnx") else None
    spec = os.fspath(model)
    if backend in ("auto", "torch", "onnx") or spec.startswith(("http://", "https://")):
        return spec
    if _NAMED.fullmatch(spec) is not None and not os.path.exists(spec):
        return spec
    return f"{backend}:{spec}"


def _factory(name: str) -> Any:
    """The encoder factory registered as ``name`` (see `tamis.registry`)."""
    return registry.load(registry.ENCODERS, name)


def _onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True
