"""The molecule, model and reference a benchmark runs on, from what a user names."""

import json
import os

DEFAULT_MODEL = "alanine-dipeptide"


def resolve_flow(flow):
    """The absolute path of a model given as a file or a shipped/registered name (worker processes need no registry).

    Raises
    ------
    ValueError
        Neither a file nor a known model; the message lists the installed ones.
    """
    from ...models import list_models, model_path

    if os.path.isfile(flow):
        return os.path.abspath(flow)
    if flow in list_models():
        return model_path(flow)
    raise ValueError(f"model {flow!r} is neither a file nor an installed model (installed: "
                     f"{', '.join(list_models()) or 'none'}).")


def load_system(system, capped=False, preset=None, temperature_k=None):
    """The molecule and its default model for ``--system`` (None: alanine dipeptide and the shipped model)."""
    from ..fit import FIT_FILE
    from ..molecule import load_molecule

    if system is None:
        from ..systems import structure_path

        return load_molecule(structure_path("alanine-dipeptide")), DEFAULT_MODEL
    if os.path.isdir(system):
        with open(os.path.join(system, FIT_FILE)) as handle:
            request = json.load(handle)["request"]
        if request["preset"] is None:  # a fit of a System file: the System, with the fit's minimised structure
            molecule = load_molecule(request["input"], structure=os.path.join(system, "structure.pdb"),
                                     temperature_K=request["temperature_K"])
        else:
            molecule = load_molecule(os.path.join(system, "structure.pdb"), preset=request["preset"],
                                     forcefield=request["forcefield"] or None, temperature_K=request["temperature_K"])
        return molecule, os.path.join(system, "model.pt")
    return load_molecule(system, capped, preset or "amber99sbildn-obc", temperature_K=temperature_k), None


def reference_for(molecule, option=None, packaged: bool = False):
    """The reference a benchmark scores against: the file or folder ``option``, else the packaged
    alanine-dipeptide one when ``packaged``, else None.

    Raises
    ------
    ValueError
        A reference of another molecule or temperature.
    FileNotFoundError
        ``option`` does not exist.
    """
    from ..analysis.reference import load_reference

    if option:
        reference = load_reference(option)
    elif packaged:
        reference = load_reference()
    else:
        return None
    if reference.molecule != molecule.name:
        raise ValueError(f"the reference is for {reference.molecule}, the system is {molecule.name}.")
    if abs(reference.temperature_K - molecule.temperature_K) > 1e-6:
        raise ValueError(f"the reference is at {reference.temperature_K:g} K, the system at "
                         f"{molecule.temperature_K:g} K.")
    return reference
