"""JSON-safe values: the one conversion the package's JSON outputs go through.

:func:`to_jsonable` turns numpy scalars and arrays into Python numbers and lists, dataclasses
into dicts, paths into strings and mapping keys into strings; objects with a ``to_json()``
method give its result. Non-finite floats become the strings ``"inf"``, ``"-inf"`` and ``"nan"``
(strict JSON), or stay floats (``nonfinite="number"``: Python's ``Infinity`` and ``NaN`` tokens,
which ``json.load`` reads back as floats).
"""

import dataclasses
import json
import math
from pathlib import PurePath
from typing import Any

import numpy as np

NONFINITE = ("string", "number")


def to_jsonable(value: Any, nonfinite: str = "string") -> Any:
    """``value`` as plain dicts, lists, strings, numbers, booleans and None.

    Parameters
    ----------
    value : object
        Dicts, lists, tuples, sets, numpy arrays and scalars, dataclasses, paths, objects with a
        ``to_json()`` method, and JSON's own types, nested in any way. Anything else becomes ``str(value)``.
    nonfinite : {"string", "number"}
        Non-finite floats as the strings "inf", "-inf", "nan", or left as floats.

    Returns
    -------
    object
        Something ``json.dumps`` writes (as strict JSON with ``nonfinite="string"``).
    """
    if nonfinite not in NONFINITE:
        raise ValueError(f"nonfinite must be one of {NONFINITE}, got {nonfinite!r}.")
    return _convert(value, nonfinite == "string")


def _convert(value: Any, strings: bool) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return str(value) if strings and not math.isfinite(value) else value
    if isinstance(value, dict):
        return {str(k): _convert(v, strings) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _convert(value.tolist(), strings)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_convert(v, strings) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_json = getattr(value, "to_json", None)
        if callable(to_json):
            return _convert(to_json(), strings)
        return {f.name: _convert(getattr(value, f.name), strings) for f in dataclasses.fields(value)}
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return _convert(to_json(), strings)
    return str(value)


def dumps_json(value: Any, nonfinite: str = "string", **kwargs) -> str:
    """``json.dumps`` of :func:`to_jsonable` (``kwargs`` go to ``json.dumps``, e.g. ``indent``)."""
    return json.dumps(to_jsonable(value, nonfinite), **kwargs)


def dump_json(value: Any, handle, nonfinite: str = "string", **kwargs) -> None:
    """``json.dump`` of :func:`to_jsonable` to an open text file."""
    json.dump(to_jsonable(value, nonfinite), handle, **kwargs)
