"""The transferable peptide model as a flow-contract-1 file, bound to one molecule at a time.

The file holds the shared network (:class:`~.network.PeptideFlow`) and what it knows
(:class:`~.binder.PeptideKnowledge`, as JSON). It declares ``binder = "peptides"``: before any
move, the package reads the user's molecule as a chain of the model's residue templates
(:func:`~.binder.bind_peptides`) and calls :meth:`PeptideProposal.bind_molecule`, after which the
file is an ordinary state-independent internal-coordinate proposal for that molecule, with its
graph, handedness and rigid frame, exactly as the per-molecule family
(:mod:`openmm_timewarp.flow.internal.proposal`): the density MH sees is

    log q(x', v') = log q(c') - log J(c') + log N(v'; 0, I).
"""

from typing import List, Tuple

import torch

from ..internal.proposal import ZMatrixDensity
from ..internal.zmatrix import InternalCoordinates, ZMatrix
from .network import MoleculeTensors, PeptideFlow

KNOWN_ELEMENTS = [1, 6, 7, 8, 16]
_PLACEHOLDER = ZMatrix((0, 1, 2), (-1, 0, 1), (-1, -1, 0), (-1, -1, -1))


class BindableCoordinates(InternalCoordinates):
    """:class:`InternalCoordinates` whose Z-matrix can be replaced in a TorchScript module."""

    @torch.jit.export
    def rebind(self, atoms: List[int], generation_bounds: List[int], bond_atoms: torch.Tensor,
               bond_partners: torch.Tensor, angle_atoms: torch.Tensor, angle_centres: torch.Tensor,
               angle_ends: torch.Tensor, torsion_k: torch.Tensor, place_index: torch.Tensor,
               place_atoms: torch.Tensor, place_i: torch.Tensor, place_j: torch.Tensor, place_k: torch.Tensor):
        """Take the Z-matrix of another molecule (``atoms``: num_atoms, root, first, second, second's parent and other)."""
        self.num_atoms = atoms[0]
        self.root, self.first, self.second = atoms[1], atoms[2], atoms[3]
        self.second_parent, self.second_other = atoms[4], atoms[5]
        self.generation_bounds = generation_bounds
        self.bond_atoms, self.bond_partners = bond_atoms, bond_partners
        self.angle_atoms, self.angle_centres, self.angle_ends = angle_atoms, angle_centres, angle_ends
        self.torsion_k, self.place_index, self.place_atoms = torsion_k, place_index, place_atoms
        self.place_i, self.place_j, self.place_k = place_i, place_j, place_k


def rebind_arguments(zmatrix: ZMatrix):
    """The arguments of :meth:`BindableCoordinates.rebind` for a Z-matrix."""
    c = InternalCoordinates(zmatrix)
    return ([c.num_atoms, c.root, c.first, c.second, c.second_parent, c.second_other], list(c.generation_bounds),
            c.bond_atoms, c.bond_partners, c.angle_atoms, c.angle_centres, c.angle_ends, c.torsion_k, c.place_index,
            c.place_atoms, c.place_i, c.place_j, c.place_k)


