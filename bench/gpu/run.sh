#!/usr/bin/env bash
# The one GPU job: a bare H200/H100, no network, at most 8 minutes, at most 8 files under $OUT.
#   here:   bash bench/gpu/fetch_wheels.sh
#   device: bash bench/gpu/run.sh            (carry .whl; $OUT set by the device tool)
#   CI:     GPU_DRY_RUN=1 OUT=$(mktemp -d) bash bench/gpu/run.sh   (NumPy, tiny suites: every step, in seconds)
# Steps (bench/gpu/README.md has the table: budget, what each writes, what a failure does):
#   wheels, preflight (bench/gpu/preflight.py), pytest -m gpu, calibrate (accelsim calibrate), one
#   bench/gpu/suite_*.py per suite, traces (every trace record -> $OUT/traces.parquet), replay_check
#   ($OUT/validate.json, the calibration directory carried in it).
# $OUT gets pytest-gpu.log (preflight, pytest, each step's status and the summary), ratios-<suite>.json per
# suite, traces.parquet and validate.json. A failed step is named in the summary; the others still run and
# the exit status is 1 when any step failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export ACCELSIM_CACHE_DIR=${ACCELSIM_CACHE_DIR:-/tmp/accelsim-cache}
PY=${GPU_PYTHON:-python3}
log="$OUT/pytest-gpu.log"
if [ -n "${GPU_DRY_RUN:-}" ]; then   # the CI dry run: same steps on NumPy, small shapes, a few test files
  # budgets that a loaded 2-core CI machine cannot overrun: the tiny suites end on their own in seconds
  backend=numpy; suite_args=(--backend numpy --tiny); budget=${GPU_BUDGET_S:-3000}; pytest_s=${GPU_PYTEST_S:-600}
  workers=${GPU_PYTEST_WORKERS:-0}; read -ra test_paths <<< "${GPU_TESTS:-tests/test_nm_gpu.py tests/test_tasd_gpu.py}"
else
  backend=cupy; suite_args=(--backend cupy); budget=${GPU_BUDGET_S:-400}; pytest_s=${GPU_PYTEST_S:-150}
  workers=${GPU_PYTEST_WORKERS:-8}; read -ra test_paths <<< "${GPU_TESTS:-tests}"
fi
margin=${GPU_SUITE_MARGIN_S:-15}     # a suite stops starting cases this long before its hard timeout
start=$(date +%s)
failed=()
: > "$log"

note() { echo "$*" | tee -a "$log"; }
status() {   # status NAME EXIT: record a step's outcome in the log and, if it failed, for the summary
  note "step $1: exit $2"
  [ "$2" -eq 0 ] || failed+=("$1 (exit $2)")
}
tidy() { find "$OUT" -maxdepth 1 -name '.*.tmp' -delete; }   # a suite killed mid-write leaves no ninth file

note "== gpu job $(date -u +%FT%TZ) backend=$backend budget=${budget}s commit=$(git rev-parse --short HEAD 2>/dev/null)"
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >> "$log" 2>&1
  rc=$?; status wheels $rc
  [ $rc -eq 0 ] && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

# Preflight: versions, driver and clocks, cusparseLt.init(), import accelsim.cli, a tiny launch per CUDA module.
timeout -s INT -k 10 90 $PY bench/gpu/preflight.py --backend "$backend" >> "$log" 2>&1
status preflight $?

# pytest: SIGINT (not TERM) at the limit so pytest still prints its summary and tracebacks; a per-test limit;
# maxfail high enough that every file is reached.
per_test=(-o faulthandler_timeout=90)   # without pytest-timeout: a stack dump of a test stuck 90 s
$PY -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout=90)
xdist=()
[ "$workers" != 0 ] && xdist=(-n "$workers")   # NVRTC compiles of the tile configurations on 8 of the 16 cores
timeout -s INT -k 20 "$pytest_s" $PY -m pytest -m gpu -q -rfEs "${xdist[@]}" --maxfail=1000 "${per_test[@]}" \
  -p no:cacheprovider "${test_paths[@]}" >> "$log" 2>&1
