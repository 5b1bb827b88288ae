"""``openmm-timewarp export``: write a trained flow (or a mixture) as a flow-contract-1 TorchScript file."""

_SETTING_NAMES = {"move-interval": "moveInterval", "proposals-per-move": "proposalsPerMove", "batch-size": "batchSize"}


def add_arguments(parser):
    parser.add_argument("training", help="folder written by 'openmm-timewarp train'")
    parser.add_argument("-o", "--output", required=True, help="the .pt file to write")
    parser.add_argument("--finetuned", action="store_true", help="export TRAINING/finetune/finetuned.pt")
    parser.add_argument("--mix", action="append", default=[], metavar="FOLDER:WEIGHT",
                        help="internal family: add another training folder of the same molecule as a mixture "
                             "component with this probability (repeatable); TRAINING gets the rest")
    parser.add_argument("--transferable", action="store_true",
                        help="cartesian family: declare num_atoms = 0 (any molecule of the known elements)")
    for flag, name in _SETTING_NAMES.items():
        parser.add_argument(f"--{flag}", type=int, dest=name,
                            help=f"internal family: recommended {name} stored in the model (default: the family's)")
    parser.add_argument("--note", action="append", default=[], metavar="KEY=VALUE",
                        help="extra metadata to store (repeatable)")


def run(args):
    from ..lab.training.export import export_training_folders

    mix = []
    for item in args.mix:
        folder, _, weight = item.rpartition(":")
        mix.append((folder, float(weight)))
    notes = dict(note.partition("=")[::2] for note in args.note)
    options = {}
    settings = {name: getattr(args, name) for name in _SETTING_NAMES.values() if getattr(args, name) is not None}
    if settings:
        options["recommended_settings"] = settings
    if args.transferable:
        options["transferable"] = True
    info = export_training_folders(args.training, args.output, mix, args.finetuned, notes, **options)
    nll = info.metadata.get("validation_nll_per_atom", float("nan"))
    print(f"wrote {args.output}: {info.num_atoms or 'any'} atoms, {info.temperature:g} K, tau {info.tau_ps:g} ps, "
          f"{info.force_field}, {'state-independent, ' if info.proposal_independent else ''}"
          f"validation NLL {nll:.3f} per atom")
    return 0
