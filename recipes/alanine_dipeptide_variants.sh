#!/usr/bin/env bash
# The conditional and mixed variants the shipped (state-independent) alanine-dipeptide model was
# chosen against: a conditional flow at tau = 20 ps trained on the fit's MD, a 50/50 mixture of it
# with the fit's state-independent flow, and a pure-MH benchmark of each (results in
# benchmarks/results/alanine-dipeptide/variants/). Resumable: training continues from its checkpoint.
#
# Usage: bash recipes/alanine_dipeptide_variants.sh [FIT_DIR] [WORK_DIR]
set -euo pipefail
fit="${1:-runs/fit-alanine-dipeptide}"      # made by recipes/alanine_dipeptide_model.sh
work="${2:-runs/alanine-dipeptide-variants}"
openmm-timewarp train "$fit/md" --family internal --lag 20 -o "$work/conditional" --threads 2 --patience 8 \
    --minutes 10 --no-progress
openmm-timewarp export "$work/conditional" -o "$work/conditional.pt"
openmm-timewarp export "$fit/train" --mix "$work/conditional:0.5" -o "$work/mixture.pt"
for variant in conditional mixture; do
    openmm-timewarp benchmark --methods timewarp-mh --flow "$work/$variant.pt" --budget 150 --repeats 2 --seed 1 \
        --no-progress --out "benchmarks/results/alanine-dipeptide/variants/$variant"
done
