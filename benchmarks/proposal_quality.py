"""How good are a flow's proposals for alanine dipeptide? Energies, Hastings terms, geometry.

From conditioning structures of the validation split of MD data, draws one proposal each and
reports the median energy rise (kT), the median augmented log-ratio (auxiliary + Hastings terms),
the median and best log-acceptance, the fraction of proposals that invert a chirality centre, and
the mean bond-length error of proposals (data x(t + tau) for comparison).

Usage: python benchmarks/proposal_quality.py FLOW DATA_DIR --lag 10 [--count 64]
"""

import argparse
import json

import numpy as np
import torch
from openmm import unit

from openmm_timewarp.atoms import atomic_numbers, bonds
from openmm_timewarp.chirality import chirality_signs, find_chirality_centres
from openmm_timewarp.contract import load_flow
from openmm_timewarp.lab.datasets.pairs import collate_pairs, pair_datasets
from openmm_timewarp.lab.energy import SystemEnergy
from openmm_timewarp.mcmc import augmented_log_ratio
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flow")
    parser.add_argument("data", nargs="+")
    parser.add_argument("--lag", type=float, required=True, help="ps")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    module, info = load_flow(args.flow)
    validation = pair_datasets(args.data, args.lag)["validation"]
    batch = collate_pairs([validation[int(i)] for i in np.linspace(0, len(validation) - 1, args.count)])
    x, y, numbers = batch["x_cond"], batch["x_target"], batch["atomic_numbers"][0]
    topology, _ = load_alanine_dipeptide()
    system = create_system(topology, info.force_field or "amber99sbildn-obc")
    energy = SystemEnergy(system)
    kT = (unit.MOLAR_GAS_CONSTANT_R * info.temperature * unit.kelvin).value_in_unit(unit.kilojoule_per_mole)
    rises, ratios, proposals = [], [], []
    with torch.no_grad():
        for row in range(args.count):  # one molecule per call, as the integrator does
            x_cond = x[row:row + 1]
            proposal, v_new, log_q = module.sample(x_cond, numbers, torch.randn(1, x.shape[1], 6))
            v_old = torch.randn(1, x.shape[1], 3)
            reverse = module.log_prob(proposal, numbers, x_cond, v_old)
            ratios.append(float(augmented_log_ratio(v_old, v_new, log_q, reverse)[0]))
            proposals.append(proposal[0])
    proposals = torch.stack(proposals)
    rises = (energy.energies(proposals.numpy()) - energy.energies(x.numpy())) / kT
    ratios = np.array(ratios)
    log_alpha = -rises + ratios
    numbers_list = atomic_numbers(system, topology)
    centres = torch.as_tensor(find_chirality_centres(numbers_list, bonds(system, topology)))
    flipped = (chirality_signs(proposals, centres) != chirality_signs(x, centres)).any(-1).float().mean()
    pairs = np.array(bonds(system, topology))

    def lengths(p):
        p = np.asarray(p)
        return np.linalg.norm(p[:, pairs[:, 0]] - p[:, pairs[:, 1]], axis=-1)

    print(json.dumps({
        "flow": args.flow, "lag_ps": args.lag, "count": args.count,
        "median_energy_rise_kT": float(np.median(rises)),
        "median_augmented_log_ratio": float(np.median(ratios)),
        "median_log_alpha": float(np.median(log_alpha)), "best_log_alpha": float(np.max(log_alpha)),
        "chirality_inverted_fraction": float(flipped),
        "bond_length_error_nm": {"proposals": float(np.abs(lengths(proposals) - lengths(x)).mean()),
                                 "data": float(np.abs(lengths(y) - lengths(x)).mean())},
    }, indent=1))


if __name__ == "__main__":
    main()
