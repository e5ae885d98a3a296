#!/bin/sh
# The issue-15 CPU benchmarks in one hold of the shared timing lock (<= 10 min), most important first;
# each writes benchmarks/out/<name>.txt as it finishes.
#   TAMIS_SHARED=/work/shared sh benchmarks/run_issue15.sh [SDPA_GRAPH]
# SDPA_GRAPH: the model.onnx of the previous (SDPA-attention) export, timed too on long texts.
# SHORT_N / MIDDLE_N / PEERS shrink the runs when the machine is too busy for the full sets.
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOCK=${LOCK:-/work/bench.lock}
PEERS=${PEERS:-bare,auto,onnx,onnx-int8,torch,fastembed}
mkdir -p benchmarks/out
if [ -z "$ISSUE15_LOCKED" ]; then
  ISSUE15_LOCKED=1 exec flock -w 3000 "$LOCK" timeout ${ISSUE15_TIMEOUT:-595} sh "$0" "$@"
fi
E="$PY benchmarks/encode_backends.py --rounds 2 --peers $PEERS"
$E --length long ${1:+--sdpa-graph "$1"} > benchmarks/out/encode_backends-long.txt 2>&1 || echo "long failed"
$PY benchmarks/startup.py --runs 5 --docs 300 > benchmarks/out/startup.txt 2>&1 || echo "startup failed"
$E --length short --n "${SHORT_N:-8000}" > benchmarks/out/encode_backends-short.txt 2>&1 || echo "short failed"
$E --length middle --n "${MIDDLE_N:-2000}" > benchmarks/out/encode_backends-middle.txt 2>&1 || echo "middle failed"
