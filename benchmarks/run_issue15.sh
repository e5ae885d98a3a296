#!/bin/sh
# The issue-15 CPU benchmarks, each under the shared timing lock (one hold per run, <= 10 min).
#   TAMIS_SHARED=/work/shared sh benchmarks/run_issue15.sh [SDPA_GRAPH]
# SDPA_GRAPH: the model.onnx of the previous (SDPA-attention) export, timed too on long texts.
# SHORT_N / MIDDLE_N shrink the short and middle sets when the machine is too busy for a 10-minute hold.
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOCK=${LOCK:-/work/bench.lock}
mkdir -p benchmarks/out
run() {  # name, then the command
  out="benchmarks/out/$1.txt"; shift
  flock -w 3000 "$LOCK" timeout 590 "$@" > "$out" 2>&1 || echo "$out: failed (rc $?)"
}
run encode_backends-long $PY benchmarks/encode_backends.py --length long --rounds 2 ${1:+--sdpa-graph "$1"}
run startup $PY benchmarks/startup.py --runs 7
run encode_backends-short $PY benchmarks/encode_backends.py --length short --n "${SHORT_N:-8000}" --rounds 2
run encode_backends-middle $PY benchmarks/encode_backends.py --length middle --n "${MIDDLE_N:-2000}" --rounds 2
