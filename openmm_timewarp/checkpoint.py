"""Checkpoints that hold OpenMM's state and the TimewarpIntegrator's own state together.

``simulation.saveCheckpoint`` alone continues a run correctly in the statistical sense, but the
moves' random generator and counters are not in it. :func:`save_checkpoint` writes both, and a
run split in two by :func:`save_checkpoint` / :func:`load_checkpoint` repeats the uninterrupted run
bit for bit on the Reference platform.

The file is JSON: the OpenMM checkpoint and the generator state base64-encoded, so that loading
one never executes code.
"""

import base64
import json
import os

from .integrator import TimewarpIntegrator
from .kernel import decode_state, encode_state

_FORMAT = "openmm-timewarp-checkpoint"


def _context_and_integrator(target):
    context = getattr(target, "context", target)  # an app.Simulation or a Context
    integrator = context.getIntegrator()

    if not isinstance(integrator, TimewarpIntegrator):
        raise TypeError("the Context's integrator is not a TimewarpIntegrator; use OpenMM's own checkpoints.")
    return context, integrator


def save_checkpoint(target, file):
    """Write OpenMM's checkpoint and the integrator's state to ``file``.

    Parameters
    ----------
    target : openmm.app.Simulation or openmm.Context
        Whose integrator is a TimewarpIntegrator.
    file : str or binary file object
        Written atomically when a path is given.
    """
    context, integrator = _context_and_integrator(target)
    data = json.dumps({"format": _FORMAT, "version": 1,
                       "openmm": base64.b64encode(context.createCheckpoint()).decode("ascii"),
                       "timewarp": encode_state(integrator.getTimewarpState())}).encode()
    if isinstance(file, (str, os.PathLike)):
        temporary = f"{os.fspath(file)}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, file)
    else:
        file.write(data)


def load_checkpoint(target, file):
    """Restore what :func:`save_checkpoint` wrote, into a Context with the same System.

    Raises
    ------
    ValueError
        The file is not such a checkpoint.
    """
    context, integrator = _context_and_integrator(target)
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as handle:
            raw = handle.read()
    else:
        raw = file.read()
    try:
        data = json.loads(raw)
        if data.get("format") != _FORMAT:
            raise ValueError
        state = decode_state(data["timewarp"])
        if isinstance(state["generator"], str):  # files written before the state had other arrays
            state["generator"] = base64.b64decode(state["generator"])
        openmm_checkpoint = base64.b64decode(data["openmm"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ValueError(f"{file!r} is not an openmm-timewarp checkpoint (written by save_checkpoint).") from None
    context.loadCheckpoint(openmm_checkpoint)
    integrator.setTimewarpState(state)
