#!/usr/bin/env bash
# The shipped "alanine-dipeptide" model: openmm-timewarp fit with its default settings (about 30
# minutes on 2 cores; resumable: run the script again after an interruption), copied into the package.
# Needs no data: fit explores the molecule itself (see openmm_timewarp/models/alanine-dipeptide.md).
#
# Usage: bash recipes/alanine_dipeptide_model.sh [FIT_DIR]
set -euo pipefail
out="${1:-runs/fit-alanine-dipeptide}"
openmm-timewarp fit A --capped -o "$out" --no-progress
cp "$out/model.pt" openmm_timewarp/models/alanine-dipeptide.pt
