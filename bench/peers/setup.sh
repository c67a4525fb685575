#!/usr/bin/env bash
# Create the peer-mapper environments OUTSIDE the repo (idempotent): ZigZag and AccelForge, pinned.
# Usage: bash bench/peers/setup.sh [ROOT]   (ROOT defaults to /work/peers-env)
# Why outside: the peers are not project dependencies; CI never needs them (see docs/peers.md).
set -euo pipefail
ROOT=${1:-/work/peers-env}
PY311=${PY311:-python3.11}
PY312=${PY312:-/root/.pyenv/versions/3.12.1/bin/python3.12}
mkdir -p "$ROOT"

# ZigZag 3.9.1 (python 3.11); it imports `six` without declaring it.
ZZ="$ROOT/zigzag"
[ -x "$ZZ/bin/python" ] || "$PY311" -m venv "$ZZ"
"$ZZ/bin/python" -c "import zigzag, six; from importlib.metadata import version; assert version('zigzag-dse') == '3.9.1'" 2>/dev/null \
  || "$ZZ/bin/pip" install -q zigzag-dse==3.9.1 six

# AccelForge 1.0.467 (needs python >= 3.12: its dependency hwcomponents refuses 3.11).
AF="$ROOT/accelforge"
[ -x "$AF/bin/python" ] || "$PY312" -m venv "$AF"
"$AF/bin/python" -c "import accelforge; from importlib.metadata import version; assert version('accelforge') == '1.0.467'" 2>/dev/null \
  || "$AF/bin/pip" install -q accelforge==1.0.467
# Its mapper always renders the chosen mapping with graphviz `dot`; pip does not install graphviz, so a
# stand-in `dot` that writes an empty SVG goes first on the venv's PATH (bin/ is on PATH when the driver runs it).
cat > "$AF/bin/dot" <<'DOT'
#!/bin/sh
# stand-in for graphviz dot: accelforge only needs some SVG back
out=""
while [ $# -gt 0 ]; do case "$1" in -o) out="$2"; shift 2;; -o*) out="${1#-o}"; shift;; *) shift;; esac; done
svg='<svg xmlns="http://www.w3.org/2000/svg"/>'
cat >/dev/null 2>&1 || true
if [ -n "$out" ]; then printf '%s\n' "$svg" > "$out"; else printf '%s\n' "$svg"; fi
DOT
chmod +x "$AF/bin/dot"
echo "zigzag: $("$ZZ/bin/python" -c "from importlib.metadata import version; print(version('zigzag-dse'))")"
echo "accelforge: $("$AF/bin/python" -c "from importlib.metadata import version; print(version('accelforge'))")"
