"""MD mixed with moves of a state-independent flow: buffered proposals survive MD, re-placed in the current frame.

A flow that names its ``frame_atoms`` keeps their rigid frame, and its log q depends only on internal
coordinates, so a buffered proposal moved rigidly into the frame of the state MD left is the
proposal the same noise gives from that state, with the same log q. Checked here:

- on the shipped model: a re-placed proposal has the internal coordinates and log q it had, and is
  the proposal drawn from the new state with the same noise (not re-placing it is not);
- frame atoms that the flow does not keep are refused when the integrator binds;
- the kernel draws a batch per ``batchSize`` MH steps across MD, and evaluates one density per move;
- exactness on the four-atom chain with a tether on an atom (so the frame matters), MD between
  moves: the exact averages are met, and re-placing without the rigid motion fails the same check;
- a model's ``proposalsPerMoveMixed`` applies when MD runs between moves;
- on a shuffled atom order the buffer sits in the frame of the state in the Context, and a split
  run repeats the whole run bit for bit.
"""

import numpy as np
import openmm
import pytest
import torch

from openmm_timewarp import TimewarpIntegrator, load_checkpoint, save_checkpoint
from openmm_timewarp.contract import FlowContractError, flow_evaluation, load_flow, place_in_frame, rigid_frame
from openmm_timewarp.kernel import walks
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide
from openmm_timewarp.testing import torsion_chain_system

from sampling import Z_LIMIT
from test_atom_matching import reordered, shuffled_within_residues
from test_independent_moves import TEMPERATURE, TETHER, chain_proposal, chain_z_scores


def _moved(x, seed):
    """``x`` [N, 3] rotated, translated and perturbed (as MD moves a state, frame included)."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))[0]
    q = q * torch.sign(torch.linalg.det(q))
    moved = (x.double() - x.double().mean(0)) @ q.T + 0.5 + 0.003 * torch.randn(x.shape, generator=generator,
                                                                                  dtype=torch.float64)
    return moved.float()


def test_shipped_model_takes_its_frame_atoms_from_its_zmatrix(tmp_path):
    flow, info = load_flow("alanine-dipeptide")
    assert info.frame_atoms == tuple(flow.frame_atoms) == tuple(info.metadata["zmatrix"]["order"][:3]) == (8, 6, 10)
    old = _Counting(flow, frame_atoms=False)  # as a file exported before the attribute existed: CA, N, C
    old.metadata_json = flow.metadata_json
    assert load_flow(old)[1].frame_atoms == (8, 6, 10)
    path = str(tmp_path / "chain.pt")
    proposal = chain_proposal()
    torch.jit.save(torch.jit.script(proposal), path)
    assert load_flow(path)[1].frame_atoms == tuple(proposal.coordinates.zmatrix.order[:3])


def test_replaced_proposal_keeps_internal_coordinates_and_log_q():
    flow, info = load_flow("alanine-dipeptide")
    topology, positions = load_alanine_dipeptide()
    x0 = torch.tensor(np.asarray(positions.value_in_unit(openmm.unit.nanometer)), dtype=torch.float32)
    x1 = _moved(x0, 7)
    numbers = torch.tensor(info.atomic_numbers)
    z = torch.randn(32, x0.shape[0], 6, generator=torch.Generator().manual_seed(3))
    with flow_evaluation():
        drawn, v, log_q = flow.sample(x0.expand(32, -1, 3), numbers, z)
        from_x1 = flow.sample(x1.expand(32, -1, 3), numbers, z)[0]
        replaced = place_in_frame(drawn, x1, info.frame_atoms)
        log_q_replaced = flow.log_prob(x1.expand(32, -1, 3), numbers, replaced, v)
    before, after = flow.coordinates.to_internal(drawn.double()), flow.coordinates.to_internal(replaced.double())
    for old, new, tolerance in zip(before, after, (1e-6, 1e-5, 1e-5)):
        difference = torch.remainder(new - old + np.pi, 2 * np.pi) - np.pi  # torsions wrap
        assert difference.abs().max() < tolerance
    assert torch.allclose(log_q_replaced, log_q, atol=1e-3, rtol=1e-5)
    assert torch.allclose(replaced, from_x1, atol=1e-4)  # the proposal the noise gives from x1
    assert not torch.allclose(drawn, from_x1, atol=1e-2)  # broken variant: left in the old frame


def test_frame_atoms_the_flow_does_not_keep_are_refused_at_bind_time():
    proposal = chain_proposal()
    proposal.frame_atoms = list(reversed(proposal.frame_atoms))
    system, topology, positions = torsion_chain_system()
    integrator = TimewarpIntegrator(TEMPERATURE, 1.0, 0.002, flow=torch.jit.script(proposal), topology=topology,
                                    moveInterval=10)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    with pytest.raises(FlowContractError, match="frame_atoms"):
        integrator.bind(context)


class _Counting(torch.nn.Module):
    """Counts a flow's calls; passes ``frame_atoms`` on only if asked."""

    def __init__(self, flow, frame_atoms):
        super().__init__()
        self.inner, self.calls = flow, {"sample": 0, "log_prob": 0}
        for name in ("contract_version", "temperature", "tau_ps", "num_atoms", "elements", "force_field",
                     "proposal_independent", "atomic_numbers", "bonds", "handedness"):
            setattr(self, name, getattr(flow, name))
        if frame_atoms:
            self.frame_atoms = list(flow.frame_atoms)

    def sample(self, *args):
        self.calls["sample"] += 1
        return self.inner.sample(*args)

    def log_prob(self, *args):
        self.calls["log_prob"] += 1
        return self.inner.log_prob(*args)


