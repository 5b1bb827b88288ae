"""The flow is an exact, invertible density with the symmetries it claims."""

import numpy as np
import torch

from openmm_timewarp.contract import load_flow
from openmm_timewarp.flow.cartesian.export import export_flow
from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow

TINY = FlowConfig(embedding=8, hidden=12, blocks=1, layers=4, length_scales=[0.1, 0.3, 0.6], position_scale=0.05)


def perturbed_flow(config=TINY, seed=0, scale=0.3):
    """A flow moved away from its identity initialisation (zero heads), so every test sees real couplings."""
    torch.manual_seed(seed)
    flow = TimewarpFlow(config)
    with torch.no_grad():
        for layer in flow.layers:
            layer.conditioner.head.weight.normal_(0.0, scale)
            layer.conditioner.head.bias.normal_(0.0, scale)
        flow.log_sigma_v.fill_(0.2)
    return flow.double()


def molecule(atoms=4, batch=5, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(atoms, 3, generator=g, dtype=dtype) * 0.15
    numbers = torch.tensor([6, 1, 8, 7, 16, 1, 6, 1][:atoms])
    z = torch.randn(batch, atoms, 6, generator=g, dtype=dtype)
    mask = torch.ones(batch, atoms, dtype=torch.bool)
    return x.expand(batch, atoms, 3).clone(), numbers.expand(batch, atoms).clone(), z, mask


def test_log_prob_of_sample_equals_returned_log_q():
    flow = perturbed_flow()
    x_cond, numbers, z, mask = molecule()
    x, v, log_q = flow.sample_batch(x_cond, numbers, z, mask)
    assert torch.allclose(flow.log_prob_batch(x_cond, numbers, x, v, mask), log_q, atol=1e-9)
    assert not torch.allclose(x, x_cond + z[..., :3] * flow.log_sigma_x.exp())  # couplings do something


def test_inverse_of_forward_is_identity():
    flow = perturbed_flow()
    x_cond, numbers, z, mask = molecule()
    x, v, _ = flow.sample_batch(x_cond, numbers, z, mask)
    z_back, _ = flow.to_base(x_cond, numbers, x, v, mask)
    assert torch.allclose(z_back, z, atol=1e-10)


def test_log_determinant_matches_autograd_jacobian():
    flow = perturbed_flow()
    x_cond, numbers, z, mask = molecule(atoms=3, batch=1)

    def forward(flat):
        x, v, _ = flow.sample_batch(x_cond, numbers, flat.view(1, 3, 6), mask)
        return torch.cat([x - x_cond, v], dim=-1).reshape(-1)

    jacobian = torch.autograd.functional.jacobian(forward, z.reshape(-1))
    _, log_abs_det = torch.linalg.slogdet(jacobian)
    _, _, log_q = flow.sample_batch(x_cond, numbers, z, mask)
    log_normal = -0.5 * z.pow(2).sum() - 0.5 * z.numel() * np.log(2 * np.pi)
    # y = (x - x_cond, v) is a function of z with the same layout as z, so
    # log q(y) = log N(z) - log|det dy/dz|
    assert torch.allclose(log_q[0], log_normal - log_abs_det, atol=1e-8)


def test_permutation_equivariance():
    flow = perturbed_flow()
    x_cond, numbers, z, mask = molecule(atoms=5)
    perm = torch.tensor([3, 0, 4, 2, 1])
    x, v, log_q = flow.sample_batch(x_cond, numbers, z, mask)
    xp, vp, log_qp = flow.sample_batch(x_cond[:, perm], numbers[:, perm], z[:, perm], mask)
    assert torch.allclose(xp, x[:, perm], atol=1e-10)
    assert torch.allclose(vp, v[:, perm], atol=1e-10)
    assert torch.allclose(log_qp, log_q, atol=1e-9)


def test_translation_equivariance():
    flow = perturbed_flow()
    x_cond, numbers, z, mask = molecule()
    shift = torch.tensor([1.3, -0.7, 2.1], dtype=x_cond.dtype)
    x, v, log_q = flow.sample_batch(x_cond, numbers, z, mask)
    xs, vs, log_qs = flow.sample_batch(x_cond + shift, numbers, z, mask)
    assert torch.allclose(xs, x + shift, atol=1e-10)
    assert torch.allclose(vs, v, atol=1e-10)
    assert torch.allclose(log_qs, log_q, atol=1e-9)


def test_padding_invariance():
    flow = perturbed_flow()
    small = molecule(atoms=3, batch=1, seed=2)
    large = molecule(atoms=6, batch=1, seed=3)
    x_alone, v_alone, log_alone = flow.sample_batch(*small)
    # the small molecule padded to 6 atoms, next to the large one
    x_cond = torch.zeros(2, 6, 3, dtype=torch.float64)
    numbers = torch.zeros(2, 6, dtype=torch.int64)
    z = torch.randn(2, 6, 6, dtype=torch.float64)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    x_cond[0, :3], numbers[0, :3], z[0, :3], mask[0, :3] = small[0][0], small[1][0], small[2][0], True
    x_cond[1], numbers[1], z[1], mask[1] = large[0][0], large[1][0], large[2][0], True
    x_cond[0, 3:] = 5.0  # garbage in the padding must not matter
    x, v, log_q = flow.sample_batch(x_cond, numbers, z, mask)
    assert torch.allclose(x[0, :3], x_alone[0], atol=1e-10)
    assert torch.allclose(v[0, :3], v_alone[0], atol=1e-10)
    assert torch.allclose(log_q[0], log_alone[0], atol=1e-9)
    assert torch.allclose(flow.log_prob_batch(x_cond, numbers, x, v, mask)[0], log_alone[0], atol=1e-9)


def test_shared_conditioning_gives_the_same_result():
    flow = perturbed_flow()
    x_cond, numbers, z, mask = molecule(batch=4)
    full = flow.sample_batch(x_cond, numbers, z, mask, False)
    shared = flow.sample_batch(x_cond, numbers, z, mask, True)
    for a, b in zip(full, shared):
        assert torch.allclose(a, b, atol=1e-10)


def test_torchscript_export_round_trip(tmp_path):
    flow = perturbed_flow().float()
    path = str(tmp_path / "flow.pt")
    export_flow(flow, path, temperature=310.0, tau_ps=100.0, force_field="amber99sbildn-obc", metadata={"data": "toy"})
    module, info = load_flow(path)
    assert info.contract_version == 1 and info.tau_ps == 100.0 and info.force_field == "amber99sbildn-obc"
    assert info.metadata["data"] == "toy" and info.metadata["architecture"]["layers"] == TINY.layers
    assert list(info.elements) == [1, 6, 7, 8, 16]
    x_cond, numbers, z, mask = molecule(batch=3, dtype=torch.float32)
    x, v, log_q = module.sample(x_cond, numbers[0], z)
    ex, ev, elq = flow.sample_batch(x_cond, numbers, z, mask)
    assert torch.equal(x, ex) and torch.equal(v, ev) and torch.allclose(log_q, elq, atol=1e-5)
    assert torch.allclose(module.log_prob(x_cond, numbers[0], x, v), flow.log_prob_batch(x_cond, numbers, x, v, mask),
                          atol=1e-5)


def test_rotation_equivariance_in_the_canonical_frame():
    flow = perturbed_flow()
    assert flow.canonical
    x_cond, numbers, z, mask = molecule(atoms=6)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4)))
    q = q * torch.sign(torch.det(q))  # a proper rotation
    x, v, log_q = flow.sample_batch(x_cond, numbers, z, mask)
    xr, vr, log_qr = flow.sample_batch(x_cond @ q.T, numbers, z, mask)
    assert torch.allclose(xr, x @ q.T, atol=1e-9)
    assert torch.allclose(vr, v @ q.T, atol=1e-9)
    assert torch.allclose(log_qr, log_q, atol=1e-8)
    assert torch.allclose(flow.log_prob_batch(x_cond @ q.T, numbers, x @ q.T, v @ q.T, mask), log_q, atol=1e-8)
    # without the frame the same flow is not rotation equivariant
    flow.canonical = False
    xn, _, _ = flow.sample_batch(x_cond, numbers, z, mask)
    xnr, _, _ = flow.sample_batch(x_cond @ q.T, numbers, z, mask)
    assert not torch.allclose(xnr, xn @ q.T, atol=1e-6)
