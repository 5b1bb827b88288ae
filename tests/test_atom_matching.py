"""A per-molecule model works on the user's own file of its molecule, whatever the atom order and names."""

import numpy as np
import openmm
import pytest
import torch
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator, load_checkpoint, save_checkpoint
from openmm_timewarp.chirality import tetrahedral_centres
from openmm_timewarp.flow.internal.proposal import InternalCoordinateProposal
from openmm_timewarp.flow.internal.zmatrix import InternalCoordinates, build_zmatrix, peptide_backbone
from openmm_timewarp.matching import MoleculeMismatchError, candidate_mappings, handedness_of
from openmm_timewarp.lab.systems import build_peptide, create_system, load_alanine_dipeptide

from test_internal_flow import perturbed_internal_flow

TOPOLOGY, POSITIONS = load_alanine_dipeptide()
XYZ = np.asarray(POSITIONS.value_in_unit(unit.nanometer))
NUMBERS = [a.element.atomic_number for a in TOPOLOGY.atoms()]
BONDS = [(a.index, b.index) for a, b in TOPOLOGY.bonds()]
NAMES = [a.name for a in TOPOLOGY.atoms()]
HANDEDNESS = handedness_of(NUMBERS, BONDS, XYZ)


def alanine_model():
    """An (untrained) internal-coordinate model of alanine dipeptide that carries its graph and handedness."""
    coordinates = InternalCoordinates(build_zmatrix(NUMBERS, BONDS, peptide_backbone(TOPOLOGY)))
    b, a, _ = coordinates.to_internal(torch.as_tensor(XYZ, dtype=torch.float32)[None])
    flow = perturbed_internal_flow(22, False, 0, scale=0.02)
    flow.geometry_mean.copy_(torch.cat([b[0], a[0]]))
    flow.geometry_std.fill_(0.005)
    proposal = InternalCoordinateProposal(coordinates, [flow], [1.0], ["global"], temperature=310.0, tau_ps=0.0,
                                          force_field="amber99sbildn-obc", atomic_numbers=NUMBERS,
                                          bonds=[list(p) for p in BONDS], handedness=HANDEDNESS, metadata_json="{}")
    return torch.jit.script(proposal)


MODEL = alanine_model()


def reordered(order, rename=None, positions=XYZ):
    """A topology with the atoms of alanine dipeptide in another order (``order[k]`` = old index of new atom k)."""
    topology = app.Topology()
    chain = topology.addChain()
    residues, atoms = {}, {}
    for new, old in enumerate(order):
        atom = list(TOPOLOGY.atoms())[old]
        key = atom.residue.index
        if key not in residues:
            residues[key] = topology.addResidue(atom.residue.name, chain, id=atom.residue.id)
        name = rename(atom) if rename else atom.name
        atoms[old] = topology.addAtom(name, atom.element, residues[key])
    for a, b in TOPOLOGY.bonds():
        topology.addBond(atoms[a.index], atoms[b.index])
    return topology, positions[list(order)]


def bind(topology, positions, with_topology=True, seed=1):
    system = create_system(topology)
    integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond, flow=MODEL,
                                    topology=topology if with_topology else None, moveInterval=0,
                                    proposalsPerMove=1, batchSize=32)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return integrator, context


def check_mapping_is_the_molecule(mapping, order):
    """Heavy atoms map to themselves; hydrogens to a hydrogen on the same atom, with the model's handedness."""
    old_of_user = np.asarray(order)
    for k in range(22):
        if NUMBERS[k] != 1:
            assert old_of_user[mapping[k]] == k
        else:
            parent = next(b for a, b in BONDS if a == k) if any(a == k for a, _ in BONDS) else \
                next(a for a, b in BONDS if b == k)
            assert any({old_of_user[mapping[k]], parent} == set(pair) for pair in BONDS)
    user_xyz = XYZ[list(order)]
    model_order = user_xyz[mapping]
    rows = np.asarray(HANDEDNESS)
    from openmm_timewarp.matching import _signs

    assert np.array_equal(_signs(model_order, rows[:, :4]), rows[:, 4])


def shuffled_within_residues(seed):
    """A random atom order (a Topology keeps each residue's atoms together)."""
    rng = np.random.default_rng(seed)
    order = []
    for residue in TOPOLOGY.residues():
        order += list(rng.permutation([a.index for a in residue.atoms()]))
    return np.asarray(order)


@pytest.mark.parametrize("with_topology", [True, False])
def test_shuffled_atom_order_is_matched(with_topology):
    order = shuffled_within_residues(0)
    topology, positions = reordered(order)
    integrator, context = bind(topology, positions, with_topology)
    integrator.step(20)
    check_mapping_is_the_molecule(integrator.getAtomMapping(), order)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert np.isfinite(energy)
    # proposals come back in the user's atom order: every bond of the user's topology has a bond's length
    proposals = integrator._kernel._buffer.system_positions
    lengths = [np.linalg.norm(proposals[:, a.index] - proposals[:, b.index], axis=-1) for a, b in topology.bonds()]
    assert 0.09 < np.min(lengths) and np.max(lengths) < 0.17