class PeptideProposal(ZMatrixDensity):
    """Flow contract version 1 for any peptide the model covers (bound with :meth:`bind_molecule`).

    Parameters
    ----------
    flow : PeptideFlow
    knowledge_json : str
        :meth:`PeptideKnowledge.to_json`.
    temperature : float
        Kelvin.
    force_field : str
    metadata_json : str
        The model card's figures and the recommended move settings.
    """

    elements: List[int]
    atomic_numbers: List[int]
    bonds: List[List[int]]
    handedness: List[List[int]]
    component_names: List[str]
    frame_atoms: List[int]

    def __init__(self, flow: PeptideFlow, knowledge_json: str, *, temperature: float, force_field: str,
                 metadata_json: str):
        super().__init__()
        self.flow = flow
        self.coordinates = BindableCoordinates(_PLACEHOLDER)
        self.contract_version: int = 1
        self.temperature: float = float(temperature)
        self.tau_ps: float = 0.0
        self.num_atoms: int = 0
        self.elements = list(KNOWN_ELEMENTS)
        self.force_field: str = str(force_field)
        self.metadata_json: str = metadata_json
        self.knowledge_json: str = knowledge_json
        self.binder: str = "peptides"
        self.proposal_independent: bool = True
        self.atomic_numbers = []
        self.bonds = []
        self.handedness = []
        self.component_names = []
        self.frame_atoms = []
        self.dimension: int = 0
        self.bound_name: str = ""
        self.torsion_layer_count: int = len(flow.torsion_layers)
        self.geometry_layer_count: int = len(flow.geometry_layers)
        self.neighbour_count: int = int(flow.config_dict["neighbours"])
        empty = torch.zeros(0, dtype=torch.int64)
        self.tokens, self.residue, self.residue_tokens = torch.zeros(0, 4, dtype=torch.int64), empty, empty
        self.residue_weight = torch.zeros(0)
        self.soft, self.geometry, self.wrap = empty, empty, torch.zeros(0, dtype=torch.bool)
        self.mean, self.std = torch.zeros(0), torch.zeros(0)
        self.torsion_masks = torch.zeros(0, 0, dtype=torch.bool)
        self.geometry_masks = torch.zeros(0, 0, dtype=torch.bool)
        self.neighbours = torch.zeros(0, self.neighbour_count, dtype=torch.int64)

    @torch.jit.export
    def bind_molecule(self, name: str, atomic_numbers: List[int], bonds: List[List[int]], handedness: List[List[int]],
                      tokens: torch.Tensor, residue: torch.Tensor, residue_tokens: torch.Tensor,
                      residue_weight: torch.Tensor, soft: torch.Tensor, geometry: torch.Tensor, wrap: torch.Tensor,
                      mean: torch.Tensor, std: torch.Tensor, torsion_masks: torch.Tensor,
                      geometry_masks: torch.Tensor, neighbours: torch.Tensor):
        """Make this file a proposal for one molecule (the coordinates are rebound separately)."""
        self.bound_name = name
        self.num_atoms = len(atomic_numbers)
        self.atomic_numbers = atomic_numbers
        self.bonds = bonds
        self.handedness = handedness
        self.dimension = 3 * self.num_atoms - 6
        self.tokens, self.residue, self.residue_tokens, self.residue_weight = tokens, residue, residue_tokens, residue_weight
        self.soft, self.geometry, self.wrap, self.mean, self.std = soft, geometry, wrap, mean, std
        self.torsion_masks, self.geometry_masks, self.neighbours = torsion_masks, geometry_masks, neighbours
        self.frame_atoms = [self.coordinates.root, self.coordinates.first, self.coordinates.second]

    def _molecule(self) -> MoleculeTensors:
        return MoleculeTensors(self.tokens, self.residue, self.residue_tokens, self.residue_weight, self.soft,
                               self.geometry, self.wrap, self.mean, self.std, self.torsion_masks, self.geometry_masks,
                               self.neighbours)

    def _split(self, c: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = self.num_atoms
        return c[:, :n - 1], c[:, n - 1:2 * n - 3], c[:, 2 * n - 3:]

    def _check_bound(self, atoms: int):
        if self.num_atoms == 0:
            raise RuntimeError("this peptides model is not bound to a molecule: the package binds it before "
                               "moves (openmm_timewarp.contract.bind_flow)")
        if atoms != self.num_atoms:
            raise RuntimeError("positions have another number of atoms than the molecule this model is bound to")

    # ------------------------------------------------------------------ the contract
    @torch.jit.export
    def sample(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor,
               z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self._check_bound(x_cond.shape[1])
        batch = z.shape[0]
        shared = batch > 1 and bool((x_cond == x_cond[:1]).all())
        frame = x_cond[:1] if shared else x_cond
        noise = z[..., :3].reshape(batch, -1)[:, :self.dimension]
        c, log_q = self.flow.sample(noise, self._molecule())
        bonds, angles, torsions = self._split(c)
        x = self.coordinates.place(bonds, angles, torsions, frame)
        v = z[..., 3:]
        return x, v, self._contract_density(log_q, bonds, angles, v, x)

    @torch.jit.export
    def log_prob(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor, x: torch.Tensor,
                 v: torch.Tensor) -> torch.Tensor:
        self._check_bound(x.shape[1])
        bonds, angles, torsions = self.coordinates.to_internal(x)
        c = torch.cat([bonds, angles, torsions], dim=-1)
        return self._contract_density(self.flow.log_prob(c, self._molecule()), bonds, angles, v, None)

    def forward(self, x_cond: torch.Tensor, atomic_numbers: torch.Tensor,
                z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.sample(x_cond, atomic_numbers, z)
