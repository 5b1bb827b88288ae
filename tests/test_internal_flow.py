"""The internal-coordinate family: splines against zuko, the Z-matrix and its Jacobian, the proposal's density."""

import math

import numpy as np
import pytest
import torch

from openmm_timewarp.flow.internal.model import InternalCoordinateFlow, InternalFlowConfig
from openmm_timewarp.flow.internal.proposal import InternalCoordinateProposal
from openmm_timewarp.flow.internal.zmatrix import InternalCoordinates, build_zmatrix, peptide_backbone
from openmm_timewarp.flow.splines import bounded_spline, circular_spline, rational_quadratic_spline, spline_knots
from openmm_timewarp.lab.systems import load_alanine_dipeptide

zuko = pytest.importorskip("zuko")

TOPOLOGY, POSITIONS = load_alanine_dipeptide()
NUMBERS = [a.element.atomic_number for a in TOPOLOGY.atoms()]
BONDS = [(a.index, b.index) for a, b in TOPOLOGY.bonds()]


def zuko_spline(knots_x, knots_y, derivatives, bound):
    """zuko's monotonic RQS with our knots (its parameterisation differs; the spline formula must not)."""
    bins = knots_x.shape[-1] - 1
    shape = knots_x.shape[:-1]
    transform = zuko.transforms.MonotonicRQSTransform(torch.zeros(*shape, bins, dtype=knots_x.dtype),
                                                      torch.zeros(*shape, bins, dtype=knots_x.dtype),
                                                      torch.zeros(*shape, bins - 1, dtype=knots_x.dtype), bound=bound)
    transform.horizontal, transform.vertical, transform.derivatives = knots_x, knots_y, derivatives
    return transform


@pytest.mark.parametrize("bins", [4, 9])
def test_spline_matches_zuko(bins):
    g = torch.Generator().manual_seed(bins)
    w, h, d = (torch.randn(64, k, generator=g, dtype=torch.float64) * 2 for k in (bins, bins, bins + 1))
    knots_x, knots_y, derivatives = spline_knots(w, h, d, -3.0, 3.0, -3.0, 3.0)
    reference = zuko_spline(knots_x, knots_y, derivatives, 3.0)
    x = (torch.rand(64, generator=g, dtype=torch.float64) * 2 - 1) * 3.0
    y, log_det = rational_quadratic_spline(x, knots_x, knots_y, derivatives)
    assert torch.allclose(y, reference(x), atol=1e-12)
    assert torch.allclose(log_det, reference.log_abs_det_jacobian(x, y), atol=1e-10)
    back, log_det_inverse = rational_quadratic_spline(y, knots_x, knots_y, derivatives, inverse=True)
    assert torch.allclose(back, reference.inv(y), atol=1e-10) and torch.allclose(back, x, atol=1e-10)
    assert torch.allclose(log_det_inverse, -log_det, atol=1e-10)


def test_bounded_spline_is_identity_outside_and_c1_at_the_bound():
    g = torch.Generator().manual_seed(0)
    w, h, d = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g), torch.randn(3, 7, generator=g)
    outside = torch.tensor([-7.0, 5.5, 9.0])
    y, log_det = bounded_spline(outside, w, h, d, 5.0)
    assert torch.equal(y, outside) and torch.equal(log_det, torch.zeros(3))
    edge = torch.tensor([-5.0 + 1e-4, 5.0 - 1e-4, 0.0])
    _, log_det = bounded_spline(edge, w, h, d, 5.0)
    assert torch.allclose(log_det[:2], torch.zeros(2), atol=1e-2)  # derivative 1 at both ends


def test_circular_spline_is_a_circle_diffeomorphism():
    g = torch.Generator().manual_seed(1)
    w, h, d = torch.randn(2, 8, generator=g, dtype=torch.float64), torch.randn(2, 8, generator=g, dtype=torch.float64), \
        torch.randn(2, 8, generator=g, dtype=torch.float64)
    ends = torch.tensor([-math.pi, math.pi], dtype=torch.float64)
    y, log_det = circular_spline(ends, w[:1].expand(2, 8), h[:1].expand(2, 8), d[:1].expand(2, 8))
    assert torch.allclose(y, ends)  # the end points stay
    assert torch.allclose(log_det[0], log_det[1])  # the same slope on both sides of the seam
    x = torch.linspace(-math.pi, math.pi, 50, dtype=torch.float64)
    out, _ = circular_spline(x, w[1:].expand(50, 8), h[1:].expand(50, 8), d[1:].expand(50, 8))
    assert torch.all(out[1:] > out[:-1])  # monotone
    # the density it maps the uniform one to, (1 / 2 pi) |d f^-1 / dy|, integrates to one
    fine = torch.linspace(-math.pi, math.pi, 20001, dtype=torch.float64)[:-1] + math.pi / 20000
    _, log_det = circular_spline(fine, w[1:].expand(20000, 8), h[1:].expand(20000, 8), d[1:].expand(20000, 8),
                                 inverse=True)
    assert abs(float(torch.exp(log_det).mean()) - 1.0) < 1e-6


