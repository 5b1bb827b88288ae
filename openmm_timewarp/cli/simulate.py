"""``openmm-timewarp simulate``: MD data for peptides (resumable, sharded, in worker processes).

Examples::

    # alanine dipeptide, 10 ns at 310 K, one frame per ps
    openmm-timewarp simulate A --capped --production-ns 10 -o data/ad
    # the same molecule started in alphaL, and at 600 K
    openmm-timewarp simulate A --capped --phi 60 --psi 40 --name ACE-A-NME-alphaL -o data/ad
    openmm-timewarp simulate A --capped --temperature-k 600 --name ACE-A-NME-600K -o data/ad
    # training dipeptides, shard 0 of 4, two worker processes
    openmm-timewarp simulate --sequences-file dipeptide-splits.json --split train --shard 0/4 --workers 2 -o data/2aa
    # any molecule: a serialised System and a PDB of its atoms (its force field and constraints as they are)
    openmm-timewarp simulate system.xml structure.pdb --timestep-fs 2 -o data/ligand

Rerunning a command continues its runs from their last checkpoints. Flags that take a number in a
unit name the unit (``--timestep-fs``, ``--production-ns``, ...); they cannot be abbreviated.
"""

import json
import os
import sys



def add_arguments(parser):
    # No prefixes: "--timestep" must not pass for "--timestep-fs" (a number without its unit).
    parser.allow_abbrev = False
    parser.add_argument("sequences", nargs="*", metavar="SEQUENCE",
                        help="one-letter peptide sequences, e.g. AK AKWE (or A with --capped for alanine dipeptide); "
                             "or a serialised System (system.xml) and a PDB of its atoms")
    parser.add_argument("-o", "--output", required=True, help="parent directory; each run writes OUTPUT/<name>/")
    parser.add_argument("--sequences-file", help="sequences: a text file (whitespace-separated, # comments), a JSON list, "
                                                 "or a JSON splits file (keys train/validation/test) with --split")
    parser.add_argument("--split", help="which split of a JSON splits file (e.g. train); 'all' for every split")
    parser.add_argument("--capped", action="store_true", help="ACE/NME caps instead of zwitterionic termini")
    parser.add_argument("--start-pdb", help="start from this structure (with hydrogens) instead of building the peptide")
    parser.add_argument("--phi", type=float, help="starting phi of every residue of a built peptide (degrees)")
    parser.add_argument("--psi", type=float, help="starting psi of every residue of a built peptide (degrees)")
    parser.add_argument("--name", help="run directory name (one run only); default the peptide name, e.g. ACE-A-NME")
    parser.add_argument("--preset", help="force-field preset (default amber99sbildn-obc; 'openmm-timewarp models' lists them)")
    parser.add_argument("--temperature-k", type=float, help="temperature, kelvin (default: the preset's, 310 K)")
    parser.add_argument("--timestep-fs", type=float, default=1.0,
                        help="time step, femtoseconds (default 1; 2 with --hydrogen-mass-amu 3)")
    parser.add_argument("--friction-per-ps", type=float, default=1.0, help="collision rate, 1/ps (default 1)")
    parser.add_argument("--hydrogen-mass-amu", type=float, help="hydrogen mass repartitioning, amu (e.g. 3)")
    parser.add_argument("--constraints", choices=("none", "hbonds"),
                        help="bond constraints (default none; a System file's own). hbonds: bonds to hydrogen, with "
                             "--hydrogen-mass-amu 4 --timestep-fs 4")
    parser.add_argument("--save-interval-ps", type=float, default=1.0, help="picoseconds between saved frames (default 1)")
    parser.add_argument("--equilibration-ps", type=float, default=100.0,
                        help="picoseconds of unsaved MD after minimisation (default 100)")
    parser.add_argument("--production-ns", type=float, default=1.0, help="nanoseconds to save per peptide (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (velocities and Langevin noise)")
    parser.add_argument("--platform", default="auto", help="OpenMM platform (default auto: Reference for peptides)")
    parser.add_argument("--checkpoint-interval", type=int, default=100, help="frames between checkpoints (default 100)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, one core each (default 1)")
    parser.add_argument("--shard", default="0/1", help="run shard i of n (0 <= i < n) of the sorted sequence list")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def read_sequences(path, split=None):
    """Sequences from a text file, a JSON list, or a JSON splits file (``split``: a key, or 'all').

    Raises
    ------
    ValueError
        Missing file, a splits file without ``split``, or an unknown split.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--sequences-file {path!r} does not exist.")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        data = json.loads(text)
        if isinstance(data, list):
            return [str(s) for s in data]
        splits = {k: v for k, v in data.items() if isinstance(v, list)}
        if split is None:
            raise ValueError(f"{path!r} is a splits file; choose --split from: {', '.join(splits)}, or all.")
        if split == "all":
            return [s for values in splits.values() for s in values]
        if split not in splits:
            raise ValueError(f"{path!r} has no split {split!r}; choose from: {', '.join(splits)}, or all.")
        return list(splits[split])
    return [word for line in text.splitlines() for word in line.split("#", 1)[0].split()]


def _system_file_run(args, kwargs):
    """The one run of a System file's molecule (``simulate system.xml structure.pdb``)."""
    from ..lab.md.simulate import simulate
    from ..lab.system_file import load_system_file

    if len(args.sequences) > 2 or (len(args.sequences) == 2) == bool(args.start_pdb):
        raise ValueError("a System file runs from one structure: simulate system.xml structure.pdb.")
    for flag, value in (("--preset", args.preset), ("--capped", args.capped), ("--phi", args.phi),
                        ("--psi", args.psi), ("--sequences-file", args.sequences_file)):
        if value:
            raise ValueError(f"{flag} does not apply to a System file: its molecule and force field are its own.")
    structure = args.start_pdb or args.sequences[1]
    preset = load_system_file(args.sequences[0], structure, args.temperature_k)[2]
    kwargs = dict(kwargs, preset=preset, capped=False, phi=None, psi=None)
    return simulate(args.output, start_pdb=structure, name=args.name or preset.molecule_name,
                    progress=not args.no_progress, **kwargs)