def test_a_file_from_another_tool_is_matched():
    """Hydrogens after the heavy atoms, other names, and the methyl hydrogens of CB in the other cyclic order."""
    order = []
    for residue in TOPOLOGY.residues():
        indices = [a.index for a in residue.atoms()]
        order += [i for i in indices if NUMBERS[i] != 1] + [i for i in indices if NUMBERS[i] == 1]
    hb1, hb2 = NAMES.index("HB1"), NAMES.index("HB2")
    swapped = XYZ.copy()
    swapped[[hb1, hb2]] = swapped[[hb2, hb1]]  # a permutational isomer's labels
    topology, positions = reordered(order, rename=lambda atom: {"H": "HN", "HA": "HA1"}.get(atom.name, atom.name),
                                    positions=swapped)
    integrator, _ = bind(topology, positions)
    integrator.bind(_context_of(integrator))
    mapping = integrator.getAtomMapping()
    rows = np.asarray(HANDEDNESS)
    from openmm_timewarp.matching import _signs

    assert np.array_equal(_signs(positions[mapping], rows[:, :4]), rows[:, 4])
    assert all(NUMBERS[k] == [a.element.atomic_number for a in topology.atoms()][mapping[k]] for k in range(22))


def _context_of(integrator):
    return integrator._context()


def test_another_molecule_is_refused_before_any_step_naming_atoms():
    topology, positions = build_peptide("G", capped=True)
    system = create_system(topology)
    integrator = TimewarpIntegrator(310, 1.0, 0.001, flow=MODEL, topology=topology, moveInterval=0)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    with pytest.raises(MoleculeMismatchError, match="22 atoms, the System 19.*atoms without a counterpart.*CA"):
        integrator.step(1)
    assert context.getState().getStepCount() == 0


def test_same_formula_other_bonds_names_the_atoms():
    # alanine dipeptide's atoms with CB moved from CA to the NME nitrogen's neighbour: same elements, other graph
    bonds = [(a, b) for a, b in BONDS if {a, b} != {8, 12}] + [(18, 12)]
    with pytest.raises(MoleculeMismatchError, match="without a counterpart in the model: CA, C$"):
        candidate_mappings(NUMBERS, BONDS, HANDEDNESS, NUMBERS, bonds, XYZ, NAMES)


def test_mirror_image_is_an_error_at_bind_time():
    mirrored = XYZ * np.array([-1.0, 1.0, 1.0])  # D-alanine
    integrator, context = bind(TOPOLOGY, mirrored)
    with pytest.raises(MoleculeMismatchError, match="mirror image.*CA"):
        integrator.step(1)
    assert np.allclose(context.getState(getPositions=True).getPositions(asNumpy=True)._value, mirrored)


def test_permutational_isomer_labels_pick_the_handedness_of_the_model():
    """Methyl hydrogens in the other cyclic order: the odd permutations are never chosen."""
    candidates = candidate_mappings(NUMBERS, BONDS, HANDEDNESS, NUMBERS, BONDS, XYZ)
    rows = np.asarray(HANDEDNESS)
    from openmm_timewarp.matching import _signs

    for mapping in candidates:
        assert np.array_equal(_signs(XYZ[mapping], rows[:, :4]), rows[:, 4])
    assert len(tetrahedral_centres(NUMBERS, BONDS)) == len(HANDEDNESS) == 4


def test_restart_keeps_the_mapping_buffer_and_cache(tmp_path):
    """The shipped model on a shuffled atom order: a run split by a checkpoint repeats the whole run bit for bit."""
    topology, positions = reordered(shuffled_within_residues(3))

    def start(seed):
        system = create_system(topology)
        integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond,
                                        flow="alanine-dipeptide", topology=topology, batchSize=16)
        integrator.setRandomNumberSeed(seed)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions)
        return integrator, context

    whole, context = start(5)
    whole.step(60)
    expected = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    first, context = start(5)
    first.step(30)  # stops in the middle of a batch of 16 proposals
    save_checkpoint(context, str(tmp_path / "run.chk"))
    second, context = start(99)
    load_checkpoint(context, str(tmp_path / "run.chk"))
    second.step(30)
    assert np.array_equal(second.getAtomMapping(), first.getAtomMapping())
    assert np.array_equal(context.getState(getPositions=True).getPositions(asNumpy=True)._value, expected)
    assert second.getStatistics()["accepted"] == whole.getStatistics()["accepted"] > 0
