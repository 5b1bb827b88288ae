"""Small flows and Systems with known answers, for tests, examples and third-party checks."""

from . import _stack  # noqa: F401  (torch before openmm; repairs the openmm-torch plugin)
import math
from typing import List, Tuple

import numpy as np
import torch
import openmm
from . import units
from openmm import app


def _declare_transferable(module: torch.nn.Module, temperature: float):
    """The contract-1 attributes of a flow for any atom count and element."""
    module.contract_version = 1
    module.temperature = float(temperature)
    module.tau_ps = 0.0
    module.num_atoms = 0
    module.elements = []
    module.force_field = ""


class DriftGaussianFlow(torch.nn.Module):
    """A contract-1 flow with an asymmetric proposal and an exact density.

    x' = x + drift + sigma * z_x, and v' = z_v + coupling * (x' - x - drift) / sigma, so that
    q(x', v' | x) = N(x'; x + drift, sigma^2) N(v' - coupling (x' - x - drift) / sigma; 0, 1).
    The drift makes the proposal asymmetric: a sampler that drops the Hastings term is biased.
    """

    elements: List[int]

    def __init__(self, sigma: float = 0.05, drift: float = 0.02, coupling: float = 0.5, temperature: float = 300.0):
        super().__init__()
        _declare_transferable(self, temperature)
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
    kT = units.kT(temperature)
    x = np.linspace(-5 * width, 5 * width, grid)
    k = spring * (1 + stiffening * 0.5 * (1 + np.tanh(x / width)))
    u = barrier * ((x / width) ** 2 - 1) ** 2 + tilt * x / width
    p = np.exp(-(u - u.min()) / kT) / k  # the y, z integrals give 2 pi kT / k(x)
    p /= p.sum()
    return {"p_right": float(p[x > 0].sum()), "mean_x": float((p * x).sum()), "mean_r2": float((p * 2 * kT / k).sum())}


