"""Overhead of TimewarpIntegrator on alanine dipeptide (default preset, Reference platform).

1. With moves effectively off, MD steps/s against a plain LangevinMiddleIntegrator, measured in the
   same run (interleaved repeats, chunks of 10 steps as app.Simulation issues them).
2. Per MH step in moves-only mode, the share of time spent outside the flow and the energy evaluation.

Usage: python benchmarks/integrator_overhead.py [--seconds 5] [--repeats 3]
"""

import argparse
import tempfile
import time

import numpy as np
import torch
import openmm
from openmm import unit

from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.flow.cartesian.export import export_flow
from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow
from openmm_timewarp.lab.systems import create_system, load_alanine_dipeptide


def md_rate(integrator, system, positions, seconds, chunk=10):
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    context.setVelocitiesToTemperature(310 * unit.kelvin, 1)
    integrator.step(100)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            integrator.step(chunk)
        steps += 100 * chunk
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    topology, positions = load_alanine_dipeptide()
    system = create_system(topology)
    path = tempfile.mktemp(suffix=".pt")
    export_flow(TimewarpFlow(FlowConfig()), path, temperature=310.0, tau_ps=0.0, force_field="amber99sbildn-obc")

    plain, timewarp = [], []
    for _ in range(args.repeats):
        plain.append(md_rate(openmm.LangevinMiddleIntegrator(310, 1, 0.001), system, positions, args.seconds))
        integrator = TimewarpIntegrator(310, 1, 0.001, flow=path, topology=topology, moveInterval=10**9)
        timewarp.append(md_rate(integrator, system, positions, args.seconds))
    ratio = np.median(timewarp) / np.median(plain)
    print(f"MD steps/s, plain LangevinMiddleIntegrator: {np.median(plain):,.0f}  (runs: {', '.join(f'{r:,.0f}' for r in plain)})")
    print(f"MD steps/s, TimewarpIntegrator, moves off:  {np.median(timewarp):,.0f}  (runs: {', '.join(f'{r:,.0f}' for r in timewarp)})")
    print(f"ratio: {ratio:.3f}  (floor 0.95)")

    for batch in (1, 4, 16):
        integrator = TimewarpIntegrator(310, 1, 0.001, flow=path, topology=topology, moveInterval=0,
                                        proposalsPerMove=16, batchSize=batch)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions)
        integrator.step(2)
        integrator.resetStatistics()
        start = time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            integrator.step(10)
        total = time.perf_counter() - start
        stats = integrator.getStatistics()
        per_step = total / stats["proposals"]
        outside = 1.0 - (stats["flow_time"] + stats["energy_time"]) / total
        print(f"moves only, batchSize {batch:2d}: {stats['proposals'] / total:,.0f} MH steps/s; per step "
              f"{per_step * 1e6:.0f} us = flow {stats['flow_time'] / stats['proposals'] * 1e6:.0f} us + energy "
              f"{stats['energy_time'] / stats['proposals'] * 1e6:.0f} us + other {outside * per_step * 1e6:.0f} us "
              f"({outside:.1%} outside flow and energy; floor < 20%); acceptance {stats['acceptance_rate']:.3f}")


if __name__ == "__main__":
    main()