@pytest.mark.parametrize("frame_atoms", [True, False])
def test_buffer_survives_md_with_one_density_per_move(frame_atoms):
    flow = _Counting(torch.jit.script(chain_proposal()), frame_atoms)
    system, topology, positions = torsion_chain_system(TETHER)
    integrator = TimewarpIntegrator(TEMPERATURE, 1.0, 0.002, flow=flow, topology=topology, moveInterval=10,
                                    proposalsPerMove=2, batchSize=16)
    integrator.setRandomNumberSeed(4)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    integrator.bind(context)
    bound = dict(flow.calls)
    integrator.step(10 * 40)
    sample, log_prob = (flow.calls[name] - bound[name] for name in ("sample", "log_prob"))
    assert log_prob == 40  # the state MD left, once per move
    # 80 MH steps: 5 batches of 16 when the buffer survives MD, else a draw of 2 per move
    assert sample == (5 if frame_atoms else 40)
    assert integrator.getNumProposals() == 80 and integrator.getNumAccepted() > 0
    assert (integrator._kernel.cache.buffer.drawn is not None) == frame_atoms


MIXING = dict(samples=3000, move_interval=10, seed=5, tether=TETHER, proposals=2, batch_size=64)


def test_md_mixing_with_replaced_buffer_samples_exactly():
    z, integrator = chain_z_scores(torch.jit.script(chain_proposal(seed=MIXING["seed"])), **MIXING)
    assert max(abs(v) for v in z.values()) < Z_LIMIT, z
    assert integrator._kernel.cache.buffer.drawn is not None  # the buffer was re-placed, not dropped
    assert 0.05 < integrator.getAcceptanceRate() < 0.95


def test_replacing_without_the_rigid_motion_fails_the_same_check(monkeypatch):
    monkeypatch.setattr(walks, "replace_buffer", lambda kernel, chain: None)  # proposals stay in the old frame
    z, _ = chain_z_scores(torch.jit.script(chain_proposal(seed=MIXING["seed"])), **MIXING)
    assert max(abs(v) for v in z.values()) > Z_LIMIT, z


def test_recommended_steps_for_mixing_apply_when_md_runs_between_moves():
    proposal = chain_proposal()
    proposal.metadata_json = '{"recommended_settings": {"proposalsPerMove": 1, "proposalsPerMoveMixed": 5}}'
    flow = torch.jit.script(proposal)
    steps = {(interval, given): TimewarpIntegrator(TEMPERATURE, 1.0, 0.002, flow=flow, moveInterval=interval,
                                                   proposalsPerMove=given).getProposalsPerMove()
             for interval in (0, 10) for given in (None, 3)}
    assert steps == {(0, None): 1, (10, None): 5, (0, 3): 3, (10, 3): 3}


def test_shuffled_atom_order_replaced_buffer_and_split_run(tmp_path):
    """The shipped model on a shuffled atom order with MD: the buffer sits in the frame of the state in the
    Context (frame atoms mapped to the System's order), and a run split by a checkpoint between a move
    and the MD after it repeats the whole run bit for bit (the proposals as drawn are saved)."""
    topology, positions = reordered(shuffled_within_residues(4))

    def start(seed):
        integrator = TimewarpIntegrator(310.0, 1.0, 0.001, flow="alanine-dipeptide", topology=topology,
                                        moveInterval=5, proposalsPerMove=2, batchSize=16)
        integrator.setRandomNumberSeed(seed)
        context = openmm.Context(create_system(topology), integrator, openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions)
        context.setVelocitiesToTemperature(310.0, seed)
        return integrator, context

    def now(context):
        return context.getState(getPositions=True).getPositions(asNumpy=True)._value

    whole, context = start(6)
    whole.step(60)
    expected = now(context)
    buffer, mapping = whole._kernel.cache.buffer, whole.getAtomMapping()
    assert buffer.drawn is not None and buffer.next < len(buffer)
    frame = [int(mapping[a]) for a in whole.getFlowInfo().frame_atoms]
    origin, axes = rigid_frame(torch.as_tensor(buffer.system_positions[buffer.next:]), frame)
    state_origin, state_axes = rigid_frame(torch.as_tensor(expected)[None], frame)
    assert torch.allclose(origin, state_origin.expand_as(origin), atol=1e-5)
    assert torch.allclose(axes, state_axes.expand_as(axes), atol=1e-4)
    first, context = start(6)
    first.step(30)  # a move was just made; the buffer is part-used and re-placed
    save_checkpoint(context, str(tmp_path / "run.chk"))
    second, context = start(99)
    load_checkpoint(context, str(tmp_path / "run.chk"))
    second.step(30)
    assert np.array_equal(now(context), expected)
    assert second.getStatistics()["accepted"] == whole.getStatistics()["accepted"] > 0
