#!/usr/bin/env bash
# The one GPU job: a bare H200/H100, no network, at most 8 minutes, at most 8 files under $OUT.
#   here:   bash bench/gpu/fetch_wheels.sh
#   device: bash bench/gpu/run.sh            (carry .whl; $OUT set by the device tool)
# Writes $OUT/pytest-gpu.log, $OUT/ratios-<suite>.json per suite (bench/gpu/suite_*.py, each run
# with a time budget), $OUT/traces.parquet (every trace record of the run, one file) and
# $OUT/validate.json (bench/gpu/replay_check.py: the run's kernel records replayed on the GPU model).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export ACCELSIM_CACHE_DIR=${ACCELSIM_CACHE_DIR:-/tmp/accelsim-cache}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
start=$(date +%s)
budget=${GPU_BUDGET_S:-400}        # pytest + suites; the replay check and the device call's limit leave room
tmp=$(mktemp -d)
# xdist (in the image): NVRTC compiles of the tile configurations run on 8 of the 16 cores
timeout 150 python3 -m pytest -m gpu -q -n 8 --maxfail=30 -p no:cacheprovider tests > "$OUT/pytest-gpu.log" 2>&1
echo "pytest -m gpu: exit $?" | tee -a "$OUT/pytest-gpu.log"
suites=(bench/gpu/suite_*.py)
left=${#suites[@]}
for s in "${suites[@]}"; do
  name=$(basename "$s" .py); name=${name#suite_}
  remain=$(( budget - ($(date +%s) - start) ))
  share=$(( remain / left )); left=$(( left - 1 ))
  [ "$share" -lt 20 ] && { echo "skip $name: ${remain}s left"; continue; }
  echo "== $name (${share}s)"
  # The suite's own budget stops it starting new configurations 15 s before the hard timeout.
  timeout "$share" python3 "$s" --json "$OUT/ratios-$name.json" --traces "$tmp/traces" --budget-s $(( share - 15 )) \
    || echo "$name: exit $?"
done
python3 - "$tmp/traces" "$OUT/traces.parquet" <<'PY'
import sys, pathlib
import pyarrow as pa, pyarrow.parquet as pq
files = sorted(pathlib.Path(sys.argv[1]).rglob("*.parquet"))
if files:
    tables = [pq.read_table(f) for f in files]
    meta = tables[0].schema.metadata
    t = pa.concat_tables(tables, promote_options="default").replace_schema_metadata(meta)
    pq.write_table(t, sys.argv[2])
    print(f"{t.num_rows} trace records -> {sys.argv[2]}")
PY
if [ -f "$OUT/traces.parquet" ]; then
  timeout 60 python3 bench/gpu/replay_check.py --traces "$OUT/traces.parquet" --json "$OUT/validate.json" \
    || echo "replay_check: exit $?"
fi
echo "done in $(( $(date +%s) - start ))s"
