"""Timewarp moves in an openmmtools workflow: SequenceMove of Langevin MD and TimewarpMove in MCMCSampler.

TimewarpMove is an openmmtools MCMCMove that shares TimewarpIntegrator's Metropolis-Hastings core,
so it can sit in any openmmtools move set (SequenceMove, WeightedMove, multistate samplers). Its
serialization stores the flow's name or path, its settings, statistics and random state.

    python examples/openmmtools_sequence.py [--iterations 200] [--quick]
"""

import argparse

import openmm_timewarp.integrator  # noqa: F401  (loads torch before openmm)
import openmm
from openmm import unit
from openmmtools import cache, mcmc, states, utils

from openmm_timewarp.openmmtools_move import TimewarpMove
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--flow", default="alanine-dipeptide")
parser.add_argument("--iterations", type=int, default=200)
parser.add_argument("--quick", action="store_true")
args = parser.parse_args()
iterations = 5 if args.quick else args.iterations

topology, positions = load_alanine_dipeptide()
system = create_system(topology)  # amber99sbildn + OBC, no constraints
thermodynamic_state = states.ThermodynamicState(system, 310 * unit.kelvin)
sampler_state = states.SamplerState(positions)

timewarp = TimewarpMove(args.flow, n_proposals=16, batch_size=16, seed=1)
move = mcmc.SequenceMove([
    mcmc.LangevinDynamicsMove(timestep=1.0 * unit.femtosecond, collision_rate=1.0 / unit.picosecond, n_steps=100),
    timewarp,
])
sampler = mcmc.MCMCSampler(thermodynamic_state, sampler_state, move)
# Alanine dipeptide is tiny: the Reference platform is faster than CPU for it.
context_cache = cache.ContextCache(platform=openmm.Platform.getPlatformByName("Reference"))
sampler.run(iterations, context_cache=context_cache)

stats = timewarp.statistics
print(f"{iterations} iterations: {stats['n_accepted']} of {stats['n_proposed']} Timewarp MH steps accepted "
      f"({stats['n_accepted'] / max(stats['n_proposed'], 1):.3f}); potential energy "
      f"{sampler.sampler_state.potential_energy.value_in_unit(unit.kilojoule_per_mole):.1f} kJ/mol")

# The openmmtools way to store a move: the flow travels as its name or path.
restored = utils.deserialize(utils.serialize(move))
print(f"restored: {type(restored.move_list[1]).__name__} with flow {utils.serialize(timewarp)['flow']!r}, "
      f"statistics {restored.move_list[1].statistics['n_proposed']} MH steps")
