"""Start-up: `tamis search "..."` wall time from process start to answer, warm (export and caches made).

    python benchmarks/startup.py [--runs 7] [--docs 500]

Builds a collection of ``--docs`` WordNet definitions in a temporary TAMIS_HOME (default backend:
auto on CPU; the usual TAMIS_CACHE), runs one search to warm the caches (ONNX export, saved optimised
graph, probe), then
times ``--runs`` rounds, interleaved, of: the bare interpreter (``python -c pass``), ``import tamis``,
and ``tamis search`` (the console script). Reports min and median wall seconds, CPU seconds of the
search, and whether the search process imported torch (it must not).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dataset, machine, save_json

CHECK = """
import sys
from tamis.cli import main
sys.argv = ["tamis", "search", sys.argv[1], "-c", "bench", "-k", "5"]
try:
    main()
except SystemExit:
    pass
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed: {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout + proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--query", default="a large domesticated animal used for riding")
    args = ap.parse_args()

    import tamis
    from tamis._settings import cache_dir

    home = Path(tempfile.mkdtemp(prefix="tamis-startup-"))
    cache = str(cache_dir())  # the usual cache (export, probe): warm is what is measured
    env = {**os.environ, "TAMIS_HOME": str(home), "TAMIS_CACHE": cache, "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    os.environ.update({"TAMIS_HOME": str(home), "TAMIS_CACHE": cache})
    docs = list(itertools.islice(tamis.load_beir(dataset("wordnet-reverse-dictionary")), args.docs))
    with tamis.open_collection("bench", create=True) as col:
        col.index(docs)
        backend = type(col.encoder).__name__
    exe = Path(sys.executable)
    tamis_cli = str(exe.with_name("tamis"))
    search = [tamis_cli, "search", args.query, "-c", "bench", "-k", "5"]
    _, _, out = timed([str(exe), "-c", CHECK, args.query], env)  # warm-up: caches made here
    torch_line = next((ln for ln in out.splitlines() if ln.startswith("torch imported")), "?")
    systems = {
        "python -c pass": [str(exe), "-c", "pass"],
        "python -c 'import tamis'": [str(exe), "-c", "import tamis"],
        "tamis search": search,
    }
    walls: dict[str, list[float]] = {k: [] for k in systems}
    cpus: list[float] = []
    for _ in range(args.runs):
        for key, cmd in systems.items():
            wall, cpu, _ = timed(cmd, env)
            walls[key].append(wall)
            if key == "tamis search":
                cpus.append(cpu)
    load = os.getloadavg()
    print(f"{machine()}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"collection: {args.docs} WordNet docs, encoder {backend}; {torch_line}")
    print(f"{'command':<28}{'min s':>8}{'median s':>10}")
    for key, vals in walls.items():
        print(f"{key:<28}{min(vals):>8.2f}{statistics.median(vals):>10.2f}")
    print(f"tamis search CPU seconds (user+sys): min {min(cpus):.2f}, median {statistics.median(cpus):.2f}")
    save_json("startup.json", {
        "machine": machine(), "load": load, "runs": args.runs, "encoder": backend, "torch": torch_line,
        "wall_s": {k: {"min": min(v), "median": statistics.median(v), "all": v} for k, v in walls.items()},
        "search_cpu_s": cpus,
    })


if __name__ == "__main__":
    main()
