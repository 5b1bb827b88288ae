"""``openmm-timewarp reference``: equilibrium populations of a peptide, with errors, by replica exchange.

Examples::

    # alanine dipeptide at 310 K: 20 ns per replica (8 replicas, 310-600 K)
    openmm-timewarp reference A --capped -o refs/ace-a-nme
    # a PDB file, at most 60 minutes now; the same command again continues the run
    openmm-timewarp reference peptide.pdb --minutes 60 -o refs/peptide
    # more replicas, spread over 4 MPI ranks
    mpirun -n 4 openmm-timewarp reference AAA --capped --replicas 16 -o refs/aaa
    # any molecule: a serialised System and a PDB of its atoms (populations of its soft torsions)
    openmm-timewarp reference system.xml structure.pdb --ns 5 -o refs/ligand

The folder holds the run's storage, ``reference.json`` (read by ``benchmark`` and ``analyze``) and
``torsions.npz``; see :mod:`openmm_timewarp.lab.reference_run`.
"""


def add_arguments(parser):
    parser.add_argument("input", metavar="INPUT",
                        help="a PDB file of a peptide, a one-letter sequence (A with --capped: alanine dipeptide), "
                             "or a serialised System (system.xml) followed by a PDB of its atoms")
    parser.add_argument("structure", nargs="?", help="with a System input: a PDB of its atoms, in its order")
    parser.add_argument("-o", "--output", required=True, metavar="REF",
                        help="output folder (run storage, reference.json, torsions.npz); rerunning continues it")
    parser.add_argument("--capped", action="store_true", help="sequences: ACE/NME caps instead of zwitterionic termini")
    force_field = parser.add_mutually_exclusive_group()
    force_field.add_argument("--preset", metavar="NAME", help="force-field preset (default amber99sbildn-obc)")
    force_field.add_argument("--forcefield", nargs="+", metavar="XML",
                             help="force-field XML files instead of a preset")
    parser.add_argument("--temperature-k", type=float, metavar="K",
                        help="reference temperature, kelvin (default: the preset's, 310 K)")
    parser.add_argument("--ns", type=float, default=20.0,
                        help="simulated ns per replica to reach, over all runs of the command (default 20)")
    parser.add_argument("--minutes", type=float, help="wall-clock budget of this run (stops at the next checkpoint)")
    parser.add_argument("--replicas", type=int, metavar="R",
                        help="number of replicas (default: 8, more for peptides of over ~100 atoms)")
    parser.add_argument("--t-max-k", type=float, default=600.0, metavar="K",
                        help="top temperature, kelvin (default 600)")
    parser.add_argument("--burn-in-ns", type=float, default=1.0, metavar="NS",
                        help="ns per replica discarded before analysis (default 1)")
    parser.add_argument("--estimator", choices=("mbar", "target"), default="mbar",
                        help="mbar: every replica's samples, MBAR-weighted at the reference temperature (default); "
                             "target: that temperature's samples only. Analysis only: it can change between runs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the swap draws (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_from(args):
    """The :class:`~openmm_timewarp.lab.reference_run.ReferenceSettings` of parsed arguments."""
    from ..lab.reference_run import ReferenceSettings

    return ReferenceSettings(num_replicas=args.replicas, temperature_max_K=args.t_max_k, target_ns=args.ns,
                             minutes=args.minutes, burn_in_ns=args.burn_in_ns, estimator=args.estimator,
                             seed=args.seed)


def prepare(args):
    """The molecule and settings of a command, checked (ValueError or FileNotFoundError before any run)."""
    from ..lab.analysis.peptide import PeptideObservables
    from ..lab.molecule import is_system_file, load_molecule

    settings = settings_from(args)
    settings.check(args.temperature_k)
    molecule = load_molecule(args.input, capped=args.capped, preset=args.preset, forcefield=args.forcefield,
                             temperature_K=args.temperature_k, structure=args.structure)
    if not is_system_file(args.input):
        PeptideObservables(molecule.topology)  # a PDB or sequence input is a peptide
    settings.check(molecule.temperature_K)
    return molecule, settings


def _estimator_line(reference) -> str:
    p = reference.provenance
    if p.get("estimator") == "mbar":
        return (f"MBAR over all replicas ({reference.num_samples} samples, Kish effective size "
                f"{p['kish_effective_samples']:.0f})")
    return f"samples at {reference.temperature_K:g} K only ({reference.num_samples})"


def summary(result) -> str:
    """The table printed at the end: populations with standard errors, and how the run went."""
    reference = result.reference
    p = reference.provenance
    acceptance = p["swap_acceptance"]
    lines = [f"{reference.molecule} at {reference.temperature_K:g} K ({reference.preset}): {p['replicas']} replicas "
             f"{p['temperatures_K'][0]:.0f}-{p['temperatures_K'][-1]:.0f} K, {p['simulated_ns_per_replica']:g} ns per "
             f"replica ({reference.simulated_ns:g} ns after {p['burn_in_ns']:g} ns burn-in), swap acceptance "
             f"{min(acceptance):.2f}-{max(acceptance):.2f}, {p['wall_time_s'] / 60.0:.1f} min wall time; "
             f"{_estimator_line(reference)}",
             "", f"{'state':<28} {'population':>10} {'stderr':>8}"]
    for name, value in reference.states.items():
        lines.append(f"{name:<28} {value['population']:>10.4f} {value['stderr']:>8.4f}")
    joint = sorted(reference.joint_states.items(), key=lambda item: -item[1]["population"])
    if joint:
        lines += ["", f"{'joint state':<28} {'population':>10} {'stderr':>8}"]
        for name, value in joint[:10]:
            lines.append(f"{name:<28} {value['population']:>10.4f} {value['stderr']:>8.4f}")
        if len(joint) > 10:
            lines.append(f"... {len(joint) - 10} more in reference.json")
    lines.append("")
    if result.iterations < result.target_iterations:
        lines.append(f"{result.iterations} of {result.target_iterations} iterations: run the same command again to "
                     f"continue.")
    lines.append(f"-> {result.directory}/reference.json")
    return "\n".join(lines)


def run(args):
    from ..lab.reference_run import is_root_rank, make_reference

    molecule, settings = prepare(args)
    result = make_reference(molecule, args.output, settings, progress=not args.no_progress)
    if not is_root_rank():
        return 0
    if result.reference is None:
        print(f"{result.iterations} of {result.target_iterations} iterations, too few past the burn-in "
              f"({settings.burn_in_ns:g} ns) for a reference: nothing written; run the same command again to continue.")
        return 1
    print(summary(result))
    return 0
