"""An ordinary OpenMM script for alanine dipeptide in implicit solvent, with Timewarp switched on.

The only change from the plain-MD version of this script is the integrator line: the commented
LangevinMiddleIntegrator became a TimewarpIntegrator with ``flow=``.

    python examples/alanine_dipeptide.py            # 200 ps of MD with Timewarp moves
    python examples/alanine_dipeptide.py --quick    # a few seconds (used by the test suite)
"""

import argparse
import sys

import openmm_timewarp.integrator  # noqa: F401  (loads torch before openmm)
from openmm import Platform, app, unit
from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.lab.systems import structure_path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a few seconds only")
parser.add_argument("--flow", default="alanine-dipeptide", help="shipped model name or TorchScript file")
parser.add_argument("--steps", type=int, default=200_000)
parser.add_argument("--out", default="alanine_dipeptide")
args = parser.parse_args()
steps = 2_000 if args.quick else args.steps

pdb = app.PDBFile(structure_path("alanine-dipeptide"))
forcefield = app.ForceField("amber99sbildn.xml", "amber99_obc.xml")
system = forcefield.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=None)

# integrator = LangevinMiddleIntegrator(310*unit.kelvin, 1/unit.picosecond, 1*unit.femtosecond)
integrator = TimewarpIntegrator(310*unit.kelvin, 1/unit.picosecond, 1*unit.femtosecond, flow=args.flow,
                                topology=pdb.topology)

simulation = app.Simulation(pdb.topology, system, integrator, Platform.getPlatformByName("Reference"))
simulation.context.setPositions(pdb.positions)
simulation.minimizeEnergy()
simulation.context.setVelocitiesToTemperature(310*unit.kelvin)
simulation.reporters.append(app.DCDReporter(f"{args.out}.dcd", 1000))
simulation.reporters.append(app.StateDataReporter(sys.stdout, max(steps // 10, 1), step=True, potentialEnergy=True,
                                                  temperature=True, speed=True))
simulation.step(steps)

print(f"Timewarp moves: {integrator.getNumMoves()}, MH steps: {integrator.getNumProposals()}, "
      f"acceptance: {integrator.getAcceptanceRate():.3f}")
