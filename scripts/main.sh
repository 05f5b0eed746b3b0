#!/usr/bin/env bash
# Set up (if needed) and run the main job: a Bradley-Terry reward model on frozen features of the
# embedded SmolLM2-135M-Instruct, trained on gold-labelled AlpacaEval pairs from ../shared/data and
# evaluated on held-out instructions (configs/smollm2_alpaca_bt.yaml).
# Extra arguments are recipe overrides, e.g. data.bon_train_instructions=185 train.epochs=5
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/rewardlab train configs/smollm2_alpaca_bt.yaml "$@"
