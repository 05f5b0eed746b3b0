#!/usr/bin/env bash
# The GPU check: rewardlab's GPU figures and its test suite from one offline script, in at most 8 minutes.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--out DIR]
#
# Steps (each under its own time limit; a failed step is recorded and the next one runs):
#   1. packages: installs benchmarks/gpu_requirements.txt from .gpu/wheels when that folder exists
#      (benchmarks/gpu_bundle.sh fills it on a machine with a package index), then lists what is missing;
#   2. models of random weights built from their configs (no weights travel): SmolLM2-135M's shape,
#      standing in for the embedded model through REWARDLAB_CACHE, and a Llama of about 1.1B
#      (benchmarks/random_model.py); SmolLM2's tokenizer comes from .gpu/smollm2-tokenizer or the
#      embedded package;
#   3. benchmarks: packed attention engines (bench_attention.py), scoring at 135M and 1.1B, fp32 and
#      bf16, both batch layouts, torch.compile and CUDA graphs (bench_score.py), training against TRL in
#      bf16 + LoRA and in fp32 full fine-tuning (bench_train.py);
#   4. the test suite without the slow marker, on parallel workers (pytest-xdist) when it is installed;
#   5. summary.json: every ratio against its target, each step's exit status and seconds.
# Results go to DIR (default benchmarks/results/gpu/). HH-RLHF pairs come from ../shared/data or
# .gpu/data/test.jsonl.gz (never committed).
#
# --dry-run runs the same steps at tiny sizes (a 2-block model, a few pairs, one test file) on whatever
# device there is, a CPU included, in a few minutes: tests/e2e/test_gpu_check.py runs it.
#
# Python packages needed beyond torch and transformers: see benchmarks/gpu_requirements.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
DRY=0
OUT=benchmarks/results/gpu
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rl-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STEPS="$OUT/steps.tsv"
: > "$STEPS"
START=$(date +%s)

step() {  # step NAME LIMIT_S COMMAND...: run it, log to OUT/NAME.log, record status and seconds
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s) rc
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  tail -n 15 "$OUT/$name.log"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$STEPS"
  echo "== $name: exit $rc after $(( $(date +%s) - t0 ))s"
}

if [ "$DRY" = 1 ]; then
  SHAPE=tiny; BIG=""; ATT="--sequences 6 --max-length 64 --repeats 1"
  SCORE="--pairs 8 --chunk-pairs 4 --repeats 1 --peak-repeats 1 --peak-sizes 256"
  TRAIN_BF16="--pairs 8 --batch-size 4 --steps 2 --max-length 128"; TRAIN_FP32="$TRAIN_BF16"
  TESTS="tests/unit/test_batching.py"; WORKERS=2; COMPILE=""
else
  SHAPE=smollm2; BIG=llama-1b; ATT="--sequences 64 --max-length 1024"
  SCORE="--pairs 512 --chunk-pairs 128 --repeats 2"
  TRAIN_BF16="--pairs 512 --batch-size 32 --steps 16"; TRAIN_FP32="$TRAIN_BF16"
  TESTS="tests"; WORKERS=8; COMPILE="--compile-modes default,reduce-overhead"
fi

# 1. packages
if [ -d .gpu/wheels ]; then
  step install 120 "$PY" -m pip install --no-index --find-links .gpu/wheels -r benchmarks/gpu_requirements.txt
fi
"$PY" - <<'EOF' | tee "$OUT/packages.txt"
import importlib.util, re
names = [re.split(r"[<>=\[ ]", l.strip())[0] for l in open("benchmarks/gpu_requirements.txt")
         if l.strip() and not l.startswith("#")]
mods = {"pytest-xdist": "xdist", "pyyaml": "yaml"}
missing = [n for n in names if importlib.util.find_spec(mods.get(n, n).replace("-", "_")) is None]
print("missing:", " ".join(missing) if missing else "none")
EOF

# 2. models of random weights
TOK=""
[ -f .gpu/smollm2-tokenizer/tokenizer_config.json ] && TOK="--tokenizer .gpu/smollm2-tokenizer"
CACHE="$WORK/cache"
step model_135m 300 "$PY" benchmarks/random_model.py --shape "$SHAPE" --out "$CACHE/smollm2-135m-instruct" $TOK
if [ -n "$BIG" ]; then
  step model_1b 300 "$PY" benchmarks/random_model.py --shape "$BIG" --out "$WORK/llama-1b" $TOK
fi

DATA=../shared/data/hh-rlhf-harmless/test.jsonl.gz
[ -f "$DATA" ] || DATA=.gpu/data/test.jsonl.gz
export REWARDLAB_CACHE="$CACHE"

# 3. benchmarks
step attention 240 "$PY" benchmarks/bench_attention.py $ATT --out "$OUT/attention.json"
step attention_bf16 240 "$PY" benchmarks/bench_attention.py $ATT --dtype bfloat16 --out "$OUT/attention_bf16.json"
step score_135m 300 "$PY" benchmarks/bench_score.py --data "$DATA" $SCORE --layout-variants $COMPILE --out "$OUT/score_135m.json"
if [ -n "$BIG" ]; then
  step score_1b 300 "$PY" benchmarks/bench_score.py --data "$DATA" --model "$WORK/llama-1b" $SCORE --layout-variants \
    --out "$OUT/score_1b.json"
fi
step train_bf16_lora 300 "$PY" benchmarks/bench_train.py --data "$DATA" $TRAIN_BF16 --dtype bfloat16 --lora-r 16 \
  --out "$OUT/train_bf16_lora.json"
step train_fp32_full 300 "$PY" benchmarks/bench_train.py --data "$DATA" $TRAIN_FP32 --dtype float32 --lora-r 0 \
  --out "$OUT/train_fp32_full.json"
unset REWARDLAB_CACHE

# 4. the test suite
XDIST=""
"$PY" -c "import xdist" 2>/dev/null && XDIST="-n $WORKERS"
step tests 420 "$PY" -m pytest -q -p no:cacheprovider -m "not slow" $XDIST --junitxml="$OUT/tests.xml" $TESTS

# 5. summary
"$PY" benchmarks/gpu_summary.py "$OUT" --seconds "$(( $(date +%s) - START ))" --dry-run "$DRY"
