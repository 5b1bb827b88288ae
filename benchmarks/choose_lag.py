"""Choose the lag tau for a single-molecule model by measurement.

For each lag: train a flow for a fixed number of steps on the same MD data, then run pure
Timewarp MH moves on the molecule and report validation NLL, MH acceptance, and the expected
squared jump of the backbone torsions per MH step and per wall-clock second (an MCMC efficiency
proxy that rewards both acceptance and the size of accepted moves).

Usage: python benchmarks/choose_lag.py DATA_DIR --lags 10 50 200 [--steps 400] [--seconds 30]
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch
import openmm
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.analysis import torsions_from_positions
from openmm_timewarp.data.dataset import collate_pairs, pair_datasets
from openmm_timewarp.flow.export import export_flow
from openmm_timewarp.flow.model import FlowConfig, TimewarpFlow
from openmm_timewarp.systems import create_system
from openmm_timewarp.training.trainer import TrainConfig, train_flow


def angular_jump(a, b):
    d = np.deg2rad(np.asarray(b) - np.asarray(a))
    return np.rad2deg(np.arctan2(np.sin(d), np.cos(d)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--lags", type=float, nargs="+", default=[10.0, 50.0, 200.0])
    parser.add_argument("--steps", type=int, default=400, help="training steps per lag")
    parser.add_argument("--seconds", type=float, default=30.0, help="MH sampling time per lag")
    parser.add_argument("--out", default="runs/choose-lag")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = []
    for lag in args.lags:
        sets = pair_datasets(args.data, lag)
        config = TrainConfig(epochs=1, batch_size=64, pairs_per_epoch=64 * args.steps, learning_rate=1e-3,
                             warmup_steps=50, seed=0)
        torch.manual_seed(0)
        out = os.path.join(args.out, f"lag{lag:g}")
        trained = train_flow(TimewarpFlow(FlowConfig(position_scale=0.05)), sets["train"], sets["validation"],
                             collate_pairs, config, out, progress=False)
        first = sets["train"].segments[0][0]
        topology = app.PDBFile(first.topology_path()).topology
        system = create_system(topology)
        path = tempfile.mktemp(suffix=".pt")
        export_flow(trained.flow, path, temperature=310.0, tau_ps=lag, force_field="amber99sbildn-obc", num_atoms=22)
        integrator = TimewarpIntegrator(310, 1, 0.001, flow=path, topology=topology, moveInterval=0,
                                        proposalsPerMove=1, batchSize=16)
        integrator.setRandomNumberSeed(1)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(sets["validation"][0]["x_cond"].numpy().astype(float))
        frames, start = [], time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            integrator.step(1)
            frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        wall = time.perf_counter() - start
        phi, psi = (a[:, 0] for a in torsions_from_positions(np.array(frames), topology))
        jump = np.mean(angular_jump(phi[:-1], phi[1:]) ** 2 + angular_jump(psi[:-1], psi[1:]) ** 2)
        row = {"lag_ps": lag, "validation_nll": trained.history[-1]["val_nll"],
               "acceptance": integrator.getAcceptanceRate(), "mh_steps_per_s": integrator.getNumProposals() / wall,
               "torsion_jump2_per_step_deg2": float(jump),
               "torsion_jump2_per_s_deg2": float(jump * integrator.getNumProposals() / wall),
               "phi_positive_visited": bool(np.any((phi >= 0) & (phi < 120)))}
        results.append(row)
        print(json.dumps(row), flush=True)
    with open(os.path.join(args.out, "choose_lag.json"), "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
