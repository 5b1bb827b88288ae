"""MH efficiency of a flow on alanine dipeptide: acceptance, MH steps/s, ESS/s of the macrostates.

Pure Timewarp moves (moveInterval=0, one MH step per integrator step unless told otherwise) from
the shipped minimised structure, Reference platform, one process and one torch thread; the state is
recorded after every step (as the benchmark does).

``--as-state-dependent`` hides a state-independent flow's declaration, so the kernel walks it as
it walks any other proposal (a batch per move from the current state, the rest of the batch
discarded after an acceptance, a reverse pass per tested proposal): the walk before the kernel
learned to exploit state-independent proposals, for a before/after comparison.

``--constraints hbonds`` samples a System with constrained bonds to hydrogen (held by the flow,
``docs/constraints.md``), with ``--hydrogen-mass`` amu hydrogens (the masses enter the metric term).

Usage: python benchmarks/mh_efficiency.py FLOW [--seconds 40] [--batch-size N] [--proposals-per-move N]
                                          [--as-state-dependent] [--constraints none|hbonds] [--hydrogen-mass M]
"""

import argparse
import json
import time

import numpy as np
import torch
import openmm

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.lab.analysis import PeptideObservables
from openmm_timewarp.lab.analysis.autocorrelation import effective_sample_size
from openmm_timewarp.lab.analysis.estimates import state_estimates
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide


class StateDependentView(torch.nn.Module):
    """The same flow without its ``proposal_independent`` declaration (nor its recommended settings)."""

    def __init__(self, flow):
        super().__init__()
        from openmm_timewarp import load_flow

        self.inner, info = load_flow(flow)
        for name in ("contract_version", "temperature", "tau_ps", "num_atoms", "elements", "force_field",
                     "atomic_numbers", "bonds", "handedness"):
            setattr(self, name, getattr(self.inner, name))

    def sample(self, x_cond, atomic_numbers, z):
        return self.inner.sample(x_cond, atomic_numbers, z)

    def log_prob(self, x_cond, atomic_numbers, x, v):
        return self.inner.log_prob(x_cond, atomic_numbers, x, v)


def measure(flow, seconds=40.0, batch_size=None, proposals=None, seed=1, constraints=None, hydrogen_mass=None):
    """Run pure MH moves for ``seconds``; return a dict of figures."""
    topology, start = load_alanine_dipeptide()
    system = create_system(topology, hydrogen_mass=hydrogen_mass, constraints=constraints)
    integrator = TimewarpIntegrator(310, 1, 0.001, flow=flow, topology=topology, moveInterval=0,
                                    proposalsPerMove=proposals, batchSize=batch_size)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(start)
    context.applyConstraints(1e-6)
    integrator.bind(context)
    observables = PeptideObservables(topology)
    rows, begin = [], time.perf_counter()
    while time.perf_counter() - begin < seconds:
        integrator.step(1)
        rows.append(observables.values(context.getState(getPositions=True).getPositions(asNumpy=True)._value))
    wall = time.perf_counter() - begin
    indicators = observables.indicators(np.array(rows))
    estimates = state_estimates(indicators, num_blocks=20)
    stats = integrator.getStatistics()
    out = {"mh_steps": stats["proposals"], "seconds": round(wall, 1), "mh_steps_per_s": round(stats["proposals"] / wall),
           "acceptance": round(stats["acceptance_rate"], 4), "flow_share": round(stats["flow_time"] / wall, 2),
           "energy_share": round(stats["energy_time"] / wall, 2)}
    for state, figures in estimates.items():
        series = indicators[state].astype(float)
        out[state] = {"population": round(figures["population"], 4), "stderr": round(figures["stderr"], 4),
                      "entries": int(np.sum(series[1:] > series[:-1])),
                      "ess_block_per_s": round(figures["ess"] / wall, 1),
                      "ess_window_per_s": round(effective_sample_size(series) / wall, 1)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flow", help="model name or TorchScript file")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--batch-size", type=int, help="default: the model's recommended setting")
    parser.add_argument("--proposals-per-move", type=int, help="default: the model's recommended setting")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--constraints", choices=("none", "hbonds", "allbonds"), default="none")
    parser.add_argument("--hydrogen-mass", type=float, help="amu (hydrogen mass repartitioning)")
    parser.add_argument("--as-state-dependent", action="store_true",
                        help="walk a state-independent flow as a state-dependent one (16 MH steps per move, batch 16 "
                             "unless given)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    flow, batch, proposals = args.flow, args.batch_size, args.proposals_per_move
    if args.as_state_dependent:
        flow, batch, proposals = StateDependentView(args.flow), batch or 16, proposals or 16
    print(json.dumps(measure(flow, args.seconds, batch, proposals, args.seed, args.constraints, args.hydrogen_mass),
                     indent=1))


if __name__ == "__main__":
    main()
