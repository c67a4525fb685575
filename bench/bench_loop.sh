#!/usr/bin/env bash
# The codesign loop of issue #26, PASSES times: per pass `accelsim calibrate`, then MiniLM at seq_len=8 and at full
# size (the README's TASDER plan) and bert_base (2:4 element on q/k/v/o, 1:8 vector on the FFNs), each run with
# 5 repeats and validated against that pass's calibration (JSON). Summarise with bench/bench_loop_table.py OUT.
# usage: bash bench/bench_loop.sh THREADS PASSES OUT
set -euo pipefail
T=$1; N=$2; OUT=$3
export OPENBLAS_NUM_THREADS=$T
A="${ACCELSIM:-accelsim}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$OUT"
PLAN="$OUT/minilm_plan.json"
[ -f "$PLAN" ] || $A tasd search --arch tasd_ttc --workload minilm --weights minilm --param batch=64 --out "$PLAN" > /dev/null
for p in $(seq 1 "$N"); do
  D="$OUT/t$T/p$p"; mkdir -p "$D"
  $A calibrate --out "$D/cal" > "$D/cal.txt" 2>&1
  for w in seq full bert; do
    case $w in
      seq)  args=(--plan "$PLAN" --param seq_len=8);;
      full) args=(--plan "$PLAN");;
      bert) args=(--plan "$HERE/plans/bert_base_nm.json");;
    esac
    echo "$(date -u +%T) $(cut -d' ' -f1 /proc/loadavg)" > "$D/$w.start"
    $A run "${args[@]}" --repeats 5 --backend numpy --out "$D/$w" > "$D/$w.run.txt" 2>&1
    $A validate --traces "$D/$w" --calibration "$D/cal" --format json > "$D/$w.json" 2> "$D/$w.err"
  done
done
