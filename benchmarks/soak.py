"""Long-run reliability: many Timewarp MH steps on alanine dipeptide in one run.

Checks that nothing crashes, the state never holds a NaN, and resident memory does not grow;
prints RSS at the start and the end (after a warm-up) and the figures of the run.

Usage: python benchmarks/soak.py [--flow alanine-dipeptide] [--proposals 100000] [--move-interval 10]
"""

import argparse
import resource
import time

import numpy as np
import torch
import openmm

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide


def rss_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", default="alanine-dipeptide")
    parser.add_argument("--proposals", type=int, default=100_000)
    parser.add_argument("--move-interval", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    topology, positions = load_alanine_dipeptide()
    integrator = TimewarpIntegrator(310, 1, 0.001, flow=args.flow, topology=topology, moveInterval=args.move_interval)
    integrator.setRandomNumberSeed(1)
    context = openmm.Context(create_system(topology), integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    integrator.step(20 * max(args.move_interval, 1))  # warm-up: TorchScript compilation, first allocations
    start_rss, start = rss_mb(), time.perf_counter()
    checks = 0
    while integrator.getNumProposals() < args.proposals:
        integrator.step(100 * max(args.move_interval, 1))
        state = context.getState(getPositions=True, getEnergy=True)
        assert np.all(np.isfinite(state.getPositions(asNumpy=True)._value)), "NaN in positions"
        assert np.isfinite(state.getPotentialEnergy()._value), "non-finite energy"
        checks += 1
    wall = time.perf_counter() - start
    stats = integrator.getStatistics()
    print(f"{stats['proposals']:,} MH steps in {stats['moves']:,} moves, {wall:.0f} s; acceptance "
          f"{stats['acceptance_rate']:.4f}; {checks} state checks, no NaN")
    print(f"resident memory: {start_rss:.1f} MB after warm-up, {rss_mb():.1f} MB at the end "
          f"(peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB)")


if __name__ == "__main__":
    main()