class IndependentGaussianFlow(torch.nn.Module):
    """A contract-1 flow that declares ``proposal_independent``: x' ~ N(centre, sigma^2), v' = z[..., 3:].

    It ignores the state it conditions on, so the kernel keeps its proposals across MH steps and
    reuses the density of the state it accepted; log q(x', v') = log N(x'; centre, sigma^2) + log N(v').
    """

    elements: List[int]

    def __init__(self, centre: Tuple[float, float, float] = (0.0, 0.0, 0.0), sigma: float = 0.1,
                 temperature: float = 300.0):
        super().__init__()
        _declare_transferable(self, temperature)
        self.proposal_independent: bool = True
        self.sigma: float = float(sigma)
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float32))

    @torch.jit.export
    def sample(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.centre.to(z.dtype) + self.sigma * z[..., :3]
        v = z[..., 3:]
        return x, v, self.log_prob(x_cond, atomic_numbers, x, v)

    @torch.jit.export
    def log_prob(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        eps = (x - self.centre.to(x.dtype)) / self.sigma
        dim = float(x.shape[-1] * x.shape[-2])
        log_norm = -dim * (math.log(2.0 * math.pi) + math.log(self.sigma))
        return log_norm - 0.5 * (eps.pow(2) + v.pow(2)).sum(dim=(-2, -1))

    def forward(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.sample(x_cond, atomic_numbers, z)


class PartlyLocalFlow(torch.nn.Module):
    """A flow that declares ``proposal_independent`` falsely: a local step from ``x_cond`` in a few rows.

    A row whose first auxiliary noise value ``z[..., 0, 3]`` exceeds ``threshold`` (1.2816: 10% of
    rows) proposes ``x' = x_cond + local_sigma * z[..., :3]``; the other rows draw from
    N(centre, sigma^2) as :class:`IndependentGaussianFlow` does. ``log_prob`` is the matching
    mixture density, so ``sample`` and ``log_prob`` agree: only the independence claim is false.
    For testing the bind-time independence check.
    """

    elements: List[int]

    def __init__(self, centre: Tuple[float, float, float] = (0.0, 0.0, 0.0), sigma: float = 0.1,
                 local_sigma: float = 0.02, threshold: float = 1.2816, temperature: float = 300.0):
        super().__init__()
        _declare_transferable(self, temperature)
        self.proposal_independent: bool = True
        self.sigma: float = float(sigma)
        self.local_sigma: float = float(local_sigma)
        self.threshold: float = float(threshold)
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float32))

    @torch.jit.export
    def sample(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        local = (z[..., 0, 3] > self.threshold).to(z.dtype)[..., None, None]
        step = x_cond + self.local_sigma * z[..., :3]
        x = local * step + (1.0 - local) * (self.centre.to(z.dtype) + self.sigma * z[..., :3])
        v = z[..., 3:]
        return x, v, self.log_prob(x_cond, atomic_numbers, x, v)

    @torch.jit.export
    def log_prob(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        dim = float(x.shape[-1] * x.shape[-2])
        far = ((x - self.centre.to(x.dtype)) / self.sigma).pow(2).sum(dim=(-2, -1))
        near = ((x - x_cond) / self.local_sigma).pow(2).sum(dim=(-2, -1))
        log_far = math.log(0.9) - dim * math.log(self.sigma) - 0.5 * far
        log_near = math.log(0.1) - dim * math.log(self.local_sigma) - 0.5 * near
        mixture = torch.logsumexp(torch.stack([log_far, log_near]), dim=0)
        return mixture - dim * math.log(2.0 * math.pi) - 0.5 * v.pow(2).sum(dim=(-2, -1))

    def forward(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.sample(x_cond, atomic_numbers, z)


# A four-atom chain whose energy separates in internal coordinates: its exact marginals are 1-D integrals.
CHAIN_BOND = (0.15, 20000.0)  # r0 (nm), k (kJ/mol/nm^2)
CHAIN_ANGLE = (2.3, 25.0)  # theta0 (rad), k (kJ/mol/rad^2): soft, so the sin(theta) Jacobian matters
CHAIN_TORSION = ((1, 3.0, 0.0), (3, 4.0, 0.5))  # (periodicity, k (kJ/mol), phase (rad)): three unequal wells


def torsion_chain_system(restraint: float = 0.0):
    """Four carbons in a chain: harmonic bonds and soft angles, a torsion with three unequal wells.

    With ``restraint`` > 0 (kJ/mol/nm^2) the first atom is also tied to the origin, so the energy
    depends on where the molecule is, not only on its internal coordinates.

    Returns
    -------
    system : openmm.System
    topology : openmm.app.Topology
    positions : numpy.ndarray [4, 3] (nm)
    """
    system = openmm.System()
    topology = app.Topology()
    residue = topology.addResidue("CHN", topology.addChain())
    atoms = []
    for i in range(4):
        system.addParticle(12.0)
        atoms.append(topology.addAtom(f"C{i + 1}", app.element.carbon, residue))
    bonds = openmm.HarmonicBondForce()
    angles = openmm.HarmonicAngleForce()
    torsions = openmm.PeriodicTorsionForce()
    for i in range(3):
        bonds.addBond(i, i + 1, CHAIN_BOND[0], CHAIN_BOND[1])
        topology.addBond(atoms[i], atoms[i + 1])
    for i in range(2):
        angles.addAngle(i, i + 1, i + 2, CHAIN_ANGLE[0], CHAIN_ANGLE[1])
    for periodicity, k, phase in CHAIN_TORSION:
        torsions.addTorsion(0, 1, 2, 3, periodicity, phase, k)
    for force in (bonds, angles, torsions):
        system.addForce(force)
    if restraint > 0:
        tether = openmm.CustomExternalForce("0.5*k*(x^2+y^2+z^2)")
        tether.addGlobalParameter("k", restraint)
        tether.addParticle(0, [])
        system.addForce(tether)
    r, theta = CHAIN_BOND[0], CHAIN_ANGLE[0]
    positions = np.array([[0.0, 0.0, 0.0], [r, 0.0, 0.0],
                          [r - r * math.cos(theta), r * math.sin(theta), 0.0],
                          [2 * r - 2 * r * math.cos(theta), 0.0, 0.05]])
    return system, topology, positions


def torsion_chain_exact(temperature: float = 300.0, grid: int = 200001):
    """Exact averages of :func:`torsion_chain_system` (without restraint) by 1-D quadrature.

    The energy is a sum over bonds, angles and the torsion, and dx = prod r^2 sin(theta) dc dg, so
    bonds have density r^2 exp(-U_b/kT), angles sin(theta) exp(-U_a/kT), the torsion exp(-U_t/kT).

    Returns a dict with the mean bond length ("bond", nm), mean angle ("angle", rad), <cos phi>
    ("cos_torsion") and the probability of |phi| < pi/2 ("torsion_near_zero").
    """
    kT = units.kT(temperature)
    r = np.linspace(CHAIN_BOND[0] - 0.1, CHAIN_BOND[0] + 0.1, grid)
    p_r = r ** 2 * np.exp(-0.5 * CHAIN_BOND[1] * (r - CHAIN_BOND[0]) ** 2 / kT)
    theta = np.linspace(1e-6, math.pi - 1e-6, grid)
    p_theta = np.sin(theta) * np.exp(-0.5 * CHAIN_ANGLE[1] * (theta - CHAIN_ANGLE[0]) ** 2 / kT)
    phi = np.linspace(-math.pi, math.pi, grid)
    u_phi = sum(k * (1 + np.cos(n * phi - phase)) for n, k, phase in CHAIN_TORSION)
    p_phi = np.exp(-(u_phi - u_phi.min()) / kT)
    return {
        "bond": float((r * p_r).sum() / p_r.sum()),
        "angle": float((theta * p_theta).sum() / p_theta.sum()),
        "cos_torsion": float((np.cos(phi) * p_phi).sum() / p_phi.sum()),
        "torsion_near_zero": float(p_phi[np.abs(phi) < math.pi / 2].sum() / p_phi.sum()),
    }
