"""Timewarp on a System whose energy comes from an openmm-torch TorchForce (a TorchScript potential)."""

import os

import numpy as np
import openmm
import pytest
import torch
from openmm import unit

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp._stack import torch_plugin_failures
from openmm_timewarp.testing import DriftGaussianFlow

from sampling import Z_LIMIT, batch_mean_z

try:
    import openmmtorch
except ImportError:  # pragma: no cover - CI installs it and sets OPENMM_TIMEWARP_REQUIRE_TORCHFORCE
    openmmtorch = None
    if os.environ.get("OPENMM_TIMEWARP_REQUIRE_TORCHFORCE"):
        raise

pytestmark = pytest.mark.skipif(openmmtorch is None, reason="openmmtorch is not installed")

SPRING = 300.0  # kJ/mol/nm^2
TEMPERATURE = 300.0


class HarmonicWell(torch.nn.Module):
    """U = k/2 |x - x0|^2 summed over particles, with x0 = (0.1, 0, 0)."""

    def __init__(self, spring: float):
        super().__init__()
        self.spring = spring

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        centre = torch.tensor([0.1, 0.0, 0.0], dtype=positions.dtype)
        return 0.5 * self.spring * (positions - centre).pow(2).sum()


def test_torch_plugin_loaded():
    assert torch_plugin_failures() == []


@pytest.mark.parametrize("move_interval", [0, 5])
def test_mh_on_torchforce_potential_is_exact(tmp_path, move_interval):
    path = str(tmp_path / "well.pt")
    torch.jit.script(HarmonicWell(SPRING)).save(path)
    system = openmm.System()
    for _ in range(2):
        system.addParticle(12.0)
    system.addForce(openmmtorch.TorchForce(path))
    flow = torch.jit.script(DriftGaussianFlow(sigma=0.05, drift=0.02, coupling=0.2, temperature=TEMPERATURE))
    integrator = TimewarpIntegrator(TEMPERATURE * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds,
                                    flow=flow, moveInterval=move_interval, proposalsPerMove=4, batchSize=4)
    integrator.setRandomNumberSeed(5)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.zeros((2, 3)))
    samples = []
    for _ in range(4000):
        integrator.step(max(move_interval, 1))
        samples.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value.copy())
    samples = np.array(samples)[400:]
    kT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin) * TEMPERATURE
    z_mean = batch_mean_z(samples[..., 0].mean(1), 0.1)
    z_var = batch_mean_z(((samples - [0.1, 0, 0]) ** 2).sum(-1).mean(1), 3 * kT / SPRING)
    assert integrator.getNumAccepted() > 100
    assert abs(z_mean) < Z_LIMIT and abs(z_var) < Z_LIMIT, (z_mean, z_var)
