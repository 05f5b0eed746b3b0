#!/usr/bin/env bash
# Pack what benchmarks/gpu_check.sh needs on a GPU machine that has no package index: .gpu/ (ignored by
# git) gets SmolLM2's tokenizer, the HH-RLHF test pairs, and wheels of benchmarks/gpu_requirements.txt
# for the GPU machine's Python (default 3.12; pure-Python wheels where they exist).
#
#   bash benchmarks/gpu_bundle.sh [--python-version 3.12] [--packages "trl datasets fastapi ..."]
#
# Then carry .gpu with the working tree (the device tool's carry) and run benchmarks/gpu_check.sh there.
# The bundle must stay under the carry limit (64 MiB): by default only the packages a torch +
# transformers image usually lacks are fetched, without their dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PYV=3.12
PKGS="trl datasets fastapi starlette pydantic-core pydantic annotated-types uvicorn httpx httpcore h11 anyio sniffio \
peft accelerate pytest-xdist execnet hypothesis sortedcontainers dill multiprocess xxhash fsspec"
while [ $# -gt 0 ]; do
  case "$1" in
    --python-version) PYV=$2; shift ;;
    --packages) PKGS=$2; shift ;;
    *) echo "gpu_bundle.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-.venv/bin/python}
mkdir -p .gpu/wheels .gpu/data .gpu/smollm2-tokenizer
cp ../shared/data/hh-rlhf-harmless/test.jsonl.gz .gpu/data/
"$PY" - <<'PYEOF'
import shutil
from pathlib import Path
from rewardlab.assets import smollm2_tokenizer_path
src = smollm2_tokenizer_path()
for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
    if (src / name).exists():
        shutil.copy(src / name, Path(".gpu/smollm2-tokenizer") / name)
PYEOF
# shellcheck disable=SC2086
"$PY" -m pip download --no-deps --only-binary=:all: --python-version "$PYV" \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .gpu/wheels $PKGS
du -sh .gpu
