"""Proposals per second of the default flow on CPU: both passes (sampling + reverse density).

Reports, for the default FlowConfig exported to TorchScript, the time of the sampling pass (every
row conditions on the same structure, so the conditioning is computed once) and of the reverse
pass (each row conditions on its own proposal), their sum per proposal, and the scaling with
batch size (8-256) and atom count (ACE-A-NME, ACE-AAA-NME, ACE-A7-NME: 22, 42, 82 atoms).

Usage: python benchmarks/flow_throughput.py [--threads 2] [--repeats 20]
"""

import argparse
import tempfile
import time

import numpy as np
import torch

from openmm_timewarp.contract import load_flow
from openmm_timewarp.flow.cartesian.export import export_flow
from openmm_timewarp.flow.cartesian.model import FlowConfig, TimewarpFlow
from openmm_timewarp.lab.systems import build_peptide


def molecule(sequence, capped):
    topology, positions = build_peptide(sequence, capped=capped)
    numbers = torch.tensor([a.element.atomic_number for a in topology.atoms()])
    return numbers, torch.tensor(np.asarray(positions.value_in_unit(positions.unit)), dtype=torch.float32)


def timed(function, repeats):
    for _ in range(3):  # TorchScript specialises on the first calls of each shape
        function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    path = tempfile.mktemp(suffix=".pt")
    flow = TimewarpFlow(FlowConfig())
    export_flow(flow, path, temperature=310.0, tau_ps=0.0, force_field="")
    module, _ = load_flow(path)
    print(f"default FlowConfig: {flow.num_parameters():,} parameters, {args.threads} torch threads")
    print(f"{'atoms':>5} {'batch':>5} {'sample ms':>10} {'reverse ms':>11} {'proposals/s':>12}")
    for sequence, capped in (("A", True), ("AAA", True), ("AAAAAAA", True)):  # 22, 42, 82 atoms
        numbers, x = molecule(sequence, capped)
        n = len(numbers)
        for batch in (8, 16, 32, 64, 128, 256):
            if n > 22 and batch not in (16, 64, 256):
                continue
            z = torch.randn(batch, n, 6)
            x_cond = x.expand(batch, n, 3)
            with torch.no_grad():
                proposal, v, _ = module.sample(x_cond, numbers, z)
                sample = timed(lambda: module.sample(x_cond, numbers, z), args.repeats)
                reverse = timed(lambda: module.log_prob(proposal, numbers, x_cond, v), args.repeats)
            print(f"{n:5d} {batch:5d} {sample * 1e3:10.2f} {reverse * 1e3:11.2f} {batch / (sample + reverse):12,.0f}")


if __name__ == "__main__":
    main()
