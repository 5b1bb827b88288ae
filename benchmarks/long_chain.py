"""One long chain of one method on one core: macrostate populations with block errors, by fifths too.

A check outside the benchmark: does a method's estimate hold when its run is several times longer
than the benchmark's 2 minutes, and do two independent methods agree? Pure-MH Timewarp with a
model file, or the benchmark's well-tempered metadynamics (no flow involved).

Usage::

    python benchmarks/long_chain.py timewarp N --flow runs/fit-ASN/model.pt --seconds 600 --seed 3
    python benchmarks/long_chain.py metadynamics N --seconds 1800 --seed 7

The molecule is a one-letter sequence with ACE/NME caps (as ``fit N --capped``). Prints
population +- block standard error (20 blocks) of every macrostate, the same after discarding the
first 10% and 25% of the run, each fifth's population, and the sampler's statistics.
"""

import argparse
import json

import numpy as np
import torch

from openmm_timewarp.lab.analysis.estimates import state_estimates
from openmm_timewarp.lab.analysis.peptide import PeptideObservables, weighted_populations
from openmm_timewarp.lab.molecule import load_molecule
from openmm_timewarp.lab.samplers import Metadynamics, TimewarpSampler, TimewarpSettings, equilibrate, run_for


def populations(values: np.ndarray, log_weights: np.ndarray, observables: PeptideObservables) -> dict:
    indicators = observables.indicators(values, extra=True)
    result = {}
    for skip in (0.0, 0.1, 0.25):
        first = int(skip * len(values))
        estimates = state_estimates({k: v[first:] for k, v in indicators.items()}, log_weights[first:], num_blocks=20)
        result[f"discard {skip:.0%}"] = {k: [round(e["population"], 5), round(e["stderr"], 5)]
                                         for k, e in estimates.items()}
    fifths = [weighted_populations({k: v[i] for k, v in indicators.items()}, log_weights[i])
              for i in np.array_split(np.arange(len(values)), 5)]
    result["fifths"] = {k: [round(fifth[k], 5) for fifth in fifths] for k in indicators}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=("timewarp", "metadynamics"))
    parser.add_argument("sequence", help="one-letter sequence, capped with ACE/NME (V: valine dipeptide)")
    parser.add_argument("--flow", help="model file (timewarp)")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.method == "timewarp" and not args.flow:
        parser.error("timewarp needs --flow MODEL")
    torch.set_num_threads(1)
    molecule = load_molecule(args.sequence, capped=True)
    observables = PeptideObservables(molecule.topology)
    start = equilibrate(molecule, 10.0, args.seed)
    sampler = (TimewarpSampler(molecule, args.seed, TimewarpSettings(flow=args.flow)) if args.method == "timewarp"
               else Metadynamics(molecule, args.seed))
    recording = run_for(sampler, start, args.seconds, observables.values)
    result = {"method": args.method, "molecule": molecule.name, "samples": len(recording.values),
              "seconds": round(recording.elapsed_s, 1), **populations(recording.values, recording.log_weights,
                                                                          observables),
              "statistics": {k: v for k, v in recording.statistics.items() if isinstance(v, (int, float, str))}}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