def test_alanine_dipeptide_zmatrix_makes_phi_and_psi_coordinates():
    zmatrix = build_zmatrix(NUMBERS, BONDS, peptide_backbone(TOPOLOGY))
    assert zmatrix.find_torsion((4, 6, 8, 10)) is not None  # phi = C(ACE)-N-CA-C
    assert zmatrix.find_torsion((6, 8, 10, 16)) is not None  # psi = N-CA-C-N(NME)
    coordinates = InternalCoordinates(zmatrix).double()
    x = torch.as_tensor(np.asarray(POSITIONS._value), dtype=torch.float64)[None]
    bonds, angles, torsions = coordinates.to_internal(x)
    assert torch.allclose(coordinates.place(bonds, angles, torsions, x), x, atol=1e-12)
    # placed into another frame, the internal coordinates are the same
    other = coordinates.place(bonds, angles, torsions, torch.randn(1, 22, 3, dtype=torch.float64))
    for a, b in zip(coordinates.to_internal(other), (bonds, angles, torsions)):
        assert torch.allclose(a, b, atol=1e-10)


def _frame_parameters_to_positions(coordinates, counts, params):
    """Positions from (atom a0, polar angles of a1 - a0, rotation about that axis, internal coordinates)."""
    nb, na = counts
    origin, polar, azimuth, twist = params[0:3], params[3], params[4], params[5]
    bonds, angles, torsions = params[6:6 + nb][None], params[6 + nb:6 + nb + na][None], params[6 + nb + na:][None]
    e1 = torch.stack([torch.sin(polar) * torch.cos(azimuth), torch.sin(polar) * torch.sin(azimuth), torch.cos(polar)])
    p = torch.linalg.cross(torch.tensor([0.3, 0.2, 1.0], dtype=params.dtype), e1)
    p = p / p.norm()
    q = torch.linalg.cross(e1, p)
    frame = torch.zeros(1, coordinates.num_atoms, 3, dtype=params.dtype)
    frame[0, coordinates.root] = origin
    frame[0, coordinates.first] = origin + e1
    frame[0, coordinates.second] = origin + torch.cos(twist) * p + torch.sin(twist) * q
    return coordinates.place(bonds, angles, torsions, frame).reshape(-1)


@pytest.mark.parametrize("molecule", ["branched", "alanine-dipeptide"])
def test_log_jacobian_matches_autograd(molecule):
    if molecule == "branched":
        numbers, bonds, backbone = [6, 6, 6, 8, 1, 7, 1], [(0, 1), (1, 2), (2, 3), (1, 4), (2, 5), (5, 6)], None
        x = torch.randn(1, 7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.15
    else:
        numbers, bonds, backbone = NUMBERS, BONDS, peptide_backbone(TOPOLOGY)
        x = torch.as_tensor(np.asarray(POSITIONS._value), dtype=torch.float64)[None]
    coordinates = InternalCoordinates(build_zmatrix(numbers, bonds, backbone)).double()
    b, a, t = coordinates.to_internal(x)
    params = torch.cat([torch.randn(3, dtype=torch.float64), torch.tensor([0.7, 0.3, 1.1], dtype=torch.float64),
                        b[0], a[0], t[0]])
    jacobian = torch.autograd.functional.jacobian(
        lambda p: _frame_parameters_to_positions(coordinates, (b.shape[1], a.shape[1]), p), params)
    expected = coordinates.log_jacobian(b, a) + math.log(math.sin(0.7))  # Haar measure: sin(polar)
    assert abs(float(torch.linalg.slogdet(jacobian)[1]) - float(expected)) < 1e-8


def perturbed_internal_flow(num_atoms, conditional, seed, bond=(0.15, 0.012), angle=(2.0, 0.2), scale=0.3,
                            config=None, rigid=()):
    """An internal-coordinate flow moved away from the identity (every spline asymmetric)."""
    config = config or InternalFlowConfig(conditional=conditional, hidden=16, depth=1, torsion_layers=2,
                                          geometry_layers=2, context=8)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the layers' initial weights too
        flow = InternalCoordinateFlow(num_atoms, config, torch.full((num_atoms - 1,), bond[0]),
                                      torch.full((num_atoms - 1,), bond[1]), torch.full((num_atoms - 2,), angle[0]),
                                      torch.full((num_atoms - 2,), angle[1]), torch.zeros(num_atoms - 3),
                                      torch.full((num_atoms - 3,), 0.1), rigid)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=g))
    return flow


