#!/usr/bin/env bash
# py-spy (a sampling profiler, from PyPI) in its own venv under benchmarks/out (git-ignored), for profiling a
# running `tamis serve`:  benchmarks/out/tools-venv/bin/py-spy record --pid PID --threads --format raw -o prof.txt
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv out/tools-venv
out/tools-venv/bin/pip install -q "py-spy==0.4.3"
