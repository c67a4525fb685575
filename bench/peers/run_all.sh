#!/usr/bin/env bash
# Run every peer search of the bench in the background (two queues: ZigZag LOMA 6 -> SALSA; AccelForge
# -> ZigZag LOMA 7), logs in
# bench/peers/logs/, resumable results in bench/peers/runs/; then `python3 bench/peers/merge.py`.
# Usage: bash bench/peers/run_all.sh [ENV_ROOT]   (ENV_ROOT: where setup.sh put the venvs, default /work/peers-env)
set -euo pipefail
cd "$(dirname "$0")/../.."
ENVS=${1:-/work/peers-env}
mkdir -p bench/peers/logs bench/peers/runs
ZZ="$ENVS/zigzag/bin/python"
AF="$ENVS/accelforge/bin/python"
(
  "$ZZ" bench/peers/run_peers.py --peer zigzag --engine loma --lpf 6 --out bench/peers/runs/zigzag_loma6.json
  "$ZZ" bench/peers/run_peers.py --peer zigzag --engine salsa --out bench/peers/runs/zigzag_salsa.json
) > bench/peers/logs/zigzag.log 2>&1 &
(
  (
    export PATH="$ENVS/accelforge/bin:$PATH"   # the stand-in `dot`
    "$AF" bench/peers/run_peers.py --peer accelforge --orders OWI --out bench/peers/runs/accelforge.json
    "$AF" bench/peers/run_peers.py --peer accelforge --orders OWI,OIW,WOI,WIO,IOW,IWO --out bench/peers/runs/accelforge.json
  ) > bench/peers/logs/accelforge.log 2>&1
  "$ZZ" bench/peers/run_peers.py --peer zigzag --engine loma --lpf 7 --out bench/peers/runs/zigzag_loma7.json \
    > bench/peers/logs/zigzag_loma7.log 2>&1
) &
wait
