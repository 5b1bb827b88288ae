"""Backbone torsions (phi, psi) with mdtraj, in degrees on (-180, 180].

phi(i) = C(i-1)-N(i)-CA(i)-C(i) and psi(i) = N(i)-CA(i)-C(i)-N(i+1): alanine dipeptide (ACE-ALA-NME)
has exactly one of each.
"""

import struct

import numpy as np

# CHARMM/DCD time unit (AKMA) in picoseconds, as written by OpenMM's DCDFile.
_AKMA_PS = 0.04888821


def wrap_degrees(angles):
    """Map angles in degrees onto (-180, 180].

    Parameters
    ----------
    angles : array_like
        Degrees, any range.

    Returns
    -------
    numpy.ndarray of float
    """
    wrapped = np.mod(np.asarray(angles, dtype=float) + 180.0, 360.0) - 180.0  # [-180, 180)
    return np.where(wrapped <= -180.0, wrapped + 360.0, wrapped)


def load_trajectory(path, top, stride=1):
    """Load a trajectory file (DCD, XTC, ...) with its topology file as an mdtraj Trajectory.

    Parameters
    ----------
    path : str or path-like
        Trajectory file.
    top : str or path-like
        Topology (PDB).
    stride : int
        Keep every ``stride``-th frame.

    Returns
    -------
    mdtraj.Trajectory
    """
    import mdtraj

    return mdtraj.load(str(path), top=str(top), stride=int(stride))


def trajectory_from_positions(positions, topology):
    """An mdtraj Trajectory from positions and a topology.

    Parameters
    ----------
    positions : array_like, shape (n_frames, n_atoms, 3) or (n_atoms, 3)
        Nanometres (an OpenMM Quantity is converted).
    topology : openmm.app.Topology or mdtraj.Topology

    Returns
    -------
    mdtraj.Trajectory
    """
    import mdtraj

    if hasattr(positions, "value_in_unit"):
        from openmm import unit

        positions = positions.value_in_unit(unit.nanometer)
    xyz = np.asarray(positions, dtype=np.float32)
    if xyz.ndim == 2:
        xyz = xyz[None]
    if not isinstance(topology, mdtraj.Topology):
        topology = mdtraj.Topology.from_openmm(topology)
    if xyz.shape[1:] != (topology.n_atoms, 3):
        raise ValueError(f"positions of shape {xyz.shape} do not match a topology of {topology.n_atoms} atoms")
    return mdtraj.Trajectory(xyz, topology)


def backbone_torsions(trajectory):
    """All phi and psi torsions of a trajectory, in degrees on (-180, 180].

    Parameters
    ----------
    trajectory : mdtraj.Trajectory

    Returns
    -------
    phi, psi : numpy.ndarray, shapes (n_frames, n_phi) and (n_frames, n_psi)
        Degrees (float64). Columns follow the residues of the chain.
    """
    import mdtraj

    _, phi = mdtraj.compute_phi(trajectory)
    _, psi = mdtraj.compute_psi(trajectory)
    return wrap_degrees(np.degrees(phi.astype(float))), wrap_degrees(np.degrees(psi.astype(float)))


def residue_torsions(trajectory):
    """phi and psi paired by residue, for the residues that have both (Ramachandran pairs).

    Parameters
    ----------
    trajectory : mdtraj.Trajectory

    Returns
    -------
    phi, psi : numpy.ndarray, shape (n_frames, n_residues)
        Degrees on (-180, 180]; column k of both belongs to the same residue (same CA atom).
    """
    import mdtraj

    phi_atoms, phi = mdtraj.compute_phi(trajectory)
    psi_atoms, psi = mdtraj.compute_psi(trajectory)
    psi_column = {int(ca): k for k, ca in enumerate(psi_atoms[:, 1])}
    pairs = [(k, psi_column[int(ca)]) for k, ca in enumerate(phi_atoms[:, 2]) if int(ca) in psi_column]
    i = np.array([a for a, _ in pairs], dtype=int)
    j = np.array([b for _, b in pairs], dtype=int)
    return (wrap_degrees(np.degrees(phi[:, i].astype(float))), wrap_degrees(np.degrees(psi[:, j].astype(float))))


def dipeptide_torsions(trajectory):
    """The single (phi, psi) pair of a dipeptide such as ACE-ALA-NME.

    Parameters
    ----------
    trajectory : mdtraj.Trajectory

    Returns
    -------
    phi, psi : numpy.ndarray, shape (n_frames,)
        Degrees on (-180, 180].
    """
    phi, psi = backbone_torsions(trajectory)
    if phi.shape[1] != 1 or psi.shape[1] != 1:
        raise ValueError(f"expected one phi and one psi, found {phi.shape[1]} and {psi.shape[1]}")
    return phi[:, 0], psi[:, 0]


def torsions_from_positions(positions, topology):
    """phi and psi (degrees, (-180, 180]) from positions and a topology.

    Parameters
    ----------
    positions : array_like, shape (n_frames, n_atoms, 3) or (n_atoms, 3)
        Nanometres.
    topology : openmm.app.Topology or mdtraj.Topology

    Returns
    -------
    phi, psi : numpy.ndarray, shapes (n_frames, n_phi) and (n_frames, n_psi)
    """
    return backbone_torsions(trajectory_from_positions(positions, topology))


def dcd_frame_interval_ps(path):
    """Simulated time between frames of a DCD file, from its header (OpenMM writes it).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    float or None
        Picoseconds per frame, or None if the header does not say (no step size recorded).
    """
    with open(path, "rb") as handle:
        header = handle.read(48)
    if len(header) < 48 or header[4:8] != b"CORD":
        return None
    interval = struct.unpack("<i", header[16:20])[0]
    delta = struct.unpack("<f", header[44:48])[0]
    value = interval * delta * _AKMA_PS
    return float(value) if np.isfinite(value) and value > 0 else None
