"""Train a Timewarp model for a new molecule end to end: MD data, training, fine-tuning, export, use.

Each stage is a resumable command; the same pipeline runs from the shell:

    openmm-timewarp simulate AK -o OUT/data --hydrogen-mass-amu 3 --timestep-fs 2 --production-ns 1
    openmm-timewarp train OUT/data --lag 10 -o OUT/model
    openmm-timewarp finetune OUT/model
    openmm-timewarp export OUT/model --finetuned -o OUT/model.pt

    python examples/train_your_own.py [--sequence AK] [--out runs/example-AK] [--quick]
"""

import argparse
import os

import openmm_timewarp.integrator  # noqa: F401  (loads torch before openmm)
import openmm
from openmm import unit
from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.cli import main as cli
from openmm_timewarp.lab.systems import create_system, read_pdb

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--sequence", default="AK", help="zwitterionic peptide, one-letter codes")
parser.add_argument("--out", default="runs/example-AK")
parser.add_argument("--quick", action="store_true", help="tiny settings (seconds): checks the pipeline only")
args = parser.parse_args()
ns, epochs, steps = ("0.02", "1", "2") if args.quick else ("2", "20", "300")
data, model = os.path.join(args.out, "data"), os.path.join(args.out, "model")

cli(["simulate", args.sequence, "-o", data, "--hydrogen-mass-amu", "3", "--timestep-fs", "2", "--production-ns", ns,
     "--equilibration-ps", "1", "--no-progress"])
cli(["train", data, "--lag", "2", "-o", model, "--epochs", epochs, "--config", "hidden=24", "--config", "layers=4",
     "--no-progress"])
cli(["finetune", model, "--steps", steps, "--batch-size", "8", "--no-progress"])
cli(["export", model, "--finetuned", "-o", os.path.join(args.out, "model.pt")])

run = next(d for d in os.listdir(data) if os.path.isdir(os.path.join(data, d)))
topology, positions = read_pdb(os.path.join(data, run, "topology.pdb"))
integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond,
                                flow=os.path.join(args.out, "model.pt"), topology=topology, moveInterval=50)
context = openmm.Context(create_system(topology), integrator, openmm.Platform.getPlatformByName("Reference"))
context.setPositions(positions)
integrator.step(500)
print(f"{args.sequence}: {integrator.getNumMoves()} moves, acceptance {integrator.getAcceptanceRate():.3f}")