def run(args):
    from ..lab.molecule import is_system_file
    from ..lab.systems import DEFAULT_PRESET, parse_sequence
    from ..lab.md.pool import parse_shard, simulate_many
    from ..lab.md.simulate import simulate

    kwargs = dict(capped=args.capped, phi=args.phi, psi=args.psi, preset=args.preset or DEFAULT_PRESET, temperature_K=args.temperature_k,
                  timestep_ps=args.timestep_fs / 1000.0, friction_per_ps=args.friction_per_ps,
                  hydrogen_mass_amu=args.hydrogen_mass_amu, save_interval_ps=args.save_interval_ps,
                  equilibration_ps=args.equilibration_ps, production_ps=args.production_ns * 1000.0, seed=args.seed, platform=args.platform, checkpoint_interval=args.checkpoint_interval,
                  constraints=args.constraints)
    if args.sequences and is_system_file(args.sequences[0]):
        try:
            results = [_system_file_run(args, kwargs)]
        except (ValueError, FileNotFoundError) as error:
            print(f"openmm-timewarp simulate: error: {error}", file=sys.stderr)
            return 2
        return _report(results, args.shard)
    kwargs["constraints"] = args.constraints or "none"
    try:
        sequences = list(args.sequences)
        if args.sequences_file:
            sequences += read_sequences(args.sequences_file, args.split)
        for sequence in sequences:
            parse_sequence(sequence)
        shard = parse_shard(args.shard)
        if args.start_pdb and len(sequences) > 1:
            raise ValueError("--start-pdb gives one starting structure: run one sequence with it (or none).")
        if args.name and len(sequences) > 1:
            raise ValueError("--name names one run: give one sequence with it.")
        if not sequences and not args.start_pdb:
            raise ValueError("give peptide sequences (e.g. AK), --sequences-file, or --start-pdb.")
    except ValueError as error:
        print(f"openmm-timewarp simulate: error: {error}", file=sys.stderr)
        return 2

    if args.start_pdb or args.name:
        try:
            results = [simulate(args.output, sequences[0] if sequences else None, start_pdb=args.start_pdb,
                                name=args.name, progress=not args.no_progress, **kwargs)]
        except ValueError as error:
            print(f"openmm-timewarp simulate: error: {error}", file=sys.stderr)
            return 2
    else:
        results = simulate_many(sequences, args.output, workers=args.workers, shard=shard,
                                progress=not args.no_progress, **kwargs)
    return _report(results, args.shard)


def _report(results, shard):
    """Print each run's outcome; the exit status (1 if any failed)."""
    failed = 0
    for result in results:
        if result.error:
            failed += 1
            print(f"{result.name}: FAILED: {result.error}", file=sys.stderr)
        else:
            print(f"{result.name}: {result.frames} frames ({result.new_frames} new), "
                  f"{'complete' if result.complete else 'incomplete'} -> {result.directory}")
    if not results:
        print(f"shard {shard} has no sequences")
    return 1 if failed else 0