status pytest $?

tmp=$(mktemp -d)
suites=(bench/gpu/suite_*.py)
left=$(( ${#suites[@]} + 1 ))   # the calibrate step takes a share of the budget as a suite does

# calibrate: the device at hand measured, its arch written, kernels recorded and fitted (the dry run: this CPU,
# 20 s: on the 2-vCPU Xeon VM its microbenchmarks alone took 0.7-7.9 s, and a 10 s budget once left no time
# for kernel runs). No file of its own: its traces join traces.parquet, its directory goes into validate.json.
remain=$(( budget - ($(date +%s) - start) ))
share=$(( remain / left )); left=$(( left - 1 ))
if [ "$share" -le $(( margin + 5 )) ]; then
  note "skip calibrate: ${remain}s left"; failed+=("calibrate (no time)")
else
  cal_budget=$(( share - margin )); [ -n "${GPU_DRY_RUN:-}" ] && cal_budget=${GPU_CAL_BUDGET_S:-20}
  note "== calibrate (${share}s, --budget-s ${cal_budget}; the fit after it in the rest)"
  timeout -s TERM -k 10 "$share" $PY -m accelsim calibrate --backend "$backend" --out "$tmp/cal" \
    --budget-s "$cal_budget" 2>&1 | tee -a "$log"
  status calibrate "${PIPESTATUS[0]}"
fi

for s in "${suites[@]}"; do
  name=$(basename "$s" .py); name=${name#suite_}
  remain=$(( budget - ($(date +%s) - start) ))
  share=$(( remain / left )); left=$(( left - 1 ))
  if [ "$share" -le $(( margin + 5 )) ]; then
    note "skip suite $name: ${remain}s left"; failed+=("$name (no time)"); continue
  fi
  note "== suite $name (${share}s, stops starting cases at $(( share - margin ))s)"
  # TERM first (the suite exits through Python, its JSON whole), KILL 10 s later.
  timeout -s TERM -k 10 "$share" $PY "$s" "${suite_args[@]}" --json "$OUT/ratios-$name.json" --traces "$tmp/traces" \
    --budget-s $(( share - margin )) 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  tidy
  [ $rc -eq 0 ] && [ ! -s "$OUT/ratios-$name.json" ] && rc=3   # exit 0 but no results: a failure too
  status "suite $name" $rc
done

$PY - "$OUT/traces.parquet" "$tmp/traces" "$tmp/cal/traces" <<'PY' 2>&1 | tee -a "$log"
import sys, pathlib
import pyarrow as pa, pyarrow.parquet as pq
files = [f for d in sys.argv[2:] for f in sorted(pathlib.Path(d).rglob("*.parquet"))]
if not files:
    sys.exit("no trace records")
tables = [pq.read_table(f) for f in files]
meta = tables[0].schema.metadata
t = pa.concat_tables(tables, promote_options="default").replace_schema_metadata(meta)
pq.write_table(t, sys.argv[1])
print(f"{t.num_rows} trace records -> {sys.argv[1]}")
PY
status traces "${PIPESTATUS[0]}"

if [ -f "$OUT/traces.parquet" ]; then
  timeout -s TERM -k 10 60 $PY bench/gpu/replay_check.py --traces "$OUT/traces.parquet" --json "$OUT/validate.json" \
    --calibration "$tmp/cal" 2>&1 | tee -a "$log"
  status replay_check "${PIPESTATUS[0]}"
else
  status replay_check 4
fi
rm -rf "$tmp"
tidy

files=$(find "$OUT" -type f | wc -l)
[ "$files" -le 8 ] || failed+=("out ($files files > 8)")
note "== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}; $files files in \$OUT; $(( $(date +%s) - start ))s"
[ ${#failed[@]} -eq 0 ]
