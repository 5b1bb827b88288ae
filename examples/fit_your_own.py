"""Your own molecule: fit a Timewarp model to valine dipeptide (ACE-VAL-NME), then sample it.

``openmm-timewarp fit`` makes the System, explores it with replica exchange, runs MD from seeds
spread over what it found, trains an internal-coordinate flow and checks it; the model then
drops into an ordinary OpenMM script. The default budget is 30 minutes on 2 cores;
``--quick`` shrinks everything to seconds (the pipeline runs, the model is not useful).

    python examples/fit_your_own.py [--sequence V] [--out runs/fit-VAL] [--minutes 30] [--quick]
"""

import argparse
import os

import numpy as np

import openmm_timewarp.integrator  # noqa: F401  (loads torch before openmm)
import openmm
from openmm import app, unit
from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.lab.analysis import PeptideObservables
from openmm_timewarp.lab.fit import Fit, FitSettings, summary
from openmm_timewarp.lab.systems import create_system

if __name__ == "__main__":  # the fit starts worker processes
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", default="V", help="one-letter sequence, capped with ACE/NME")
    parser.add_argument("--out", default="runs/fit-VAL")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    settings = FitSettings(minutes=args.minutes)
    if args.quick:
        settings = FitSettings(minutes=0.5, workers=1, explore_share=0.1, seeds=3, seed_equilibration_ps=1.0,
                               seed_production_ps=2.0, check_seconds=2.0, max_epochs=1,
                               flow={"hidden": 16, "depth": 1, "torsion_layers": 2, "geometry_layers": 1})
    # the same as: openmm-timewarp fit V --capped -o runs/fit-VAL
    fit = Fit(args.out, args.sequence, capped=True, settings=settings, progress=not args.quick)
    fit.run()
    print(summary(fit.record, fit.directory))

    # an ordinary OpenMM script with the fitted model: MD at 2 fs with hydrogen mass repartitioning
    # (the Boltzmann distribution of positions is the same), Timewarp moves as the model recommends
    pdb = app.PDBFile(os.path.join(args.out, "structure.pdb"))
    system = create_system(pdb.topology, hydrogen_mass=3.0)
    integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond,
                                    flow=os.path.join(args.out, "model.pt"), topology=pdb.topology)
    simulation = app.Simulation(pdb.topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(pdb.positions)
    observables = PeptideObservables(pdb.topology)
    frames = []
    for _ in range(20 if args.quick else 2000):
        simulation.step(10)
        frames.append(simulation.context.getState(getPositions=True).getPositions(asNumpy=True)._value)
    states = observables.joint_labels(observables.values(np.array(frames)))
    labels, counts = np.unique(states, return_counts=True)
    print(f"{integrator.getNumProposals()} MH steps, acceptance {integrator.getAcceptanceRate():.3f}; states: "
          + ", ".join(f"{label} {count / len(states):.3f}" for label, count in zip(labels, counts)))
