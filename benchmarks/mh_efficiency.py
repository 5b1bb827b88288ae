"""MH efficiency of a flow on alanine dipeptide: acceptance, MH steps/s, torsion jumps per second.

Pure Timewarp moves (moveInterval=0) from a minimised structure, Reference platform, one process.

Usage: python benchmarks/mh_efficiency.py FLOW [--seconds 30] [--batch-size 16] [--threads 1]
"""

import argparse
import json
import time

import numpy as np
import torch
import openmm
from openmm import unit

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.analysis import PeptideObservables
from openmm_timewarp.systems import create_system, load_alanine_dipeptide


def angular_jump(a, b):
    d = np.deg2rad(np.asarray(b) - np.asarray(a))
    return np.rad2deg(np.arctan2(np.sin(d), np.cos(d)))


def measure(flow, seconds=30.0, batch_size=16, proposals=16, seed=1, positions=None):
    """Run pure MH moves for ``seconds``; return a dict of figures."""
    topology, start = load_alanine_dipeptide()
    system = create_system(topology)
    integrator = TimewarpIntegrator(310, 1, 0.001, flow=flow, topology=topology, moveInterval=0,
                                    proposalsPerMove=proposals, batchSize=batch_size)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(start if positions is None else positions)
    frames, begin = [], time.perf_counter()
    while time.perf_counter() - begin < seconds:
        integrator.step(1)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    wall = time.perf_counter() - begin
    observables = PeptideObservables(topology)
    phi, psi = observables.values(np.array(frames)).T
    jump = np.mean(angular_jump(phi[:-1], phi[1:]) ** 2 + angular_jump(psi[:-1], psi[1:]) ** 2)
    stats = integrator.getStatistics()
    states = observables.joint_labels(np.stack([phi, psi], axis=-1))
    return {"acceptance": stats["acceptance_rate"], "mh_steps_per_s": stats["proposals"] / wall,
            "accepted_per_s": stats["accepted"] / wall, "torsion_jump2_per_move_deg2": float(jump),
            "flow_share": stats["flow_time"] / wall, "energy_share": stats["energy_time"] / wall,
            "states_visited": sorted(set(np.asarray(states).tolist())), "moves": stats["moves"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flow")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--proposals-per-move", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(measure(args.flow, args.seconds, args.batch_size, args.proposals_per_move)))


if __name__ == "__main__":
    main()
