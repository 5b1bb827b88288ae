"""``openmm-timewarp fit``: a peptide to a trained, checked Timewarp model (see :mod:`openmm_timewarp.lab.fit`)."""

import sys


def add_arguments(parser):
    parser.add_argument("input", help="a PDB file of the peptide, its one-letter sequence, or a serialised OpenMM "
                                      "System (.xml) of any molecule, with STRUCTURE")
    parser.add_argument("structure", nargs="?",
                        help="System input only: a PDB of the System's atoms in its order, with elements (CONECT "
                             "records give the bonds; else the System's bonds and constraints do)")
    parser.add_argument("-o", "--output", required=True, help="the fit's folder (model.pt, fit.json, data, training)")
    parser.add_argument("--capped", action="store_true", help="sequence input: ACE/NME caps (A --capped: alanine dipeptide)")
    parser.add_argument("--preset", help="force-field preset (default amber99sbildn-obc; see docs/systems.md)")
    parser.add_argument("--forcefield", nargs="+", metavar="XML", help="force-field XML files instead of a preset")
    parser.add_argument("--temperature-k", type=float, help="kelvin (default: the preset's, 310)")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="cores to use (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--constraints", choices=("none", "hbonds"), default=None,
                        help="the Systems the model is for: hbonds = bonds to hydrogen constrained (MD data at 4 fs "
                             "with 4 amu hydrogens; the model holds those bonds). Default none; a System file's own")
    parser.add_argument("--warm-start", metavar="MODEL",
                        help="fine-tune this transferable peptides model (file or shipped name) on the molecule "
                             "instead of training a per-molecule flow from scratch (see docs/peptides.md)")
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    from ..lab.fit import Fit, FitSettings, summary

    if args.structure is not None and not args.input.lower().endswith(".xml"):
        print(f"error: a second file ({args.structure!r}) goes with a System input (system.xml structure.pdb) only; "
              f"{args.input!r} is not a .xml file.", file=sys.stderr)
        return 2

    settings = FitSettings(minutes=args.minutes, workers=args.workers, seed=args.seed, constraints=args.constraints,
                           warm_start=args.warm_start)
    try:
        fit = Fit(args.output, args.input, args.capped, args.preset, args.forcefield, args.temperature_k, settings,
                  progress=not args.no_progress, structure=args.structure)
        fit.run()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; run the same command again to continue the fit in {args.output!r}.", file=sys.stderr)
        return 130
    print(summary(fit.record, fit.directory))
    return 0
