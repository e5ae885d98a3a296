#!/bin/sh
# The issue-15 CPU benchmarks, each under the shared timing lock (one hold per length, <= 10 min).
#   TAMIS_SHARED=/work/shared sh benchmarks/run_issue15.sh [SDPA_GRAPH]
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOCK=${LOCK:-/work/bench.lock}
SDPA=${1:+--sdpa-graph $1}  # the previous export, timed too
mkdir -p benchmarks/out
for spec in "long 2" "short 2" "middle 2"; do
  set -- $spec
  flock -w 3000 "$LOCK" timeout 590 $PY benchmarks/encode_backends.py --length "$1" --rounds "$2" $SDPA \
    > "benchmarks/out/encode_backends-$1.txt" 2>&1 || echo "encode_backends $1 failed (rc $?)"
done
flock -w 3000 "$LOCK" timeout 590 $PY benchmarks/startup.py --runs 7 > benchmarks/out/startup.txt 2>&1 || echo "startup failed"
