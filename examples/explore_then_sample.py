"""Find metastable states with exploration mode, then sample them exactly with MH moves.

Exploration keeps every proposal whose energy rises by less than a threshold: fast at reaching
new states, but not Boltzmann sampling. Its end point is then a starting structure for an exact
MH/MD run with the same model.

    python examples/explore_then_sample.py [--explore-steps 2000] [--sample-steps 20000] [--quick]
"""

import argparse

import numpy as np

import openmm_timewarp.integrator  # noqa: F401  (loads torch before openmm)
import openmm
from openmm import unit
from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.lab.analysis import PeptideObservables
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--flow", default="alanine-dipeptide")
parser.add_argument("--explore-steps", type=int, default=2000)
parser.add_argument("--sample-steps", type=int, default=20000)
parser.add_argument("--quick", action="store_true")
args = parser.parse_args()
explore_steps, sample_steps = (20, 200) if args.quick else (args.explore_steps, args.sample_steps)

topology, positions = load_alanine_dipeptide()
system = create_system(topology)


observables = PeptideObservables(topology)


def states_of(frames):
    """The Ramachandran state of every frame (ALA2's beta, alphaR or phi_positive)."""
    return observables.joint_labels(observables.values(np.array(frames)))


# 1. explore: moves only, keep anything that does not climb more than 300 kJ/mol
explorer = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond, flow=args.flow,
                              topology=topology, mode="explore", moveInterval=0, proposalsPerMove=1, batchSize=1)
context = openmm.Context(system, explorer, openmm.Platform.getPlatformByName("Reference"))
context.setPositions(positions)
frames = []
for _ in range(explore_steps):
    explorer.step(1)
    frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
print(f"exploration: {explorer.getNumAccepted()} of {explorer.getNumProposals()} proposals kept, "
      f"states visited: {sorted(set(states_of(frames).tolist()))}")
found = context.getState(getPositions=True).getPositions()
del context

# 2. sample exactly from where exploration ended: MD with MH moves every 100 steps
sampler = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond, flow=args.flow,
                             topology=topology, moveInterval=100)
context = openmm.Context(system, sampler, openmm.Platform.getPlatformByName("Reference"))
context.setPositions(found)
openmm.LocalEnergyMinimizer.minimize(context)
context.setVelocitiesToTemperature(310 * unit.kelvin)
frames = []
for _ in range(max(sample_steps // 100, 1)):
    sampler.step(100)
    frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
print(f"MH sampling: acceptance {sampler.getAcceptanceRate():.3f}, states: {sorted(set(states_of(frames).tolist()))}")
