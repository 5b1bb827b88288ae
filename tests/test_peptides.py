"""The transferable peptides family: reading molecules as residue templates, the exact density, binding, DDP."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from openmm_timewarp.contract import bind_flow, flow_info
from openmm_timewarp.flow.peptides.binder import bind_molecule
from openmm_timewarp.flow.peptides.molecule import PeptideBindError, identify
from openmm_timewarp.flow.peptides.network import PeptideFlow, PeptideFlowConfig
from openmm_timewarp.flow.peptides.proposal import PeptideProposal
from openmm_timewarp.lab.datasets.peptide_coordinates import load_training_set, read_packed_peptide
from openmm_timewarp.matching import MoleculeMismatchError, candidate_mappings

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "peptides")  # five peptides, a frame every 10 ps
NAMES = ["AD", "AK", "PKES", "ACE-VE-NME"]
SMALL = PeptideFlowConfig(hidden=32, embedding=16, torsion_layers=3, geometry_layers=2, rounds=1)


@pytest.fixture(scope="module")
def training_set():
    return load_training_set(DATA, SMALL.torsion_layers, SMALL.geometry_layers, names=NAMES)


@pytest.fixture(scope="module")
def packed():
    return {name: read_packed_peptide(os.path.join(DATA, f"{name}.npz")) for name in NAMES}


def _perturbed_flow(knowledge, seed=3, scale=0.3):
    torch.manual_seed(seed)
    flow = PeptideFlow(SMALL, knowledge.vocabulary_sizes, len(knowledge.residues)).double()
    with torch.no_grad():  # away from the identity, so that every log-det term matters
        for parameter in flow.parameters():
            parameter.add_(scale * torch.randn_like(parameter))
    return flow


def _double(tensors):
    return tensors._replace(mean=tensors.mean.double(), std=tensors.std.double(),
                            residue_weight=tensors.residue_weight.double())


# ------------------------------------------------------------------------------------------------ molecules
def test_identify_reads_any_atom_order(training_set, packed):
    templates = training_set.knowledge.templates
    peptide = packed["PKES"]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(peptide.numbers))
    position = np.argsort(order)
    numbers = [peptide.numbers[k] for k in order]
    bonds = [(int(position[a]), int(position[b])) for a, b in peptide.bonds]
    molecule = identify(numbers, bonds, templates)
    assert molecule.keys == ("N-PRO", "LYS", "GLU", "C-SER")
    assert molecule.name == "PKES" and molecule.root_residue == 1
    assert molecule.labels[molecule.root_atom] == "LYS2:CA"
    # the canonical molecule is the user's up to atom order
    assert candidate_mappings(molecule.numbers, molecule.bonds, molecule.handedness, numbers, bonds,
                              peptide.positions[0][order])


def _without(numbers, bonds, atoms):
    keep = [k for k in range(len(numbers)) if k not in set(atoms)]
    index = {old: new for new, old in enumerate(keep)}
    return ([numbers[k] for k in keep],
            [(index[a], index[b]) for a, b in bonds if a in index and b in index])


def test_identify_refuses_what_it_does_not_cover(training_set, packed):
    templates = training_set.knowledge.templates
    ak = packed["AK"]
    # a residue type the templates lack (here: K as a middle residue is fine, but not alone as N-terminal)
    no_lys = [t for t in templates if "LYS" not in t.key]
    with pytest.raises(PeptideBindError, match="residue 2 .*not a residue the model knows"):
        identify(ak.numbers, ak.bonds, no_lys)
    # a second molecule (a water)
    n = len(ak.numbers)
    with pytest.raises(PeptideBindError, match="2 molecules.*ligand"):
        identify(ak.numbers + [8, 1, 1], ak.bonds + [(n, n + 1), (n, n + 2)], templates)
    # head-to-tail cyclic: drop OXT and one N-terminal hydrogen, bond C-terminal C to N-terminal N
    first, last = ak.residues[0], ak.residues[-1]
    n_atom = first[1][first[2].index("N")]
    h_atom = first[1][first[2].index("H2")]
    c_atom = last[1][last[2].index("C")]
    oxt = last[1][last[2].index("OXT")]
    numbers, bonds = _without(ak.numbers, ak.bonds + [(c_atom, n_atom)], [h_atom, oxt])
    with pytest.raises(PeptideBindError, match="cyclic"):
        identify(numbers, bonds, templates)
    # branched: a second chain on the lysine's NZ (an isopeptide bond from an ACE cap)
    pkes = packed["PKES"]
    lys = pkes.residues[1]
    nz = lys[1][lys[2].index("NZ")]
    hz = lys[1][lys[2].index("HZ1")]
    m = len(pkes.numbers)
    ace = [6, 1, 1, 1, 6, 8]  # CH3 (3 H), C, O
    ace_bonds = [(m, m + 1), (m, m + 2), (m, m + 3), (m, m + 4), (m + 4, m + 5), (m + 4, nz)]
    numbers, bonds = _without(pkes.numbers + ace, pkes.bonds + ace_bonds, [hz])
    with pytest.raises(PeptideBindError, match="branched"):
        identify(numbers, bonds, templates)


def test_identify_refuses_too_long(training_set, packed):
    templates = training_set.knowledge.templates
    pkes = packed["PKES"]
    with pytest.raises(PeptideBindError, match="4 residues .*covers 1 to 3"):
        identify(pkes.numbers, pkes.bonds, templates, max_residues=3)


# ------------------------------------------------------------------------------------------------ density
def test_log_density_matches_autograd_jacobian(training_set):
    """log q(c) = log p_base(g(c)) + log |det dg/dc|, with dg/dc by autograd (float64)."""
    example = next(e for e in training_set.train if e.name == "AD")
    molecule = _double(example.bound.tensors)
    flow = _perturbed_flow(training_set.knowledge)
    c = example.coordinates[:1].double()

    def base(row):
        t, y, _ = flow.to_base(row.unsqueeze(0), molecule)
        return torch.cat([t, y], dim=-1)[0]

    jacobian = torch.autograd.functional.jacobian(base, c[0])
    expected = torch.linalg.slogdet(jacobian)[1]
    _, _, log_det = flow.to_base(c, molecule)
    assert abs(float(log_det[0].detach()) - float(expected)) < 1e-6 * max(1.0, abs(float(expected)))
    # a deliberately broken variant: one layer's log-det left out is a visible error
    layer = flow.geometry_layers[1]
    t, y = flow.standardised(c, molecule)
    tokens = flow.embedding(molecule.tokens)
    _, missing = layer(t, y, tokens, molecule, molecule.geometry_masks[1], True)
    assert abs(float(missing[0].detach())) > 1e-3


def test_sample_and_log_prob_agree(training_set):
    for example in training_set.train:
        molecule = _double(example.bound.tensors)
        flow = _perturbed_flow(training_set.knowledge, scale=0.1)
        noise = torch.randn(64, molecule.mean.shape[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        with torch.no_grad():
            c, log_q = flow.sample(noise, molecule)
            again = flow.log_prob(c, molecule)
        finite = torch.isfinite(log_q)
        assert finite.float().mean() > 0.9
        assert torch.allclose(again[finite], log_q[finite], atol=1e-7, rtol=1e-9), example.name


# ------------------------------------------------------------------------------------------------ the file
@pytest.fixture(scope="module")
def scripted(training_set):
    torch.manual_seed(0)
    flow = PeptideFlow(SMALL, training_set.knowledge.vocabulary_sizes, len(training_set.knowledge.residues))
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    proposal = PeptideProposal(flow, training_set.knowledge.to_json(), temperature=310.0, force_field="amber14-obc1",
                               metadata_json=json.dumps({"family": "peptides"}))
    return torch.jit.script(proposal)


def test_scripted_file_binds_and_gives_the_training_density(scripted, training_set, packed):
    info = flow_info(scripted, "peptides-test")
    assert info.binder == "peptides" and info.num_atoms == 0 and not info.has_graph
    with pytest.raises((RuntimeError, torch.jit.Error), match="not bound"):
        scripted.log_prob(torch.zeros(1, 3, 3), torch.zeros(3, dtype=torch.int64), torch.zeros(1, 3, 3),
                          torch.zeros(1, 3, 3))
    for example in training_set.train:
        peptide = packed[example.name]
        bound = bind_flow(scripted, info, peptide.numbers, peptide.bonds)
        assert bound.has_graph and bound.num_atoms == len(peptide.numbers) and bound.proposal_independent
        assert len(bound.frame_atoms) == 3
        # the file's density of training frames is the network's, less log J
        x = torch.as_tensor(peptide.positions[:4], dtype=torch.float32)
        v = torch.zeros_like(x)
        numbers = torch.as_tensor(bound.atomic_numbers)
        file_log_q = scripted.log_prob(x[:1], numbers, x, v) + 1.5 * x.shape[1] * np.log(2 * np.pi)
        with torch.no_grad():
            network = scripted.flow.log_prob(example.coordinates[:4], example.bound.tensors) - example.log_jacobian[:4]
        assert torch.allclose(file_log_q, network, atol=2e-2), example.name


def test_integrator_runs_with_the_file_and_refuses_the_mirror_image(scripted, tmp_path):
    import openmm
    from openmm import unit

    from openmm_timewarp import TimewarpIntegrator
    from openmm_timewarp.lab.molecule import load_molecule

    path = str(tmp_path / "peptides.pt")
    torch.jit.save(scripted, path)
    molecule = load_molecule("AK", preset="amber14-obc1")
    system = molecule.system()
    integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond, flow=path,
                                    moveInterval=0, proposalsPerMove=1, batchSize=32)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(molecule.positions)
    integrator.step(20)
    assert integrator.getNumProposals() == 20
    # the mirror image (every chirality inverted, D-amino acids) is refused with the atoms named
    mirror = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond, flow=path,
                                moveInterval=0)
    context2 = openmm.Context(molecule.system(), mirror, openmm.Platform.getPlatformByName("Reference"))
    context2.setPositions(molecule.positions * np.array([-1.0, 1.0, 1.0]))
    with pytest.raises(MoleculeMismatchError, match="mirror image"):
        mirror.step(1)


# ------------------------------------------------------------------------------------------------ training
def test_training_with_two_processes_and_resume(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("AD", "AK", "AH"):
        shutil.copy(os.path.join(DATA, f"{name}.npz"), data / f"{name}.npz")
    output = tmp_path / "train"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29731",
               "-m", "openmm_timewarp.cli", "peptides-train", str(data), "-o", str(output), "--steps", "{steps}",
               "--hidden", "16", "--torsion-layers", "2", "--geometry-layers", "1", "--peptides-per-step", "2",
               "--frames-per-peptide", "8", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.run([c.format(steps=3) for c in command], capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    log = json.loads((output / "log.json").read_text())
    assert log["world_size"] == 2 and log["history"][-1]["step"] == 3
    export = tmp_path / "model.pt"
    second = subprocess.run([c.format(steps=5) for c in command] + ["--export", str(export)], capture_output=True,
                            text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    state = torch.load(output / "checkpoint.pt", weights_only=False)
    assert state["step"] == 5 and state["history"][0]["step"] == 3  # resumed, not restarted
    assert export.is_file()


def test_zero_shot_evaluation_records_runs_and_refusals(scripted, tmp_path):
    from openmm_timewarp.lab.benchmark.zero_shot import evaluate_peptide, summary, table
    from openmm_timewarp.lab.datasets.peptide_set import PeptideSpec

    path = str(tmp_path / "peptides.pt")
    torch.jit.save(scripted, path)
    ran = evaluate_peptide(path, PeptideSpec("AK", False, "2aa", "test"), seconds=1.0, batch_size=16)
    assert ran.error is None and ran.mh_steps > 0 and ran.atoms == 35
    assert set(ran.first_visit_s) <= set(ran.states) and ran.first_visit_s  # the start's states at least
    refused = evaluate_peptide(path, PeptideSpec("GW", False, "2aa", "test"), seconds=1.0)
    assert refused.error.startswith("PeptideBindError") and "GLY1:N" in refused.error and refused.mh_steps == 0
    figures = summary([ran, refused])
    assert figures["failed"] and figures["rare_visited"] == f"{int(ran.visited('LYS2:phi_positive'))} of 1"
    assert "| AK | 35 |" in table([ran, refused])
