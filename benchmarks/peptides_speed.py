"""MH steps per second of a transferable model on one core: the flow, the energy, and the two together.

Run by hand on a quiet machine; the figures go into docs/peptides.md.

Example::

    python benchmarks/peptides_speed.py runs/peptides-train/model.pt AK GW --seconds 20
"""

import argparse
import time

import torch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("flow")
    parser.add_argument("sequences", nargs="+")
    parser.add_argument("--capped", action="store_true")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--preset", default="amber14-obc1")
    parser.add_argument("--platform", default="Reference", choices=["Reference", "CPU"])
    args = parser.parse_args()
    torch.set_num_threads(1)

    import openmm
    from openmm import unit

    from openmm_timewarp import TimewarpIntegrator
    from openmm_timewarp.lab.molecule import load_molecule

    for sequence in args.sequences:
        molecule = load_molecule(sequence, capped=args.capped, preset=args.preset)
        integrator = TimewarpIntegrator(310 * unit.kelvin, 1 / unit.picosecond, 1 * unit.femtosecond, flow=args.flow,
                                        moveInterval=0, proposalsPerMove=1, batchSize=args.batch_size,
                                        topology=molecule.topology)
        platform = openmm.Platform.getPlatformByName(args.platform)
        properties = {"Threads": "1"} if args.platform == "CPU" else {}
        context = openmm.Context(molecule.system(), integrator, platform, properties)
        context.setPositions(molecule.positions)
        integrator.step(10)
        integrator.resetStatistics()
        start = time.perf_counter()
        steps = 0
        while time.perf_counter() - start < args.seconds:
            integrator.step(100)
            steps += 100
        wall = time.perf_counter() - start
        stats = integrator.getMoveStatistics()
        print(f"{molecule.name}: {len(molecule.positions)} atoms, {steps / wall:.0f} MH steps/s "
              f"(acceptance {integrator.getAcceptanceRate():.3f}); per MH step: flow "
              f"{1e6 * stats.flow_time / steps:.0f} us, energy {1e6 * stats.energy_time / steps:.0f} us, "
              f"other {1e6 * (wall - stats.flow_time - stats.energy_time) / steps:.0f} us")


if __name__ == "__main__":
    main()
