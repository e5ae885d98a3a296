"""The measured ``auto`` rule on CPU: ONNX Runtime or torch, from a probe timed once per model and machine.

The rule: on a GPU, torch. On CPU, tamis times both local backends on synthetic texts of 16, 64 and
the model's maximum tokens (best of 3 interleaved rounds, a few seconds, the first time a model is
used with ``backend="auto"`` on a machine) and caches the result under
``cache_dir()/probe/<model key>-<machine key>.json``. Then:

* ONNX Runtime at least as fast on every length -> ``onnx`` (what all-MiniLM-L6-v2 measures here);
* torch faster (by more than 5%, `MARGIN`) on every length -> ``torch``;
* mixed -> `RoutedEncoder`: each call's texts go, by token count, to the backend that won the
  nearest probed length (both backends have the same fingerprint, so vectors mix safely); torch is
  loaded only when a text goes to it, so short queries never import it.

The machine key is the CPU model, the cores this process may use and the onnxruntime and torch
versions: a new machine, a changed affinity or an upgrade measures again. ``TAMIS_AUTO_PROBE=0``
skips the probe (``onnx``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tamis._errors import ModelError
from tamis._settings import cache_dir
from tamis.encoders._onnx_runtime import available_cores, machine_key
from tamis.encoders._protocol import Encoder, TextKind

__all__ = ["PROBE_FORMAT", "RoutedEncoder", "choose", "probe_file", "run_probe"]

logger = logging.getLogger("tamis")

PROBE_FORMAT = 1
#: torch must beat ONNX Runtime by more than this factor at a length to get it
MARGIN = 1.05
_PROBE_TEXTS = 16
_SENTENCE = "tamis times both backends on texts of this many tokens before it picks one for you . "


def probe_file(model_key: str) -> Path:
    return cache_dir() / "probe" / f"{model_key}-{machine_key()}.json"


def read_probe(path: Path) -> dict[str, Any] | None:
    try:
        probe = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return probe if probe.get("format") == PROBE_FORMAT and probe.get("buckets") else None


def choose(probe: dict[str, Any]) -> str | dict[int, str]:
    """``"onnx"``, ``"torch"``, or {probed length: winner} when neither wins every length. torch wins a
    length when it measured more than `MARGIN` faster there (less is within the timing noise)."""
    winners = {
        int(n): ("torch" if b["torch"] > b["onnx"] * MARGIN else "onnx") for n, b in probe["buckets"].items()
    }
    kinds = set(winners.values())
    return kinds.pop() if len(kinds) == 1 else dict(sorted(winners.items()))


def run_probe(onnx: Encoder, torch_enc: Encoder, path: Path, *, rounds: int = 3) -> dict[str, Any]:
    """Time ``onnx`` and ``torch_enc`` (docs/s, best of ``rounds`` interleaved) on synthetic texts of
    16, 64 and max tokens; write the result to ``path`` (atomically) and return it."""
    tok = onnx.tokenizer
    base = tok(_SENTENCE * 64, add_special_tokens=False)["input_ids"]
    buckets: dict[str, dict[str, float]] = {}
    for n in sorted({16, 64, int(onnx.max_seq_length)}):
        text = tok.decode(base[: max(1, n - 2)])
        texts = [f"{i} {text}" for i in range(_PROBE_TEXTS)]
        best = {"onnx": 0.0, "torch": 0.0}
        for enc in (onnx, torch_enc):
            enc.encode(texts[:4])  # warm-up
        for _ in range(rounds):
            for key, enc in (("onnx", onnx), ("torch", torch_enc)):
                t0 = time.perf_counter()
                enc.encode(texts)
                best[key] = max(best[key], len(texts) / (time.perf_counter() - t0))
        buckets[str(n)] = {k: round(v, 1) for k, v in best.items()}
    probe = {
        "format": PROBE_FORMAT,
        "model": onnx.name,
        "machine": machine_key(),
        "cores": available_cores(),
        "buckets": buckets,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    probe["choice"] = choose(probe)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(probe, fh, indent=1)
    os.replace(tmp, path)
    logger.info("auto probe for %s: %s -> %s", onnx.name, buckets, probe["choice"])
    return probe


class RoutedEncoder:
    """Two encoders of the same model (same fingerprint): each text goes to the one that won the probed
    length nearest its token count. What ``backend="auto"`` gives when the probe is mixed."""

    backend = "auto"

    def __init__(
        self, onnx: Encoder, torch_enc: Encoder | Callable[[], Encoder], winners: dict[int, str]
    ) -> None:
        self._onnx = onnx
        self._torch: Encoder | None = torch_enc if isinstance(torch_enc, Encoder) else None
        self._make_torch = None if self._torch is not None else torch_enc
        self._winners = dict(sorted(winners.items()))
        self.name, self.dim, self.fingerprint = onnx.name, onnx.dim, onnx.fingerprint
        self.max_seq_length = onnx.max_seq_length

    @property
    def tokenizer(self) -> Any:
        return self._onnx.tokenizer

    @property
    def normalizes(self) -> bool:
        return bool(getattr(self._onnx, "normalizes", True))

    def _encoder(self, key: str) -> Encoder:
        if key == "onnx":
            return self._onnx
        if self._torch is None:
            assert self._make_torch is not None
            self._torch = self._make_torch()  # type: ignore[operator]
            if self._torch.fingerprint != self.fingerprint:  # pragma: no cover - same weights, same hash
                raise ModelError("RoutedEncoder needs two encoders of the same model")
        return self._torch

    def route(self, n_tokens: int) -> str:
        """The backend for a text of ``n_tokens`` tokens."""
        lengths = list(self._winners)
        nearest = min(lengths, key=lambda n: (abs(np.log(max(n_tokens, 1) / n)), n))
        return self._winners[nearest]

    def encode(
        self, texts: Sequence[str], *, kind: TextKind = "document", batch_size: int = 64
    ) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        counts = [len(ids) for ids in self.tokenizer(texts, truncation=True)["input_ids"]]
        for key in ("onnx", "torch"):
            idx = [i for i, c in enumerate(counts) if self.route(c) == key]
            if idx:
                vecs = self._encoder(key).encode([texts[i] for i in idx], kind=kind, batch_size=batch_size)
                out[idx] = vecs
        return out

    def __repr__(self) -> str:
        return f"RoutedEncoder({self.name!r}, {self._winners})"


def auto_cpu_encoder(spec: str | None, **kwargs: Any) -> Encoder:
    """The encoder ``backend="auto"`` gives on CPU for ``spec`` (see the module doc)."""
    from tamis.encoders._onnx import OnnxEncoder
    from tamis.encoders._torch import BiEncoder

    onnx = OnnxEncoder(spec, **kwargs)
    if os.environ.get("TAMIS_AUTO_PROBE", "1").strip().lower() in ("0", "false", "no", "off"):
        return onnx
    path = probe_file(onnx.export_dir.name)
    probe = read_probe(path)
    if probe is None:
        logger.info("timing onnx and torch for %s on this machine (once) ...", onnx.name)
        probe = run_probe(onnx, BiEncoder(spec, device="cpu", **_torch_options(kwargs)), path)
    choice = choose(probe)
    if choice == "onnx":
        return onnx
    if choice == "torch":
        return BiEncoder(spec, device="cpu", **_torch_options(kwargs))
    return RoutedEncoder(
        onnx, lambda: BiEncoder(spec, device="cpu", **_torch_options(kwargs)), choice  # type: ignore[arg-type]
    )


def _torch_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k == "max_seq_length"}