def alanine_proposal(components=("global",), seed=0):
    zmatrix = build_zmatrix(NUMBERS, BONDS, peptide_backbone(TOPOLOGY))
    coordinates = InternalCoordinates(zmatrix)
    x = torch.as_tensor(np.asarray(POSITIONS._value), dtype=torch.float32)[None]
    b, a, _ = coordinates.to_internal(x)
    flows = []
    for k, name in enumerate(components):
        flow = perturbed_internal_flow(22, name == "local", seed + k, scale=0.05)
        flow.geometry_mean.copy_(torch.cat([b[0], a[0]]))
        flow.geometry_std.fill_(0.01)
        flows.append(flow)
    weights = [1.0 / len(flows)] * len(flows)
    return InternalCoordinateProposal(coordinates, flows, weights, list(components), temperature=310.0, tau_ps=10.0,
                                      force_field="amber99sbildn-obc", atomic_numbers=NUMBERS,
                                      bonds=[list(b) for b in BONDS], handedness=[], metadata_json="{}")


@pytest.mark.parametrize("components", [("global",), ("local",), ("local", "global")])
def test_proposal_density_is_consistent_and_scripts(components):
    proposal = alanine_proposal(components)
    scripted = torch.jit.script(proposal)
    x = torch.as_tensor(np.asarray(POSITIONS._value), dtype=torch.float32)[None].expand(64, 22, 3)
    z = torch.randn(64, 22, 6, generator=torch.Generator().manual_seed(3))
    numbers = torch.tensor(NUMBERS)
    with torch.no_grad():
        new, v, log_q = scripted.sample(x, numbers, z)
        again = scripted.log_prob(x, numbers, new, v)
        python_new, _, python_log_q = proposal.sample(x, numbers, z)
    finite = torch.isfinite(log_q)
    assert finite.float().mean() > 0.9
    assert torch.allclose(log_q[finite], again[finite], atol=2e-3)  # float32 through the placement
    assert torch.allclose(new, python_new) and torch.allclose(log_q, python_log_q)
    assert torch.equal(v, z[..., 3:])  # the auxiliary variable is the contract's noise itself
    assert scripted.proposal_independent == (components == ("global",))
    if len(components) == 2:
        chosen = scripted.component(z)
        assert 0 < int(chosen.sum()) < 64  # both components are used


def test_independent_proposal_keeps_the_frame_and_ignores_the_state():
    proposal = torch.jit.script(alanine_proposal(("global",)))
    numbers = torch.tensor(NUMBERS)
    x = torch.as_tensor(np.asarray(POSITIONS._value), dtype=torch.float32)[None]
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        moved, _, _ = proposal.sample(x, numbers, torch.randn(1, 22, 6, generator=g))
        z = torch.randn(8, 22, 6, generator=g)
        from_start = proposal.sample(x.expand(8, 22, 3), numbers, z)
        from_moved = proposal.sample(moved.expand(8, 22, 3), numbers, z)
    assert torch.allclose(from_start[0], from_moved[0], atol=1e-5)
    assert torch.allclose(from_start[2], from_moved[2], atol=1e-3)
    # the rigid frame of the first three Z-matrix atoms is the one conditioned on
    c = proposal.coordinates
    for proposals in (from_start[0], moved):
        assert torch.allclose(proposals[:, c.root], x[:, c.root])
        direction = proposals[:, c.first] - proposals[:, c.root]
        reference = x[:, c.first] - x[:, c.root]
        assert torch.allclose(direction / direction.norm(dim=-1, keepdim=True),
                              reference / reference.norm(dim=-1, keepdim=True), atol=1e-5)


def test_log_q_includes_the_auxiliary_density():
    proposal = alanine_proposal(("global",))
    x = torch.as_tensor(np.asarray(POSITIONS._value), dtype=torch.float32)[None].expand(4, 22, 3)
    numbers = torch.tensor(NUMBERS)
    z = torch.randn(4, 22, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        new, v, log_q = proposal.sample(x, numbers, z)
        zero = proposal.log_prob(x, numbers, new, torch.zeros_like(v))
    expected = -0.5 * v.pow(2).sum(dim=(-2, -1))  # log N(v) - log N(0)
    assert torch.allclose(log_q - zero, expected, atol=1e-3)


def test_mixture_density_is_the_logsumexp_of_its_components():
    mixture = alanine_proposal(("local", "global"))
    parts = [alanine_proposal((name,), seed=k) for k, name in enumerate(("local", "global"))]
    x = torch.as_tensor(np.asarray(POSITIONS._value), dtype=torch.float32)[None].expand(16, 22, 3)
    numbers = torch.tensor(NUMBERS)
    with torch.no_grad():
        new, v, log_q = mixture.sample(x, numbers, torch.randn(16, 22, 6, generator=torch.Generator().manual_seed(4)))
        densities = torch.stack([p.log_prob(x, numbers, new, v) for p in parts])
    assert not mixture.proposal_independent
    assert torch.allclose(log_q, torch.logsumexp(densities + math.log(0.5), dim=0), atol=1e-3)
