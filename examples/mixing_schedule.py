"""How often to make Timewarp moves: MD/Timewarp mixing schedules on alanine dipeptide.

Runs the same wall-clock budget with several (moveInterval, proposalsPerMove) settings and prints
acceptance, MH steps and the fraction of time spent in MD, the flow and energy evaluations.

    python examples/mixing_schedule.py [--seconds 20] [--quick]
"""

import argparse
import time

import openmm_timewarp.integrator  # noqa: F401  (loads torch before openmm)
import openmm
from openmm import unit
from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seconds", type=float, default=20.0, help="wall-clock seconds per schedule")
parser.add_argument("--flow", default="alanine-dipeptide")
parser.add_argument("--quick", action="store_true")
args = parser.parse_args()
seconds = 1.0 if args.quick else args.seconds

topology, positions = load_alanine_dipeptide()
system = create_system(topology)
print(f"{'moveInterval':>12} {'proposals':>9} {'MD ps':>7} {'MH steps':>8} {'accepted':>8} {'MD %':>5} {'flow %':>6} {'energy %':>8}")
for interval, proposals in ((0, 16), (100, 16), (1000, 16), (1000, 64)):
    integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond, flow=args.flow,
                                    topology=topology, moveInterval=interval, proposalsPerMove=proposals)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        integrator.step(max(interval, 1))
    wall = time.perf_counter() - start
    stats = integrator.getStatistics()
    md_ps = context.getState().getTime().value_in_unit(unit.picosecond)
    print(f"{interval:12d} {proposals:9d} {md_ps:7.1f} {stats['proposals']:8d} {stats['accepted']:8d} "
          f"{100 * stats['md_time'] / wall:5.0f} {100 * stats['flow_time'] / wall:6.0f} {100 * stats['energy_time'] / wall:8.0f}")
    del context
