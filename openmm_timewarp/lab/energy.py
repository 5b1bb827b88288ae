"""Energies and forces of batches of configurations from an OpenMM System (kJ/mol, nm).

One adapter serves fine-tuning (energies with gradients through the sample), the benchmark and
anything else that needs U of many configurations. The integrator evaluates energies in its own
bound Context instead, so that it sees whatever parameters the user has set there.
"""

from typing import Optional, Tuple

import numpy as np
import torch
import openmm
from openmm import unit

_KJ = unit.kilojoule_per_mole
_FORCE = unit.kilojoule_per_mole / unit.nanometer


class SystemEnergy:
    """Evaluates U(x) and -dU/dx of configurations with a private Context.

    Parameters
    ----------
    system : openmm.System
    platform : openmm.Platform, optional
        Default: Reference (fastest for small molecules here).
    """

    def __init__(self, system: openmm.System, platform: Optional[openmm.Platform] = None):
        platform = platform or openmm.Platform.getPlatformByName("Reference")
        self.num_atoms = system.getNumParticles()
        self._context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)

    def _check(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim == 2:
            positions = positions[None]
        if positions.shape[1:] != (self.num_atoms, 3):
            raise ValueError(f"positions have shape {positions.shape}; this System needs [B, {self.num_atoms}, 3] (nm).")
        return positions

    def energies(self, positions) -> np.ndarray:
        """U of every configuration [B] (kJ/mol); NaN where OpenMM fails or the energy is not finite."""
        positions = self._check(positions)
        out = np.empty(len(positions))
        for i, x in enumerate(positions):
            self._context.setPositions(x)
            out[i] = self._context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(_KJ)
        return out

    def energies_and_forces(self, positions) -> Tuple[np.ndarray, np.ndarray]:
        """U [B] (kJ/mol) and forces -dU/dx [B, N, 3] (kJ/mol/nm)."""
        positions = self._check(positions)
        energies = np.empty(len(positions))
        forces = np.empty_like(positions)
        for i, x in enumerate(positions):
            self._context.setPositions(x)
            state = self._context.getState(getEnergy=True, getForces=True)
            energies[i] = state.getPotentialEnergy().value_in_unit(_KJ)
            forces[i] = state.getForces(asNumpy=True).value_in_unit(_FORCE)
        return energies, forces


class _Energy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, positions, evaluator):
        energies, forces = evaluator.energies_and_forces(positions.detach().cpu().double().numpy())
        ctx.save_for_backward(torch.from_numpy(-forces).to(positions))
        return torch.from_numpy(energies).to(positions)

    @staticmethod
    def backward(ctx, grad_output):
        (gradient,) = ctx.saved_tensors
        gradient = torch.nan_to_num(gradient, nan=0.0, posinf=0.0, neginf=0.0)
        return grad_output.view(-1, 1, 1) * gradient, None


def differentiable_energy(positions: torch.Tensor, evaluator: SystemEnergy) -> torch.Tensor:
    """U(positions) [B] with dU/dx from OpenMM's forces in the backward pass (positions [B, N, 3], nm)."""
    return _Energy.apply(positions, evaluator)
