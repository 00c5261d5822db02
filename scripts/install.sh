#!/usr/bin/env bash
# Install deepmad with its test extras into ./.venv (created if missing).
#
# Where this machine's pip knows a local CPU build of torch 2.13 (its find-links),
# take it first: left alone, pip would resolve `torch` to a CUDA build of several
# GB. Elsewhere that request fails at once and the project's own requirement
# (uncapped) decides which torch is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
if ! said=$(.venv/bin/python -m pip install -q "torch==2.13.0+cpu" 2>&1); then
    echo "install.sh: no local CPU build torch==2.13.0+cpu here; pip chooses torch for deepmad's requirement below" \
         "(it may be a CUDA build of several GB). pip said: $(printf '%s' "$said" | tail -n 1)" >&2
fi
.venv/bin/python -m pip install -q -e ".[test]"
