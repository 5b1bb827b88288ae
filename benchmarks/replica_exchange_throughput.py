"""Replica-exchange throughput on one core: openmmtools' sampler (with its storage) vs the package's own loop.

Alanine dipeptide (amber99sbildn-obc), 8 replicas at geometric temperatures 310-600 K, 0.5 ps of
LangevinMiddleIntegrator MD per replica between swap rounds, 2 fs steps with hydrogen masses of
3 amu, Reference platform. Both are timed for ``--seconds`` after set-up and report ps of
target-temperature samples (one configuration per 0.5 ps round) per wall-clock second:

(a) ``openmmtools.multistate.ReplicaExchangeSampler`` as ``openmm-timewarp reference`` runs it
    (:mod:`openmm_timewarp.lab.reference_run`: netCDF storage of the torsion atoms every iteration,
    a checkpoint every 10 ps, energies of every replica at every temperature);
(b) ``openmm_timewarp.lab.samplers.ReplicaExchange`` (through
    :func:`~openmm_timewarp.lab.samplers.replica_exchange.replica_exchange_throughput`), nothing stored.

Usage::

    python benchmarks/replica_exchange_throughput.py --seconds 20
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("OPENMM_CPU_THREADS", "1")

import torch  # noqa: E402  (torch before openmm, as the package does)

torch.set_num_threads(1)

from openmm_timewarp.lab.analysis.peptide import PeptideObservables  # noqa: E402
from openmm_timewarp.lab.reference_run import ReferenceSettings, open_sampler, torsion_atoms  # noqa: E402
from openmm_timewarp.lab.molecule import load_molecule  # noqa: E402
from openmm_timewarp.lab.samplers.replica_exchange import (ReplicaExchangeSettings,  # noqa: E402
                                                       replica_exchange_throughput)

NUM_REPLICAS = 8
TEMPERATURE_MAX_K = 600.0
ITERATION_PS = 0.5


def openmmtools_throughput(molecule, seconds: float) -> float:
    """ps of target-temperature samples per wall-clock second of openmmtools' sampler, storage included."""
    settings = ReferenceSettings(num_replicas=NUM_REPLICAS, temperature_max_K=TEMPERATURE_MAX_K,
                                 iteration_ps=ITERATION_PS, target_ns=1e6)
    atoms = torsion_atoms(PeptideObservables(molecule.topology))
    with tempfile.TemporaryDirectory() as directory:
        sampler, reporter = open_sampler(molecule, settings, directory, atoms)
        try:
            sampler.run(1)  # iteration 1 also computes the starting energies: set-up, not timed
            start = time.perf_counter()
            first = sampler.iteration
            while time.perf_counter() - start < seconds:
                sampler.run(1)
            elapsed = time.perf_counter() - start
            iterations = sampler.iteration - first
        finally:
            reporter.close()
    return iterations * ITERATION_PS / elapsed


def own_throughput(molecule, seconds: float) -> float:
    """ps of target-temperature samples per wall-clock second of ``openmm_timewarp.lab.samplers.ReplicaExchange``."""
    settings = ReplicaExchangeSettings(num_replicas=NUM_REPLICAS, temperature_max_K=TEMPERATURE_MAX_K,
                                       swap_interval_ps=ITERATION_PS, timestep_fs=2.0, hydrogen_mass_amu=3.0)
    return replica_exchange_throughput(molecule, settings, seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="wall-clock seconds per sampler (default 30)")
    args = parser.parse_args(argv)

    molecule = load_molecule("A", capped=True)
    a = openmmtools_throughput(molecule, args.seconds)
    b = own_throughput(molecule, args.seconds)
    print(f"alanine dipeptide ({molecule.topology.getNumAtoms()} atoms), {NUM_REPLICAS} replicas "
          f"{molecule.temperature_K:g}-{TEMPERATURE_MAX_K:g} K, {ITERATION_PS:g} ps per exchange, HMR 3 amu, 2 fs, "
          f"Reference platform, {args.seconds:g} s each, one core")
    print(f"(a) openmmtools ReplicaExchangeSampler (storage included): {a:7.2f} ps of 310 K samples per second")
    print(f"(b) openmm_timewarp.lab.samplers.ReplicaExchange:               {b:7.2f} ps of 310 K samples per second")
    print(f"(a) / (b) = {a / b:.2f}")


if __name__ == "__main__":
    main()
