#!/usr/bin/env bash
# Set up (if needed) and run the main job: a Bradley-Terry reward model on the embedded
# SmolLM2-135M-Instruct, trained and evaluated on HH-RLHF harmless pairs from ../shared/data.
# Extra arguments are recipe overrides, e.g. data.train=/path/to/pairs.jsonl train.epochs=2
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/rewardlab train configs/smollm2_hh_bt.yaml "$@"
