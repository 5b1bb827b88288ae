#!/usr/bin/env bash
# Train, fine-tune and export the shipped "alanine-dipeptide-cartesian" model (every stage resumable: run
# the script again after an interruption). Needs the data of recipes/alanine_dipeptide_cartesian_data.sh.
# Times on one CPU core: training ~8 min (12,000 steps of 64 pairs), fine-tuning ~70 min (60,000 steps of 32).
#
# Usage: bash recipes/alanine_dipeptide_cartesian_model.sh [DATA_DIR] [RUN_DIR]
set -euo pipefail
data="${1:-runs/alanine-dipeptide-data}"
run="${2:-runs/ad-lag10}"
openmm-timewarp train "$data" --lag 10 -o "$run" --epochs 40 --pairs-per-epoch 19200 --learning-rate 1e-3 \
  --warmup-steps 100 --threads 1 --no-progress
openmm-timewarp finetune "$run" --steps 60000 --batch-size 32 --learning-rate 1e-4 --acceptance-weight 0.01 \
  --threads 1 --no-progress
openmm-timewarp export "$run" --finetuned -o openmm_timewarp/models/alanine-dipeptide-cartesian.pt
