"""``openmm-timewarp fit``: a peptide to a trained, checked Timewarp model (see :mod:`openmm_timewarp.lab.fit`)."""

import sys


def add_arguments(parser):
    parser.add_argument("input", help="a PDB file of the peptide, or its one-letter sequence")
    parser.add_argument("-o", "--output", required=True, help="the fit's folder (model.pt, fit.json, data, training)")
    parser.add_argument("--capped", action="store_true", help="sequence input: ACE/NME caps (A --capped: alanine dipeptide)")
    parser.add_argument("--preset", help="force-field preset (default amber99sbildn-obc; see docs/systems.md)")
    parser.add_argument("--forcefield", nargs="+", metavar="XML", help="force-field XML files instead of a preset")
    parser.add_argument("--temperature-k", type=float, help="kelvin (default: the preset's, 310)")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="cores to use (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--constraints", choices=("none", "hbonds"), default="none",
                        help="the Systems the model is for: hbonds = bonds to hydrogen constrained (MD data at 4 fs "
                             "with 4 amu hydrogens; the model holds those bonds). Default %(default)s")
    parser.add_argument("--warm-start", metavar="MODEL",
                        help="fine-tune this transferable peptides model (file or shipped name) on the molecule "
                             "instead of training a per-molecule flow from scratch (see docs/peptides.md)")
    parser.add_argument("--no-progress", action="store_true")


def run(args):
    from ..lab.fit import Fit, FitSettings, summary

    settings = FitSettings(minutes=args.minutes, workers=args.workers, seed=args.seed, constraints=args.constraints,
                           warm_start=args.warm_start)
    try:
        fit = Fit(args.output, args.input, args.capped, args.preset, args.forcefield, args.temperature_k, settings,
                  progress=not args.no_progress)
        fit.run()
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; run the same command again to continue the fit in {args.output!r}.", file=sys.stderr)
        return 130
    print(summary(fit.record, fit.directory))
    return 0
