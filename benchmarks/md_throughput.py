"""MD throughput for data generation: alanine dipeptide with the default preset, per core.

Measures, in each of ``--processes`` worker processes (one core each):

- raw: ``integrator.step`` alone on the chosen platform;
- with saving: ``openmm_timewarp.lab.md.simulate.simulate`` (DCD frames, checkpoints, metadata), timed
  over production only (the run's own ``wall_time_s``).

Usage::

    python benchmarks/md_throughput.py                      # one process, 200 ps, frames every 1 ps
    python benchmarks/md_throughput.py --processes 2        # both cores busy
    python benchmarks/md_throughput.py --save-interval 0.1  # frames every 100 steps
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import time

FLOOR_STEPS_PER_S = 30_000


def measure(args_dict):
    os.environ["OPENMM_CPU_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    import openmm
    from openmm import unit

    from openmm_timewarp.lab import systems
    from openmm_timewarp.lab.md.simulate import read_metadata, simulate

    args = argparse.Namespace(**args_dict)
    topology, positions = systems.load_alanine_dipeptide()
    system = systems.create_system(topology, args.preset, args.hydrogen_mass)
    platform = systems.platform_by_name(args.platform, system, positions)
    integrator = openmm.LangevinMiddleIntegrator(310 * unit.kelvin, 1 / unit.picosecond, args.timestep * unit.femtosecond)
    context = openmm.Context(system, integrator, platform)
    context.setPositions(positions)
    context.setVelocitiesToTemperature(310 * unit.kelvin, 1)
    integrator.step(1000)
    steps = int(round(args.production * 1000 / args.timestep))
    start = time.perf_counter()
    integrator.step(steps)
    raw = steps / (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as output:
        result = simulate(output, "A", capped=True, preset=args.preset, timestep_ps=args.timestep / 1000.0,
                          hydrogen_mass_amu=args.hydrogen_mass, save_interval_ps=args.save_interval,
                          equilibration_ps=10.0, production_ps=args.production, platform=args.platform,
                          progress=False)
        meta = read_metadata(result.directory)
    return {"platform": platform.getName(), "raw_steps_per_s": raw, "steps_per_s": meta["production_steps"] / meta["wall_time_s"],
            "frames": meta["num_frames"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--production", type=float, default=200.0, help="picoseconds per measurement (default 200)")
    parser.add_argument("--save-interval", type=float, default=1.0, help="picoseconds between frames (default 1)")
    parser.add_argument("--timestep", type=float, default=1.0, help="femtoseconds (default 1)")
    parser.add_argument("--hydrogen-mass", type=float, help="amu, e.g. 3 with --timestep 2")
    parser.add_argument("--preset", default="amber99sbildn-obc")
    parser.add_argument("--platform", default="auto")
    parser.add_argument("--processes", type=int, default=1, help="processes at once, one core each (default 1)")
    args = parser.parse_args(argv)

    jobs = [vars(args)] * args.processes
    if args.processes == 1:
        results = [measure(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
            results = pool.map(measure, jobs)
    ns_per_day = lambda steps_per_s: steps_per_s * args.timestep * 1e-6 * 86400
    print(f"alanine dipeptide (22 atoms), {args.preset}, {results[0]['platform']}, {args.timestep:g} fs, "
          f"frames every {args.save_interval:g} ps, {args.processes} process(es) at once, {os.cpu_count()} cores")
    for i, r in enumerate(results):
        print(f"  process {i}: raw {r['raw_steps_per_s']:,.0f} steps/s; with saving {r['steps_per_s']:,.0f} steps/s "
              f"= {ns_per_day(r['steps_per_s']):,.1f} ns/day ({r['frames']} frames)")
    mean = sum(r["steps_per_s"] for r in results) / len(results)
    raw = sum(r["raw_steps_per_s"] for r in results) / len(results)
    verdict = "meets" if mean >= FLOOR_STEPS_PER_S else "BELOW"
    print(f"per core: {mean:,.0f} steps/s with saving (raw {raw:,.0f}), {ns_per_day(mean):,.1f} ns/day; "
          f"{verdict} the {FLOOR_STEPS_PER_S:,} steps/s floor")
    return 0 if mean >= FLOOR_STEPS_PER_S else 1


if __name__ == "__main__":
    sys.exit(main())
