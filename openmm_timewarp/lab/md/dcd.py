"""DCD trajectory files as ``openmm.app.DCDFile`` writes them (CHARMM flavour, little-endian).

MD runs store their production frames in one DCD file. This module reads its layout (header size,
frame size, frame counts) so readers can memory-map frames, writes frames to a new or an existing
file, and cuts a file back to a number of frames, so that a continued run appends exactly where
its last checkpoint left off.
"""

import os
import struct
from dataclasses import dataclass

import numpy as np
import torch  # noqa: F401  (torch before openmm; see openmm_timewarp._stack)
from openmm import app


@dataclass(frozen=True)
class DCDLayout:
    """Where things are in a DCD file.

    Attributes
    ----------
    path : str
    num_atoms : int
    header_bytes : int
        Offset of the first frame.
    frame_bytes : int
        Size of one frame (unit-cell record, if any, and the X, Y, Z records).
    has_unit_cell : bool
    frames_in_header : int
        The frame count the header states.
    frames_in_file : int
        Whole frames present, from the file size.
    """

    path: str
    num_atoms: int
    header_bytes: int
    frame_bytes: int
    has_unit_cell: bool
    frames_in_header: int
    frames_in_file: int

    def frame_dtype(self) -> np.dtype:
        """numpy record type of one frame: fields x, y, z (float32, Angstrom) and Fortran record markers."""
        fields = []
        if self.has_unit_cell:
            fields.append(("cell", "V56"))
        for axis in "xyz":
            fields += [(f"{axis}_begin", "<i4"), (axis, "<f4", (self.num_atoms,)), (f"{axis}_end", "<i4")]
        return np.dtype(fields)


def read_dcd_layout(path: str) -> DCDLayout:
    """Read and check a DCD header.

    Parameters
    ----------
    path : str
        A DCD file.

    Returns
    -------
    DCDLayout

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not a little-endian CHARMM DCD, or a header cut short; the message names the file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"trajectory file {path!r} does not exist.")
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(100)
        if len(head) < 100 or struct.unpack("<i", head[:4])[0] != 84 or head[4:8] != b"CORD":
            raise ValueError(f"{path!r} is not a DCD trajectory (or its header is corrupt or cut short): "
                             "delete it, or rerun the simulation into a new directory.")
        frames_in_header = struct.unpack("<i", head[8:12])[0]
        has_unit_cell = struct.unpack("<i", head[48:52])[0] != 0
        if struct.unpack("<i", head[52:56])[0] != 0:
            raise ValueError(f"{path!r} is a 4-D DCD, which is not supported.")
        title_bytes = struct.unpack("<i", head[92:96])[0]
        if title_bytes < 0 or 112 + title_bytes > size:
            raise ValueError(f"{path!r}: corrupt DCD header (title block of {title_bytes} bytes).")
        handle.seek(96 + title_bytes)
        tail = handle.read(16)
    if len(tail) < 16:
        raise ValueError(f"{path!r}: DCD header cut short.")
    end_title, begin_atoms, num_atoms, end_atoms = struct.unpack("<4i", tail)
    if end_title != title_bytes or begin_atoms != 4 or end_atoms != 4 or num_atoms <= 0:
        raise ValueError(f"{path!r}: corrupt DCD header (atom-count record).")
    header_bytes = 112 + title_bytes
    frame_bytes = (56 if has_unit_cell else 0) + 3 * (8 + 4 * num_atoms)
    return DCDLayout(path, num_atoms, header_bytes, frame_bytes, has_unit_cell,
                     frames_in_header, (size - header_bytes) // frame_bytes)


def truncate_dcd(path: str, num_frames: int) -> DCDLayout:
    """Cut a DCD file to its first ``num_frames`` frames and make the header say so.

    Parameters
    ----------
    path : str
        A DCD file written by ``openmm.app.DCDFile``.
    num_frames : int
        Frames to keep.

    Returns
    -------
    DCDLayout
        The layout after truncation.

    Raises
    ------
    ValueError
        The file holds fewer than ``num_frames`` whole frames.
    """
    layout = read_dcd_layout(path)
    if layout.frames_in_file < num_frames:
        raise ValueError(f"{path!r} holds {layout.frames_in_file} frames but its checkpoint says {num_frames} were "
                         "written: the trajectory was cut short or changed outside this program. Move the run "
                         "directory away and start again.")
    with open(path, "r+b") as handle:
        handle.truncate(layout.header_bytes + num_frames * layout.frame_bytes)
        handle.seek(8)
        handle.write(struct.pack("<i", num_frames))
        first_step, interval = struct.unpack("<2i", handle.read(8))
        handle.seek(20)
        handle.write(struct.pack("<i", first_step + max(num_frames - 1, 0) * interval))
        handle.flush()
        os.fsync(handle.fileno())
    return read_dcd_layout(path)


class DCDWriter:
    """Write frames to a new DCD file, or append them to one this class (or ``DCDFile``) wrote.

    Use it as a context manager; leaving the block closes the file.

    Parameters
    ----------
    path : str
        The DCD file. Without ``append`` it is created (or overwritten).
    topology : openmm.app.Topology
    timestep : openmm.unit.Quantity
        The MD time step (recorded in the header).
    interval_steps : int
        Time steps between frames; the first frame is at step ``interval_steps``.
    append : bool
        Continue an existing file after its last frame (see ``truncate_dcd`` to cut it first).
    """

    def __init__(self, path: str, topology: app.Topology, timestep, interval_steps: int, append: bool = False):
        self.path = path
        self._handle = open(path, "r+b" if append else "w+b")
        try:
            self._dcd = app.DCDFile(self._handle, topology, timestep, firstStep=interval_steps,
                                    interval=interval_steps, append=append)
        except BaseException:
            self._handle.close()
            raise

    def write(self, positions) -> None:
        """Write one frame: positions of every atom (``openmm.unit.Quantity``, or numpy in nm)."""
        self._dcd.writeModel(positions)

    def sync(self) -> None:
        """Flush the frames written so far to disk (``fsync``), so a checkpoint can count on them."""
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "DCDWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
