#!/usr/bin/env bash
# The peer of benchmarks/serve.py: Infinity (infinity-emb from PyPI) in its own venv under
# benchmarks/out/ (git-ignored), since it pins its own fastapi / uvicorn / typer / numpy<2.
# torch 2.13.0 (the CPU build, as in tamis' venv) goes in first, so nothing pulls a CUDA build.
#     bash benchmarks/setup_infinity.sh        # then: benchmarks/out/infinity-venv/bin/infinity_emb --help
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/out/infinity-venv"
python="${PYTHON:-python3.11}"
mkdir -p "$here/out"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "torch==2.13.0"
"$venv/bin/python" -m pip install -q "infinity-emb[server,torch,optimum]==0.0.78" "torch==2.13.0"
"$venv/bin/python" -c "import torch, infinity_emb; print('torch', torch.__version__, 'infinity-emb', infinity_emb.__version__)"
