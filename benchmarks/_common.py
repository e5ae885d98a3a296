"""Shared helpers of the benchmark scripts (not part of the package)."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(os.environ.get("TAMIS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DATA = SHARED / "data"
OUT = Path(__file__).resolve().parent / "out"


def dataset(name: str) -> Path:
    path = DATA / name
    if not (path / "corpus.jsonl").is_file():
        raise SystemExit(f"dataset {name!r} not found under {DATA} (set TAMIS_SHARED to the shared/ folder)")
    return path


def machine() -> str:
    import torch

    return (
        f"{platform.node()} {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"cuda={'yes' if torch.cuda.is_available() else 'no'}, python {platform.python_version()}"
    )


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0


def save_json(name: str, obj: object) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    path.write_text(json.dumps(obj, indent=2, default=str))
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Poll ``url``/health until it answers 200 (True); False when ``proc`` exits or ``timeout_s`` passes."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
