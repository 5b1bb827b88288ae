#!/usr/bin/env bash
# MD data for the shipped "alanine-dipeptide-cartesian" model (resumable: run it again after an interruption).
#
# 310 K, amber99sbildn-obc, unconstrained with hydrogen mass repartitioning (3 amu, 2 fs; masses
# do not change the configurational distribution), frames every 1 ps. Plain MD at 310 K enters
# phi > 0 about once per 100 ns, so a flow trained on it alone could not propose alphaL/C7ax:
# besides long runs started in C7eq and alphaR, short runs start in alphaL and C7ax, where
# they stay for a few ns before crossing back. Pairs then cover all four states.
#
# Usage: bash recipes/alanine_dipeptide_cartesian_data.sh [OUTPUT_DIR] [WORKERS]
set -euo pipefail
out="${1:-runs/alanine-dipeptide-data}"
workers="${2:-2}"
common=(A --capped -o "$out" --hydrogen-mass-amu 3 --timestep-fs 2 --save-interval-ps 1 --equilibration-ps 10 --no-progress)
{
  echo "--name c7eq-1 --phi -80 --psi 150 --production-ns 10 --seed 1"
  echo "--name c7eq-2 --phi -80 --psi 150 --production-ns 10 --seed 2"
  echo "--name alphaR-1 --phi -70 --psi -40 --production-ns 10 --seed 3"
  echo "--name alphaR-2 --phi -70 --psi -40 --production-ns 10 --seed 4"
  for seed in 5 6 7 8; do echo "--name alphaL-$seed --phi 60 --psi 40 --production-ns 4 --seed $seed"; done
  for seed in 9 10 11 12; do echo "--name c7ax-$seed --phi 70 --psi -70 --production-ns 4 --seed $seed"; done
} | xargs -P "$workers" -L 1 bash -c 'exec openmm-timewarp simulate "$@" '"${common[*]}" _
