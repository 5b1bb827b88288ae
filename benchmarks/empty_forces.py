"""MD steps per second of a serialised System as written, and without its bonded forces that have no terms.

The commands that take a System file run it through
:func:`openmm_timewarp.lab.system_file.without_empty_forces`; this prints what that saves on one
core (Reference platform, 2 fs Langevin steps, hydrogen masses as in the file).

Usage::

    python benchmarks/empty_forces.py                                  # the test molecule (DME, CGenFF)
    python benchmarks/empty_forces.py system.xml structure.pdb --steps 4000
"""

import argparse
import os
import time

import openmm
from openmm import app

from openmm_timewarp.lab.system_file import without_empty_forces

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "small-molecule")


def steps_per_second(system: openmm.System, positions, steps: int) -> float:
    integrator = openmm.LangevinMiddleIntegrator(310.0, 1.0, 0.002)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    integrator.step(100)
    start = time.perf_counter()
    integrator.step(steps)
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", nargs="?", default=os.path.join(DATA, "dme-system.xml"))
    parser.add_argument("structure", nargs="?", default=os.path.join(DATA, "dme.pdb"))
    parser.add_argument("--steps", type=int, default=4000)
    args = parser.parse_args()
    with open(args.system) as handle:
        text = handle.read()
    positions = app.PDBFile(args.structure).positions
    written = openmm.XmlSerializer.deserialize(text)
    pruned = without_empty_forces(openmm.XmlSerializer.deserialize(text))
    dropped = sorted({type(f).__name__ for f in written.getForces()} - {type(f).__name__ for f in pruned.getForces()})
    for label, system in (("as written", written), ("without empty forces", pruned)):
        print(f"{label:<22} {steps_per_second(system, positions, args.steps):8.0f} steps/s")
    print(f"left out: {', '.join(dropped) or 'nothing'}")


if __name__ == "__main__":
    main()
