"""Chirality centres of peptides, and moves that would invert them are rejected."""

import math
from typing import List, Tuple

import numpy as np
import openmm
import torch
from openmm import unit

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.atoms import atomic_numbers, bonds
from openmm_timewarp.chirality import chirality_changed, chirality_signs, find_chirality_centres
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide


def test_alanine_dipeptide_has_one_centre_at_ca():
    topology, _ = load_alanine_dipeptide()
    system = create_system(topology)
    centres = find_chirality_centres(atomic_numbers(system, topology), bonds(system, topology))
    names = [atom.name for atom in topology.atoms()]
    assert [names[c] for c in centres[:, 0]] == ["CA"]
    # the same centres from the System's bond forces alone
    assert np.array_equal(centres, find_chirality_centres(atomic_numbers(system), bonds(system)))


def test_mirror_image_changes_the_signature():
    _, positions = load_alanine_dipeptide()
    x = torch.tensor(positions.value_in_unit(unit.nanometer), dtype=torch.float32)
    topology, _ = load_alanine_dipeptide()
    centres = torch.as_tensor(find_chirality_centres([a.element.atomic_number for a in topology.atoms()],
                                                     [(b[0].index, b[1].index) for b in topology.bonds()]))
    reference = chirality_signs(x, centres)
    rotated = x @ torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    mirrored = x * torch.tensor([1.0, 1.0, -1.0])
    assert not chirality_changed(reference, chirality_signs(torch.stack([x, rotated]), centres)).any()
    assert chirality_changed(reference, chirality_signs(mirrored[None], centres)).all()


class InversionFlow(torch.nn.Module):
    """Proposes the point inversion of x through its centroid plus small noise (a mirror image)."""

    elements: List[int]

    def __init__(self, sigma: float = 0.001):
        super().__init__()
        self.contract_version: int = 1
        self.temperature: float = 310.0
        self.tau_ps: float = 0.0
        self.num_atoms: int = 0
        self.elements = []
        self.force_field: str = ""
        self.sigma = sigma

    def _mean(self, x_cond: torch.Tensor) -> torch.Tensor:
        return 2.0 * x_cond.mean(dim=-2, keepdim=True) - x_cond

    @torch.jit.export
    def sample(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor,
               z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self._mean(x_cond) + self.sigma * z[..., :3]
        return x, z[..., 3:], self.log_prob(x_cond, atomic_numbers, x, z[..., 3:])

    @torch.jit.export
    def log_prob(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor,
                 v: torch.Tensor) -> torch.Tensor:
        eps = (x - self._mean(x_cond)) / self.sigma
        dim = float(x.shape[-1] * x.shape[-2])
        return -0.5 * (eps.pow(2) + v.pow(2)).sum(dim=(-2, -1)) - dim * (math.log(2 * math.pi) + math.log(self.sigma))


def _run(check: bool):
    topology, positions = load_alanine_dipeptide()
    system = create_system(topology)
    integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond,
                                    flow=torch.jit.script(InversionFlow()), moveInterval=0, proposalsPerMove=8,
                                    batchSize=8, topology=topology, chiralityCheck=check, mode="explore")
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    integrator.step(5)
    return integrator


def test_inverting_proposals_are_rejected_when_checked():
    checked = _run(True)
    assert checked.getNumAccepted() == 0
    assert checked.getNumChiralityRejections() == checked.getNumProposals() == 40
    unchecked = _run(False)  # the energy alone does not forbid the mirror image
    assert unchecked.getNumAccepted() > 0
