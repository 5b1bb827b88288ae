"""``openmm-timewarp models``: list the shipped and registered models."""

from ..models import list_models, model_path


def add_arguments(parser):
    parser.add_argument("--paths", action="store_true", help="also print each model's file")


def run(args):
    from ..contract import load_flow

    names = list_models()
    if not names:
        print("no models installed")
    for name in names:
        _, info = load_flow(name)
        line = f"{name}: {info.num_atoms or 'any'} atoms, {info.temperature:g} K, tau {info.tau_ps:g} ps, {info.force_field}"
        print(line + (f"\n  {model_path(name)}" if args.paths else ""))
    return 0
