"""Timewarp on a System whose energy comes from a TorchScript potential (openmm-torch TorchForce).

The Metropolis-Hastings test uses whatever energy the Context computes, so ML potentials work the
same way as force fields. Here: two particles in a harmonic well written in PyTorch, sampled with
MH moves of a simple contract-1 flow; the sampled <r^2> is compared with the exact 3 kT / k.
(openmm-ml systems built with PythonForce, openmm >= 8.5, are used the same way: the integrator
only asks the Context for energies.)

    python examples/torchforce_system.py [--samples 4000] [--quick]
"""

import argparse
import os
import tempfile

import numpy as np
import torch

import openmm_timewarp.integrator  # noqa: F401  (loads torch before openmm)
import openmm
import openmmtorch
from openmm import unit
from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.testing import DriftGaussianFlow

SPRING = 300.0  # kJ/mol/nm^2


class HarmonicWell(torch.nn.Module):
    def __init__(self, spring: float):
        super().__init__()
        self.spring = spring

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.spring * positions.pow(2).sum()


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--samples", type=int, default=4000)
parser.add_argument("--quick", action="store_true")
args = parser.parse_args()
samples = 200 if args.quick else args.samples

path = os.path.join(tempfile.mkdtemp(), "well.pt")
torch.jit.script(HarmonicWell(SPRING)).save(path)
system = openmm.System()
for _ in range(2):
    system.addParticle(12.0)
system.addForce(openmmtorch.TorchForce(path))

flow = torch.jit.script(DriftGaussianFlow(sigma=0.05, drift=0.0, coupling=0.0, temperature=300.0))
integrator = TimewarpIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond, flow=flow,
                                moveInterval=5, proposalsPerMove=4, batchSize=4)
context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
context.setPositions(np.zeros((2, 3)))
r2 = []
for _ in range(samples):
    integrator.step(5)
    r2.append((context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer) ** 2).sum(-1).mean())
kT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin) * 300.0
print(f"<r^2> sampled {np.mean(r2[len(r2) // 10:]):.5f} nm^2, exact {3 * kT / SPRING:.5f} nm^2, "
      f"acceptance {integrator.getAcceptanceRate():.2f}")
