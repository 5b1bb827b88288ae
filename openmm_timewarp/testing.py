"""Small flows and Systems with known answers, for tests, examples and third-party checks."""

import math
from typing import List, Tuple

import numpy as np
import torch
import openmm
from openmm import unit


class DriftGaussianFlow(torch.nn.Module):
    """A contract-1 flow with an asymmetric proposal and an exact density.

    x' = x + drift + sigma * z_x, and v' = z_v + coupling * (x' - x - drift) / sigma, so that
    q(x', v' | x) = N(x'; x + drift, sigma^2) N(v' - coupling (x' - x - drift) / sigma; 0, 1).
    The drift makes the proposal asymmetric: a sampler that drops the Hastings term is biased.
    """

    elements: List[int]

    def __init__(self, sigma: float = 0.05, drift: float = 0.02, coupling: float = 0.5, temperature: float = 300.0):
        super().__init__()
        self.contract_version: int = 1
        self.temperature: float = float(temperature)
        self.tau_ps: float = 0.0
        self.num_atoms: int = 0
        self.elements: List[int] = []
        self.force_field: str = ""
        self.sigma: float = float(sigma)
        self.drift: float = float(drift)
        self.coupling: float = float(coupling)

    def _shift(self, x: torch.Tensor) -> torch.Tensor:
        shift = torch.zeros_like(x)
        shift[..., 0] = self.drift
        return shift

    @torch.jit.export
    def sample(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        eps = z[..., :3]
        x = x_cond + self._shift(x_cond) + self.sigma * eps
        v = z[..., 3:] + self.coupling * eps
        return x, v, self.log_prob(x_cond, atomic_numbers, x, v)

    @torch.jit.export
    def log_prob(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        eps = (x - x_cond - self._shift(x_cond)) / self.sigma
        w = v - self.coupling * eps
        dim = float(x.shape[-1] * x.shape[-2])
        log_norm = -dim * (math.log(2.0 * math.pi) + math.log(self.sigma))
        return log_norm - 0.5 * (eps.pow(2) + w.pow(2)).sum(dim=(-2, -1))

    def forward(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.sample(x_cond, atomic_numbers, z)


def double_well_system(num_particles: int = 2, barrier: float = 1.0, tilt: float = 1.0, width: float = 0.1,
                       spring: float = 500.0, stiffening: float = 8.0, mass: float = 12.0):
    """Independent particles in a tilted double well along x and a harmonic trap in y, z that stiffens for x > 0.

    U = barrier ((x/w)^2 - 1)^2 + tilt x/w + k(x)/2 (y^2 + z^2), k(x) = spring (1 + stiffening (1 + tanh(x/w))/2),
    in kJ/mol and nm. Proposals of a fixed size are rejected more often where the trap is stiff, so a
    sampler whose stationary law depends on the rejection rate is visibly biased.

    Returns
    -------
    system : openmm.System
    positions : numpy.ndarray [num_particles, 3] (nm), all in the left well
    """
    system = openmm.System()
    force = openmm.CustomExternalForce(
        "barrier*((x/width)^2-1)^2 + tilt*x/width + 0.5*spring*(1+stiffening*0.5*(1+tanh(x/width)))*(y^2+z^2)")
    for name, value in (("barrier", barrier), ("tilt", tilt), ("width", width), ("spring", spring),
                        ("stiffening", stiffening)):
        force.addGlobalParameter(name, value)
    for i in range(num_particles):
        system.addParticle(mass)
        force.addParticle(i, [])
    system.addForce(force)
    positions = np.zeros((num_particles, 3))
    positions[:, 0] = -width
    return system, positions


def double_well_exact(barrier: float = 1.0, tilt: float = 1.0, width: float = 0.1, spring: float = 500.0,
                      stiffening: float = 8.0, temperature: float = 300.0, grid: int = 40001):
    """Exact single-particle averages of :func:`double_well_system` at ``temperature``.

    Returns a dict with P(x > 0) ("p_right"), <x> ("mean_x") and <y^2 + z^2> ("mean_r2").
    """
    kT = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin) * temperature
    x = np.linspace(-5 * width, 5 * width, grid)
    k = spring * (1 + stiffening * 0.5 * (1 + np.tanh(x / width)))
    u = barrier * ((x / width) ** 2 - 1) ** 2 + tilt * x / width
    p = np.exp(-(u - u.min()) / kT) / k  # the y, z integrals give 2 pi kT / k(x)
    p /= p.sum()
    return {"p_right": float(p[x > 0].sum()), "mean_x": float((p * x).sum()), "mean_r2": float((p * 2 * kT / k).sum())}
