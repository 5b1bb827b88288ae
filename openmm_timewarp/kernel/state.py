"""The kernel's exact-restart state: a dict of plain values (arrays as bytes) and its JSON encoding."""

import base64

import numpy as np
import torch

from .cache import Left
from .walks import Batch

STATE_VERSION = 2
_BUFFER_ARRAYS = ("x", "v", "log_q", "v_old", "log_u")


def pack_array(array) -> dict:
    """An array as a JSON-friendly dict of dtype, shape and raw bytes."""
    array = np.ascontiguousarray(array)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tobytes()}


def unpack_array(packed) -> np.ndarray:
    """The array :func:`pack_array` packed."""
    return np.frombuffer(packed["data"], dtype=np.dtype(packed["dtype"])).reshape(packed["shape"])


def encode_state(value):
    """A state dict with every bytes value as base64 text (JSON-ready); :func:`decode_state` reverses it."""
    if isinstance(value, bytes):
        return {"__base64__": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {key: encode_state(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_state(item) for item in value]
    return value


def decode_state(value):
    """Reverse :func:`encode_state`."""
    if isinstance(value, dict):
        if set(value) == {"__base64__"}:
            return base64.b64decode(value["__base64__"])
        return {key: decode_state(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_state(item) for item in value]
    return value


def _pack_left(left):
    groups = sorted(left.groups) if isinstance(left.groups, (set, frozenset)) else left.groups
    return {"positions": pack_array(left.positions), "energy": left.energy, "groups": groups,
            "parameters": left.parameters, "log_q": left.log_q}


def _unpack_left(left):
    groups = left["groups"]
    return Left(unpack_array(left["positions"]), float(left["energy"]),
                set(groups) if isinstance(groups, list) else groups, dict(left["parameters"]), left["log_q"])


def _pack_buffer(batch):
    packed = {name: pack_array(getattr(batch, name).numpy()) for name in _BUFFER_ARRAYS}
    packed.update(components=batch.components, finite=batch.finite, flipped=batch.flipped, next=batch.next,
                  drawn=None if batch.drawn is None else pack_array(batch.drawn.numpy()))
    return packed


def _unpack_buffer(buffer):
    tensors = {name: torch.from_numpy(unpack_array(buffer[name]).copy()) for name in _BUFFER_ARRAYS}
    drawn = buffer.get("drawn")  # the proposals as drawn, when x was re-placed in another frame
    return Batch(**tensors, components=list(buffer["components"]), finite=list(buffer["finite"]),
                 flipped=list(buffer["flipped"]), next=int(buffer["next"]),
                 drawn=None if drawn is None else torch.from_numpy(unpack_array(drawn).copy()))


def get_state(kernel) -> dict:
    """Everything a bit-exact restart of ``kernel`` needs (see :meth:`TimewarpKernel.getState`)."""
    statistics = kernel.statistics().as_dict()
    del statistics["acceptance_rate"], statistics["md_time"]
    cache = kernel.cache
    return {
        "version": STATE_VERSION,
        "generator": kernel.generator.get_state().numpy().tobytes(),
        "reverse_chunk": kernel.reverseChunk,
        "statistics": statistics,
        "mapping": None if kernel.mapping is None else pack_array(kernel.mapping),
        "left": None if cache.left is None else _pack_left(cache.left),
        "buffer": None if cache.buffer is None else _pack_buffer(cache.buffer),
        "system_shape": None if cache.shape is None else list(cache.shape),
        "copies": kernel.copies,
    }


def set_state(kernel, state):
    """Restore into ``kernel`` what :func:`get_state` returned (extra statistics keys are ignored)."""
    if not isinstance(state, dict) or state.get("version") not in (1, STATE_VERSION):
        raise ValueError(f"not a Timewarp move state (version {STATE_VERSION})")
    kernel.generator.set_state(torch.frombuffer(bytearray(state["generator"]), dtype=torch.uint8))
    kernel.reverseChunk = int(state["reverse_chunk"])
    kernel.setStatistics(state["statistics"])
    kernel.copies = int(state.get("copies", 0))
    cache = kernel.cache
    cache.clear()
    if state.get("mapping") is not None:
        kernel.pinMapping(unpack_array(state["mapping"]))  # match again, honouring the restored mapping
    if state.get("left") is not None:
        cache.left = _unpack_left(state["left"])
    if state.get("buffer") is not None:
        cache.buffer = _unpack_buffer(state["buffer"])
    shape = state.get("system_shape")
    cache.detach(None if shape is None else tuple(shape))
